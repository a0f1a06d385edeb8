"""Load -> in-memory Keras 3 model -> save: the only path between formats.

`convert` stages the output beside the destination, re-loads it the way a user would
(`keras.models.load_model`, the SavedModel's `serving_default`, `model_from_json` +
`load_weights`), verifies it against what the source computes, and only then publishes it.
Reading and writing one artifact is exporter.model_io's job; slicing publishes through
`stage_verify_publish` too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exporter.errors import FormatError, VerificationError
from exporter.formats.detection import Detected, read_config
from exporter.formats.failures import reload_errors
from exporter.formats.registry import FORMATS, check_format_name, format_for_destination
from exporter.model_io import load_model, output_paths, save_model
from exporter.model_types import LoadedModel, LoadOptions
from exporter.progress import Progress, silent
from exporter.publish import check_destinations, publish, staging_folder
from exporter.routes import load_requirements, route_reason, write_native_savedmodel
from exporter.tolerances import DEFAULT_ATOL, DEFAULT_RTOL
from exporter.verify import VerificationReport, verify_loaded


@dataclass
class ConvertResult:
    source: str
    source_format: str
    destination: str
    format: str
    written: list[str]
    report: VerificationReport | None
    notes: list[str] = field(default_factory=list)
    route: str = "keras3"  # LoadedModel.route: keras3, tf-keras or signature
    route_reason: str = ""
    load_requires: list[str] = field(default_factory=list)  # what reading the output needs

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        data["report"] = self.report.as_dict() if self.report else None
        data["verified"] = bool(self.report and self.report.passed)
        return data


def refuse_impossible(source: LoadedModel, fmt: str, config_only: bool,
                      native_ok: bool = False) -> None:
    """Refuse up front what the source cannot give, with the fix in the message.

    `native_ok`: the caller writes a SavedModel from a source with no Keras 3 model (tf-keras's
    model, or the source SavedModel itself) when it has one.
    """
    if not FORMATS[source.format].source:
        raise FormatError(
            f"{source.path} is {source.format}, a save-only format: it holds a compiled graph, "
            f"not a Keras model, so it cannot become {fmt}.",
            hint="Convert the Keras model it was made from; a .tflite can be inspected, verified "
            "and served (--prefer_tflite_model) as it is.",
        )
    if source.model is None:
        if native_ok and fmt == "savedmodel" and source.native is not None:
            return
        if source.keras3_refusal is not None:
            raise source.keras3_refusal
        raise FormatError(
            f"{source.path} is a SavedModel without Keras metadata (a Keras 3 export or a plain "
            f"tf.Module): it holds a serving signature, not a Keras model, so it cannot become "
            f"{fmt}.",
            hint="It can be inspected, verified, bundled and served as it is; to get another "
            "format, convert the Keras model it was exported from.",
        )
    holds_weights = FORMATS[fmt].holds_weights or (fmt in ("json", "yaml") and not config_only)
    if not source.weights_loaded and holds_weights:
        raise FormatError(
            f"{source.path} holds an architecture without weights; writing {fmt} would publish "
            "a model with random weights.",
            hint="Pass --weights FILE, or write the architecture alone with --to json/yaml "
            "--config-only.",
        )


def reload_written(path: Path, fmt: str, source: LoadedModel, config_only: bool,
                   keras_compat: int | None = None) -> LoadedModel:
    """Re-load a written artifact with the loader a user would use on it."""
    if keras_compat == 2:  # written for Keras 2: read back the way a Keras 2 stack will
        from exporter.legacy.keras2 import load_with_tf_keras

        return load_with_tf_keras(path, fmt, source.custom_objects)
    from exporter.formats.keras_v3 import load_keras3_file
    from exporter.formats.savedmodel import load_signature
    from exporter.model_tensors import loaded_keras3
    from exporter.runtime import keras_module

    # Safe mode, and only the custom classes the source itself needed.
    user = LoadOptions(unsafe=False, custom_objects=source.custom_objects)
    custom = source.custom_objects or None
    if fmt in ("h5", "keras"):
        return load_keras3_file(path, fmt, user, None)
    if fmt == "savedmodel":
        return load_signature(path)
    if fmt == "tflite":  # the flatbuffer as TFLite's interpreter runs it
        from exporter.formats import tflite

        return tflite.load(Detected(path, fmt), user)
    keras = keras_module()
    if fmt == "weights":
        model = keras.models.model_from_json(source.model.to_json(), custom_objects=custom)
        model.load_weights(str(path))
    else:
        config = read_config(Detected(path, fmt))
        model = keras.models.model_from_json(json.dumps(config), custom_objects=custom)
        if config_only:  # the architecture alone: give it the source's weights to compare
            model.set_weights(source.model.get_weights())
        else:
            from exporter.formats.architecture import weights_sibling

            model.load_weights(str(weights_sibling(path)))
    return loaded_keras3(model, fmt, path, None)


def stage_verify_publish(
    model: LoadedModel,
    destination: Path,
    fmt: str,
    check: Callable[[LoadedModel], VerificationReport] | None,
    *,
    force: bool = False,
    config_only: bool = False,
    keras_compat: int | None = None,
    progress: Progress = silent,
) -> tuple[list[Path], VerificationReport | None]:
    """Write `model` beside `destination`, re-load it from disk, check it, then publish it.

    Args:
        model: what to write (`model.model`); also what a weights-only re-load builds on.
        destination: the final path; nothing appears there unless `check` passes.
        fmt: the format to write.
        check: compares the re-loaded artifact with a reference; None skips verification.
        force: replace an existing destination.
        config_only: json/yaml without a weights file.
        keras_compat: 2 writes an HDF5 for tf-keras (its changes join `model.notes`).
        progress: receives one-line progress messages.

    Returns:
        The published paths and the verification report (None when not verified).

    Raises:
        VerificationError: the written artifact computes something else (nothing is published).
    """
    with staging_folder(destination) as stage:
        progress(f"writing {fmt} to {destination}")
        if model.model is None:  # refuse_impossible let through a SavedModel from `native`
            staged = write_native_savedmodel(model, stage / destination.name)
        else:
            staged = save_model(model.model, stage / destination.name, fmt, config_only,
                                keras_compat, notes=model.notes)
        report = None
        if check is not None:
            progress("verifying the written model against the source")
            # The artifact as a user would read it back, not the in-memory model: this is
            # what catches formats that lose layers, weights or names on the way to disk.
            with reload_errors(fmt, destination):
                written = reload_written(stage / destination.name, fmt, model, config_only,
                                         keras_compat)
            report = check(written)
            if not report.passed:
                raise VerificationError(report.summary(), report=report)
        published = publish(staged, destination.parent, force)
    return published, report


def convert(
    source_path: Path,
    destination: Path,
    to: str | None = None,
    options: LoadOptions | None = None,
    *,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    inputs_file: Path | None = None,
    input_shapes: dict | None = None,
    force: bool = False,
    config_only: bool = False,
    keras_compat: int | None = None,
    progress: Progress = silent,
) -> ConvertResult:
    """Convert an artifact to another format, verified, published atomically.

    Raises:
        VerificationError: the written model computes something else (nothing is published).
        KexportError: bad input, unsafe artifact, or an impossible request.
    """
    source_path, destination = Path(source_path), Path(destination)
    fmt = check_format_name(to) if to else format_for_destination(destination)
    check_destinations(output_paths(destination, fmt, config_only), force)
    progress(f"loading {source_path}")
    source = load_model(source_path, options)
    refuse_impossible(source, fmt, config_only, native_ok=True)
    check = None
    if verify:
        def check(written: LoadedModel) -> VerificationReport:
            return verify_loaded(source, written, inputs_file, atol, rtol,
                                 input_shapes=input_shapes)

    published, report = stage_verify_publish(
        source, destination, fmt, check, force=force, config_only=config_only,
        keras_compat=keras_compat, progress=progress,
    )
    return ConvertResult(
        source=str(source_path),
        source_format=source.format,
        destination=str(destination),
        format=fmt,
        written=[str(p) for p in published],
        report=report,
        notes=list(source.notes),
        route=source.route,
        route_reason=route_reason(source),
        load_requires=load_requirements(published[0], fmt, source.custom_objects),
    )
