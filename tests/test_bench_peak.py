"""The benchmark's peak-memory figure is the command's own: a trivial command reads a small peak
even when the benchmark process itself holds a lot of memory (the `612 MB for both` bug)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bench.measure import python_target, run_once


@pytest.mark.slow  # 300 MB in this process, 200 MB in a child, each measured
def test_a_trivial_command_reads_a_small_peak_from_a_fat_parent():
    ballast = np.ones(300 * 2**20 // 8)  # 300 MB touched in this process before the fork
    trivial = run_once([sys.executable, "-c", "pass"])
    assert trivial.peak_mb < 60, trivial  # an interpreter that did nothing
    allocating = run_once([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert 200 <= allocating.peak_mb < 260, allocating  # its own 200 MB, not the parent's 300
    assert ballast.sum() > 0


def test_scripts_with_a_python_shebang_are_measured_the_same_way(tmp_path):
    script = tmp_path / "tool"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    assert python_target([str(script), "a"]) == [str(script), "a"]
    assert python_target(["/bin/true"]) is None
    assert python_target([sys.executable, "-m", "json.tool"]) == ["-m", "json.tool"]
