"""The models.config file: its entries (`ServedModel`), read, checked and written.

`models.config` is a text-format `tensorflow.serving.ModelServerConfig`. A bundle's base paths are
`/models/<name>`, where the tensorflow/serving image mounts the bundle's own `models/` folder;
reading maps them back into the bundle. Reading and writing go through TF Serving's generated
message (`tensorflow_serving.config.model_server_config_pb2`, protos only, no TensorFlow), so
what is written is what TF Serving parses.

Everything TF Serving would reject at start-up is checked before a bundle writes the file:
names it cannot serve, duplicates, labels to versions that do not exist or that the version
policy does not load (TF Serving refuses labels on unavailable versions by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from exporter.errors import BadInputError

CONFIG_NAME = "models.config"
CONTAINER_MODELS = PurePosixPath("/models")  # MODEL_BASE_PATH of the tensorflow/serving image
POLICIES = ("latest", "all", "specific")
# Model names become URL path segments (REST) and folder names: keep them plain.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class ServedModel:
    """One models.config entry: name, base path, version policy and labels.

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


def aspired_versions(model: ServedModel, available) -> set[int]:
    """The versions the model's policy wants loaded, out of those on disk."""
    available = sorted(available)
    if model.policy == "all":
        return set(available)
    if model.policy == "specific":
        return set(model.versions) & set(available)
    return set(available[-model.count:]) if model.count > 0 else set()


def read_models_config(config_path: Path, bundle: Path) -> list[ServedModel]:
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


def models_from_config(config, source, bundle: Path | None) -> list[ServedModel]:
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
    models = [_served_model(entry, source, bundle) for entry in config.model_config_list.config]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInputError(f"{source} names model(s) {', '.join(duplicates)} twice.")
    return models


def container_path_to_local(base_path: str, bundle: Path | None) -> Path:
    """Map a base path as the container sees it (`/models/x`) to the bundle's `models/x`;
    without a bundle (a server started on one base path) base paths stay as they are."""
    pure = PurePosixPath(base_path)
    if bundle is not None and (pure == CONTAINER_MODELS or CONTAINER_MODELS in pure.parents):
        return (bundle / "models" / pure.relative_to(CONTAINER_MODELS)).resolve()
    return Path(base_path)


def container_base_path(name: str) -> str:
    """The base path of model `name` inside the tensorflow/serving image: `/models/<name>`."""
    return str(PurePosixPath(CONTAINER_MODELS) / name)


def _served_model(entry, config_path, bundle: Path | None) -> ServedModel:
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
    return ServedModel(entry.name, base_path, policy, count, versions, dict(entry.version_labels))


def models_config_text(models: list[ServedModel]) -> str:
    """`models` as a text-format tensorflow.serving.ModelServerConfig (TF Serving's message,
    printed by protobuf's text_format, so every field name is one TF Serving parses)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2  # protos only, no TensorFlow

    config = model_server_config_pb2.ModelServerConfig()
    for model in models:
        entry = config.model_config_list.config.add(
            name=model.name, base_path=str(model.base_path), model_platform="tensorflow")
        policy = entry.model_version_policy
        if model.policy == "all":
            policy.all.SetInParent()  # an empty message, present: `all {}`
        elif model.policy == "specific":
            policy.specific.versions.extend(sorted(model.versions))
        else:
            policy.latest.num_versions = model.count
        entry.version_labels.update(model.labels)
    return text_format.MessageToString(config)


def check_model_name(name: str) -> str:
    """Return `name` if TF Serving can serve a model under it (and it makes a plain folder name)."""
    return _matching(_MODEL_NAME, name, f"model name '{name}' cannot be served: use letters, "
                     "digits, '_', '.' and '-', starting with a letter or digit.")


def check_label(label: str) -> str:
    """Return `label` if TF Serving accepts it as a version label."""
    return _matching(_LABEL, label, f"version label '{label}' is not valid: start with a letter, "
                     "then letters, digits, '_' or '-'.")


def _matching(pattern: re.Pattern, text: str, message: str) -> str:
    if not pattern.match(text or ""):
        raise BadInputError(message)
    return text


def check_servable(models: list[ServedModel], versions_on_disk: dict[str, list[int]]) -> None:
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
