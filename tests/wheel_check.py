"""`make wheel-check`: build the wheel, install it with [tf] into a fresh virtual environment in a
temporary folder outside the checkout, and run every command there as a user would.

inspect, convert, slice, verify, bundle (with --k8s), serve and predict (the `kexport predict`
command and the installed serving/client.py script) all run from the temporary folder with no
PYTHONPATH, so a file read from the repository instead of the package fails here. The whole
check takes a few minutes (the install is the bulk; pip's cache keeps it local).

Usage: python tests/wheel_check.py [--keep]
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.wheel_tools import build_wheel, clean_env, make_venv  # after the path

SAMPLE = """
import numpy as np
from pathlib import Path
from serving.demo import build_sample_model
build_sample_model(Path("sample.keras"))
np.save("images.npy", np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
"""


def step(bin_dir: Path, work: Path, *args) -> str:
    """Run one command of the installed package in `work`; stop the check when it fails."""
    print(f"$ {' '.join(shlex.quote(str(a)) for a in args)}", flush=True)
    result = subprocess.run([str(bin_dir / args[0]), *map(str, args[1:])], cwd=work,
                            env=clean_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"wheel-check: `{args[0]} {args[1] if len(args) > 1 else ''}` failed with exit "
                 f"code {result.returncode}:\n{result.stderr[-2000:]}")
    return result.stdout


def serve_and_predict(bin_dir: Path, work: Path) -> None:
    command = [str(bin_dir / "kexport"), "serve", "bundle", "--port", "0", "--json"]
    print("$ kexport serve bundle --port 0 --json &", flush=True)
    server = subprocess.Popen(command, cwd=work, env=clean_env(), stdout=subprocess.PIPE,
                              text=True)
    try:
        line = server.stdout.readline()
        if not line:
            sys.exit("wheel-check: kexport serve stopped before it was ready")
        target = json.loads(line)["address"]
        out = step(bin_dir, work, "kexport", "predict", "--target", target, "--model",
                   "classifier", "images.npy")
        assert json.loads(out)["probs"]["shape"] == [2, 10], out
        script = step(bin_dir, work, "python", "-c",
                      "import serving.client; print(serving.client.__file__)").strip()
        out = step(bin_dir, work, "python", script, "--target", target, "--model", "features",
                   "images.npy")
        assert json.loads(out)["block2_pool"]["shape"] == [2, 6, 6, 16], out
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main(argv: list[str]) -> None:
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="kexport-wheel-check-"))
    try:
        wheel = build_wheel(root)
        print(f"wheel-check: built {wheel.name}; installing it with [tf] into {root / 'venv'}",
              flush=True)
        bin_dir = make_venv(root / "venv", f"{wheel}[tf]")
        print(f"wheel-check: installed in {time.monotonic() - started:.0f} s", flush=True)
        work = root / "work"
        work.mkdir()
        where = step(bin_dir, work, "python", "-c", "import exporter; print(exporter.__file__)")
        assert where.startswith(str(root / "venv")), where  # the installed copy, not the checkout
        step(bin_dir, work, "python", "-c", SAMPLE)
        step(bin_dir, work, "kexport", "inspect", "sample.keras")
        step(bin_dir, work, "kexport", "convert", "sample.keras", "sample.h5")
        step(bin_dir, work, "kexport", "slice", "sample.keras", "features.keras",
             "--output", "block2_pool")
        step(bin_dir, work, "kexport", "verify", "sample.keras", "sample.h5")
        step(bin_dir, work, "kexport", "bundle", "bundle", "--model", "classifier=sample.h5@1",
             "--model", "features=features.keras@1", "--warmup", "2", "--k8s")
        step(bin_dir, work, "kexport", "inspect", "bundle")
        for name in ("Dockerfile", "docker-compose.yml", "README.md", "k8s/kustomization.yaml"):
            assert (work / "bundle" / name).is_file(), name
        serve_and_predict(bin_dir, work)
        print(f"wheel-check: every command works from the wheel "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        if "--keep" in argv:
            print(f"wheel-check: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
