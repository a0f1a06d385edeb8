"""`kexport bundle --check-runtime`: does the serving image's TensorFlow load and compute the bundle?

The SavedModels are written by the TensorFlow kexport runs on; the `tensorflow/serving` image
the Dockerfile names carries its own, often older, TensorFlow, which may not know an op or an
attribute the newer one wrote. The check installs `tensorflow-cpu` of the image's version into a
separate virtual environment (once; cached in ~/.cache/kexport/runtime-<version>), loads every
SavedModel of the bundle there as TF Serving does (`serving/runtime_worker.py`), replays the
inputs recorded at bundle time (the warm-up requests, else one seeded batch) and compares the
outputs with the ones the bundle recorded. A version that does not load is named with the op or
attribute at fault. This module itself needs no TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError
from exporter.progress import Progress, silent
from exporter.tolerances import DEFAULT_ATOL, DEFAULT_RTOL
from exporter.verify import VerificationReport, compare_outputs
from serving.warmup import read_expected, read_warmup

# The newest tensorflow/serving release tag when this was written (2.20.0 shipped in August
# 2026; TF Serving follows TensorFlow with a lag). README: "The serving image's TensorFlow".
DEFAULT_SERVING_VERSION = "2.20.0"
SERVING_IMAGE = "tensorflow/serving"
WORKER = Path(__file__).with_name("runtime_worker.py")
READY_MARK = ".kexport-runtime-ready"
INSTALL_TIMEOUT = 1800
ABANDONED_SECONDS = 2 * INSTALL_TIMEOUT

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# TensorFlow's own words when a graph uses what this build does not know.
_CAUSES = (
    (re.compile(r"Op type not registered '([^']+)'"),
     "op '{0}' is not registered in TensorFlow {version}"),
    (re.compile(r"NodeDef mentions attr '([^']+)' not in Op<name=([^;>]+)"),
     "attribute '{0}' of op '{1}' is unknown to TensorFlow {version}"),
)


def check_version(text: str) -> str:
    """A TensorFlow Serving release number, MAJOR.MINOR.PATCH."""
    if not _VERSION.match(text or ""):
        raise BadInputError(f"--serving-version '{text}' is not a release number like "
                            f"{DEFAULT_SERVING_VERSION}.")
    return text


def serving_target(image: str | None, version: str | None) -> tuple[str, str]:
    """(image, serving version): a tensorflow/serving tag gives the version, a version the tag;
    a custom image without --serving-version is taken to carry the default's TensorFlow."""
    if version is not None:
        check_version(version)
    if image is None:
        version = version or DEFAULT_SERVING_VERSION
        return f"{SERVING_IMAGE}:{version}", version
    repository, _, tag = image.rpartition(":")
    if version is None and repository.endswith(SERVING_IMAGE) and _VERSION.match(tag.split("-")[0]):
        version = tag.split("-")[0]  # 2.20.0-gpu carries TensorFlow 2.20.0 too
    return image, version or DEFAULT_SERVING_VERSION


def cache_root() -> Path:
    """Where runtime environments live: $KEXPORT_CACHE, else $XDG_CACHE_HOME/kexport."""
    if os.environ.get("KEXPORT_CACHE"):
        return Path(os.environ["KEXPORT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kexport"


def _child_env() -> dict:
    # The runtime environment must see its own packages only, never this process's path.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def runtime_python(version: str, progress: Progress = silent) -> Path:
    """The Python of a virtual environment holding tensorflow-cpu==version; built once.

    Built beside its final place and renamed in when complete, so a killed install is never
    taken for a ready one and two runs that race both end with a whole environment.
    """
    target = cache_root() / f"runtime-{check_version(version)}"
    python = target / "bin" / "python"
    if (target / READY_MARK).is_file():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target)
    progress(f"installing tensorflow-cpu=={version} into {target} (once; later runs reuse it)")
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _run([sys.executable, "-m", "venv", str(building)], "creating a virtual environment")
        _run([str(building / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", f"tensorflow-cpu=={version}"],
             f"pip install tensorflow-cpu=={version}")
        (building / READY_MARK).write_text(f"tensorflow-cpu=={version}\n")
        try:
            os.rename(building, target)  # only complete environments ever appear at target
        except OSError:  # another run finished first: use its environment
            pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return python


def _remove_abandoned_builds(target: Path) -> None:
    """Drop half-built environments (about 600 MB each) that killed installs left behind; an
    install takes minutes, so one untouched for ABANDONED_SECONDS is not running any more."""
    for folder in target.parent.glob(f".{target.name}-*"):
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > ABANDONED_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=_child_env(),
                            timeout=INSTALL_TIMEOUT, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        last = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1])
        raise BadInputError(f"{what} failed for the runtime check: {last.strip()}")


@dataclass
class VersionCheck:
    """One model version under the image's TensorFlow."""

    model: str
    version: int
    ran: bool  # loaded and ran every recorded request; else stage says where it failed
    stage: str = ""  # "load" or "run" when it failed
    cause: str = ""  # why, naming the op or attribute when TensorFlow does
    report: VerificationReport | None = None  # None: no recorded outputs to compare

    @property
    def passed(self) -> bool:
        return self.ran and (self.report is None or self.report.passed)

    def line(self, version: str) -> str:
        head = f"{'ok  ' if self.passed else 'FAIL'} {self.model} version {self.version}:"
        if not self.ran:
            verb = "cannot load it" if self.stage == "load" else "loads it but fails to run it"
            return f"{head} TensorFlow {version} {verb}: {self.cause}"
        if self.report is None:
            return f"{head} loads in TensorFlow {version}; no recorded outputs to compare"
        return f"{head} loads in TensorFlow {version}; {self.report.summary()}"

    def as_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "ran": self.ran,
                "stage": self.stage,
                "passed": self.passed, "cause": self.cause,
                "report": self.report.as_dict() if self.report else None}


@dataclass
class RuntimeReport:
    """The runtime check of a bundle: the TensorFlow it ran under and every version's result."""

    serving_version: str
    tensorflow_version: str
    versions: list[VersionCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.versions)

    def lines(self) -> list[str]:
        return [check.line(self.tensorflow_version) for check in self.versions]

    def summary(self) -> str:
        failed = [f"{c.model} version {c.version}" for c in self.versions if not c.passed]
        if not failed:
            return (f"runtime check: TensorFlow {self.tensorflow_version} (tensorflow/serving:"
                    f"{self.serving_version}) loads all {len(self.versions)} version(s) and "
                    "computes the recorded outputs")
        return (f"runtime check failed under TensorFlow {self.tensorflow_version}: "
                + "; ".join(c.line(self.tensorflow_version)[5:] for c in self.versions
                            if not c.passed))

    def as_dict(self) -> dict:
        return {"serving_version": self.serving_version, "passed": self.passed,
                "tensorflow_version": self.tensorflow_version,
                "versions": [check.as_dict() for check in self.versions]}


def load_failure_cause(error: str, version: str) -> str:
    """The op or attribute at fault, in TensorFlow's words, else the error's first line."""
    for pattern, message in _CAUSES:
        found = pattern.search(error)
        if found:
            return message.format(*found.groups(), version=version)
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return first[:400]


def check_runtime(bundle: Path, serving_version: str, manifest: dict,
                  progress: Progress = silent,
                  atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> RuntimeReport:
    """Load and run every version of `bundle` under tensorflow-cpu==serving_version."""
    python = runtime_python(serving_version, progress)
    with tempfile.TemporaryDirectory(prefix="kexport-runtime-") as scratch:
        jobs, expected = _jobs(bundle, manifest, Path(scratch))
        progress(f"loading {len(jobs)} SavedModel version(s) under TensorFlow {serving_version}")
        result_file = Path(scratch) / "result.json"
        result = subprocess.run(
            [str(python), "-I", str(WORKER), str(Path(scratch) / "jobs.json"), str(result_file)],
            capture_output=True, text=True, env=_child_env(), check=False)
        if result.returncode != 0 or not result_file.is_file():
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BadInputError(f"the runtime check's TensorFlow {serving_version} did not run: "
                                f"{tail}")
        results = json.loads(result_file.read_text(encoding="utf-8"))
        report = RuntimeReport(serving_version, results["tensorflow_version"])
        for job in jobs:
            model, version = job["key"].split("/")
            outcome = results["versions"][job["key"]]
            if not outcome["ok"]:
                cause = load_failure_cause(outcome["error"], results["tensorflow_version"])
                report.versions.append(VersionCheck(model, int(version), False, outcome["stage"],
                                                    cause))
                continue
            comparison = None
            if expected[job["key"]] is not None:
                got = _read_indexed(Path(outcome["outputs"]), job["count"])
                comparison = _compare_all(expected[job["key"]], got, atol, rtol)
            report.versions.append(VersionCheck(model, int(version), True, report=comparison))
    return report


def _jobs(bundle: Path, manifest: dict, scratch: Path) -> tuple[list[dict], dict]:
    """One worker job per version (feeds written to scratch) and the outputs each must give."""
    jobs, expected = [], {}
    for name, entry in sorted(manifest["models"].items()):
        for version in sorted(entry["versions"], key=int):
            key = f"{name}/{version}"
            version_dir = (bundle / "models" / name / version).resolve()
            recorded = read_expected(version_dir)
            feeds, outputs = recorded if recorded else (read_warmup(version_dir), None)
            feeds_file = scratch / f"{name}-{version}-feeds.npz"
            np.savez(feeds_file, **{f"{index}/{input_name}": value
                                    for index, feed in enumerate(feeds)
                                    for input_name, value in feed.items()})
            jobs.append({"key": key, "dir": str(version_dir), "feeds": str(feeds_file),
                         "count": len(feeds), "outputs": str(scratch / f"{name}-{version}-out.npz")})
            expected[key] = outputs
    (scratch / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    return jobs, expected


def _read_indexed(path: Path, count: int) -> list[dict]:
    records: list[dict] = [{} for _ in range(count)]
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            index, name = key.split("/", 1)
            records[int(index)][name] = archive[key]
    return records


def _compare_all(expected: list[dict], got: list[dict], atol: float, rtol: float):
    """One report over every replayed request: the first that differs, else the last."""
    report = None
    for reference, candidate in zip(expected, got):
        report = compare_outputs(reference, candidate, atol, rtol)
        if not report.passed:
            break
    return report
