"""Atomic publishing: write beside the destination, verify there, then rename into place.

A run that fails or is killed leaves nothing at the destination: the files live in a hidden
staging folder next to it (same filesystem, so the final rename is atomic) until verified. A
folder that replaces another is swapped in by `exporter.swap`, so a kill never loses both.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exporter.errors import BadInputError, DestinationExistsError
from exporter.swap import process_alive, replace_folder, restore_interrupted

STAGING_PREFIX = ".kexport-staging-"


def check_destinations(paths: list[Path], force: bool) -> None:
    """Refuse early when an output exists and `--force` was not given (after putting back what
    a killed replacement moved aside, so the check sees the destination as it really is)."""
    for parent in {path.parent for path in paths}:
        restore_interrupted(parent)
    for path in paths:
        if (path.exists() or path.is_symlink()) and not force:
            raise DestinationExistsError(
                f"{path} already exists.", hint="Pass --force to replace it."
            )


OWNER_FILE = ".kexport-owner"
# A staging folder without an owner record (killed between mkdtemp and the write) is only
# removed once this old, so a run that is just starting is never swept away.
STALE_SECONDS = 600


@contextmanager
def staging_folder(destination: Path) -> Iterator[Path]:
    """A fresh hidden folder beside `destination`, removed afterwards whatever happens.

    Folders left by killed runs are removed first (see `remove_stale_stagings`). A failed write
    (disk full, permission) becomes one BadInputError line; nothing is published.
    """
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInputError(f"cannot create the output folder {parent}: {error.strerror}.") from None
    restore_interrupted(parent)
    remove_stale_stagings(parent)
    stage = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
        (stage / OWNER_FILE).write_text(f"{os.getpid()} {socket.gethostname()}\n")
        yield stage
    except OSError as error:
        raise BadInputError(write_failure(destination, error)) from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def write_failure(destination: Path, error: OSError) -> str:
    """One line for an OSError while writing: disk full gets its own wording."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device holding {destination.parent} while writing "
                f"{destination.name}; nothing was published. Free some space and run again.")
    where = f" ({error.filename})" if error.filename else ""
    return (f"writing {destination} failed: {error.strerror or error}{where}; "
            "nothing was published.")


def remove_stale_stagings(parent: Path) -> list[Path]:
    """Remove staging folders of runs that were killed: their owner process is gone (same
    host), or, without an owner record, they are older than STALE_SECONDS. Others are left."""
    removed = []
    host = socket.gethostname()
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            owner = (folder / OWNER_FILE).read_text().split()
        except OSError:
            owner = []
        if len(owner) == 2 and owner[0].isdigit():
            stale = owner[1] == host and not process_alive(int(owner[0]))
        else:
            try:
                stale = time.time() - folder.stat().st_mtime > STALE_SECONDS
            except OSError:
                stale = False
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def publish(staged: list[Path], destination_dir: Path, force: bool) -> list[Path]:
    """Move staged files or folders to `destination_dir`, replacing old ones only with force."""
    published = []
    for item in staged:
        final = destination_dir / item.name
        check_destinations([final], force)
        if final.is_dir() and not final.is_symlink():
            replace_folder(item, final)  # the old or the new folder is there at every instant
        else:
            os.replace(item, final)
        published.append(final)
    return published
