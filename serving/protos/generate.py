"""Regenerate the *_pb2.py modules from the .proto files in this folder.

Run from anywhere: `python serving/protos/generate.py`. It needs grpcio-tools (a dev dependency);
the generated modules need only protobuf at run time. The protos are compiled with the project root
as the include path, so their imports read `serving/protos/x.proto` and the generated code imports
`from serving.protos import x_pb2`: the package works wherever `serving` is importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LINT_OFF = "# ruff: noqa\n"


def generate() -> list[Path]:
    """Compile every .proto here into a sibling *_pb2.py; return the written paths."""
    import grpc_tools
    from grpc_tools import protoc

    # protoc ships with grpc_tools together with the well-known types (any, wrappers).
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    protos = sorted(HERE.glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={ROOT}",
        *[str(p.relative_to(ROOT)) for p in protos],
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    written = [p.with_name(p.stem + "_pb2.py") for p in protos]
    for path in written:
        # Generated code follows protoc's style, not the project's: keep linters off it.
        text = path.read_text()
        if not text.startswith(LINT_OFF):
            path.write_text(LINT_OFF + text)
    return written


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT), file=sys.stderr)
