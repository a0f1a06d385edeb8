"""The public Python API of the serving side: one function per `kexport` serving command.

`kexport bundle` calls `build_bundle` (and `check_bundle` for `--check-runtime` alone),
`kexport inspect BUNDLE` calls `inspect_bundle`, `kexport serve` calls `serve`; `kexport predict`
drives a `PredictClient`. They are re-exported by the `serving` package
(`from serving import build_bundle`) and import TensorFlow only when called. Failures are
`exporter.errors.KexportError` subclasses (`ServingError` for RPC and serving failures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.progress import Progress, silent

if TYPE_CHECKING:
    from serving.bundle_builder import ModelSource
    from serving.runtime_check import RuntimeReport

PathLike = str | Path



def _sources(models: Mapping[str, PathLike] | Sequence[str | ModelSource]) -> list[ModelSource]:
    """`{name: path}`, `NAME=PATH[@VERSION]` texts or `ModelSource`s, as ModelSources."""
    from serving.bundle_builder import ModelSource, parse_model_spec

    if isinstance(models, Mapping):
        return [parse_model_spec(f"{name}={path}") for name, path in models.items()]
    return [model if isinstance(model, ModelSource) else parse_model_spec(model)
            for model in models]


def build_bundle(
    out_dir: PathLike,
    models: Mapping[str, PathLike] | Sequence[str | ModelSource],
    *,
    labels: Sequence[str] = (),
    policies: Sequence[str] = (),
    batching: bool = False,
    warmup: int = 0,
    warmup_inputs: PathLike | None = None,
    image: str | None = None,
    serving_version: str | None = None,
    k8s: bool = False,
    kserve: bool = False,
    check_runtime: bool = False,
    verify: bool = True,
    input_shapes: Mapping[str | None, Sequence[int]] | None = None,
    force: bool = False,
    progress: Progress = silent,
) -> dict[str, Any]:
    """Bundle models into a TensorFlow Serving repository with models.config and a Dockerfile.

    An existing bundle is extended (new versions beside the old ones); nothing changes unless
    every model exports and verifies.

    Args:
        out_dir: the bundle folder to create or extend.
        models: `{name: path}`, or `NAME=PATH[@VERSION]` texts /
            `serving.bundle_builder.ModelSource`s
            (the next free version when none is given).
        labels: `NAME:LABEL=VERSION` version labels, e.g. `"clf:stable=1"`.
        policies: `NAME:latest|all|specific` version policies.
        batching: write batching.config and enable batching.
        warmup: warm-up records per model version (at most 1000).
        warmup_inputs: .npz of warm-up inputs (else seeded random).
        image: base image (default: tensorflow/serving of `serving_version`).
        serving_version: the TensorFlow Serving release the image carries.
        k8s: also write k8s/ (Deployment, Service, HPA, PDB, kustomization).
        kserve: also write a KServe InferenceService per model (implies `k8s`).
        check_runtime: load every version under the image's TensorFlow and compare outputs.
        verify: verify every exported version against its source.
        input_shapes: sizes of inputs with unknown dimensions, by input name.
        force: replace an out_dir that is not a kexport bundle.
        progress: called with one line per step.

    Returns:
        The bundle's manifest (bundle.json): models, their versions, policies, labels, image.

    Raises:
        DestinationExistsError: out_dir exists, is not a bundle, and `force` is False.
        VerificationError: an exported version computes something else than its source.
        KexportError: any other bad input (see `exporter.errors`).
    """
    from serving.bundle_builder import BundleRequest, parse_label, parse_policy
    from serving.bundle_builder import build_bundle as build

    request = BundleRequest(
        out_dir=Path(out_dir),
        sources=_sources(models),
        labels=[parse_label(text) for text in labels],
        policies=[parse_policy(text) for text in policies],
        batching=batching,
        warmup=warmup,
        warmup_inputs=Path(warmup_inputs) if warmup_inputs else None,
        image=image,
        serving_version=serving_version,
        k8s=k8s,
        kserve=kserve,
        check_runtime=check_runtime,
        force=force,
        verify=verify,
        input_shapes={name: tuple(dims) for name, dims in (input_shapes or {}).items()},
    )
    return build(request, progress=progress)


def check_bundle(
    out_dir: PathLike,
    serving_version: str | None = None,
    progress: Progress = silent,
) -> RuntimeReport:
    """Load every version of a bundle under its image's TensorFlow and compare the recorded
    outputs (`kexport bundle OUT --check-runtime`).

    Args:
        out_dir: an existing bundle.
        serving_version: check under this TF Serving release instead of the bundle's.
        progress: called with one line per step.

    Returns:
        A `RuntimeReport`; `report.passed` is False when a version differs or fails to load.

    Raises:
        BadInputError: out_dir is not a kexport bundle.
    """
    from serving.bundle_builder import check_bundle_runtime

    return check_bundle_runtime(Path(out_dir), serving_version, progress)


def inspect_bundle(path: PathLike) -> dict[str, Any]:
    """Describe a bundle, as `kexport inspect BUNDLE --json` prints it (no TensorFlow needed).

    `exporter.inspect_artifact` describes one model artifact and refuses a model repository;
    this is its counterpart for a folder `build_bundle` wrote.

    Args:
        path: a bundle folder (with bundle.json).

    Returns:
        A JSON-ready dict: `path`, `format` ("bundle"), `keras_version` and `backend` (None),
        and `manifest`, the bundle's bundle.json (models, versions, policies, labels, image).

    Raises:
        BadInputError: path is not a kexport bundle, or its bundle.json is not valid JSON.
    """
    from serving.bundle_manifest import describe_bundle

    return describe_bundle(Path(path))
