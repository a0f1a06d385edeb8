"""SIGKILL at random moments, a full disk, and where outputs may land.

`convert`, `slice` and `bundle` run as real processes and are killed with SIGKILL at seeded
moments (mostly just after a progress line, so writing, verifying and publishing are hit). After
each kill the destination is absent or complete and verifiable, and the next run succeeds and
removes the killed run's staging folder. Runs that extend an existing bundle are killed too, at
random and at the worst moments of the swap (with the kernel's atomic exchange and with the
fallback that moves the old bundle aside): the versions already served always survive. KEXPORT_STRESS=1 (make stress) runs 54 kills, the
normal run 6. Disk full is an OSError(ENOSPC) injected into the format writer in-process.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
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
    if kind == "extend":
        return ["bundle", str(out / "bundle"), "--model", f"m={source}@2"], out / "bundle"
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
    if kind == "extend":
        assert destination.is_dir(), "a killed run lost the bundle it was extending"
        return "extended" if served_versions(destination, source) == [1, 2] else "kept"
    if kind == "bundle":
        manifest = json.loads((destination / "bundle.json").read_text())
        assert list(manifest["models"]["m"]["versions"]) == ["1"]
        result = run("verify", source, destination / "models" / "m" / "1")
    else:
        result = run("verify", reference if kind == "slice" else source, destination)
    assert result.exit_code == 0, result.output
    return "complete"


def served_versions(bundle: Path, source: Path) -> list[int]:
    """The versions of model `m` the bundle's config serves, each checked to compute as `source`
    does; version 1, there before any run was killed, must always be among them."""
    from serving.models_config import read_models_config

    config = read_models_config(bundle / "models.config", bundle)
    assert [entry.name for entry in config] == ["m"]
    versions = sorted(int(p.name) for p in (bundle / "models" / "m").iterdir())
    assert 1 in versions, versions
    for version in versions:
        result = run("verify", source, bundle / "models" / "m" / str(version))
        assert result.exit_code == 0, result.output
    return versions


@pytest.fixture(scope="module")
def served_bundle(sources, tmp_path_factory):
    """A bundle serving version 1 of the source, copied before each run that extends it."""
    bundle = tmp_path_factory.mktemp("served") / "bundle"
    assert run("bundle", bundle, "--model", f"m={sources[0]}@1").exit_code == 0
    return bundle


@pytest.fixture(scope="module")
def sources(k3_files, tmp_path_factory):
    """The source model and a clean slice of it, the reference a killed slice must match."""
    root = tmp_path_factory.mktemp("fault_refs")
    source = k3_files["sequential"]
    assert run("slice", source, root / "part.keras", "--output", "hidden").exit_code == 0
    return source, root / "part.keras"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["convert", "slice", "bundle", "extend"])
def test_sigkill_leaves_nothing_or_a_complete_result(kind, sources, tmp_path, request):
    source, reference = sources
    rng = random.Random(f"{kind}-7")
    outcomes = []
    for attempt in range(KILLS_PER_COMMAND):
        out = tmp_path / f"run{attempt}"
        args, destination = command_for(kind, source, out)
        if kind == "extend":
            shutil.copytree(request.getfixturevalue("served_bundle"), destination)
        moment, phase = kill_at_random_moment(args, rng)
        state = check_destination(kind, destination, source, reference)
        outcomes.append((phase, round(moment, 2), state))
        # The re-run (forced when the killed run got as far as publishing) succeeds, and sweeps
        # the staging folder the killed process left.
        forced = destination.exists() and state != "kept"
        result = run(*args, *(["--force"] if forced else []))
        assert result.exit_code == 0, result.output
        assert check_destination(kind, destination, source, reference) in ("complete", "extended")
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
    from exporter.formats import architecture, keras_v3

    module = keras_v3 if fmt == "keras" else architecture
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


# Run in a child process: kexport extends the bundle, and SIGKILLs itself at the worst moment of
# the swap: just after the atomic exchange, or between the fallback's two renames.
KILL_AT_SWAP = """
import os, signal, sys
import exporter.swap as swap
from exporter.cli import main
real_exchange, real_rename = swap.exchange, os.rename

def exchange_then_die(first, second):
    if real_exchange(first, second):
        os.kill(os.getpid(), signal.SIGKILL)
    return False

def rename_then_die(source, destination):
    real_rename(source, destination)
    if os.path.basename(destination).startswith(swap.PREVIOUS_PREFIX):
        os.kill(os.getpid(), signal.SIGKILL)

swap.exchange = exchange_then_die
swap.os.rename = rename_then_die
sys.argv = ["kexport", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_kill_in_the_middle_of_the_swap_keeps_the_served_versions(exchange, sources,
                                                                  served_bundle, tmp_path):
    source = sources[0]
    bundle = tmp_path / "bundle"
    shutil.copytree(served_bundle, bundle)
    env = {**os.environ, "KEXPORT_NO_EXCHANGE": "0" if exchange else "1"}
    args = ["bundle", str(bundle), "--model", f"m={source}@2"]
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SWAP, *args], env=env,
                            capture_output=True, text=True, check=False, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if exchange:
        assert served_versions(bundle, source) == [1, 2]  # the new bundle, whole
    else:
        assert not bundle.exists()  # the instant the old code lost: old moved aside, new not in
        assert len(list(tmp_path.glob(".kexport-previous-*"))) == 1
    result = run("bundle", bundle, "--model", f"m={source}@3")
    assert result.exit_code == 0, result.output
    assert served_versions(bundle, source) == ([1, 2, 3] if exchange else [1, 3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # nothing left behind
