"""Put one model version into a bundle: export (or copy) a SavedModel, verify it, warm it up,
and record what it came from (the source's sha256) for the manifest."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from exporter.convert import refuse_impossible
from exporter.errors import BadInputError, VerificationError
from exporter.formats.detection import detect
from exporter.formats.savedmodel import load_signature
from exporter.model_io import load_model, save_model
from exporter.model_types import LoadOptions
from exporter.routes import write_native_savedmodel
from exporter.verify import plan_for, verify_loaded
from exporter.verify_inputs import makeable
from serving.warmup import seeded_feed, warmup_feeds, write_expected_outputs, write_warmup

# Warm-up records whose outputs are recorded for the runtime check (all are replayed at load).
MAX_EXPECTED_RECORDS = 32
CHUNK = 1 << 20  # bytes hashed per read


def _refuse_links(root: Path) -> None:
    """A SavedModel copied into a bundle must not bring links to files outside it."""
    for path in root.rglob("*"):
        if path.is_symlink():
            raise BadInputError(f"{root} contains a symbolic link ({path}); refusing to copy it.")


def input_shapes_for(reference, request) -> dict:
    """The `--input-shape` options that name this model's inputs (an unnamed one fits every
    single-input model); records which names were used, so unknown ones can be refused."""
    names = {spec.name for spec in reference.inputs}
    shapes = {name: shape for name, shape in request.input_shapes.items()
              if name in names or (name is None and len(names) == 1)}
    request.used_input_names.update(shapes)
    return shapes


def export_version(source, version: int, version_dir: Path, request) -> dict:
    """Write `source` as `version_dir` and return its manifest entry.

    A Keras model (any format convert reads) goes through the same SavedModel writer as
    `convert` (tf-keras's model for Keras 2 models Keras 3 cannot express); a SavedModel
    without Keras metadata is copied as it is. Either way the result is re-loaded from the
    bundle and compared with the source before it counts.
    """
    detected = detect(source.path)
    if detected.format == "savedmodel" and not detected.details.get("keras_metadata"):
        _refuse_links(source.path)
        reference = load_signature(source.path)
        shutil.copytree(source.path, version_dir)
    else:
        reference = load_model(source.path, LoadOptions())
        refuse_impossible(reference, "savedmodel", False, native_ok=True)
        if reference.model is None:  # tf-keras's model alone (Keras 3 cannot express it)
            write_native_savedmodel(reference, version_dir)
        else:
            save_model(reference.model, version_dir, "savedmodel")
    written = load_signature(version_dir)  # what TF Serving will call: serving_default
    shapes = input_shapes_for(reference, request)
    report = None
    if request.verify:
        report = verify_loaded(reference, written, None, request.atol, request.rtol,
                               input_shapes=shapes)
        if not report.passed:
            raise VerificationError(
                f"model '{source.name}' version {version}: {report.summary()}", report=report)
    # Warm-up requests and recorded outputs get the shapes verification found the model accepts.
    plan = plan_for(reference, None, shapes) if makeable(reference.inputs) else None
    warmup = None
    if request.warmup:
        warmup = warmup_feeds(written.inputs, request.warmup, request.warmup_inputs, plan)
        write_warmup(version_dir, source.name, warmup)
    expected = _record_expected_outputs(version_dir, written, warmup, plan)
    return {
        "source": str(source.path.resolve()),
        "source_format": detected.format,
        "source_sha256": source_sha256(source.path),
        "signature": "serving_default",
        "inputs": [spec.as_dict() for spec in written.inputs],
        "outputs": [spec.as_dict() for spec in written.outputs],
        "verified": bool(report and report.passed),
        "warmup_records": len(warmup) if warmup else 0,
        "tensorflow_version": writer_tensorflow_version(version_dir),
        "expected_outputs": expected,
    }


def _record_expected_outputs(version_dir: Path, written, warmup: list | None, plan) -> bool:
    """Record what the written model computes, for `--check-runtime`: on the first warm-up
    requests, else on one seeded batch. False when no inputs can be made (string inputs
    without warm-up records)."""
    if warmup:
        feeds = warmup[:MAX_EXPECTED_RECORDS]
    else:
        try:
            feeds = [seeded_feed(written.inputs, 0, plan)]
        except BadInputError:
            return False
    write_expected_outputs(version_dir, feeds, written.reference, from_warmup=bool(warmup))
    return True


def writer_tensorflow_version(version_dir: Path) -> str | None:
    """The TensorFlow version that wrote a SavedModel, as its MetaGraphs record it."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = version_dir / "saved_model.pb"
    if not path.is_file():
        return None  # a text-format saved_model.pbtxt: rare, and it records no writer
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    versions = sorted({m.meta_info_def.tensorflow_version for m in saved_model.meta_graphs} - {""})
    return versions[0] if versions else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(root: Path) -> str:
    """One hash for a folder: every file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def source_sha256(path: Path) -> str:
    return tree_sha256(path) if path.is_dir() else file_sha256(path)
