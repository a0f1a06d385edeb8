"""Which path a conversion took, and what reading its output needs.

Most sources become a Keras 3 model ("keras3"). A Keras 2 model Keras 3 cannot express exists
only as tf-keras's model ("tf-keras"), and a SavedModel whose Keras layers cannot be revived only
as its signature ("signature"): both can still be written as a SavedModel, which is what TF
Serving needs, and never as a Keras 3 format. Results say which path was taken and why, and
whether a written Keras file names functions only kexport registers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from exporter.formats.detection import Detected, read_config
from exporter.model_types import LoadedModel

KEXPORT_NAMES = re.compile(r"kexport>\w+")


def write_native_savedmodel(source: LoadedModel, path: Path) -> list[Path]:
    """Write a SavedModel from a source without a Keras 3 model (see LoadedModel.native)."""
    from exporter.formats.savedmodel import save_native

    return save_native(source.native, path)


def load_requirements(path: Path, fmt: str, custom_objects: dict) -> list[str]:
    """What a Keras loader needs, beyond Keras, to read a written file (empty: nothing).

    Translated Keras 2 functions Keras 3 lacks (Keras 2's hard_sigmoid) are written under names
    kexport registers; custom classes are named as written; Lambda code loads only outside safe
    mode. A SavedModel needs none of these.
    """
    if fmt not in ("h5", "keras", "json", "yaml"):
        return []
    from exporter.safety import code_layers

    config = read_config(Detected(path, fmt))
    text = json.dumps(config)
    needs = [f"import exporter first (it registers {name})"
             for name in sorted(set(KEXPORT_NAMES.findall(text)))]
    lambdas = code_layers(config)
    if lambdas:
        needs.append(f"safe_mode=False in keras.models.load_model (Lambda code in "
                     f"{', '.join(lambdas[:3])}), or --unsafe for kexport")
    needs += [f"custom object '{name}' (pass it as custom_objects, as --custom-objects did)"
              for name in sorted(custom_objects)]
    return needs


def route_reason(source: LoadedModel) -> str:
    """One sentence on the path a conversion took, for the text and JSON results."""
    if source.route == "tf-keras":
        return ("written from tf-keras's model: Keras 3 cannot express it ("
                f"{getattr(source.keras3_refusal, 'message', source.keras3_refusal)})")
    if source.route == "signature":
        return "the source SavedModel's serving signature, copied as it is (no Keras model)"
    return ""
