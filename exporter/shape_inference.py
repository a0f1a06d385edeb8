"""Sizes for a model's unknown input dimensions, found by shape inference.

A model built on `Input((None, None, 3))` accepts some image sizes and not others: every strided
convolution and pooling stage shrinks the image, and a stage that gets fewer pixels than its
window fails (InceptionV3 needs at least 75x75, Xception 71x71). Verification inputs must fit, so
unknown dimensions are tried at increasing sizes and the smallest that every layer accepts wins.
Shape inference is symbolic for Keras models (milliseconds for hundreds of layers); a SavedModel
signature, which has no architecture to reason about, is called on zeros instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Candidate sizes, smallest first: multiples of the usual downsampling factors, plus the minimum
# and default sizes of the keras.applications bases (71 Xception, 75 Inception, 299, 331 NASNet).
SPATIAL_SIZES = (32, 64, 71, 75, 96, 128, 160, 192, 224, 256, 299, 331, 384, 512)
STEP_LENGTHS = (8, 16, 32, 64, 128, 256, 512)  # a short sequence first: recurrent layers are slow
# keras.applications model names (Keras 3 and tf-keras agree) -> their default image size.
APPLICATION_SIZES = {
    "xception": 299, "inception_v3": 299, "inception_resnet_v2": 299, "nasnet_large": 331,
    "nasnet_mobile": 224, "vgg16": 224, "vgg19": 224, "resnet50": 224, "resnet101": 224,
    "resnet152": 224, "resnet50v2": 224, "resnet101v2": 224, "resnet152v2": 224,
    "densenet121": 224, "densenet169": 224, "densenet201": 224, "mobilenet": 224,
    "mobilenetv2": 224, "mobilenetv3small": 224, "mobilenetv3large": 224, "efficientnetb0": 224,
    "efficientnetb1": 240, "efficientnetb2": 260, "efficientnetb3": 300, "efficientnetb4": 380,
    "efficientnetb5": 456, "efficientnetb6": 528, "efficientnetb7": 600,
}

_ALPHA_AND_SIZE = re.compile(r"_\d\.\d+_(\d+|none)$")  # MobileNet names carry alpha and size

# name -> full shape (batch included) to try; raises when the model rejects those shapes.
Probe = Callable[[dict[str, tuple]], None]


@dataclass
class SizeChoice:
    """The size given to one kind of unknown dimension ("spatial" or "steps")."""

    kind: str
    size: int
    found: bool  # False: no candidate passed shape inference; `size` is a fallback
    reason: str = ""  # why the largest candidate failed, when none passed
    application: str | None = None  # the recognised keras.applications base behind a fallback


def unknown_kind(shape: tuple | None) -> str | None:
    """What the unknown non-batch dims of an input are: image axes (rank 4+) or time steps."""
    if shape is None or not any(dim is None for dim in shape[1:]):
        return None
    return "spatial" if len(shape) >= 4 else "steps"


def with_size(shape: tuple, size: int, batch: int) -> tuple:
    """`shape` with the batch dim set to `batch` and every other unknown dim to `size`."""
    return tuple(
        (batch if axis == 0 else size) if dim is None else dim for axis, dim in enumerate(shape)
    )


def choose_sizes(templates: dict[str, tuple], probe: Probe | None,
                 application: str | None = None) -> dict[str, SizeChoice]:
    """Pick a size per kind of unknown dimension, kinds searched one after the other.

    Args:
        templates: input name -> shape, None for unknown dims (known dims stay as they are).
        probe: checks a full set of shapes; None when nothing can check them.
        application: a recognised keras.applications base, whose default image size is the
            fallback when no candidate passes.

    Returns:
        kind -> the chosen size, for the kinds present in `templates`.
    """
    kinds = {kind for kind in map(unknown_kind, templates.values()) if kind}
    candidates = {"spatial": SPATIAL_SIZES, "steps": STEP_LENGTHS}
    chosen = {kind: candidates[kind][0] for kind in kinds}
    result = {}
    for kind in sorted(kinds):  # "spatial" before "steps"
        reason = "nothing checks shapes for this model"
        for size in candidates[kind] if probe else ():
            reason = _rejection(probe, templates, {**chosen, kind: size})
            if not reason:
                chosen[kind] = size
                result[kind] = SizeChoice(kind, size, True)
                break
        else:
            fallback = APPLICATION_SIZES.get(application) if kind == "spatial" else None
            chosen[kind] = fallback or candidates[kind][0]
            result[kind] = SizeChoice(kind, chosen[kind], False, reason,
                                      application if fallback else None)
    return result


def _rejection(probe: Probe, templates: dict[str, tuple], sizes: dict[str, int]) -> str:
    return rejection(probe, {name: with_size(shape, sizes.get(unknown_kind(shape), 0), 1)
                             for name, shape in templates.items()})


def rejection(probe: Probe, shapes: dict[str, tuple]) -> str:
    """Why the model rejects inputs of these shapes ('' when it accepts them)."""
    try:
        probe(shapes)
    except Exception as error:  # noqa: BLE001 - any failure means "does not fit"
        return next((line.strip() for line in str(error).splitlines() if line.strip()),
                    type(error).__name__)
    return ""


def model_probe(model, dtypes: dict[str, str]) -> Probe:
    """Symbolic shape inference through a Keras 3 or tf-keras model (no computation)."""
    from exporter.model_tensors import input_specs

    order = [spec.name for spec in input_specs(model)]  # the model's order, not the caller's
    if type(model).__module__.startswith("tf_keras"):
        every_layer = []  # built on first use: most plans never probe

        def probe(shapes: dict[str, tuple]) -> None:
            every_layer[:] = every_layer or [_every_layer_output(model)]
            _check_sizes(_tf_keras_output_shapes(every_layer[0], [shapes[n] for n in order]))

        return probe
    return lambda shapes: _keras3_probe(model, {name: shapes[name] for name in order}, dtypes)


def call_probe(run: Callable, dtypes: dict[str, str]) -> Probe:
    """Call a model on zeros (a SavedModel signature has no architecture to read). Empty
    intermediate results do not raise on every CPU kernel, but their pooled values are NaN or
    infinite: an output that is not finite on zeros rejects the size too."""

    def probe(shapes: dict[str, tuple]) -> None:
        outputs = run({name: np.zeros(shape, dtype=dtypes[name]) for name, shape in shapes.items()})
        _check_sizes(value.shape for value in outputs.values())
        for name, value in outputs.items():
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise ValueError(f"output {name} is not finite on zeros (an empty intermediate?)")

    return probe


def _every_layer_output(model):
    """A tf-keras model whose outputs are every node's outputs: shape inference then shows
    the empty intermediate results that a final global pooling would hide."""
    from exporter.runtime import tf_keras_module

    tensors = [tensor for nodes in getattr(model, "_nodes_by_depth", {}).values()
               for node in nodes if not node.is_input for tensor in _flat(node.outputs)]
    return tf_keras_module().Model(model.inputs, tensors) if tensors else model


def _flat(value) -> list:
    return [item for part in value for item in _flat(part)] if isinstance(
        value, (list, tuple)) else [value]


def _tf_keras_output_shapes(model, shapes: list[tuple]):
    result = model.compute_output_shape(shapes if len(shapes) > 1 else shapes[0])
    return result if isinstance(result, (list, tuple)) and not _is_shape(result) else [result]


def _is_shape(value) -> bool:
    return all(dim is None or isinstance(dim, int) for dim in value)


def _keras3_probe(model, shapes: dict[str, tuple], dtypes: dict[str, str]) -> None:
    """Run the graph on KerasTensors, layer by layer, refusing empty intermediate results: a
    pooling stage that shrinks an image to 0x0 does not raise by itself (its mean is NaN)."""
    from exporter.runtime import keras_module

    keras = keras_module()
    tensors = [keras.KerasTensor(shape, dtype=dtypes[name]) for name, shape in shapes.items()]
    graph = getattr(model, "_functional", None) or model  # a Sequential keeps a functional graph
    if not hasattr(graph, "_run_through_graph"):
        _check_sizes(spec.shape for spec in keras.tree.flatten(
            model.compute_output_spec(tensors if len(tensors) > 1 else tensors[0]))
            if getattr(spec, "shape", None) is not None)
        return

    def checked(operation):
        def compute(*args, **kwargs):
            result = operation.compute_output_spec(*args, **kwargs)
            _check_sizes([spec.shape for spec in keras.tree.flatten(result)
                          if getattr(spec, "shape", None) is not None], operation.name)
            return result

        return compute

    graph._run_through_graph(tensors, operation_fn=checked)


def _check_sizes(shapes, where: str = "the model") -> None:
    for shape in shapes:
        if any(dim is not None and int(dim) <= 0 for dim in shape):
            raise ValueError(f"{where} produces an empty result of shape {tuple(shape)}")


def recognised_application(model) -> str | None:
    """The keras.applications base a model is or nests, by its model name."""
    names = [model.name] + [layer.name for layer in getattr(model, "layers", [])
                            if hasattr(layer, "layers")]
    for name in names:
        key = _ALPHA_AND_SIZE.sub("", name.lower())  # mobilenetv2_0.35_224 -> mobilenetv2
        if key in APPLICATION_SIZES:
            return key
    return None
