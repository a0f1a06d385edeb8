"""Where a server's models live on disk: the path it is started on, and numbered version folders.

`kexport serve PATH` accepts what TF Serving accepts: a bundle (a folder with `models.config`, a
text-format `tensorflow.serving.ModelServerConfig` whose `/models/...` base paths point into the
bundle's own `models/` folder, as they will inside the container; see serving/models_config.py),
or one model's base path with numbered version folders (`--model_base_path` semantics). No
TensorFlow needed here.
"""

from __future__ import annotations

import re
from pathlib import Path

from exporter.errors import BadInputError
from serving.models_config import CONFIG_NAME, ServedModel, read_models_config

_VERSION_NAME = re.compile(r"[0-9]+")
MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "model.tflite")


def load_repository(path: str | Path, model_name: str = "default") -> list[ServedModel]:
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
    return [ServedModel(model_name, root.resolve())]


def config_file(path: str | Path) -> tuple[Path, Path] | None:
    """(models.config file, bundle folder) of a server started on PATH; None for a base path."""
    root = Path(path).expanduser()
    if root.is_file():
        return root, root.parent
    if (root / CONFIG_NAME).is_file():
        return root / CONFIG_NAME, root
    return None


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
