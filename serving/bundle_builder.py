"""`kexport bundle`: build or extend a TensorFlow Serving model repository that the official
image serves as is.

OUT_DIR/
  models/<name>/<version>/   SavedModels (serving_default keyed by layer names), warm-up records
                             (serving/version_export.py)
  models.config              text-format ModelServerConfig, base paths under /models
                             (serving/models_config.py)
  batching.config            with --batching
  Dockerfile, docker-compose.yml, README.md   rendered from serving/templates/
                             (serving/container_files.py)
  k8s/                       with --k8s: Deployment, Service, HPA, PDB, kustomization (serving/k8s.py)
  bundle.json                manifest: every version's source, sha256, signature, inputs, outputs,
                             the TensorFlow that wrote it, and the serving image it targets
                             (serving/bundle_manifest.py)

`--check-runtime` loads every version under the image's own TensorFlow before publishing
(serving/runtime_check.py).

The whole bundle is built in a staging folder beside OUT_DIR (existing versions hard-linked in,
new ones exported and verified there) and swapped into place at the end, so an interrupted or
failed run leaves the previous bundle as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from exporter import __version__
from exporter.errors import BadInputError, DestinationExistsError, VerificationError
from exporter.progress import Progress, silent
from exporter.publish import publish, staging_folder
from exporter.swap import restore_interrupted
from exporter.tolerances import DEFAULT_ATOL, DEFAULT_RTOL
from serving.batching_config import BatchingSettings
from serving.bundle_manifest import MANIFEST, read_manifest
from serving.container_files import render_docker_files
from serving.k8s import write_k8s
from serving.models_config import (
    CONFIG_NAME,
    POLICIES,
    ServedModel,
    check_model_name,
    check_servable,
    container_base_path,
    models_config_text,
    read_models_config,
)
from serving.runtime_check import (
    RuntimeReport,
    check_runtime,
    serving_target,
)
from serving.version_export import export_version


@dataclass
class ModelSource:
    """One `--model NAME=PATH[@VERSION]`."""

    name: str
    path: Path
    version: int | None = None


def parse_model_spec(text: str) -> ModelSource:
    """Parse `NAME=PATH[@VERSION]`."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise BadInputError(f"--model '{text}' is not NAME=PATH[@VERSION].")
    path, at, version = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if at and not version.isdigit():
        raise BadInputError(f"--model '{text}': version '{version}' is not a positive integer.")
    return ModelSource(check_model_name(name), Path(path), int(version) if at else None)


def parse_label(text: str) -> tuple[str, str, int]:
    """Parse `NAME:LABEL=VERSION`."""
    head, sep, version = text.partition("=")
    name, colon, label = head.partition(":")
    if not (sep and colon and name and label and version.isdigit()):
        raise BadInputError(f"--label '{text}' is not NAME:LABEL=VERSION.")
    return name, label, int(version)


def parse_policy(text: str) -> tuple[str, str]:
    """Parse `NAME:latest|all|specific`."""
    name, colon, policy = text.partition(":")
    if not colon or policy not in POLICIES:
        raise BadInputError(f"--policy '{text}' is not NAME:{'|'.join(POLICIES)}.")
    return name, policy


@dataclass
class BundleRequest:
    out_dir: Path
    sources: list[ModelSource]
    labels: list[tuple[str, str, int]] = field(default_factory=list)
    policies: list[tuple[str, str]] = field(default_factory=list)
    batching: bool = False
    warmup: int = 0
    warmup_inputs: Path | None = None
    image: str | None = None  # None: tensorflow/serving of serving_version (or as before)
    serving_version: str | None = None  # the TF Serving release the image carries
    k8s: bool = False
    kserve: bool = False
    check_runtime: bool = False
    force: bool = False
    verify: bool = True
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    input_shapes: dict = field(default_factory=dict)  # parsed --input-shape, by input name
    used_input_names: set = field(default_factory=set)  # the ones some model has


def plan_versions(request: BundleRequest, manifest: dict) -> list[tuple[ModelSource, int]]:
    """Give every source a version: as asked, its folder's number, or the next free one."""
    existing = {name: {int(v) for v in entry["versions"]} for name, entry in manifest["models"].items()}
    taken = {name: set(versions) for name, versions in existing.items()}
    planned: list[tuple[ModelSource, int]] = []
    for source in request.sources:
        version = source.version
        if version is None and source.path.name.isdigit():
            version = int(source.path.name)  # a TF Serving version folder keeps its number
        if version is None:
            version = max(taken.get(source.name, set()) | {0}) + 1
        if (source.name, version) in {(s.name, v) for s, v in planned}:
            raise BadInputError(f"model '{source.name}' version {version} is given twice.")
        if version in existing.get(source.name, set()) and not request.force:
            raise DestinationExistsError(
                f"model '{source.name}' already has version {version} in {request.out_dir}.",
                hint="Give another version with NAME=PATH@VERSION, or --force to replace it.",
            )
        taken.setdefault(source.name, set()).add(version)
        planned.append((source, version))
    return planned


def served_models(manifest: dict) -> tuple[list[ServedModel], dict[str, list[int]]]:
    """models.config entries and the versions each model has, from the manifest."""
    served, versions = [], {}
    for name, entry in sorted(manifest["models"].items()):
        versions[name] = sorted(int(v) for v in entry["versions"])
        served.append(ServedModel(
            name=name,
            base_path=Path(container_base_path(name)),
            policy=entry.get("policy", "latest"),
            versions=tuple(versions[name]) if entry.get("policy") == "specific" else (),
            labels={label: int(v) for label, v in entry.get("labels", {}).items()},
        ))
    return served, versions


def update_manifest(manifest: dict, request: BundleRequest, planned) -> None:
    """Record the new versions, policies and labels (entries for versions filled in later)."""
    manifest["kexport_version"] = __version__
    manifest.pop("runtime_check", None)  # a new version is unchecked until this run checks it
    if request.image or request.serving_version:
        target = serving_target(request.image, request.serving_version)
    else:  # extending a bundle keeps the image it targets
        target = serving_target(manifest.get("image"), manifest.get("serving_version"))
    manifest["image"], manifest["serving_version"] = target
    manifest["batching"] = request.batching or manifest.get("batching", False)
    manifest["k8s"] = request.k8s or request.kserve or manifest.get("k8s", False)
    manifest["kserve"] = request.kserve or manifest.get("kserve", False)
    for source, version in planned:
        entry = manifest["models"].setdefault(source.name, {"policy": "latest", "labels": {}, "versions": {}})
        entry["versions"][str(version)] = {"source": str(source.path.resolve())}
    for name, policy in request.policies:
        _entry(manifest, name, "--policy")["policy"] = policy
    for name, label, version in request.labels:
        _entry(manifest, name, "--label")["labels"][label] = version


def _entry(manifest: dict, name: str, option: str) -> dict:
    if name not in manifest["models"]:
        raise BadInputError(
            f"{option} names model '{name}', which is not in the bundle "
            f"(models: {', '.join(sorted(manifest['models'])) or 'none'})."
        )
    return manifest["models"][name]


def build_bundle(request: BundleRequest, progress: Progress = silent) -> dict:
    """Build or extend a bundle; returns its manifest. Nothing changes unless everything works."""
    out_dir = Path(request.out_dir)
    if not request.sources:
        raise BadInputError("no --model given; expected at least one NAME=PATH[@VERSION].")
    restore_interrupted(out_dir.parent)  # a killed swap's previous bundle counts as existing
    existing = read_manifest(out_dir) if out_dir.exists() else None
    if out_dir.exists() and existing is None and any(out_dir.iterdir()) and not request.force:
        raise DestinationExistsError(f"{out_dir} exists and is not a kexport bundle.",
                                     hint="Choose another folder, or --force to replace it.")
    manifest = existing or {"models": {}}
    planned = plan_versions(request, manifest)
    update_manifest(manifest, request, planned)
    served, versions = served_models(manifest)
    check_servable(served, versions)  # before any export: cheap refusals first
    with staging_folder(out_dir) as stage:
        bundle = stage / out_dir.name
        _link_existing_versions(out_dir if existing else None, bundle, manifest, planned)
        for source, version in planned:
            progress(f"exporting {source.name} version {version} from {source.path}")
            manifest["models"][source.name]["versions"][str(version)] = export_version(
                source, version, bundle / "models" / source.name / str(version), request
            )
        _refuse_unused_input_shapes(request)
        _write_server_files(bundle, manifest, served)
        if request.check_runtime:  # before publishing: an image that cannot serve it changes nothing
            runtime = check_runtime(bundle, manifest["serving_version"], manifest, progress,
                                    request.atol, request.rtol)
            _record_runtime_check(bundle, manifest, runtime, progress)
        publish([bundle], out_dir.parent, force=True)
    return manifest


def _refuse_unused_input_shapes(request: BundleRequest) -> None:
    unused = [name for name in request.input_shapes if name not in request.used_input_names]
    if unused:
        raise BadInputError(
            f"--input-shape names {', '.join(repr(n) if n else 'a lone input' for n in unused)}, "
            "which no bundled model has as an input; check the names with `kexport inspect`.")


def check_bundle_runtime(out_dir: Path, serving_version: str | None = None,
                         progress: Progress = silent) -> RuntimeReport:
    """The runtime check of an existing bundle, under its image's TensorFlow or another."""
    manifest = read_manifest(Path(out_dir))
    if manifest is None:
        raise BadInputError(f"{out_dir} is not a kexport bundle (no {MANIFEST}).")
    version = serving_target(None if serving_version else manifest.get("image"),
                             serving_version or manifest.get("serving_version"))[1]
    return check_runtime(Path(out_dir), version, manifest, progress)


def _record_runtime_check(bundle: Path, manifest: dict, runtime: RuntimeReport, progress) -> None:
    for line in runtime.lines():
        progress(line)
    if not runtime.passed:
        raise VerificationError(runtime.summary() + "; nothing was published.", report=runtime)
    manifest["runtime_check"] = {"serving_version": runtime.serving_version,
                                 "tensorflow_version": runtime.tensorflow_version,
                                 "passed": True}
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _link_existing_versions(old: Path | None, bundle: Path, manifest: dict, planned) -> None:
    """Hard-link the versions the bundle keeps (versions are immutable once written)."""
    (bundle / "models").mkdir(parents=True)
    if old is None:
        return
    replaced = {(source.name, version) for source, version in planned}
    for name, entry in manifest["models"].items():
        for version in entry["versions"]:
            if (name, int(version)) in replaced:
                continue
            source = old / "models" / name / version
            if not source.is_dir():
                raise BadInputError(f"the bundle's manifest lists {name} version {version}, "
                                    f"but {source} is missing; rebuild the bundle with --force.")
            shutil.copytree(source, bundle / "models" / name / version, copy_function=os.link)


def _write_server_files(bundle: Path, manifest: dict, served: list[ServedModel]) -> None:
    (bundle / CONFIG_NAME).write_text(models_config_text(served), encoding="utf-8")
    read_models_config(bundle / CONFIG_NAME, bundle)  # parse back with TF Serving's proto
    if manifest["batching"]:
        (bundle / "batching.config").write_text(BatchingSettings().render(), encoding="utf-8")
    render_docker_files(bundle, manifest)
    if manifest["k8s"]:
        write_k8s(bundle, manifest, served)
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

