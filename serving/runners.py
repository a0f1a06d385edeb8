"""How a loaded model version computes: a runner takes input arrays by signature alias and returns
the output arrays asked for, whatever loaded the model.

- `SessionRunner`: the session loader (`tf.compat.v1.saved_model.loader.load`), which is how TF
  Serving's C++ server loads every SavedModel, TF1 or TF2; it also serves old graphs TF2's loader
  refuses (e.g. TF Serving's own `saved_model_half_plus_three`: "Shapes must be equal rank");
- `FunctionRunner`: TF2's `tf.saved_model.load` and its signature functions, for SavedModels
  the session loader cannot load;
- `serving.tflite.TfliteRunner`: a `model.tflite` (`--prefer_tflite_model`);
- `serving.batching.BatchingRunner`: merges concurrent calls in front of any of these.

Every runner raises `RpcFailure` with TensorFlow's code and message when a call fails.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
import numpy as np

from serving.rpc import RpcFailure, one_line

log = logging.getLogger("kexport.serving")

SERVE_TAG = "serve"
# TensorFlow's error codes are the gRPC status codes.
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class FunctionRunner:
    """Signatures of a SavedModel loaded by TF2's `tf.saved_model.load`."""

    kind = "TF2 SavedModel"

    def __init__(self, loaded):
        self._loaded = loaded  # owns the variables the functions capture
        self._functions = dict(loaded.signatures)

    def has_signature(self, name: str) -> bool:
        return name in self._functions

    def run(self, signature: str, feeds: dict[str, np.ndarray], fetch: list[str]) -> dict:
        """Call a signature function with `feeds`; return the `fetch` outputs as arrays."""
        import tensorflow as tf

        function = self._functions[signature]
        _check_dtypes(function.structured_input_signature[1], feeds)
        try:
            results = function(**{alias: tf.convert_to_tensor(arr) for alias, arr in feeds.items()})
        except tf.errors.OpError as err:
            raise op_failure(err) from None
        except (TypeError, ValueError) as err:  # shape or structure refused by the Python wrapper
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, one_line(err)) from None
        return {alias: results[alias].numpy() for alias in fetch}


class SessionRunner:
    """Signatures of a TF1 SavedModel run in its own `tf.compat.v1.Session`, as TF Serving's
    SavedModelBundle does: feeds and fetches by the tensor names of the SignatureDef.

    A callable is made per (signature, inputs, outputs) combination: unlike `Session.run`, it
    does not check fed shapes against the placeholders' static shapes in Python, which the C++
    session (and so TF Serving) does not do either.
    """

    kind = "SavedModel (session)"
    # No close(): a request that resolved this version just before it was unloaded may still be
    # running; the session is released with the last reference to it.

    def __init__(self, session, signature_defs: dict):
        self._session = session
        self._signature_defs = signature_defs  # TensorFlow's own SignatureDef messages
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def has_signature(self, name: str) -> bool:
        return name in self._signature_defs

    def run(self, signature: str, feeds: dict[str, np.ndarray], fetch: list[str]) -> dict:
        """Run the session on a signature's tensors; return the `fetch` outputs as arrays."""
        import tensorflow as tf

        aliases = tuple(sorted(feeds))
        call, dtypes = self._callable(signature, aliases, tuple(fetch))
        _check_dtypes(dtypes, feeds)
        try:
            values = call(*(feeds[alias] for alias in aliases))
        except tf.errors.OpError as err:
            raise op_failure(err) from None
        except (TypeError, ValueError) as err:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, one_line(err)) from None
        return dict(zip(fetch, values))

    def _callable(self, signature: str, inputs: tuple, outputs: tuple):
        key = (signature, inputs, outputs)
        with self._lock:
            if key not in self._callables:
                from tensorflow.core.protobuf import config_pb2

                sig = self._signature_defs[signature]
                feeds = [sig.inputs[alias].name for alias in inputs]
                options = config_pb2.CallableOptions(
                    feed=feeds, fetch=[sig.outputs[alias].name for alias in outputs])
                # the graph's own dtypes: old signatures may declare others (half_plus_three's
                # regress input says DT_FLOAT for a string placeholder)
                graph = self._session.graph
                dtypes = {alias: graph.get_tensor_by_name(name).dtype
                          for alias, name in zip(inputs, feeds, strict=True)}
                self._callables[key] = (self._session._make_callable_from_options(options),
                                        dtypes)
            return self._callables[key]


def _check_dtypes(expected_dtypes: dict, feeds: dict[str, np.ndarray]) -> None:
    """Refuse inputs of another dtype than the graph's (alias -> tf.DType or TensorSpec), with
    the message TF Serving's runtime gives (Python's wrappers word it differently)."""
    from serving import tensors

    for index, alias in enumerate(sorted(feeds)):
        spec = expected_dtypes.get(alias)
        if spec is None:
            continue
        expected = getattr(spec, "dtype", spec).as_datatype_enum
        sent = tensors.dtype_from_numpy(feeds[alias].dtype)
        if sent != expected:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, (
                f"Expects arg[{index}] to be {tensors.dtype_name(expected)} but "
                f"{tensors.dtype_name(sent)} is provided"))


def load_savedmodel(path: Path):
    """Load a SavedModel version folder the way TF Serving does: into a session of its own graph
    (TF1 and TF2 SavedModels alike); TF2's `tf.saved_model.load` when the session loader cannot.

    The session is also the faster path: a small request runs in ~0.2 ms where the same
    signature called as a TF2 function takes ~0.7 ms.

    Returns:
        A SessionRunner or FunctionRunner.

    Raises:
        RuntimeError: neither loader can load it; the message names both failures.
    """
    from exporter.runtime import tf_module

    tf = tf_module()  # quiet start-up: TensorFlow's C++ banners stay off stderr
    try:
        return load_session(path)
    except Exception as err:  # noqa: BLE001 -- TF raises many types for broken SavedModels
        session_error = one_line(err)
    try:
        runner = FunctionRunner(tf.saved_model.load(str(path), tags=[SERVE_TAG]))
    except Exception as err:  # both failures are reported together
        raise RuntimeError(f"Loading {path} failed: {session_error} (TF2's loader failed too: "
                           f"{one_line(err)})") from err
    log.info("%s: the session loader failed (%s); serving TF2 signature functions", path,
             session_error[:200])
    return runner


def load_session(path: Path) -> SessionRunner:
    """Load a SavedModel with TF1's loader into a session of its own graph."""
    import tensorflow as tf

    graph = tf.Graph()
    # Each request runs its graph in the calling thread: no hand-off to TensorFlow's inter-op
    # pool, whose idle threads must be woken for every small request (~0.1 ms instead of ~0.3 ms
    # for half_plus_two), while concurrent requests still run side by side in their own threads
    # (MobileNetV2 throughput rises too) and large ops keep the intra-op pool.
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=-1)
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], str(path))
    except BaseException:
        session.close()
        raise
    return SessionRunner(session, dict(meta_graph.signature_def))


def op_failure(err) -> RpcFailure:
    """A TensorFlow OpError as TF Serving returns it: its code and first-line message."""
    return RpcFailure(_CODES.get(err.error_code, grpc.StatusCode.UNKNOWN), one_line(err.message))
