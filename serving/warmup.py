"""Warm-up records: PredictionLog requests TF Serving replays when it loads a version.

They live in `<version>/assets.extra/tf_serving_warmup_requests` as a TFRecord file; TF Serving
reads at most 1000 of them. Inputs come from the signature's input specs (seeded random values)
or from a user's .npz, so the first real request does not pay for graph warm-up. The outputs the
written SavedModel computes on them are recorded beside them, so `bundle --check-runtime` can
replay the requests under the serving image's TensorFlow and compare.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError
from exporter.model_types import TensorSpec
from exporter.verify import make_inputs, rename_inputs
from exporter.verify_inputs import InputPlan, read_inputs

MAX_WARMUP_RECORDS = 1000
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# What the SavedModel computed at bundle time on the warm-up (or seeded) inputs; TF Serving
# ignores other files in assets.extra.
EXPECTED_FILE = Path("assets.extra") / "kexport_expected_outputs.npz"


def warmup_feeds(inputs: list[TensorSpec], count: int, inputs_file: Path | None = None,
                 plan: InputPlan | None = None) -> list:
    """The inputs of `count` warm-up requests: the user's .npz, else seeded random values of
    the shapes verification chose (`plan`), else of the signature's specs alone."""
    if not 1 <= count <= MAX_WARMUP_RECORDS:
        raise BadInputError(f"--warmup must be between 1 and {MAX_WARMUP_RECORDS}; got {count}.")
    if inputs_file:
        return [read_inputs(inputs_file, inputs)] * count
    return [seeded_feed(inputs, index, plan) for index in range(count)]


def seeded_feed(inputs: list[TensorSpec], seed: int, plan: InputPlan | None = None) -> dict:
    """One seeded request for a signature's `inputs`, of the planned shapes when there is a
    plan (keyed by the source's input names, paired to the signature's by name)."""
    if plan is None:
        return make_inputs(inputs, seed=seed)
    return rename_inputs(plan.make(seed=seed), inputs)[0]


def write_warmup(
    version_dir: Path,
    model_name: str,
    feeds: list,
    signature: str = "serving_default",
) -> Path:
    """Write one PredictionLog record per feed for the version in `version_dir`; returns the file."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from exporter.runtime import tf_module

    tf = tf_module()
    target = version_dir / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for feed in feeds:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, array in feed.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return target


def read_warmup(version_dir: Path) -> list:
    """The inputs of the Predict warm-up records of a version, without TensorFlow.

    TFRecord framing: little-endian uint64 length, its masked CRC32C, the data, the data's CRC.
    The CRCs are not checked here; TensorFlow checks them when it reads the file.
    """
    from serving import tensors
    from serving.protos import prediction_log_pb2

    path = version_dir / WARMUP_FILE
    data = path.read_bytes() if path.is_file() else b""
    feeds, offset = [], 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        record = data[offset + 12: offset + 12 + length]
        if len(record) != length:
            raise BadInputError(f"{path} is truncated: a record of {length} bytes is cut short.")
        offset += 12 + length + 4
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.HasField("predict_log"):
            request = log.predict_log.request
            feeds.append({name: tensors.to_ndarray(proto) for name, proto in request.inputs.items()})
    return feeds


def write_expected_outputs(version_dir: Path, feeds: list, run, from_warmup: bool) -> Path:
    """Record what the written SavedModel computes on `feeds` (the runtime check's reference).

    Inputs are stored too unless they are the warm-up records' (which the check replays)."""
    arrays = {}
    for index, feed in enumerate(feeds):
        if not from_warmup:
            arrays.update({f"input/{index}/{name}": value for name, value in feed.items()})
        arrays.update({f"output/{index}/{name}": np.asarray(value)
                       for name, value in run(feed).items()})
    target = version_dir / EXPECTED_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **arrays)
    return target


def read_expected(version_dir: Path) -> tuple[list, list] | None:
    """(feeds, expected outputs) recorded for a version, or None when the bundle has none."""
    path = version_dir / EXPECTED_FILE
    if not path.is_file():
        return None
    stored: dict[str, dict] = {"input": {}, "output": {}}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            kind, index, name = key.split("/", 2)
            stored[kind].setdefault(int(index), {})[name] = archive[key]
    outputs = [stored["output"][i] for i in sorted(stored["output"])]
    feeds = ([stored["input"][i] for i in sorted(stored["input"])] if stored["input"]
             else read_warmup(version_dir))
    return feeds, outputs
