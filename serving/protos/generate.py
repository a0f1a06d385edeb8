"""Regenerate the *_pb2.py modules from the .proto files in this folder.

Run from anywhere: `make proto` or `python serving/protos/generate.py [OUT_ROOT [SOURCE_ROOT]]`. It needs grpcio-tools (a
dev dependency); the generated modules need only protobuf at run time. The protos are compiled
with the project root as the include path, so their imports read `serving/protos/x.proto` and
the generated code imports `from serving.protos import x_pb2`: the package works wherever
`serving` is importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LINT_OFF = "# ruff: noqa\n"


def generate(out_root: Path = ROOT, source_root: Path = ROOT) -> list[Path]:
    """Compile every serving/protos/*.proto into a *_pb2.py; return the written paths.

    Args:
        out_root: the folder the `serving/protos/` tree is written under; by default the project
            root, so each module lands next to its .proto. tests/test_serving_protos.py writes to
            a temporary folder to check that the checked-in modules are current.
        source_root: the folder whose `serving/protos/*.proto` are compiled; by default the
            project root (the test also compiles an edited copy).
    """
    import grpc_tools
    from grpc_tools import protoc

    # protoc ships with grpc_tools together with the well-known types (any, wrappers).
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    protos = sorted((source_root / HERE.relative_to(ROOT)).glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{source_root}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        *[str(p.relative_to(source_root)) for p in protos],
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    written = [out_root / p.relative_to(source_root).with_name(p.stem + "_pb2.py") for p in protos]
    for path in written:
        # Generated code follows protoc's style, not the project's: keep linters off it.
        text = path.read_text()
        if not text.startswith(LINT_OFF):
            path.write_text(LINT_OFF + text)
    return written


if __name__ == "__main__":
    roots = [Path(arg).resolve() for arg in sys.argv[1:3]]
    for path in generate(*roots):
        print(path, file=sys.stderr)
