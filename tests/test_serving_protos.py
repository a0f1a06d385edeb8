"""The checked-in serving/protos/*_pb2.py are current: serving/protos/generate.py regenerates them
from the .proto files into a temporary folder (grpcio-tools' own protoc, no network, well under a
second) and each module's serialized FileDescriptorProto, which its message classes are built
from, must match the fresh one. A failure means a .proto changed without `make proto`."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from serving.protos import generate

PROTOS = Path(generate.__file__).resolve().parent


def serialized_descriptor(module: Path) -> bytes:
    """The bytes a generated module hands to `AddSerializedFile`, read without importing it (a
    fresh copy would clash with the checked-in one in protobuf's default pool)."""
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile"):
            return ast.literal_eval(node.args[0])
    raise AssertionError(f"{module} does not call AddSerializedFile: not protoc's Python output")


def generate_into(out_root: Path, source_root: Path = generate.ROOT) -> list[Path]:
    """Run generate.py in its own process: grpcio-tools' protoc links its own protobuf runtime,
    which segfaults in a process where TensorFlow (and its protobuf) is already loaded, as it is
    in a full test run."""
    subprocess.run([sys.executable, str(Path(generate.__file__)), str(out_root), str(source_root)],
                   check=True, capture_output=True, timeout=120)
    return sorted(out_root / "serving" / "protos" / (p.stem + "_pb2.py")
                  for p in (source_root / "serving" / "protos").glob("*.proto"))


def stale_modules(fresh_modules: list[Path]) -> list[str]:
    """The checked-in modules whose descriptor differs from the freshly generated one."""
    return [fresh.name for fresh in fresh_modules
            if serialized_descriptor(PROTOS / fresh.name) != serialized_descriptor(fresh)]


def test_every_proto_has_a_generated_module_and_no_module_outlives_its_proto():
    protos = sorted(p.stem for p in PROTOS.glob("*.proto"))
    modules = sorted(p.name.removesuffix("_pb2.py") for p in PROTOS.glob("*_pb2.py"))
    assert protos, f"no .proto files in {PROTOS}"
    assert modules == protos, "run `make proto` (and delete modules whose .proto is gone)"


def test_generated_modules_match_their_protos(tmp_path):
    fresh_modules = generate_into(tmp_path)
    assert [m.name for m in fresh_modules] == sorted(p.name for p in PROTOS.glob("*_pb2.py"))
    for fresh in fresh_modules:
        assert fresh.read_text(encoding="utf-8").startswith(generate.LINT_OFF)
    stale = stale_modules(fresh_modules)
    assert not stale, f"stale generated modules {stale}: run `make proto`"


def test_an_edited_proto_makes_its_module_stale(tmp_path):
    # The same check over a copy of the protos where model.proto gained a field.
    source = tmp_path / "src" / "serving" / "protos"
    shutil.copytree(PROTOS, source, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    model = source / "model.proto"
    text = model.read_text(encoding="utf-8")
    model.write_text(text.replace("  string signature_name = 3;\n",
                                  "  string signature_name = 3;\n  string added_later = 99;\n"),
                     encoding="utf-8")
    assert model.read_text(encoding="utf-8") != text
    (tmp_path / "out").mkdir()
    fresh_modules = generate_into(tmp_path / "out", source_root=tmp_path / "src")
    assert stale_modules(fresh_modules) == ["model_pb2.py"]
