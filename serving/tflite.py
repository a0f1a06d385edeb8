"""Serving a version's `model.tflite` (TF Serving's --prefer_tflite_model) with TensorFlow's TFLite
interpreter.

The signatures come, as in TF Serving's tflite_session, from the first of:
1. the model's own TFLite signatures (what today's converter writes): run by signature runner;
2. SignatureDefs embedded in the `signature_defs_metadata` buffer (older TF Serving exports):
   aliases mapped to the interpreter's tensors by name;
3. neither: one `serving_default` whose aliases are the input and output tensor names.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import numpy as np

from exporter.formats.tflite import make_interpreter, tensor_name
from serving import tensors
from serving.protos import meta_graph_pb2
from serving.rpc import RpcFailure, one_line

PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURE_DEFS_METADATA = "signature_defs_metadata"
DEFAULT_SIGNATURE = "serving_default"


def load_tflite(path: Path):
    """Load a .tflite file; return (signature name -> private SignatureDef, TfliteRunner).

    Raises:
        FormatError: the file is not a model the interpreter can load.
    """
    interpreter = make_interpreter(path)
    listed = interpreter.get_signature_list()
    if listed:
        signatures = {key: _runner_signature(interpreter.get_signature_runner(key))
                      for key in listed}
        return ({key: sig for key, (sig, _) in signatures.items()},
                TfliteRunner(interpreter, {key: runner for key, (_, runner) in signatures.items()}))
    embedded = _embedded_signature_defs(path.read_bytes())
    by_name = {tensor_name(d["name"]): d for d in
               interpreter.get_input_details() + interpreter.get_output_details()}
    if embedded:
        tensor_maps = {}
        for key, sig in embedded.items():
            tensor_maps[key] = {alias: by_name[tensor_name(info.name)]["index"]
                                for alias, info in [*sig.inputs.items(), *sig.outputs.items()]
                                if tensor_name(info.name) in by_name}
        return embedded, TfliteRunner(interpreter, tensor_maps)
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for details, side in ((interpreter.get_input_details(), sig.inputs),
                          (interpreter.get_output_details(), sig.outputs)):
        for d in details:
            _tensor_info(side[tensor_name(d["name"])], d)
    index = {tensor_name(d["name"]): d["index"] for d in by_name.values()}
    return {DEFAULT_SIGNATURE: sig}, TfliteRunner(interpreter, {DEFAULT_SIGNATURE: index})


class TfliteRunner:
    """Runs a TFLite model's signatures; the interpreter is not thread-safe, so calls take turns.

    Args:
        interpreter: a `tf.lite.Interpreter`.
        tensor_maps: signature -> the model's own signature runner, or a dict of alias ->
            interpreter tensor index.
    """

    kind = "TFLite"

    def __init__(self, interpreter, tensor_maps: dict):
        self._interpreter = interpreter
        self._tensor_maps = tensor_maps
        self._lock = threading.Lock()

    def has_signature(self, name: str) -> bool:
        return name in self._tensor_maps

    def run(self, signature: str, feeds: dict[str, np.ndarray], fetch: list[str]) -> dict:
        """Set the inputs (resizing them to what was sent), invoke, read the `fetch` outputs."""
        tensor_map = self._tensor_maps[signature]
        try:
            with self._lock:
                if not isinstance(tensor_map, dict):  # a TFLite signature runner
                    outputs = tensor_map(**feeds)
                    return {alias: np.array(outputs[alias]) for alias in fetch}
                return self._run_tensors(tensor_map, feeds, fetch)
        except (ValueError, RuntimeError, KeyError) as err:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, one_line(err)) from None

    def _run_tensors(self, tensor_map: dict, feeds: dict, fetch: list[str]) -> dict:
        interpreter = self._interpreter
        resized = False
        for alias, arr in feeds.items():
            index = tensor_map[alias]
            if tuple(interpreter.get_tensor(index).shape) != arr.shape:
                interpreter.resize_tensor_input(index, list(arr.shape))
                resized = True
        if resized:
            interpreter.allocate_tensors()
        for alias, arr in feeds.items():
            interpreter.set_tensor(tensor_map[alias], arr)
        interpreter.invoke()
        return {alias: interpreter.get_tensor(tensor_map[alias]).copy() for alias in fetch}


def _runner_signature(runner):
    """A SignatureDef for one of the model's own TFLite signatures, and its runner."""
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for alias, d in runner.get_input_details().items():
        _tensor_info(sig.inputs[alias], d)
    for alias, d in runner.get_output_details().items():
        _tensor_info(sig.outputs[alias], d)
    return sig, runner


def _tensor_info(info, details: dict) -> None:
    info.name = details["name"]
    info.dtype = tensors.dtype_from_numpy(np.dtype(details["dtype"]))
    shape = details.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = details["shape"]
    for size in shape:
        info.tensor_shape.dim.add().size = int(size)


def _embedded_signature_defs(model: bytes) -> dict:
    """SignatureDefs TF Serving's exporters stored in the `signature_defs_metadata` buffer (a
    FlexBuffer map of name -> serialized SignatureDef); empty when there are none."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAsModel(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name().decode() != SIGNATURE_DEFS_METADATA:
            continue
        data = root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
        found = flexbuffers.GetRoot(data).AsMap
        signatures = {}
        for key, value in zip(found.Keys, found.Values, strict=True):
            raw = value.AsBlob if value.IsBlob else value.AsStringBytes
            signatures[key.AsKey] = meta_graph_pb2.SignatureDef.FromString(bytes(raw))
        return signatures
    return {}
