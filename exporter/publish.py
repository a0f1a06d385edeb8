"""Atomic publishing: write beside the destination, verify there, then rename into place.

A run that fails or is killed leaves nothing at the destination: the files live in a hidden
staging folder next to it (same filesystem, so the final rename is atomic) until verified.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exporter.errors import BadInputError, DestinationExistsError

STAGING_PREFIX = ".kexport-staging-"


def check_destinations(paths: list[Path], force: bool) -> None:
    """Refuse early when an output exists and `--force` was not given."""
    for path in paths:
        if (path.exists() or path.is_symlink()) and not force:
            raise DestinationExistsError(
                f"{path} already exists.", hint="Pass --force to replace it."
            )


@contextmanager
def staging_folder(destination: Path) -> Iterator[Path]:
    """A fresh hidden folder beside `destination`, removed afterwards whatever happens."""
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInputError(f"cannot create the output folder {parent}: {error.strerror}.") from None
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(staged: list[Path], destination_dir: Path, force: bool) -> list[Path]:
    """Move staged files or folders to `destination_dir`, replacing old ones only with force."""
    published = []
    for item in staged:
        final = destination_dir / item.name
        check_destinations([final], force)
        if final.is_dir() and not final.is_symlink():
            # A folder cannot be replaced in one rename: move the old one aside first, so the
            # new one is never mixed with it, then drop it.
            old = item.parent / f"{item.name}.old"
            os.rename(final, old)
            os.rename(item, final)
        else:
            os.replace(item, final)
        published.append(final)
    return published
