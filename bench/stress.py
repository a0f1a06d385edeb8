"""`make stress`: the long versions of the reliability suites, summed up in one table.

Runs tests/test_robustness_artifacts.py, tests/test_faults.py and tests/test_server_load.py with
KEXPORT_STRESS=1 (54 SIGKILLs, 16 clients x 2,000 requests) and collects the numbers the tests
append to KEXPORT_STRESS_REPORT. Exit status is pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SUITES = ["tests/test_robustness_artifacts.py", "tests/test_faults.py",
          "tests/test_server_load.py", "tests/test_security.py"]


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "stress.jsonl"
        env = {**os.environ, "KEXPORT_STRESS": "1", "KEXPORT_STRESS_REPORT": str(report)}
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                *SUITES], env=env, timeout=3600)
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    inputs = sum(r.get("inputs", 0) for r in rows)
    faults = sum(r.get("faults", 0) for r in rows)
    load = next((r for r in rows if "requests" in r), {})
    table = [
        ("inputs tried (mutated artifacts)", f"{inputs:,}"),
        ("faults injected (SIGKILL)", f"{faults}"),
        ("requests served (16 clients x 2,000)", f"{load.get('requests', 0):,}"),
        ("malformed requests answered", f"{load.get('malformed', 0):,}"),
        ("failures (must be 0)", f"{load.get('failures', 'n/a')}"),
        ("latency p50", f"{load.get('p50_ms', 0):.2f} ms"),
        ("latency p99", f"{load.get('p99_ms', 0):.2f} ms"),
        ("server RSS growth, first vs last 1,000 requests (goal < 5%)",
         f"{load.get('memory_growth', 0):+.1%}"),
        ("pytest", "passed" if code == 0 else f"FAILED (exit {code})"),
    ]
    width = max(len(name) for name, _ in table)
    print(f"\n{'measure':<{width}}  value")
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    return code


if __name__ == "__main__":
    sys.exit(main())
