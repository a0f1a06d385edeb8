"""A bundle's manifest (bundle.json): what makes a folder a kexport bundle, reading it, and
describing the bundle (`kexport inspect BUNDLE`).

Only json and pathlib: inspecting a bundle needs neither TensorFlow nor TF Serving's protos, so it
works in the base install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporter.errors import BadInputError

MANIFEST = "bundle.json"


def is_bundle(path: str | Path) -> bool:
    """True when `path` is a folder `kexport bundle` wrote (it holds bundle.json)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(out_dir: Path) -> dict | None:
    """The manifest of an existing bundle, or None when OUT_DIR is not one."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise BadInputError(f"{path} is not valid JSON; is {out_dir} a kexport bundle?") from None


def describe_bundle(path: Path) -> dict[str, Any]:
    """`kexport inspect BUNDLE --json`: the keys an artifact's description has, and the manifest.

    Raises:
        BadInputError: `path` is not a bundle, or its bundle.json is not valid JSON.
    """
    manifest = read_manifest(path)
    if manifest is None:
        raise BadInputError(f"{path} is not a kexport bundle (no {MANIFEST}).")
    # The same leading keys as exporter.inspect's description of one artifact, so scripts that
    # read `format` first can tell a bundle from a model.
    return {"path": str(path), "format": "bundle", "keras_version": None, "backend": None,
            "manifest": manifest}


def format_bundle(info: dict) -> str:
    """Render `describe_bundle`'s result for people: the image, then every model's versions."""
    lines = [f"{info['path']}: {info['format']}"]
    manifest = info.get("manifest") or {}
    if manifest.get("image"):
        checked = manifest.get("runtime_check")
        lines.append(f"image: {manifest['image']} (TensorFlow Serving "
                     f"{manifest.get('serving_version', '?')}"
                     + ("; runtime check passed)" if checked else ")"))
    for name, entry in sorted(manifest.get("models", {}).items()):
        lines.append(f"model {name} (policy {entry['policy']}, labels {entry.get('labels') or {}}):")
        for version, details in sorted(entry["versions"].items(), key=lambda item: int(item[0])):
            ins = ", ".join(f"{s['name']} {s['dtype']} {s['shape']}" for s in details.get("inputs", []))
            outs = ", ".join(s["name"] for s in details.get("outputs", []))
            writer = (f", written by TensorFlow {details['tensorflow_version']}"
                      if details.get("tensorflow_version") else "")
            lines.append(f"  version {version}: {ins} -> {outs}  from {details.get('source')}"
                         + writer)
    return "\n".join(lines)
