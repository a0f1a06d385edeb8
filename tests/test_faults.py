"""SIGKILL at random moments, a full disk, and where outputs may land.

`convert`, `slice` and `bundle` run as real processes and are killed with SIGKILL at seeded
moments (mostly just after a progress line, so writing, verifying and publishing are hit). After
each kill the destination is absent or complete and verifiable, and the next run succeeds and
removes the killed run's staging folder. KEXPORT_STRESS=1 (make stress) runs 54 kills, the
normal run 6. Disk full is an OSError(ENOSPC) injected into the format writer in-process.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter.publish import STAGING_PREFIX
from tests.cli_helpers import one_error_line, run

STRESS = os.environ.get("KEXPORT_STRESS") == "1"
KILLS_PER_COMMAND = 18 if STRESS else 2


def command_for(kind: str, source: Path, out: Path) -> tuple[list[str], Path]:
    """The kexport arguments of one run and the destination they publish."""
    if kind == "convert":
        return ["convert", str(source), str(out / "model.h5")], out / "model.h5"
    if kind == "slice":
        return ["slice", str(source), str(out / "part.keras"), "--output", "hidden"], out / "part.keras"
    return ["bundle", str(out / "bundle"), "--model", f"m={source}@1"], out / "bundle"


def kill_at_random_moment(args: list[str], rng: random.Random) -> tuple[float, str]:
    """Start kexport, SIGKILL it at a seeded moment; return (seconds, phase) of the kill."""
    proc = subprocess.Popen([sys.executable, "-m", "exporter.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    phase = rng.choice(["any", "loading", "writing", "verifying", "exporting"])
    delay = rng.uniform(0, 0.6) if phase != "any" else rng.uniform(0, 8)
    seen = threading.Event()

    def watch() -> None:
        for line in proc.stderr:
            if phase in line:
                seen.set()
        seen.set()  # the process ended (or the phase never comes): kill on time anyway

    threading.Thread(target=watch, daemon=True).start()
    started = time.monotonic()
    if phase != "any":
        seen.wait(60)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return time.monotonic() - started, phase


def check_destination(kind: str, destination: Path, source: Path, reference: Path) -> str:
    """'absent' or 'complete' (verified against the source); anything else fails the test."""
    if not destination.exists():
        return "absent"
    if kind == "bundle":
        manifest = json.loads((destination / "bundle.json").read_text())
        assert list(manifest["models"]["m"]["versions"]) == ["1"]
        result = run("verify", source, destination / "models" / "m" / "1")
    else:
        result = run("verify", reference if kind == "slice" else source, destination)
    assert result.exit_code == 0, result.output
    return "complete"


@pytest.fixture(scope="module")
def sources(k3_files, tmp_path_factory):
    """The source model and a clean slice of it, the reference a killed slice must match."""
    root = tmp_path_factory.mktemp("fault_refs")
    source = k3_files["sequential"]
    assert run("slice", source, root / "part.keras", "--output", "hidden").exit_code == 0
    return source, root / "part.keras"


@pytest.mark.parametrize("kind", ["convert", "slice", "bundle"])
def test_sigkill_leaves_nothing_or_a_complete_result(kind, sources, tmp_path):
    source, reference = sources
    rng = random.Random(f"{kind}-7")
    outcomes = []
    for attempt in range(KILLS_PER_COMMAND):
        out = tmp_path / f"run{attempt}"
        args, destination = command_for(kind, source, out)
        moment, phase = kill_at_random_moment(args, rng)
        state = check_destination(kind, destination, source, reference)
        outcomes.append((phase, round(moment, 2), state))
        # The re-run (forced when the killed run got as far as publishing) succeeds, and sweeps
        # the staging folder the killed process left.
        result = run(*args, *(["--force"] if destination.exists() else []))
        assert result.exit_code == 0, result.output
        assert check_destination(kind, destination, source, reference) == "complete"
        assert not list(out.glob(f"{STAGING_PREFIX}*")), list(out.iterdir())
    report(kind, outcomes)
    print(f"\n{kind}: {outcomes}")


def report(kind: str, outcomes: list) -> None:
    path = os.environ.get("KEXPORT_STRESS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"faults": len(outcomes), "kind": kind}) + "\n")


def test_stale_staging_of_a_live_process_is_left_alone(sources, tmp_path):
    from exporter.publish import OWNER_FILE, remove_stale_stagings

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    for name, pid in (("live", os.getpid()), ("dead", dead.pid)):
        folder = tmp_path / f"{STAGING_PREFIX}{name}"
        folder.mkdir()
        (folder / OWNER_FILE).write_text(f"{pid} {os.uname().nodename}\n")
    (tmp_path / f"{STAGING_PREFIX}young-unowned").mkdir()
    removed = remove_stale_stagings(tmp_path)
    assert [p.name for p in removed] == [f"{STAGING_PREFIX}dead"]


@pytest.mark.parametrize("fmt", ["keras", "json"])
def test_disk_full_is_one_line_and_publishes_nothing(fmt, sources, tmp_path, monkeypatch):
    from exporter.formats import config, keras_v3

    module = keras_v3 if fmt == "keras" else config
    real_save = module.save

    def full_disk(model, path, options):
        real_save(model, path, options)  # a partly written output, then the disk fills
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(module, "save", full_disk)
    destination = tmp_path / "out" / f"model.{fmt}"
    result = run("convert", sources[0], destination)
    assert result.exit_code == 2
    assert "no space left" in one_error_line(result)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("name", ["../escape.keras", "sub/../../escape.keras"])
def test_destination_with_dots_stays_where_it_resolves(name, sources, tmp_path):
    """`..` in a destination is the user's own path, resolved by the OS; kexport writes that one
    path and nothing else, and never a sibling of it."""
    out = tmp_path / "a" / "b"
    out.mkdir(parents=True)
    (out / "sub").mkdir()
    before = {p for p in tmp_path.rglob("*")}
    result = run("convert", sources[0], out / name)
    assert result.exit_code == 0, result.output
    after = {p for p in tmp_path.rglob("*")} - before
    assert after == {(out / name).resolve()}


def test_symlinked_destination_parent_writes_only_the_destination(sources, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    result = run("convert", sources[0], tmp_path / "link" / "m.keras")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in real.iterdir()) == ["m.keras"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_existing_symlink_destination_is_not_followed(sources, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    (tmp_path / "m.keras").symlink_to(target)
    result = run("convert", sources[0], tmp_path / "m.keras")
    assert result.exit_code == 2 and "already exists" in one_error_line(result)
    result = run("convert", sources[0], tmp_path / "m.keras", "--force")
    assert result.exit_code == 0
    assert target.read_text() == "keep me"  # the link was replaced, its target untouched
