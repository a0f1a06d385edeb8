"""Build kexport's wheel and install it into fresh virtual environments outside the checkout.

Shared by `tests/wheel_check.py` (`make wheel-check`: the [tf] install runs every command) and
`tests/test_base_install.py` (the base install predicts without TensorFlow). The wheel is built
from a copy of the sources, so a stale `build/` folder can never add files the tree lacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEEL_SOURCES = ["pyproject.toml", "README.md", "exporter", "serving"]


def clean_env(**extra: str) -> dict:
    """The environment of a user's shell: no PYTHONPATH pointing into the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def build_wheel(work: Path) -> Path:
    """Build the wheel from a copy of the project's sources; returns the .whl path."""
    source = work / "src"
    source.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    dist = work / "dist"
    # The shared environment's setuptools builds it: no download of build requirements.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", "-w", str(dist),
                    str(source)], check=True, env=clean_env(), cwd=work)
    (wheel,) = dist.glob("kexport-*.whl")
    return wheel


def make_venv(where: Path, requirement: str) -> Path:
    """A fresh virtual environment with `requirement` installed; returns its bin/ folder."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, env=clean_env())
    bin_dir = where / "bin"
    result = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", requirement], env=clean_env(),
                            cwd=where, capture_output=True, text=True, check=False)
    if result.returncode != 0:  # pip's own warnings are noise unless the install fails
        raise RuntimeError(f"pip install {requirement} failed:\n{result.stderr[-3000:]}")
    return bin_dir
