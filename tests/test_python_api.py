"""The public Python API: the README's example runs as written, and importing it stays cheap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)
    assert len(section) == 2, "README.md has no '## Python API' section"
    block = re.search(r"```python\n(.*?)```", section[1].split("\n## ", 1)[0], re.DOTALL)
    assert block, "the README's Python API section has no ```python block"
    return block.group(1)


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", readme_example()], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "keras 58", lines  # 4*8+8 + 8*2+2 parameters
    assert lines[1] == f"[{str(Path('model_savedmodel'))!r}] True", lines
    assert lines[2] == "['features'] ['hidden']", lines
    assert lines[3] == "['1']", lines
    assert lines[4].startswith("UnknownLayerError 2 layer 'hiden' not found"), lines
    assert "Did you mean: hidden?" in lines[4]
    assert (tmp_path / "model_savedmodel" / "saved_model.pb").is_file()
    assert (tmp_path / "hidden.keras").is_file()
    assert (tmp_path / "bundle" / "models.config").is_file()
    assert not (tmp_path / "nowhere.keras").exists()


def test_public_names_import_without_tensorflow():
    code = (
        "import sys, exporter, serving\n"
        "from exporter import (convert_model, inspect_artifact, slice_model, verify_models,\n"
        "                      KexportError, VerificationError)\n"
        "from serving import build_bundle, check_bundle, PredictClient\n"
        "assert issubclass(VerificationError, KexportError)\n"
        "assert {'convert_model', 'slice_model'} <= set(dir(exporter))\n"
        "assert set(exporter.__all__) - {'__version__'} == set(exporter._LAZY)\n"
        "assert set(serving.__all__) == set(serving._LAZY)\n"
        "from exporter import convert\n"  # a submodule is still reachable by its own name
        "assert convert.__name__ == 'exporter.convert'\n"
        "try:\n"
        "    exporter.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('unknown names must raise AttributeError')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_custom_objects_as_a_mapping():
    """The API takes the classes themselves, where the CLI takes a module path."""
    from exporter.api import load_options

    class Scale:  # any object: load_options only records it by name
        pass

    options = load_options(custom_objects={"Scale": Scale}, unsafe=True)
    assert options.custom_objects == {"Scale": Scale} and options.unsafe
    assert load_options(custom_objects=None).custom_objects == {}


def test_py_typed_ships_in_both_packages():
    for package in ("exporter", "serving"):
        assert (REPO / package / "py.typed").is_file()
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'exporter = ["py.typed"]' in pyproject
    assert re.search(r'serving = \["py.typed"', pyproject)
