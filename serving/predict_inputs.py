"""Read prediction inputs from files: .npy, .npz, JSON and images, shaped for a signature.

TF-free (numpy, plus Pillow for images, imported only when an image is read). Every file becomes
a batch for one or more inputs; `load_inputs` concatenates the batches of all files per input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError, did_you_mean
from serving.tensors import dtype_name

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
PREPROCESS_MODES = ("none", "tf", "caffe", "torch")

# keras.applications.imagenet_utils.preprocess_input constants (RGB order for torch, BGR for caffe).
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def check_preprocess(mode: str) -> None:
    """Refuse an unknown `--preprocess` mode (before any file is read or server asked).

    Raises:
        BadInputError: the mode is not one of PREPROCESS_MODES (exit 2).
    """
    if mode not in PREPROCESS_MODES:
        raise BadInputError(f"Unknown --preprocess mode '{mode}'; expected one of "
                            f"{', '.join(PREPROCESS_MODES)}.")


def load_inputs(signature, files: Iterable[str] = (), named: Iterable[tuple[str, str]] = (),
                preprocess: str = "none") -> dict[str, np.ndarray]:
    """Read every file into one batch array per signature input.

    Args:
        signature: the `serving.signatures.Signature` the inputs are for (names, dtypes, shapes).
        files: files for the only input of the signature, or .npz / JSON objects keyed by input
            names (which may then hold several inputs).
        named: (input name, file) pairs, from `--input NAME=FILE`.
        preprocess: for images: `none`, `tf`, `caffe` or `torch` (keras.applications semantics).

    Returns:
        input name -> array; the arrays of one input from several files are concatenated.

    Raises:
        BadInputError: unknown input names, unreadable files, shapes that do not stack.
    """
    check_preprocess(preprocess)
    parts: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, path in named:
        _check_name(signature, name)
        parts.setdefault(name, []).append((path, _read_for_input(signature, name, path, preprocess)))
    for path in files:
        for name, arr in _read_positional(signature, path, preprocess).items():
            parts.setdefault(name, []).append((path, arr))
    if not parts:
        raise BadInputError("No inputs given.", hint="Pass FILE ... or --input NAME=FILE.")
    return {name: _concatenate(name, batches) for name, batches in parts.items()}


def as_batch(arr: np.ndarray, spec) -> np.ndarray:
    """Add the batch axis when `arr` is exactly one example of the input `spec`, else keep it.

    One example has the signature's shape without its first dimension (-1 matches any size).
    Anything else is sent as it is: TF Serving checks names and dtypes, not shapes.
    """
    if spec.shape is None or len(spec.shape) == 0 or arr.ndim != len(spec.shape) - 1:
        return arr
    per_example = spec.shape[1:]
    if all(want in (-1, got) for want, got in zip(per_example, arr.shape)):
        return arr[np.newaxis, ...]
    return arr


def read_image(path: str | Path, spec, preprocess: str = "none") -> np.ndarray:
    """Read a PNG/JPEG as one example for an image input, resized to the signature's size.

    The signature's height and width (NHWC, or NCHW when only the second dimension looks like
    channels) set the size; unknown ones keep the image's. Resizing uses nearest neighbour, the
    default of `keras.utils.load_img`, so results match the usual Keras pipeline.

    Returns:
        An (H, W, C) array (C, H, W for NCHW): uint8 for `preprocess="none"`, float32 otherwise.
    """
    from PIL import Image  # Pillow costs ~50 ms to import; only images need it

    shape = list(spec.shape) if spec.shape is not None else [-1, -1, -1, 3]
    if len(shape) != 4:
        raise BadInputError(f"Input '{spec.name}' has shape {shape}; an image input needs rank 4 "
                            f"(batch, height, width, channels).")
    channels_first = shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)
    height, width, channels = (shape[2], shape[3], shape[1]) if channels_first else shape[1:]
    mode = {1: "L", 4: "RGBA"}.get(channels, "RGB")
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if height > 0 and width > 0 and image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.NEAREST)
            pixels = np.asarray(image, dtype=np.uint8)
    except OSError as err:
        raise BadInputError(f"Cannot read image {path}: {getattr(err, 'strerror', None) or err}") from None
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    pixels = preprocess_image(pixels, preprocess)
    return np.moveaxis(pixels, -1, 0) if channels_first else pixels


def preprocess_image(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Apply keras.applications' `preprocess_input` to channels-last RGB pixels in 0..255.

    `tf` scales to [-1, 1]; `caffe` flips RGB to BGR and subtracts the ImageNet mean; `torch`
    scales to [0, 1] and normalizes by the ImageNet mean and std; `none` returns the pixels.
    """
    check_preprocess(mode)
    if mode == "none":
        return pixels
    x = pixels.astype(np.float32)
    if mode == "tf":
        return x / 127.5 - 1.0
    if x.shape[-1] != 3:
        raise BadInputError(f"--preprocess {mode} needs RGB images; this one has "
                            f"{x.shape[-1]} channel(s).")
    if mode == "caffe":
        return x[..., ::-1] - _CAFFE_MEAN_BGR
    return (x / 255.0 - _TORCH_MEAN) / _TORCH_STD  # torch


def _read_positional(signature, path: str, preprocess: str) -> dict[str, np.ndarray]:
    """A positional file: a mapping of input names, or the batch of the only input."""
    suffix = Path(path).suffix.lower()
    if suffix in (".npz", ".json"):
        data = _read_npz(path) if suffix == ".npz" else _read_json(path)
        if isinstance(data, dict):
            return _by_input_name(signature, data, path)
        name = _only_input(signature, path)
        return {name: as_batch(data, signature.inputs[name])}
    name = _only_input(signature, path)
    return {name: _read_for_input(signature, name, path, preprocess)}


def _read_for_input(signature, name: str, path: str, preprocess: str) -> np.ndarray:
    spec = _spec(signature, name)
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return read_image(path, spec, preprocess)[np.newaxis, ...]
    if suffix == ".npy":
        return as_batch(_read_npy(path), spec)
    if suffix in (".npz", ".json"):
        data = _read_npz(path) if suffix == ".npz" else _read_json(path)
        if isinstance(data, dict):
            if name not in data:
                raise BadInputError(f"{path} has no array named '{name}'; it holds "
                                    f"{', '.join(sorted(data)) or 'nothing'}.")
            data = _array(data[name], path)
        return as_batch(data, spec)
    raise BadInputError(f"Cannot read {path}: unknown file type '{suffix}'.",
                        hint=f"Use .npy, .npz, .json or an image ({', '.join(IMAGE_SUFFIXES)}).")


def _by_input_name(signature, data: dict, path: str) -> dict[str, np.ndarray]:
    if set(data) - set(signature.inputs) and set(data) & {"instances", "inputs"}:
        data = _rest_body(signature, data, path)
    out = {}
    for name, value in data.items():
        _check_name(signature, name, source=path)
        out[name] = as_batch(_array(value, path), _spec(signature, name))
    return out


def _rest_body(signature, data: dict, path: str) -> dict:
    """Accept TF Serving REST bodies: {"instances": [...]} (rows) or {"inputs": ...} (columns)."""
    if "inputs" in data:
        inputs = data["inputs"]
        return inputs if isinstance(inputs, dict) else {_only_input(signature, path): inputs}
    rows = data["instances"]
    if rows and all(isinstance(row, dict) for row in rows):
        keys = set(rows[0])
        if any(set(row) != keys for row in rows):
            raise BadInputError(f"{path}: every instance must name the same inputs.")
        return {key: [row[key] for row in rows] for key in rows[0]}
    return {_only_input(signature, path): rows}


def _read_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except OSError as err:
        raise BadInputError(f"Cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise BadInputError(f"Cannot read {path} as .npy: {err}") from None


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except OSError as err:
        raise BadInputError(f"Cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise BadInputError(f"Cannot read {path} as .npz: {err}") from None


def _read_json(path: str) -> dict | np.ndarray:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as err:
        raise BadInputError(f"Cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise BadInputError(f"Cannot read {path} as JSON: {err}") from None
    return data if isinstance(data, dict) else _array(data, path)


def _array(value, path: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError:
        raise BadInputError(f"{path} holds a ragged list, not a rectangular array.",
                            hint="Give every row the same length.") from None


def _concatenate(name: str, batches: list[tuple[str, np.ndarray]]) -> np.ndarray:
    if len(batches) == 1:
        return batches[0][1]
    arrays = [arr if arr.ndim else arr[np.newaxis] for _, arr in batches]
    try:
        return np.concatenate(arrays, axis=0)
    except ValueError:
        shapes = ", ".join(f"{path}: {list(arr.shape)}" for path, arr in batches)
        raise BadInputError(f"The files for input '{name}' do not stack into one batch ({shapes}).",
                            hint="Give every file the same shape after the first dimension.") from None


def _only_input(signature, path: str) -> str:
    if len(signature.inputs) == 1:
        return next(iter(signature.inputs))
    names = ", ".join(sorted(signature.inputs))
    raise BadInputError(f"Signature '{signature.name}' has {len(signature.inputs)} inputs ({names}); "
                        f"cannot tell which one {path} is for.",
                        hint="Use --input NAME=FILE, or an .npz / JSON object keyed by input name.")


def _check_name(signature, name: str, source: str | None = None) -> None:
    if name not in signature.inputs:
        where = f" (in {source})" if source else ""
        expected = ", ".join(f"{n} ({dtype_name(s.dtype)})" for n, s in sorted(
            signature.inputs.items()))
        raise BadInputError(f"Signature '{signature.name}' has no input '{name}'{where}; its inputs "
                            f"are {expected}.{did_you_mean(name, signature.inputs)}")


def _spec(signature, name: str):
    _check_name(signature, name)
    return signature.inputs[name]
