"""Replace a folder so that, at every instant, the old or the new one is complete at its path.

A folder cannot be replaced by one plain rename. Where the kernel offers it (Linux 3.15+ with
ext4, xfs, btrfs, tmpfs, ...), `renameat2(RENAME_EXCHANGE)` swaps the two paths atomically and
the old folder ends up where the new one was staged. Elsewhere the old folder is first renamed to
a hidden `.kexport-previous-<pid>-<name>` beside it, then the new one is renamed in: a kill
between the two renames leaves the destination absent and the previous copy whole, and the next
run that looks at that folder (`restore_interrupted`) renames it back. A previous copy is deleted
only once the destination holds a complete folder again.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

PREVIOUS_PREFIX = ".kexport-previous-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# The kernel or the filesystem does not do RENAME_EXCHANGE: take the fallback.
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
# Set to 1 to take the fallback even where the exchange works (the fault suite tests both).
NO_EXCHANGE_ENV = "KEXPORT_NO_EXCHANGE"


def _renameat2():
    if os.environ.get(NO_EXCHANGE_ENV) == "1":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2  # glibc 2.28+; absent on macOS and older C libraries
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    return function


def exchange(first: Path, second: Path) -> bool:
    """Atomically swap two existing paths; False where this system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_folder(new: Path, destination: Path) -> None:
    """Put the folder `new` at `destination`, which holds a folder now.

    With the exchange the old folder is left at `new` (the caller's staging area removes it);
    with the fallback it is deleted once the new folder is in place.
    """
    if exchange(new, destination):
        return
    previous = destination.parent / f"{PREVIOUS_PREFIX}{os.getpid()}-{destination.name}"
    os.rename(destination, previous)
    os.rename(new, destination)  # a kill before this line: restore_interrupted puts it back
    shutil.rmtree(previous, ignore_errors=True)


def restore_interrupted(parent: Path) -> list[Path]:
    """Finish what killed fallback swaps in `parent` left: rename a previous copy back when its
    destination is missing, delete it when the destination is whole again. Copies of a live
    process (mid-swap) are left alone. Returns the destinations restored."""
    restored = []
    try:
        copies = [p for p in parent.iterdir() if p.name.startswith(PREVIOUS_PREFIX)]
    except OSError:
        return restored
    for copy in copies:
        pid, _, name = copy.name[len(PREVIOUS_PREFIX):].partition("-")
        if not (pid.isdigit() and name) or process_alive(int(pid)):
            continue
        destination = parent / name
        if destination.exists() or destination.is_symlink():
            shutil.rmtree(copy, ignore_errors=True)
        else:
            os.rename(copy, destination)
            restored.append(destination)
    return restored


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (a foreign live process counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
