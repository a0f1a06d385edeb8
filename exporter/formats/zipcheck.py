"""Checks of a zip archive's central directory that `zipfile` itself does not make.

A `.keras` file is a zip archive: an entry may name a path outside the archive's folder, or
claim a size only a zip bomb inflates to. Both are refused from the central directory alone,
before any entry is read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from exporter.errors import FormatError

MAX_CONFIG_MEMBER = 64 * 1024 * 1024  # config.json, metadata.json: text, never this large
MAX_MEMBER_RATIO = 1000  # deflate's own ceiling is ~1032: beyond, only a crafted bomb


def check_zip_members(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse entries that escape the archive's folder and sizes that only a zip bomb has,
    from the central directory alone (nothing is inflated)."""
    for info in archive.infolist():
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise FormatError(f"refused: {path} has an entry '{info.filename}' that points outside "
                              "the archive; the archive is corrupt or hostile.")
        small = info.filename in ("config.json", "metadata.json")
        if (small and info.file_size > MAX_CONFIG_MEMBER) or (
            info.file_size > MAX_CONFIG_MEMBER
            and info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1)
        ):
            raise FormatError(f"refused: {path} entry '{info.filename}' would inflate to "
                              f"{info.file_size:,} bytes from {info.compress_size:,} (a zip bomb).")

