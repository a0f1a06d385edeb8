"""The public Python API of the conversion library: one function per `kexport` command.

`kexport inspect`, `convert`, `slice` and `verify` are thin wrappers over these functions, so
anything the command line can do, a script can do with the same arguments. They are re-exported
by the `exporter` package (`from exporter import convert_model`) and import TensorFlow only when
called.

Every failure is a `exporter.errors.KexportError` subclass carrying the CLI's exit code; see
that module for the hierarchy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.progress import Progress, silent
from exporter.tolerances import DEFAULT_ATOL, DEFAULT_RTOL

if TYPE_CHECKING:
    from exporter.convert import ConvertResult
    from exporter.model_types import LoadOptions
    from exporter.slice_artifact import SliceResult
    from exporter.verify import VerificationReport

PathLike = str | Path
# A `--input-shape`: input name (None for a model's lone input) -> sizes, batch size optional.
InputShapes = Mapping[str | None, Sequence[int]]
# `--custom-objects`: a module path or .py file, or the {name: class} mapping itself.
CustomObjects = str | Mapping[str, Any] | None



def load_options(
    source_format: str | None = None,
    weights: PathLike | None = None,
    architecture: PathLike | None = None,
    custom_objects: CustomObjects = None,
    unsafe: bool = False,
    by_name: bool = False,
    skip_mismatch: bool = False,
) -> LoadOptions:
    """Build the `LoadOptions` the library reads artifacts with (see `convert_model`)."""
    from exporter.custom_objects import load_custom_objects
    from exporter.model_types import LoadOptions

    if isinstance(custom_objects, Mapping):
        custom = dict(custom_objects)
    else:
        custom = load_custom_objects(custom_objects)
    return LoadOptions(
        source_format=source_format,
        weights=Path(weights) if weights is not None else None,
        architecture=Path(architecture) if architecture is not None else None,
        custom_objects=custom,
        unsafe=unsafe,
        by_name=by_name,
        skip_mismatch=skip_mismatch,
    )


def _shapes(input_shapes: InputShapes | None) -> dict:
    return {name: tuple(int(dim) for dim in dims) for name, dims in (input_shapes or {}).items()}


def inspect_artifact(
    path: PathLike,
    *,
    source_format: str | None = None,
    layers: bool = False,
    check: bool = False,
    weights: PathLike | None = None,
    architecture: PathLike | None = None,
    custom_objects: CustomObjects = None,
    unsafe: bool = False,
) -> dict[str, Any]:
    """Describe a model artifact, as `kexport inspect --json` prints it.

    Reading the description loads no TensorFlow for HDF5, `.keras`, JSON and YAML files.
    A TF Serving model repository (a folder with models.config, such as a kexport bundle) holds
    many models and is refused: describe a bundle with `serving.inspect_bundle` (what
    `kexport inspect BUNDLE` calls), or inspect one of its version folders. The conversion
    library does not import the serving package.

    Args:
        path: a model file, weights file, SavedModel folder or TFLite file.
        source_format: the format to read it as (else detected from its content).
        layers: also list every layer name `slice_model` accepts (loads the model).
        check: load the model and add `loadable`, the `reason` when not, and the repairs.
        weights: weights file for a JSON/YAML architecture (with `layers`/`check`).
        architecture: architecture file for a weights file (with `layers`/`check`).
        custom_objects: module path, `.py` file or {name: class} of custom layers.
        unsafe: allow artifacts that carry code (Lambda layers) to be loaded.

    Returns:
        A JSON-ready dict: `path`, `format`, `keras_version`, `backend`, and per format the
        inputs, outputs, layers, parameter counts or signatures.

    Raises:
        FormatError: path is a TF Serving model repository (see above).
        KexportError: the file is missing, unreadable or in no known format (see
            `exporter.errors`).
    """
    from exporter import inspect as inspection

    info = inspection.inspect_artifact(Path(path), source_format)
    if layers or check:
        options = load_options(source_format, weights, architecture, custom_objects, unsafe)
        if check:
            info.update(inspection.check_loadable(Path(path), options))
        if layers:
            info["addressable_layers"] = inspection.addressable_layers(Path(path), options)
    return info


def convert_model(
    source: PathLike,
    destination: PathLike,
    *,
    to: str | None = None,
    source_format: str | None = None,
    weights: PathLike | None = None,
    architecture: PathLike | None = None,
    by_name: bool = False,
    skip_mismatch: bool = False,
    config_only: bool = False,
    keras_compat: int | None = None,
    custom_objects: CustomObjects = None,
    unsafe: bool = False,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    inputs_file: PathLike | None = None,
    input_shapes: InputShapes | None = None,
    force: bool = False,
    progress: Progress = silent,
) -> ConvertResult:
    """Convert a model to another format, verified against the source, published atomically.

    Args:
        source: the model to convert (any format kexport reads).
        destination: where to write it; the format follows `to`, else the suffix.
        to: `h5`, `keras`, `savedmodel`, `json`, `yaml`, `weights` or `tflite`.
        source_format: the format to read `source` as (else detected).
        weights: weights file for a JSON/YAML architecture.
        architecture: architecture (json, yaml, h5, keras) for a weights file.
        by_name: load weights by layer name.
        skip_mismatch: with `by_name`, skip layers whose shapes differ.
        config_only: json/yaml: write no weights file.
        keras_compat: 2 writes an HDF5 that tf-keras (Keras 2) loads (with `to="h5"`).
        custom_objects: module path, `.py` file or {name: class} of custom layers.
        unsafe: allow artifacts that carry code (Lambda layers).
        verify: re-load the written model and compare its outputs with the source's.
        atol: absolute tolerance of the comparison.
        rtol: relative tolerance of the comparison.
        inputs_file: .npz of inputs named after the model inputs (else seeded random).
        input_shapes: sizes of inputs with unknown dimensions, e.g. `{"image": (224, 224, 3)}`.
        force: replace an existing destination.
        progress: called with one line per step (what `kexport` prints on stderr).

    Returns:
        A `ConvertResult`: the paths written, the verification report, the repairs applied.

    Raises:
        VerificationError: the written model computes something else (nothing is published).
        DestinationExistsError: the destination exists and `force` is False.
        UnsafeArtifactError: the source carries code and `unsafe` is False.
        KexportError: any other bad input or impossible request.
    """
    from exporter.convert import convert

    options = load_options(source_format, weights, architecture, custom_objects, unsafe,
                           by_name, skip_mismatch)
    return convert(
        Path(source), Path(destination), to, options, verify=verify, atol=atol, rtol=rtol,
        inputs_file=Path(inputs_file) if inputs_file else None,
        input_shapes=_shapes(input_shapes), force=force, config_only=config_only,
        keras_compat=keras_compat, progress=progress,
    )


def slice_model(
    source: PathLike,
    destination: PathLike,
    outputs: Sequence[str],
    inputs: Sequence[str] | None = None,
    *,
    to: str | None = None,
    custom_objects: CustomObjects = None,
    unsafe: bool = False,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    inputs_file: PathLike | None = None,
    input_shapes: InputShapes | None = None,
    force: bool = False,
    progress: Progress = silent,
) -> SliceResult:
    """Cut a sub-model out of a model file at named layers, verified, published atomically.

    This works on files; `exporter.slicing.slice_model` cuts an in-memory Keras model.

    Args:
        source: the model to cut (any format `convert_model` reads).
        destination: where to write the sub-model; the format follows `to`, else the suffix.
        outputs: layers whose outputs become the sub-model's outputs, in order: `NAME`,
            `NAME:NODE` of a shared layer, or `OUTER/INNER` inside a nested model; empty with
            `inputs` given keeps the model's own outputs (the head of the model).
        inputs: layers whose outputs become new inputs (the model's own inputs when None).
        to: the destination format, as for `convert_model`.
        custom_objects: module path, `.py` file or {name: class} of custom layers.
        unsafe: allow artifacts that carry code (Lambda layers).
        verify: compare the written sub-model with the source's activations.
        atol: absolute tolerance of the comparison.
        rtol: relative tolerance of the comparison.
        inputs_file: .npz of the *source* model's inputs (else seeded random).
        input_shapes: sizes of the *source* model's inputs with unknown dimensions.
        force: replace an existing destination.
        progress: called with one line per step.

    Returns:
        A `SliceResult`: a `ConvertResult` plus the sub-model's input and output names.

    Raises:
        UnknownLayerError: a layer name that the model does not have (with close matches).
        VerificationError: the written sub-model differs (nothing is published).
        KexportError: any other bad input or impossible request.
    """
    from exporter.slice_artifact import slice_artifact

    return slice_artifact(
        Path(source), Path(destination), list(outputs), list(inputs or []), to,
        load_options(None, None, None, custom_objects, unsafe), verify=verify, atol=atol,
        rtol=rtol, inputs_file=Path(inputs_file) if inputs_file else None,
        input_shapes=_shapes(input_shapes), force=force, progress=progress,
    )


def verify_models(
    reference: PathLike,
    candidate: PathLike,
    *,
    weights: PathLike | None = None,
    architecture: PathLike | None = None,
    custom_objects: CustomObjects = None,
    unsafe: bool = False,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    inputs_file: PathLike | None = None,
    input_shapes: InputShapes | None = None,
) -> VerificationReport:
    """Check that two artifacts compute the same outputs on the same inputs.

    Args:
        reference: the model whose outputs are expected.
        candidate: the model that should compute the same.
        weights: weights file for a JSON/YAML architecture.
        architecture: architecture file for a weights file.
        custom_objects: module path, `.py` file or {name: class} of custom layers.
        unsafe: allow artifacts that carry code (Lambda layers).
        atol: absolute tolerance.
        rtol: relative tolerance.
        inputs_file: .npz of inputs named after the model inputs (else seeded random).
        input_shapes: sizes of inputs with unknown dimensions.

    Returns:
        A `VerificationReport`; `report.passed` is False when the outputs differ (a mismatch
        is a result here, not an exception: `kexport verify` exits 1 on it).

    Raises:
        KexportError: either model cannot be read, or the inputs do not fit it.
    """
    from exporter.verify import verify_artifacts

    options = load_options(None, weights, architecture, custom_objects, unsafe)
    return verify_artifacts(
        Path(reference), Path(candidate), options,
        inputs_file=Path(inputs_file) if inputs_file else None, atol=atol, rtol=rtol,
        input_shapes=_shapes(input_shapes),
    )
