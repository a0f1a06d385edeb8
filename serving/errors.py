"""The serving side's one exception: a failure of a server or of an RPC (exit code 4).

It joins the `exporter.errors.KexportError` hierarchy, so the CLI edge maps it to its exit code
like every other kexport error; bad input to a serving command is still `BadInputError` (2).
"""

from __future__ import annotations

from exporter.errors import EXIT_SERVING, KexportError


class ServingError(KexportError):
    """A serving or RPC failure: unreachable server, NOT_FOUND, bad request (exit 4)."""

    exit_code = EXIT_SERVING
