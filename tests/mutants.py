"""Deterministic hostile inputs made from valid small models, for the robustness suite.

Every generator takes a seeded `random.Random` and yields `(kind, path)` for files it writes
under a folder of its own. Nothing here is random between runs: a failure names a case that
reproduces. The mix leans on mutations rejected before TensorFlow loads anything (cheap), but
every kind the issue lists is present.
"""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from pathlib import Path

import yaml

# Values a config field should never hold: wrong types, impossible and huge numbers.
BAD_VALUES = [None, True, -1, 0, 2**31, 10**9, 2**63, 10**30, 1e308, float("nan"), "x" * 300,
              "", [], {}, [[[]]], {"class_name": 7}, ["a", None], -(10**12)]
SIZE_KEYS = ("units", "filters", "batch_shape", "batch_input_shape", "shape", "output_dim",
             "input_dim", "kernel_size")


def _paths(value, prefix=()):
    """Every (path, value) in a JSON document, containers included."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _set(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _delete(doc, path):
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


def mutate_config(config: dict, rng: random.Random) -> dict:
    """One mutation of a model config: a wrong type, a deleted key, a huge dimension."""
    doc = json.loads(json.dumps(config))
    paths = [path for path, _ in _paths(doc) if path]
    choice = rng.random()
    if choice < 0.3:  # huge or impossible sizes where Keras allocates from them
        sized = [p for p in paths if any(key in p for key in SIZE_KEYS)
                 and isinstance(_get(doc, p), int)]
        if sized:
            _set(doc, rng.choice(sized), rng.choice([2**31, 10**9, 2**40, 10**18, -5, 0]))
            return doc
    path = rng.choice(paths)
    if choice < 0.45:
        _delete(doc, path)
    else:
        _set(doc, path, rng.choice(BAD_VALUES))
    return doc


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def deep(depth: int, kind: str):
    """A config whose `config` is nested `depth` levels deep (lists or dicts)."""
    inner = 1
    for _ in range(depth):
        inner = [inner] if kind == "list" else {"config": inner}
    return {"class_name": "Sequential", "config": {"name": "deep", "layers": inner}}


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def flip_bits(data: bytes, rng: random.Random, count: int) -> bytes:
    buffer = bytearray(data)
    for _ in range(count):
        buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def h5_mutants(base: Path, out: Path, rng: random.Random, count: int):
    """Truncated and bit-flipped copies of an HDF5 model file."""
    data = base.read_bytes()
    for i in range(count):
        if i % 2 == 0:
            cut = rng.randrange(1, len(data))
            (out / f"trunc{i}.h5").write_bytes(data[:cut])
            yield "h5-truncated", out / f"trunc{i}.h5"
        else:
            (out / f"flip{i}.h5").write_bytes(flip_bits(data, rng, rng.choice([1, 4, 32])))
            yield "h5-bitflip", out / f"flip{i}.h5"


def keras_zip_mutants(base: Path, out: Path, rng: random.Random, count: int):
    """.keras archives with entries removed, corrupted, truncated, or config.json mutated."""
    entries, raw = read_zip(base), base.read_bytes()
    config = json.loads(entries["config.json"])
    for i in range(count):
        pick, target = i % 5, out / f"m{i}.keras"
        if pick == 0:
            gone = rng.choice(sorted(entries))
            write_zip(target, {k: v for k, v in entries.items() if k != gone})
            kind = "keras-entry-removed"
        elif pick == 1:
            name = rng.choice(sorted(entries))
            write_zip(target, {**entries, name: flip_bits(entries[name], rng, rng.choice([1, 8]))})
            kind = "keras-entry-corrupted"
        elif pick == 2:
            target.write_bytes(raw[: rng.randrange(4, len(raw))])
            kind = "keras-zip-truncated"
        else:
            mutated = json.dumps(mutate_config(config, rng)).encode()
            write_zip(target, {**entries, "config.json": mutated})
            kind = "keras-config-mutated"
        yield kind, target


def text_mutants(config: dict, weights: Path, out: Path, rng: random.Random, count: int):
    """JSON and YAML architectures with wrong types, huge sizes, deletions and bad syntax."""
    for i in range(count):
        fmt = "json" if i % 2 == 0 else "yaml"
        target = out / f"t{i}.{fmt}"
        doc = mutate_config(config, rng)
        text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc)
        if i % 7 == 3:  # broken syntax: cut the text short
            text = text[: rng.randrange(1, max(2, len(text)))]
        target.write_text(text)
        if i % 3 == 0:  # some carry their weights beside them, so loaders run to the end
            os.link(weights, target.with_name(f"t{i}.weights.h5"))
        yield f"{fmt}-mutated", target


YAML_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system ''",
    "!!python/object:argparse.Namespace {{a: 1}}",
    "!!python/module:os ''",
    "!!binary 'AAAA'",
]


def special_mutants(bases: dict, out: Path, rng: random.Random):
    """One-off hostile inputs: python tags, deep nesting, traversal, random bytes, text."""
    marker = out / "PWNED"
    for i, tag in enumerate(YAML_TAGS):
        target = out / f"tag{i}.yaml"
        target.write_text(f"class_name: Sequential\nconfig:\n  name: {tag.format(marker=marker)}\n")
        yield "yaml-python-tag", target
    for depth in (50, 200, 990, 5000, 100000):
        for kind in ("list", "dict"):
            text = json.dumps(deep(depth, kind)) if depth < 900 else _deep_text(depth, kind)
            (out / f"deep{depth}{kind}.json").write_text(text)
            yield "json-deep", out / f"deep{depth}{kind}.json"
            yaml_text = "class_name: Sequential\nconfig: " + "[" * depth + "]" * depth + "\n"
            (out / f"deep{depth}{kind}.yaml").write_text(yaml_text)
            yield "yaml-deep", out / f"deep{depth}{kind}.yaml"
            entries = read_zip(bases["keras"])
            write_zip(out / f"deep{depth}{kind}.keras", {**entries, "config.json": text.encode()})
            yield "keras-deep", out / f"deep{depth}{kind}.keras"
    entries = read_zip(bases["keras"])
    for i, name in enumerate(["../x", "../../escape.txt", "/abs/path", "a/../../b", "..\\win"]):
        write_zip(out / f"trav{i}.keras", {**entries, name: b"escape"})
        yield "keras-zip-traversal", out / f"trav{i}.keras"
    for i in range(40):
        size = rng.choice([1, 7, 8, 100, 4096, 100000])
        head = rng.choice([b"", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04", b"{", b"class_name: "])
        (out / f"rand{i}.bin").write_bytes(head + rng.randbytes(size))
        yield "random-bytes", out / f"rand{i}.bin"
    for i, text in enumerate(["[]", "{}", "null", "42", '"str"', "{\"class_name\": 1}",
                              "class_name: [", "---\n- 1\n", "{\"a\": 1e999999}", "\ufeff{}"]):
        (out / f"text{i}.json").write_text(text)
        yield "json-wrong-type", out / f"text{i}.json"


def _deep_text(depth: int, kind: str) -> str:
    if kind == "list":
        inner = "[" * depth + "1" + "]" * depth
    else:
        inner = '{"config": ' * depth + "1" + "}" * depth
    return '{"class_name": "Sequential", "config": {"name": "deep", "layers": ' + inner + "}}"


def zip_bomb(target: Path, gigabytes: int = 2) -> Path:
    """A .keras whose config.json inflates to `gigabytes` GiB of spaces (a few MiB on disk)."""
    chunk = b" " * (1 << 24)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("config.json", "w", force_zip64=True) as entry:
            entry.write(b'{"class_name": "Sequential", "config": {"layers": []}}')
            for _ in range(gigabytes * 64):
                entry.write(chunk)
        archive.writestr("metadata.json", b"{}")
    return target


def savedmodel_mutants(base: Path, out: Path, rng: random.Random, outside: Path):
    """SavedModel folders with symlinks out of them, and a saved_model.pb of random bytes."""
    import shutil

    for i in range(3):
        target = out / f"sm_random{i}"
        shutil.copytree(base, target)
        (target / "saved_model.pb").write_bytes(rng.randbytes(rng.choice([10, 1000, 50000])))
        yield "savedmodel-random-pb", target
    links = [("saved_model.pb", outside), ("variables", outside.parent),
             ("variables/variables.index", outside), ("loop", Path("loop")),
             ("assets/dangling", Path("/nonexistent/kexport"))]
    for i, (name, points_to) in enumerate(links):
        target = out / f"sm_link{i}"
        shutil.copytree(base, target)
        link = target / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        elif link.exists():
            link.unlink()
        link.symlink_to(points_to)
        yield "savedmodel-symlink", target


def as_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()
