"""Run commands side by side and measure wall time and peak resident memory of each process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PEAK = Path(__file__).resolve().with_name("peak.py")


@dataclass
class Sample:
    seconds: float
    peak_mb: float


def run_once(command: list[str], check: bool = True) -> Sample:
    """Wall time and the command's own peak RSS of one run.

    Python commands (the interpreter, or a script with a python shebang such as a console
    script) run under bench/peak.py, which reads the peak of the command's own address space
    (VmHWM) as it ends: wait4's ru_maxrss would also count this benchmark process's pages at
    fork. Other commands fall back to ru_maxrss.
    """
    wrapped = python_target(command)
    with tempfile.NamedTemporaryFile("r", suffix=".peak", encoding="ascii") as report:
        if wrapped is not None:
            command = [sys.executable, str(PEAK), report.name, *wrapped]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if check and os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"benchmark command failed: {' '.join(command)}\n"
                               f"{process.stderr.read().decode()[-2000:]}")
        process.stderr.close()
        own = report.read().strip() if wrapped is not None else ""
    return Sample(seconds, int(own) / 1024 if own else usage.ru_maxrss / 1024)


def python_target(command: list[str]) -> list[str] | None:
    """The arguments after `python` if `command` runs Python code, else None."""
    if command[0] == sys.executable:
        return command[1:] if command[1:2] != ["-X"] else None
    try:
        with open(command[0], "rb") as script:
            first = script.readline(200)
    except OSError:
        return None
    return command if first.startswith(b"#!") and b"python" in first else None


def compare(
    ours: list[str], theirs: list[str], repeats: int, check_theirs: bool = True
) -> tuple[Sample, Sample]:
    """Alternate the two commands (so machine noise hits both alike); medians of each."""
    mine, base = [], []
    for _ in range(repeats):
        mine.append(run_once(ours))
        base.append(run_once(theirs, check=check_theirs))

    def median(samples):
        return Sample(statistics.median(s.seconds for s in samples),
                      statistics.median(s.peak_mb for s in samples))

    return median(mine), median(base)


@dataclass
class Row:
    name: str
    ours: float
    baseline: float
    unit: str
    goal: str  # "<= 0.10" / ">= 0.8" on the ratio, "diff<= 1.0" on ours - baseline, or "report"

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def met(self) -> bool | None:
        if self.goal == "report":
            return None
        op, value = self.goal.split()
        if op == "diff<=":
            return self.ours - self.baseline <= float(value)
        return self.ratio <= float(value) if op == "<=" else self.ratio >= float(value)


def print_table(rows: list[Row]) -> None:
    header = f"{'benchmark':<52} {'kexport':>10} {'baseline':>10} {'ratio':>7} {'goal':>10}  met"
    print(header)
    print("-" * len(header))
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"{row.name:<52} {row.ours:>9.2f}{row.unit:<1} {row.baseline:>9.2f}{row.unit:<1} "
              f"{row.ratio:>7.3f} {row.goal:>10}  {met}")
