"""Module attributes loaded on first access (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(package: str, homes: dict[str, str]) -> tuple[Callable, Callable]:
    """The `__getattr__` and `__dir__` of a package whose public names live in submodules.

    Args:
        package: the package's `__name__`.
        homes: public name -> the module that defines it, imported when the name is first used.

    Returns:
        `(__getattr__, __dir__)`, to assign in the package's `__init__`.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
