"""`--custom-objects`: classes a model needs that are not built into Keras.

Takes a dotted module path (`mypkg.layers`) or a `.py` file; every class and function the
module defines becomes available to the deserializers by name. This runs the module's code,
which is the user's own choice (it is named on the command line, not found in an artifact).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

from exporter.errors import BadInputError


def load_custom_objects(spec: str | None) -> dict:
    """Import `spec` and return {name: object} for what it defines."""
    if not spec:
        return {}
    try:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise BadInputError(f"--custom-objects file not found: {spec}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except BadInputError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's module may raise anything
        raise BadInputError(
            f"--custom-objects {spec} could not be imported: {type(error).__name__}: {error}"
        ) from None
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    }
