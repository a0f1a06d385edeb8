"""Hostile and damaged artifacts: every run ends with a documented exit code and one line.

More than 2,000 mutated inputs are made deterministically (tests/mutants.py) from a valid small
model, and `inspect` and `convert` run on each in-process. A run passes when it exits 0-4, a
failure prints exactly one `error:` line (no traceback, no "unexpected error"), it ends within a
time bound, and nothing is left but a complete destination: no partial output, no staging folder,
no file outside the output folder. A few run as subprocesses to prove no hang.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.cli import app
from tests import mutants
from tests.cli_helpers import runner

PER_RUN_SECONDS = 30
COUNTS = {"h5": 400, "keras": 500, "text": 1000}  # special + savedmodel kinds add ~120
STATS = {"inputs": 0}  # bench/stress.py reads the total from KEXPORT_STRESS_REPORT


@pytest.fixture(scope="module")
def bases(keras3, tmp_path_factory):
    """The valid sources mutants start from: one model as .keras, .h5, json/yaml + weights."""
    from tests.conftest import keras3_models

    root = tmp_path_factory.mktemp("bases")
    model = keras3_models(keras3)["sequential"]
    paths = {"keras": root / "seq.keras", "h5": root / "seq.h5",
             "weights": root / "seq.weights.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.save_weights(paths["weights"])
    paths["config"] = json.loads(model.to_json())
    return paths


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def check_run(args: list[str], out: Path, destination: Path | None) -> str | None:
    """Run one command; return what went wrong, or None."""
    started = time.monotonic()
    result = runner.invoke(app, args)
    elapsed = time.monotonic() - started
    text = result.output
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    if result.exit_code not in (0, 1, 2, 3, 4):
        return f"exit {result.exit_code} ({result.exception!r})"
    if "Traceback" in text or "unexpected error" in text:
        return f"crash: {errors[:1] or text[-300:]}"
    if result.exit_code and len(errors) != 1:
        return f"{len(errors)} error lines: {text[-300:]}"
    if elapsed > PER_RUN_SECONDS:
        return f"took {elapsed:.1f}s"
    left = sorted(p.name for p in out.iterdir())
    if destination is not None:
        expected = [destination.name] if result.exit_code == 0 else []
        if left != expected:
            return f"left {left} after exit {result.exit_code}"
    elif left:
        return f"inspect wrote {left}"
    return None


def run_cases(cases, workdir: Path, convert: bool = True) -> list[str]:
    """inspect (and convert) every (kind, path); the source folder must not change."""
    out = workdir / "out"
    problems = []
    cases = list(cases)
    source_dirs = {path.parent for _, path in cases}
    before = {folder: snapshot(folder) for folder in source_dirs}
    for kind, path in cases:
        STATS["inputs"] += 1
        for command in ("inspect", "convert") if convert else ("inspect",):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            destination = out / "model.keras" if command == "convert" else None
            args = [command, str(path)] + ([str(destination)] if destination else [])
            problem = check_run(args, out, destination)
            if problem:
                problems.append(f"{kind} {path.name} {command}: {problem}")
    for folder in source_dirs:
        assert snapshot(folder) == before[folder], f"files appeared or vanished in {folder}"
    return problems


def case_dir(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


@pytest.mark.slow
def test_hdf5_truncated_and_bit_flipped(bases, tmp_path):
    cases = mutants.h5_mutants(bases["h5"], case_dir(tmp_path, "h5"), random.Random(11),
                               COUNTS["h5"])
    assert run_cases(cases, tmp_path) == []


@pytest.mark.slow
def test_keras_zip_entries_and_config_json(bases, tmp_path):
    cases = mutants.keras_zip_mutants(bases["keras"], case_dir(tmp_path, "keras"),
                                      random.Random(12), COUNTS["keras"])
    assert run_cases(cases, tmp_path) == []


@pytest.mark.slow
def test_json_and_yaml_with_wrong_types_and_huge_sizes(bases, tmp_path):
    cases = mutants.text_mutants(bases["config"], bases["weights"], case_dir(tmp_path, "text"),
                                 random.Random(13), COUNTS["text"])
    assert run_cases(cases, tmp_path) == []


@pytest.mark.slow
def test_python_tags_deep_nesting_traversal_random_bytes(bases, tmp_path):
    folder = case_dir(tmp_path, "special")
    cases = list(mutants.special_mutants(bases, folder, random.Random(14)))
    assert run_cases(cases, tmp_path) == []
    assert not (folder / "PWNED").exists()  # no YAML tag ran code
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "escape.txt").exists()
    for kind, path in cases:  # python tags are refused as unsafe, traversal as corrupt
        if kind == "yaml-python-tag" and "binary" not in path.read_text():
            assert runner.invoke(app, ["inspect", str(path)]).exit_code == 3, path.read_text()
        if kind == "keras-zip-traversal":
            result = runner.invoke(app, ["inspect", str(path)])
            assert result.exit_code == 2 and "outside the archive" in result.output


@pytest.mark.slow
def test_zip_bomb_is_refused_from_the_directory_alone(tmp_path):
    bomb = mutants.zip_bomb(tmp_path / "bomb.keras", gigabytes=2)
    for command in ("inspect", "convert"):
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        started = time.monotonic()
        result = runner.invoke(app, [command, str(bomb)] + ([str(out / "m.keras")]
                                                             if command == "convert" else []))
        assert time.monotonic() - started < 2.0  # refused before anything is inflated
        assert result.exit_code == 2 and "zip bomb" in result.output, result.output
        assert list(out.iterdir()) == []
    STATS["inputs"] += 1


def test_savedmodel_random_pb_and_symlinks(bases, tmp_path):
    from exporter.model_io import load_model, save_model

    base = tmp_path / "base_savedmodel"
    save_model(load_model(bases["keras"]).model, base, "savedmodel")
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    cases = list(mutants.savedmodel_mutants(base, case_dir(tmp_path, "sm"), random.Random(15),
                                            outside))
    assert run_cases(cases, tmp_path) == []
    for kind, path in cases:
        if kind == "savedmodel-symlink":
            result = runner.invoke(app, ["inspect", str(path)])
            assert result.exit_code == 2 and "symbolic link" in result.output, result.output


def test_enough_inputs_were_tried():
    """The issue asks for at least 2,000 mutated inputs (when the whole module runs)."""
    if STATS["inputs"] < 100:
        pytest.skip("only part of the module ran")
    assert STATS["inputs"] >= 2000, STATS
    print(f"\nrobustness: {STATS['inputs']} inputs tried")
    if os.environ.get("KEXPORT_STRESS_REPORT"):
        with open(os.environ["KEXPORT_STRESS_REPORT"], "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"inputs": STATS["inputs"]}) + "\n")


@pytest.mark.parametrize("kind", ["bomb", "deep", "random", "traversal"])
def test_subprocess_runs_end_in_time(tmp_path, kind):
    """A real `kexport` process (not the in-process runner) ends promptly on hostile input."""
    rng = random.Random(16)
    if kind == "bomb":
        # A central directory that claims 3 GiB: the refusal reads sizes only.
        path = tmp_path / "claims.keras"
        mutants.write_zip(path, {"config.json": b"{}", "metadata.json": b"{}"})
        data = bytearray(path.read_bytes())
        central = data.index(b"PK\x01\x02")  # config.json's central header
        data[central + 24:central + 28] = (3 << 30).to_bytes(4, "little")
        path.write_bytes(bytes(data))
    elif kind == "deep":
        path = tmp_path / "deep.json"
        path.write_text(mutants._deep_text(200000, "list"))
    elif kind == "random":
        path = tmp_path / "random.h5"
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + rng.randbytes(5000))
    else:
        path = tmp_path / "trav.keras"
        mutants.write_zip(path, {"config.json": b"{}", "../evil": b"x"})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for command in (["inspect", str(path)], ["convert", str(path), str(tmp_path / "o" / "m.keras")]):
        proc = subprocess.run([sys.executable, "-m", "exporter.cli", *command], capture_output=True,
                              text=True, timeout=60, env=env, check=False)
        assert proc.returncode in (2, 3), proc.stderr
        assert [line for line in proc.stderr.splitlines() if line.startswith("error:")], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []
    assert not (tmp_path.parent / "evil").exists()
