"""Where the models of a server live on disk: models.config, version folders, version policies.

`kexport serve PATH` accepts what TF Serving accepts: a bundle (a folder with `models.config`, a
text-format `tensorflow.serving.ModelServerConfig` whose `/models/...` base paths point into the
bundle's own `models/` folder, as they will inside the container), or one model's base path with
numbered version folders (`--model_base_path` semantics). No TensorFlow needed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from exporter.errors import BadInputError

CONFIG_NAME = "models.config"
CONTAINER_MODELS = PurePosixPath("/models")  # MODEL_BASE_PATH of the tensorflow/serving image
_VERSION_NAME = re.compile(r"[0-9]+")
MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "model.tflite")


@dataclass(frozen=True)
class ModelConfig:
    """One served model: name, base path, version policy and labels.

    Attributes:
        name: model name clients ask for.
        base_path: folder holding the numbered version folders.
        policy: `latest` (the `count` highest versions), `all`, or `specific` (`versions`).
        count: how many versions `latest` keeps (TF Serving's num_versions, default 1).
        versions: the versions `specific` serves.
        labels: version label -> version number.
    """

    name: str
    base_path: Path
    policy: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)


def load_repository(path: str | Path, model_name: str = "default") -> list[ModelConfig]:
    """The models a server started on PATH serves.

    Args:
        path: a bundle folder (with models.config), a models.config file, or a model base path.
        model_name: the name of the model when PATH is a base path.

    Raises:
        BadInputError: PATH is missing, is a bare SavedModel, or its models.config is invalid.
    """
    root = Path(path).expanduser()
    if root.is_file():
        return read_models_config(root, bundle=root.parent)
    if (root / CONFIG_NAME).is_file():
        return read_models_config(root / CONFIG_NAME, bundle=root)
    if not root.is_dir():
        raise BadInputError(f"{root} does not exist.", hint="Pass a bundle folder (with "
                            "models.config) or a model base path with numbered version folders.")
    if (root / "saved_model.pb").is_file() or (root / "saved_model.pbtxt").is_file():
        raise BadInputError(f"{root} is a SavedModel, not a model base path.",
                            hint=f"TF Serving serves numbered versions: move it to {root}/1/ "
                            f"and serve {root}.")
    if not model_name:
        raise BadInputError("--model-name must not be empty.")
    return [ModelConfig(model_name, root.resolve())]


def config_file(path: str | Path) -> tuple[Path, Path] | None:
    """(models.config file, bundle folder) of a server started on PATH; None for a base path."""
    root = Path(path).expanduser()
    if root.is_file():
        return root, root.parent
    if (root / CONFIG_NAME).is_file():
        return root / CONFIG_NAME, root
    return None


def read_models_config(config_path: Path, bundle: Path) -> list[ModelConfig]:
    """Parse a text-format ModelServerConfig; map `/models/...` base paths into `bundle/models/`.

    Raises:
        BadInputError: unparsable text, a custom config, a non-TensorFlow platform, a relative or
            missing base path, duplicate names.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2  # protos only, no TensorFlow

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(config_path.read_text(encoding="utf-8"), config)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        raise BadInputError(f"Error parsing text-format tensorflow.serving.ModelServerConfig "
                            f"{config_path}: {err}") from None
    models = models_from_config(config, config_path, bundle)
    if not models:
        raise BadInputError(f"{config_path} lists no models.")
    return models


def models_from_config(config, source, bundle: Path | None) -> list[ModelConfig]:
    """The models of a parsed ModelServerConfig (from a file, or a ReloadConfigRequest).

    Args:
        config: a `tensorflow.serving.ModelServerConfig` message.
        source: where it came from, for messages.
        bundle: the bundle whose `models/` folder `/models/...` base paths map to; None keeps
            base paths as they are.

    Raises:
        BadInputError: a custom config, a non-TensorFlow platform, a relative or missing base
            path, duplicate names.
    """
    if config.HasField("custom_model_config"):
        raise BadInputError(f"{source}: custom_model_config is not supported; use "
                            "model_config_list.")
    models = [_model_config(entry, source, bundle) for entry in config.model_config_list.config]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInputError(f"{source} names model(s) {', '.join(duplicates)} twice.")
    return models


def container_path_to_local(base_path: str, bundle: Path | None) -> Path:
    """Map a base path as the container sees it (`/models/x`) to the bundle's `models/x`."""
    pure = PurePosixPath(base_path)
    if bundle is not None and pure == CONTAINER_MODELS or CONTAINER_MODELS in pure.parents:
        return (bundle / "models" / pure.relative_to(CONTAINER_MODELS)).resolve()
    return Path(base_path)


def list_versions(base_path: Path) -> dict[int, Path]:
    """Version folders under a base path: integer names only (`00000123` is 123), others skipped.

    A folder counts once it holds `saved_model.pb` (or `.pbtxt`, or `model.tflite` for
    --prefer_tflite_model), so a version being copied into place is picked up by a later poll
    rather than failing to load.
    """
    found: dict[int, Path] = {}
    try:
        children = sorted(base_path.iterdir())
    except OSError:
        return found
    for child in children:
        if not _VERSION_NAME.fullmatch(child.name) or not child.is_dir():
            continue
        if any((child / name).is_file() for name in MODEL_FILES):
            found.setdefault(int(child.name), child)
    return found


def aspired_versions(model: ModelConfig, available) -> set[int]:
    """The versions the model's policy wants loaded, out of those on disk."""
    available = sorted(available)
    if model.policy == "all":
        return set(available)
    if model.policy == "specific":
        return set(model.versions) & set(available)
    return set(available[-model.count:]) if model.count > 0 else set()


def _model_config(entry, config_path, bundle: Path | None) -> ModelConfig:
    if not entry.name:
        raise BadInputError(f"{config_path}: a model config has no name.")
    if entry.model_platform not in ("", "tensorflow"):
        raise BadInputError(f"{config_path}: model '{entry.name}' has model_platform "
                            f"'{entry.model_platform}'; only 'tensorflow' is served.")
    if not entry.base_path:
        raise BadInputError(f"{config_path}: model '{entry.name}' has no base_path.")
    if not PurePosixPath(entry.base_path).is_absolute():
        raise BadInputError(f"{config_path}: model '{entry.name}' has a relative base_path "
                            f"'{entry.base_path}'; TF Serving needs an absolute one, e.g. "
                            f"/models/{entry.name}.")
    base_path = container_path_to_local(entry.base_path, bundle)
    policy = entry.model_version_policy.WhichOneof("policy_choice") or "latest"
    count = entry.model_version_policy.latest.num_versions or 1
    versions = tuple(entry.model_version_policy.specific.versions)
    if policy == "specific" and not versions:
        raise BadInputError(f"{config_path}: model '{entry.name}' has a specific version policy "
                            "without versions.")
    return ModelConfig(entry.name, base_path, policy, count, versions, dict(entry.version_labels))
