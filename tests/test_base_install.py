"""The base install (`pip install kexport`, no [tf] extra) predicts without TensorFlow.

The wheel is built and installed alone into a fresh virtual environment in a temporary folder
(pip's cache makes the install quick after the first run). There, TensorFlow is absent, the
client and `inspect` work, and a command that needs TensorFlow says which extra to install.
The server is a real `kexport serve` of the full install, in another process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.cli_helpers import run
from tests.wheel_tools import build_wheel, clean_env, make_venv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("base_install")
    return make_venv(work / "venv", str(build_wheel(work)))


@pytest.fixture(scope="module")
def served(k3_files, tmp_path_factory):
    """A bundle of one model, served by `kexport serve` in its own process."""
    root = tmp_path_factory.mktemp("served_base")
    assert run("bundle", root / "bundle", "--model", f"clf={k3_files['sequential']}@1",
               "-q").exit_code == 0
    server = subprocess.Popen([sys.executable, "-m", "exporter.cli", "serve",
                               str(root / "bundle"), "--port", "0", "--json"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line, "kexport serve stopped before it was ready"
        yield json.loads(line)["address"], root
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def in_venv(bin_dir, *args, cwd):
    return subprocess.run([str(bin_dir / args[0]), *map(str, args[1:])], capture_output=True,
                          text=True, env=clean_env(), cwd=cwd, check=False, timeout=120)


def test_tensorflow_is_absent(base_venv, tmp_path):
    result = in_venv(base_venv, "python", "-c", "import tensorflow", cwd=tmp_path)
    assert result.returncode != 0 and "No module named 'tensorflow'" in result.stderr
    where = in_venv(base_venv, "python", "-c", "import exporter; print(exporter.__file__)",
                    cwd=tmp_path)
    assert str(base_venv.parent) in where.stdout  # the installed copy, not the checkout


def test_predict_and_the_client_script_against_a_running_server(base_venv, served):
    address, root = served
    features = np.random.default_rng(0).standard_normal((2, 6)).astype("float32")
    np.save(root / "x.npy", features)
    result = in_venv(base_venv, "kexport", "predict", "--target", address, "--model", "clf",
                     root / "x.npy", cwd=root)
    assert result.returncode == 0, result.stderr
    probs = np.array(json.loads(result.stdout)["probs"]["values"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    script = in_venv(base_venv, "python", "-c", "import serving.client; print(serving.client.__file__)",
                     cwd=root).stdout.strip()
    result = in_venv(base_venv, "python", script, "--target", address, "--model", "clf",
                     root / "x.npy", cwd=root)
    assert result.returncode == 0, result.stderr
    assert np.allclose(np.array(json.loads(result.stdout)["probs"]["values"]), probs)


def test_inspect_works_and_tensorflow_commands_name_the_extra(base_venv, served, k3_files):
    _, root = served
    result = in_venv(base_venv, "kexport", "inspect", k3_files["sequential"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert "hidden" in result.stdout
    result = in_venv(base_venv, "kexport", "inspect", root / "bundle", cwd=root)
    assert result.returncode == 0 and "model clf" in result.stdout, result.stderr
    result = in_venv(base_venv, "kexport", "convert", k3_files["sequential"], root / "m.h5",
                     cwd=root)
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: this command needs tensorflow, which is not installed")
    assert line.endswith("pip install 'kexport[tf]'.") and "Traceback" not in result.stderr
