"""TensorFlow Lite flatbuffers (`.tflite`): a save-only format.

Writing goes the way TensorFlow recommends for Keras models: the model is exported as a
SavedModel (this package's `savedmodel.save`, so the signature has the same input and output
names) and `tf.lite.TFLiteConverter.from_saved_model` converts it. Reading gives the model's
signature run by the TFLite interpreter: enough to inspect, verify (every written `.tflite` is
re-read and compared with its source) and serve, but a flatbuffer holds a compiled graph, not a
Keras model, so it is never a source for another format.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np

from exporter.errors import FormatError
from exporter.formats.detection import Detected
from exporter.model_types import LoadedModel, LoadOptions, TensorSpec
from exporter.runtime import quiet_stdout, tf_module

DEFAULT_SIGNATURE = "serving_default"


def make_interpreter(path: Path):
    """A TFLite interpreter with its tensors allocated, without TensorFlow's deprecation banner.

    Raises:
        FormatError: the file is not a model the interpreter can load.
    """
    tf = tf_module()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated": still TF's own
            interpreter = tf.lite.Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        message = " ".join(str(err).split())
        raise FormatError(f"{path} cannot be loaded by the TFLite interpreter: {message}") from None
    return interpreter


def signature_specs(interpreter) -> dict[str, tuple[list[TensorSpec], list[TensorSpec]]]:
    """Signature name -> (input specs, output specs). A model without TFLite signatures (older
    converters) gets one `serving_default` named after its tensors, as TF Serving names it."""
    listed = interpreter.get_signature_list()
    if listed:
        found = {}
        for key in listed:
            runner = interpreter.get_signature_runner(key)
            found[key] = ([_spec(name, d) for name, d in sorted(runner.get_input_details().items())],
                          [_spec(name, d) for name, d in sorted(runner.get_output_details().items())])
        return found
    return {DEFAULT_SIGNATURE: ([_spec(tensor_name(d["name"]), d) for d in interpreter.get_input_details()],
                                [_spec(tensor_name(d["name"]), d) for d in interpreter.get_output_details()])}


def describe_signatures(path: Path) -> dict:
    """Every signature of a .tflite file, shaped like `savedmodel.describe_signatures`."""
    specs = signature_specs(make_interpreter(path))
    return {key: {"inputs": [s.as_dict() for s in ins], "outputs": [s.as_dict() for s in outs]}
            for key, (ins, outs) in sorted(specs.items())}


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    """The model's serving signature (or its first), run by the TFLite interpreter."""
    interpreter = make_interpreter(detected.path)
    specs = signature_specs(interpreter)
    key = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in specs else min(specs)
    inputs, outputs = specs[key]
    if interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)

        def run(feed):
            result = runner(**{spec.name: np.asarray(feed[spec.name], spec.dtype) for spec in inputs})
            return {name: np.asarray(value) for name, value in result.items()}
    else:
        def run(feed):
            return _run_tensors(interpreter, inputs, feed)

    return LoadedModel(None, "tflite", detected.path, run, inputs, outputs)


def save(model, path: Path, options) -> list[Path]:
    """Export `model` as a SavedModel beside `path`, convert it, write the flatbuffer."""
    from exporter.formats import savedmodel

    tf = tf_module()
    exported = path.with_name(path.name + ".savedmodel")
    try:
        savedmodel.save(model, exported, options)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(exported))
        # TFLite's own kernels where they exist, TensorFlow's where they do not (the Python
        # interpreter runs both), so any Keras model converts.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                               tf.lite.OpsSet.SELECT_TF_OPS]
        with quiet_stdout():
            flatbuffer = converter.convert()
    except Exception as err:  # noqa: BLE001 -- the converter raises its own and TF's types
        raise FormatError(f"TensorFlow's TFLite converter failed: {' '.join(str(err).split())[:500]}",
                          hint="Convert to savedmodel instead, or simplify the model's ops.") from None
    finally:
        shutil.rmtree(exported, ignore_errors=True)
    path.write_bytes(flatbuffer)
    return [path]


def _run_tensors(interpreter, inputs: list[TensorSpec], feed) -> dict:
    by_name = {tensor_name(d["name"]): d for d in interpreter.get_input_details()}
    resized = False
    for spec in inputs:
        arr = np.asarray(feed[spec.name], spec.dtype)
        if tuple(by_name[spec.name]["shape"]) != arr.shape:
            interpreter.resize_tensor_input(by_name[spec.name]["index"], list(arr.shape))
            resized = True
    if resized:
        interpreter.allocate_tensors()
    for spec in inputs:
        interpreter.set_tensor(by_name[spec.name]["index"], np.asarray(feed[spec.name], spec.dtype))
    interpreter.invoke()
    return {tensor_name(d["name"]): interpreter.get_tensor(d["index"]).copy()
            for d in interpreter.get_output_details()}


def _spec(name: str, details: dict) -> TensorSpec:
    shape = details.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = details["shape"]
    return TensorSpec(name, tuple(None if int(d) < 0 else int(d) for d in shape),
                      np.dtype(details["dtype"]).name)


def tensor_name(name: str) -> str:
    """A tensor name without the `:0` output index, as signature aliases spell it."""
    return name.removesuffix(":0")
