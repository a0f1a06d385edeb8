"""How long jobs report their steps: a callback that takes one line of text.

The CLI passes one that prints (`kexport: ...` on stderr, unless --quiet); library calls say
nothing unless a caller passes `progress=print`. Imports nothing, so any module can use it.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(message: str) -> None:
    """The default progress callback: report nothing."""
