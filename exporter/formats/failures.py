"""Turn exceptions raised deep inside Keras, tf-keras, h5py and zipfile into one-line kexport errors."""

from __future__ import annotations

import contextlib
import re
import zipfile
from pathlib import Path

from exporter.errors import (
    BadInputError,
    FormatError,
    IncompatibleWeightsError,
    KexportError,
    UnknownLayerError,
    did_you_mean,
)

_UNKNOWN_CLASS = (
    re.compile(r"Could not locate (?:class|function) '([^']+)'"),
    re.compile(r"Unknown (?:layer|object|class)(?: name)?: '?([\w.>]+)"),
    re.compile(r"Could not deserialize '(?:[\w]+\.)*(\w+)' because it is not a KerasSaveable"),
)
_SHAPE_MISMATCH = re.compile(r"shape|Shapes|expected \d+ variables|incompatible", re.IGNORECASE)


def first_line(text_or_error, limit: int = 300) -> str:
    """The first non-empty line of a message (an exception with none gives its type name)."""
    line = next((part.strip() for part in str(text_or_error).splitlines() if part.strip()), "")
    if not line and isinstance(text_or_error, BaseException):
        line = type(text_or_error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def known_layer_names() -> list[str]:
    from exporter.runtime import keras_module

    layers = keras_module().layers
    return [name for name in dir(layers) if name[:1].isupper()]


def describe_load_error(error: Exception, path: Path) -> KexportError:
    """Map a loader exception to the kexport error a user can act on."""
    if isinstance(error, KexportError):
        return error
    text = str(error)
    for pattern in _UNKNOWN_CLASS:
        match = pattern.search(text)
        if match:
            name = match.group(1)
            return UnknownLayerError(
                f"{path}: unknown layer class '{name}'.{did_you_mean(name, known_layer_names())}",
                hint="If it is a custom layer, pass --custom-objects MODULE or FILE.py "
                "that defines it.",
            )
    if isinstance(error, OSError) and ("HDF5" in text or "file signature" in text or "truncated" in text):
        return FormatError(f"{path} is a corrupt or truncated HDF5 file ({first_line(text)}).")
    if isinstance(error, ValueError) and _SHAPE_MISMATCH.search(text) and "weight" in text.lower():
        return IncompatibleWeightsError(f"{path}: weights do not fit ({first_line(text)}).")
    return BadInputError(f"cannot load {path}: {type(error).__name__}: {first_line(text)}")


@contextlib.contextmanager
def loader_errors(path: Path, options=None):
    """Re-raise any loader exception as a kexport error naming `path`."""
    try:
        yield
    except KexportError:
        raise
    except Exception as error:
        raise describe_load_error(error, path) from error


@contextlib.contextmanager
def writer_errors(fmt: str, path: Path):
    """Re-raise any writer exception as a kexport error: the model cannot be written as `fmt`.
    OSErrors (disk full, permissions) pass: the staging folder words them (exporter.publish)."""
    try:
        yield
    except (KexportError, OSError):
        raise
    except Exception as error:
        raise BadInputError(
            f"cannot write {path.name} as {fmt}: {type(error).__name__}: {first_line(error)}",
            hint="Try another format with --to, or --debug for the traceback.",
        ) from error


@contextlib.contextmanager
def reload_errors(fmt: str, path: Path):
    """A written artifact that cannot be read back is a failed verification (exit 1)."""
    try:
        yield
    except KexportError:
        raise
    except Exception as error:
        from exporter.errors import VerificationError

        raise VerificationError(
            f"the written {fmt} cannot be read back ({type(error).__name__}: "
            f"{first_line(error)}); nothing was published.",
        ) from error


@contextlib.contextmanager
def hdf5_errors(path: Path):
    """h5py reports a corrupt file as OSError, RuntimeError, KeyError or ValueError, depending
    on which structure the damage hit; each is the same fact for a user: a corrupt file."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, EOFError,
            zipfile.BadZipFile) as error:
        raise FormatError(f"{path} is corrupt or truncated ({first_line(error)}).") from None
