"""One loaded model version: its signatures, computed by a runner (TF2 functions, a TF1 session or
a TFLite interpreter), behind TF Serving's request checks and error messages (predict_util.cc,
tensorflow/cc/saved_model/util.cc; the PredictRequest ones are in serving/predict_checks.py).

TensorFlow is imported by `Servable.load`, not at module import, so `kexport --help` stays fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

from serving import tensors
from serving.predict_checks import check_dtypes, check_inputs_size, input_values, output_aliases
from serving.protos import get_model_metadata_pb2, meta_graph_pb2, predict_pb2, prediction_log_pb2
from serving.rpc import RpcFailure, one_line
from serving.runners import SERVE_TAG, load_savedmodel

__all__ = ["DEFAULT_SIGNATURE", "LoadOptions", "Servable", "read_signature_defs"]

log = logging.getLogger("kexport.serving")

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses a version whose warm-up file holds more
TFLITE_FILE = "model.tflite"
PER_MODEL_BATCHING = "batching_params.pbtxt"  # --enable_per_model_batching_parameters


@dataclass(frozen=True)
class LoadOptions:
    """How versions are loaded and run (TF Serving's server-wide flags).

    Attributes:
        warmup: replay warm-up records when a version loads (--enable_model_warmup).
        prefer_tflite: serve `model.tflite` when a version holds one (--prefer_tflite_model).
        batching: merge concurrent calls (--enable_batching with its BatchingParameters);
            a `serving.batching_config.BatchingConfig`, None for no batching.
        per_model_batching: a version's own `batching_params.pbtxt` replaces `batching`
            (--enable_per_model_batching_parameters).
        method_name_check: Classify/Regress demand their signature's method_name
            (--enable_signature_method_name_check; off by default, as in TF Serving, so TF2
            exports whose signatures all say `predict` can be classified).
    """

    warmup: bool = True
    prefer_tflite: bool = False
    batching: object | None = None
    per_model_batching: bool = False
    method_name_check: bool = False


class Servable:
    """A model version ready to answer Predict, Classify, Regress and GetModelMetadata.

    Attributes:
        name: model name.
        version: version number.
        path: the version folder.
        signature_defs: signature name -> SignatureDef (private wire-compatible messages).
        signature_map: the serialized SignatureDefMap GetModelMetadata packs into its Any.
        runner: what computes a signature (see `serving.runners`).
        options: the LoadOptions it was loaded with.
    """

    def __init__(self, name: str, version: int, path: Path, signature_defs: dict, runner,
                 options: LoadOptions | None = None):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = signature_defs
        self.runner = runner
        self.options = options or LoadOptions()
        sigmap = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in signature_defs.items():
            sigmap.signature_def[key].CopyFrom(sig)
        self.signature_map = sigmap.SerializeToString()

    @classmethod
    def load(cls, name: str, version: int, path: Path, *, warmup: bool = True,
             options: LoadOptions | None = None) -> Servable:
        """Load a version folder (SavedModel, or model.tflite when preferred) and replay its
        warm-up records.

        Raises:
            RuntimeError: the model cannot be loaded, or a warm-up request fails.
        """
        options = options or LoadOptions(warmup=warmup)
        if options.prefer_tflite and (path / TFLITE_FILE).is_file():
            from serving.tflite import load_tflite

            signature_defs, runner = load_tflite(path / TFLITE_FILE)
        else:
            signature_defs = read_signature_defs(path)
            runner = load_savedmodel(path)
        batching = options.batching
        if options.per_model_batching and (path / PER_MODEL_BATCHING).is_file():
            from serving.batching_config import read_batching_config

            batching = read_batching_config(path / PER_MODEL_BATCHING)
        if batching is not None:
            from serving.batching import BatchingRunner

            runner = BatchingRunner(runner, batching)
        servable = cls(name, version, path, signature_defs, runner, options)
        if options.warmup:
            try:
                replayed = servable.warm_up()
            except BaseException:
                servable.close()  # a version that fails to load keeps no batching threads
                raise
            if replayed:
                log.info("model %s version %d: replayed %d warm-up request(s)", name, version,
                         replayed)
        return servable

    def close(self) -> None:
        """Release what the runner holds (batching threads) once unloaded; requests already
        holding this version still finish."""
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()

    def signature(self, name: str):
        """The SignatureDef called `name`; FAILED_PRECONDITION as TF Serving when absent."""
        signature = self.signature_defs.get(name)
        if signature is None or not self.runner.has_signature(name):
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION,
                             f'Serving signature key "{name}" not found.')
        return signature

    def predict(self, request, *, tensor_content: bool = False):
        """Answer a PredictRequest as TF Serving does; raise RpcFailure with its code and message.

        Args:
            request: a `kexport.tfs.PredictRequest`.
            tensor_content: reply with raw bytes instead of typed fields.
        """
        response, results = self._predict(request)
        for alias, value in results.items():
            tensors.to_tensor_proto(value, tensor_content=tensor_content,
                                    out=response.outputs[alias])
        return response

    def predict_wire(self, request, *, tensor_content: bool = False) -> bytes:
        """`predict`, answered as the serialized PredictResponse: numeric outputs go from the
        arrays into the reply bytes without passing through a message (large tensors are
        copied once instead of three times)."""
        response, results = self._predict(request)
        chunks = []
        for alias, value in results.items():
            wire = tensors.tensor_wire(value, tensor_content=tensor_content)
            if wire is None:
                tensors.to_tensor_proto(value, tensor_content=tensor_content,
                                        out=response.outputs[alias])
            else:
                chunks += tensors.map_entry_wire(1, alias, wire)  # PredictResponse.outputs
        return b"".join([response.SerializeToString(), *chunks])

    def _predict(self, request):
        """Check and run a PredictRequest; the response without outputs, and the outputs."""
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature(signature_name)
        check_inputs_size(signature, request)
        feeds = input_values(signature, request)
        aliases = output_aliases(signature, request.output_filter)
        check_dtypes(signature, feeds)
        results = self.runner.run(signature_name, dict(feeds), aliases)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name or self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        return response, {alias: results[alias] for alias in aliases}

    def warm_up(self) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests`; return how many requests ran.

        Predict, Classify, Regress and MultiInference records are replayed; other kinds
        (session_run) are skipped with a warning.

        Raises:
            RuntimeError: too many records, an unreadable file, or a failing request.
        """
        path = self.path / WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf

        from serving import inference

        replay = {"predict_log": self.predict, "classify_log": inference.classify_handler(self),
                  "regress_log": inference.regress_handler(self),
                  "multi_inference_log": inference.multi_inference_handler(self)}
        replayed = skipped = 0
        try:
            for index, record in enumerate(tf.data.TFRecordDataset(str(path))):
                if index >= MAX_WARMUP_RECORDS:
                    raise RuntimeError(f"Number of warmup records exceeds the maximum "
                                       f"({MAX_WARMUP_RECORDS}) at {path}")
                entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
                kind = entry.WhichOneof("log_type")
                if kind is None:
                    skipped += 1
                    continue
                replay[kind](getattr(entry, kind).request)
                replayed += 1
        except RpcFailure as err:
            raise RuntimeError(f"Failed to warm up model {self.name} version {self.version} "
                               f"with record {replayed + skipped}: {err.message}") from None
        except tf.errors.OpError as err:
            raise RuntimeError(f"Cannot read warm-up records {path}: {err.message}") from None
        if skipped:
            log.warning("model %s version %d: skipped %d warm-up record(s) of a kind this server "
                        "does not replay", self.name, self.version, skipped)
        return replayed


def read_signature_defs(path: Path) -> dict:
    """The SignatureDefs of the `serve` MetaGraph of a SavedModel, as private messages."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        hint = (" (it holds model.tflite: serve it with --prefer_tflite_model)"
                if (path / TFLITE_FILE).is_file() else "")
        raise RuntimeError("Could not find SavedModel .pb or .pbtxt at supplied export directory "
                           f"path: {path}{hint}")
    try:
        if (path / "saved_model.pb").is_file():
            saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        else:
            text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    except (OSError, message.DecodeError, text_format.ParseError, ValueError) as err:
        raise RuntimeError(f"Cannot read the SavedModel in {path}: {one_line(err)}") from None
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {SERVE_TAG}:
            # Same field numbers, different classes: copy through the wire format.
            return {key: meta_graph_pb2.SignatureDef.FromString(sig.SerializeToString())
                    for key, sig in meta_graph.signature_def.items()}
    tags = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise RuntimeError(f"The SavedModel in {path} has no MetaGraph tagged '{SERVE_TAG}' "
                       f"(tag sets: {tags}).")
