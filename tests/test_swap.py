"""Folder replacement (`exporter.swap`): the old or the new folder is whole at every instant.

Both ways are run for real on this filesystem: the kernel's RENAME_EXCHANGE and the fallback
(KEXPORT_NO_EXCHANGE=1). The fallback's dangerous instant, between its two renames, is
reproduced with the same renames a killed run would have done; `tests/test_faults.py` kills real
`kexport bundle` runs there.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exporter.publish import publish
from exporter.swap import NO_EXCHANGE_ENV, PREVIOUS_PREFIX, exchange, restore_interrupted


def folder(path, text):
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_text(text)
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "fallback"])
def test_force_publish_of_a_folder_replaces_it_whole(fallback, tmp_path, monkeypatch):
    monkeypatch.setenv(NO_EXCHANGE_ENV, "1" if fallback else "0")
    old = folder(tmp_path / "model", "old")
    (old / "only_in_old").write_text("x")
    new = folder(tmp_path / "stage" / "model", "new")
    publish([new], tmp_path, force=True)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["saved_model.pb"]
    assert (tmp_path / "model" / "saved_model.pb").read_text() == "new"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(PREVIOUS_PREFIX)]
    assert leftovers == []


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    first, second = folder(tmp_path / "a", "a"), folder(tmp_path / "b", "b")
    assert exchange(first, second)  # Linux with a local filesystem offers it
    assert (first / "saved_model.pb").read_text() == "b"
    assert (second / "saved_model.pb").read_text() == "a"


def test_a_kill_between_the_fallback_renames_is_undone_by_the_next_run(tmp_path):
    bundle = folder(tmp_path / "bundle", "served")
    moved = tmp_path / f"{PREVIOUS_PREFIX}{dead_pid()}-bundle"
    os.rename(bundle, moved)  # the fallback's first rename; the run dies before the second
    assert restore_interrupted(tmp_path) == [bundle]
    assert (bundle / "saved_model.pb").read_text() == "served"
    assert not moved.exists()


def test_a_previous_copy_is_deleted_only_once_the_destination_is_whole(tmp_path):
    folder(tmp_path / "bundle", "new")  # the second rename happened, the cleanup did not
    moved = folder(tmp_path / f"{PREVIOUS_PREFIX}{dead_pid()}-bundle", "old")
    live = folder(tmp_path / f"{PREVIOUS_PREFIX}{os.getpid()}-other", "mid-swap")
    assert restore_interrupted(tmp_path) == []
    assert not moved.exists()
    assert live.exists() and not (tmp_path / "other").exists()  # a live run's swap is its own
