"""Run a Python command and report its own peak resident memory: `python bench/peak.py REPORT
(SCRIPT | -c CODE | -m MODULE) ARGS...`.

A child's `ru_maxrss` (wait4) can count memory it never allocated: Linux folds the high-water
mark of the address space a process leaves at exec into it, and a child forked (or vforked, as
posix_spawn and subprocess do) from a benchmark that has loaded TensorFlow leaves the parent's.
`VmHWM` in /proc/self/status is the high-water mark of the current address space only, which
exec replaces: read here, at the end of the command, it is the command's own peak. It is written
to REPORT in kB; the command's exit code is this process's.
"""

from __future__ import annotations

import os
import runpy
import sys


def own_peak_kb() -> int:
    """VmHWM of this process's address space, in kB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM")


def run(target: list[str]) -> int:
    """Run the command as `python TARGET...` would, in this process; return its exit code."""
    try:
        if target[0] == "-c":
            sys.argv = ["-c", *target[2:]]
            sys.path[0] = ""
            exec(compile(target[1], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102
        elif target[0] == "-m":
            sys.argv = [target[1], *target[2:]]
            sys.path[0] = os.getcwd()
            runpy.run_module(target[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(target)
            # as `python script.py`: the script's folder first, not bench/ (whose serving.py
            # would shadow the serving package)
            sys.path[0] = os.path.dirname(os.path.abspath(target[0]))
            runpy.run_path(target[0], run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


def main() -> None:
    report, target = sys.argv[1], sys.argv[2:]
    code = run(target)
    sys.stdout.flush()
    with open(report, "w", encoding="ascii") as out:
        out.write(str(own_peak_kb()))
    sys.exit(code)


if __name__ == "__main__":
    main()
