"""TF Serving's start-up files, written as text protos: models.config and batching.config.

Everything TF Serving would reject at start-up is checked here, before anything is written:
names it cannot serve, duplicates, labels to versions that do not exist or that the version
policy does not load (TF Serving refuses labels on unavailable versions by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from exporter.errors import BadInputError
from serving.repository import CONTAINER_MODELS, ModelConfig, aspired_versions

# Model names become URL path segments (REST) and folder names: keep them plain.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
POLICIES = ("latest", "all", "specific")


@dataclass
class BatchingSettings:
    """BatchingParameters for TF Serving's --enable_batching (defaults suit small CPU models)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4

    def render(self) -> str:
        lines = [
            f"max_batch_size {{ value: {self.max_batch_size} }}",
            f"batch_timeout_micros {{ value: {self.batch_timeout_micros} }}",
            f"max_enqueued_batches {{ value: {self.max_enqueued_batches} }}",
            f"num_batch_threads {{ value: {self.num_batch_threads} }}",
        ]
        return "\n".join(lines) + "\n"


def check_model_name(name: str) -> str:
    if not _MODEL_NAME.match(name or ""):
        raise BadInputError(
            f"model name '{name}' cannot be served: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit."
        )
    return name


def check_label(label: str) -> str:
    if not _LABEL.match(label or ""):
        raise BadInputError(
            f"version label '{label}' is not valid: start with a letter, then letters, digits, "
            "'_' or '-'."
        )
    return label


def container_base_path(name: str) -> str:
    return str(PurePosixPath(CONTAINER_MODELS) / name)


def check_servable(models: list[ModelConfig], versions_on_disk: dict[str, list[int]]) -> None:
    """Refuse what TF Serving would refuse at start-up."""
    names = [model.name for model in models]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BadInputError(f"model name(s) {', '.join(duplicates)} given twice.")
    for model in models:
        check_model_name(model.name)
        if not PurePosixPath(str(model.base_path)).is_absolute():
            raise BadInputError(f"model '{model.name}': base_path must be absolute.")
        on_disk = versions_on_disk.get(model.name, [])
        if not on_disk:
            raise BadInputError(f"model '{model.name}' has no versions.")
        served = aspired_versions(model, on_disk)
        if model.policy == "specific" and set(model.versions) - set(on_disk):
            missing = sorted(set(model.versions) - set(on_disk))
            raise BadInputError(f"model '{model.name}': policy names absent version(s) {missing}.")
        for label, version in model.labels.items():
            check_label(label)
            if version not in on_disk:
                raise BadInputError(
                    f"label '{label}' of model '{model.name}' points at version {version}, which "
                    f"does not exist (versions: {sorted(on_disk)})."
                )
            if version not in served:
                raise BadInputError(
                    f"label '{label}' of model '{model.name}' points at version {version}, which "
                    f"the '{model.policy}' policy does not load (it serves {sorted(served)}).",
                    hint=f"Use --policy {model.name}:all, or label a served version.",
                )


def render_models_config(models: list[ModelConfig]) -> str:
    """A text-format tensorflow.serving.ModelServerConfig."""
    lines = ["model_config_list {"]
    for model in models:
        lines += [
            "  config {",
            f'    name: "{model.name}"',
            f'    base_path: "{model.base_path}"',
            '    model_platform: "tensorflow"',
            "    model_version_policy {",
            *_policy_lines(model),
            "    }",
        ]
        for label, version in sorted(model.labels.items()):
            lines.append(f'    version_labels {{ key: "{label}" value: {version} }}')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _policy_lines(model: ModelConfig) -> list[str]:
    if model.policy == "all":
        return ["      all {}"]
    if model.policy == "specific":
        versions = " ".join(f"versions: {v}" for v in sorted(model.versions))
        return [f"      specific {{ {versions} }}"]
    return [f"      latest {{ num_versions: {model.count} }}"]


def server_flags(batching: bool, poll_seconds: int = 60) -> list[str]:
    """tensorflow_model_server flags for this bundle, as the image's CMD passes them."""
    flags = [
        "--model_config_file=/models/models.config",
        f"--model_config_file_poll_wait_seconds={poll_seconds}",
    ]
    if batching:
        flags += ["--enable_batching=true", "--batching_parameters_file=/models/batching.config"]
    return flags
