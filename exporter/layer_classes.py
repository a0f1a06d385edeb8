"""Name every layer class a config needs that nothing here provides, before any loader runs.

Loaders stop at the first unknown class; a user fixing `--custom-objects` wants the whole list,
with the module each class came from where the file records it (Keras 3 configs do).
"""

from __future__ import annotations

from exporter.errors import UnknownLayerError, closest_names
from exporter.legacy.keras1 import CLASS_RENAMES, MERGE_MODES
from exporter.legacy.translate import MODEL_CLASSES, is_keras2_config, layer_objects

# Old classes the legacy translations turn into current ones.
TRANSLATED_CLASSES = (set(CLASS_RENAMES) | set(MERGE_MODES.values())
                      | {"Merge", "CuDNNLSTM", "CuDNNGRU", "TFOpLambda", "TensorFlowOpLayer"})


def known_class_names(keras2: bool) -> set[str]:
    from exporter.runtime import keras_module, tf_keras_module

    names = {name for name in dir(keras_module().layers) if name[:1].isupper()}
    if keras2:
        names |= {name for name in dir(tf_keras_module().layers) if name[:1].isupper()}
    return names | MODEL_CLASSES | TRANSLATED_CLASSES


def check_layer_classes(config: dict, custom_objects: dict) -> None:
    """Raise UnknownLayerError naming every class neither Keras nor the user provides."""
    from exporter.runtime import keras_module

    keras = keras_module()
    known = known_class_names(is_keras2_config(config)) | set(custom_objects)
    missing: dict[str, str | None] = {}
    for layer in layer_objects(config):
        name = layer.get("class_name")
        if not isinstance(name, str) or name in known or name in missing:
            continue
        registered = layer.get("registered_name") or name
        if keras.saving.get_registered_object(registered) is not None:
            continue
        missing[name] = layer.get("module")
    if not missing:
        return
    listed = ", ".join(_describe(name, module, known) for name, module in missing.items())
    raise UnknownLayerError(
        f"unknown layer class{'es' if len(missing) > 1 else ''}: {listed}.",
        hint="If they are custom layers, pass --custom-objects MODULE or FILE.py that defines "
        "them.",
    )


def _describe(name: str, module: str | None, known: set[str]) -> str:
    matches = closest_names(name, known)
    guess = f"; did you mean {', '.join(matches)}?" if matches else ""
    return f"{name} (module {module or 'not recorded'}{guess})"
