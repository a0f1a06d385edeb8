"""Warm-up records: PredictionLog requests TF Serving replays when it loads a version.

They live in `<version>/assets.extra/tf_serving_warmup_requests` as a TFRecord file; TF Serving
reads at most 1000 of them. Inputs come from the signature's input specs (seeded random values)
or from a user's .npz, so the first real request does not pay for graph warm-up.
"""

from __future__ import annotations

from pathlib import Path

from exporter.errors import BadInputError
from exporter.inputs import InputPlan, read_inputs
from exporter.loaded import TensorSpec
from exporter.verify import make_inputs, rename_inputs

MAX_WARMUP_RECORDS = 1000
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def write_warmup(
    version_dir: Path,
    model_name: str,
    inputs: list[TensorSpec],
    count: int,
    inputs_file: Path | None = None,
    signature: str = "serving_default",
    plan: InputPlan | None = None,
) -> Path:
    """Write `count` PredictionLog records for the version in `version_dir`; returns the file.

    Values come from `inputs_file`, else from `plan` (the shapes verification chose), else
    from the signature's specs alone."""
    if not 1 <= count <= MAX_WARMUP_RECORDS:
        raise BadInputError(f"--warmup must be between 1 and {MAX_WARMUP_RECORDS}; got {count}.")
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from exporter.runtime import tf_module

    tf = tf_module()
    target = version_dir / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    fixed = read_inputs(inputs_file, inputs) if inputs_file else None
    with tf.io.TFRecordWriter(str(target)) as writer:
        for index in range(count):
            if fixed is not None:
                feed = fixed
            elif plan is not None:
                feed, _ = rename_inputs(plan.make(seed=index), inputs)
            else:
                feed = make_inputs(inputs, seed=index)
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
