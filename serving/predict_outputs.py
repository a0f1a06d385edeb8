"""Render prediction outputs: JSON, a text table, an .npz file, and top-K classes with labels.

TF-free. `render` returns the text for stdout; files are written to a temporary sibling and
renamed, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError, DestinationExistsError

OUTPUT_FORMATS = ("json", "table", "npz:FILE")


def render(outputs: dict[str, np.ndarray], output: str = "json", *, top: int | None = None,
           labels: list[str] | None = None, force: bool = False) -> str:
    """Format outputs for stdout, or save them, as `--output` asks.

    Args:
        outputs: output name -> array, as `PredictClient.predict` returns them.
        output: `json` (the default), `table`, or `npz:FILE` to save the arrays.
        top: with K, the probability output is shown as its K best classes per example.
        labels: class names by index, for `top` (see `load_labels`).
        force: overwrite an existing npz file.

    Returns:
        The text to print (empty after saving an npz file).

    Raises:
        BadInputError: an unknown format, no output fit for `top`, or an existing npz file.
    """
    if output.startswith("npz:"):
        save_npz(outputs, output[4:], force=force)
        return ""
    if output not in ("json", "table"):
        raise BadInputError(f"Unknown --output '{output}'; expected one of "
                            f"{', '.join(OUTPUT_FORMATS)}.")
    ranked = None
    if top is not None:
        name = pick_scores_output(outputs, labels)
        ranked = (name, top_k(outputs[name], top, labels))
    if output == "json":
        return json.dumps(to_json(outputs, ranked))
    return render_table(outputs, ranked)


def to_json(outputs: dict[str, np.ndarray], ranked=None) -> dict:
    """{name: {"shape", "dtype", "values"}}; the ranked output gets "top" instead of "values"."""
    result = {}
    for name, arr in sorted(outputs.items()):
        entry = {"shape": list(arr.shape), "dtype": _dtype_label(arr)}
        if ranked is not None and ranked[0] == name:
            entry["top"] = ranked[1]
        else:
            entry["values"] = _jsonable(arr)
        result[name] = entry
    return result


def render_table(outputs: dict[str, np.ndarray], ranked=None) -> str:
    """A plain-text view: one block per output, long arrays summarized by numpy."""
    lines = []
    for name, arr in sorted(outputs.items()):
        lines.append(f"{name}  {_dtype_label(arr)}  {list(arr.shape)}")
        if ranked is not None and ranked[0] == name:
            for example, classes in enumerate(ranked[1]):
                for rank, entry in enumerate(classes, start=1):
                    label = f"{entry['label']} ({entry['index']})" if entry["label"] else str(
                        entry["index"])
                    lines.append(f"  #{example}  {rank}. {label:<32} {entry['score']:.6g}")
        else:
            text = np.array2string(arr, threshold=60, edgeitems=3, max_line_width=96)
            lines.extend("  " + line for line in text.splitlines())
    return "\n".join(lines)


def save_npz(outputs: dict[str, np.ndarray], path: str, *, force: bool = False) -> Path:
    """Save the arrays under their output names, atomically (temporary sibling, then rename)."""
    if not path:
        raise BadInputError("--output npz: needs a file name, e.g. npz:predictions.npz.")
    target = Path(path)
    if target.exists() and not force:
        raise DestinationExistsError(f"{target} exists.", hint="Pass --force to overwrite it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".npz", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **outputs)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_labels(path: str | Path) -> list[str]:
    """Class names by index: one per line, or Keras's `imagenet_class_index.json`.

    The JSON form maps "index" to [wordnet id, name] (what `decode_predictions` reads); a JSON
    list of names or a {"index": "name"} object also work.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise BadInputError(f"Cannot read labels {path}: {err.strerror or err}") from None
    if Path(path).suffix.lower() != ".json":
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text)
    except ValueError as err:
        raise BadInputError(f"Labels {path} is not valid JSON: {err}") from None
    if isinstance(data, list):
        return [str(item) for item in data]
    if isinstance(data, dict):
        try:
            pairs = sorted((int(key), value) for key, value in data.items())
        except ValueError:
            raise BadInputError(f"Labels {path}: keys must be class indices.") from None
        names = [""] * (pairs[-1][0] + 1 if pairs else 0)
        for index, value in pairs:
            names[index] = value[-1] if isinstance(value, list) else str(value)
        return names
    raise BadInputError(f"Labels {path}: expected a list or a class index object.")


def pick_scores_output(outputs: dict[str, np.ndarray], labels: list[str] | None) -> str:
    """The output `--top` ranks: the only one, else the one whose class count matches the labels,
    else the widest 2-D floating output."""
    if len(outputs) == 1:
        return next(iter(outputs))
    candidates = [n for n, a in outputs.items() if a.ndim in (1, 2) and a.dtype.kind == "f"]
    if labels:
        matching = [n for n in candidates if outputs[n].shape[-1] == len(labels)]
        if matching:
            candidates = matching
    if not candidates:
        raise BadInputError("--top needs a floating-point output of shape (batch, classes); "
                            f"outputs are {', '.join(sorted(outputs))}.")
    return max(sorted(candidates), key=lambda n: outputs[n].shape[-1])


def top_k(scores: np.ndarray, k: int, labels: list[str] | None = None) -> list[list[dict]]:
    """The k best classes of each example: [{"index", "label", "score"}, ...] per row."""
    if k < 1:
        raise BadInputError(f"--top must be at least 1, got {k}.")
    rows = np.atleast_2d(scores)
    if rows.ndim != 2:
        raise BadInputError(f"--top needs scores of shape (batch, classes), got {list(scores.shape)}.")
    k = min(k, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    return [[{"index": int(i), "label": labels[i] if labels and i < len(labels) else "",
              "score": float(row[i])} for i in best] for row, best in zip(rows, order)]


def _dtype_label(arr: np.ndarray) -> str:
    return "string" if arr.dtype == object else arr.dtype.name


def _jsonable(arr: np.ndarray):
    if arr.dtype == object:
        decode = np.vectorize(lambda v: v.decode("utf-8", "backslashreplace")
                              if isinstance(v, bytes) else str(v), otypes=[object])
        return decode(arr).tolist() if arr.size else arr.tolist()
    if arr.dtype.kind == "c":  # JSON has no complex numbers: [real, imaginary] pairs
        return np.stack([arr.real, arr.imag], axis=-1).tolist()
    if arr.dtype.name == "bfloat16":  # ml_dtypes scalars are not JSON numbers
        arr = arr.astype(np.float32)
    return arr.tolist()
