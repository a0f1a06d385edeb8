"""`kexport inspect BUNDLE` is served by the serving package (serving.inspect_bundle); the
conversion library refuses any TF Serving model repository with one line, exit 2, and knows
nothing of kexport's bundle.json. No TensorFlow: the bundles here are their manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.errors import FormatError
from tests.cli_helpers import one_error_line, run

REPO = Path(__file__).resolve().parents[1]
VERSION = {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 4]}],
           "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 2]}]}
MANIFEST = {
    "kexport_version": "0.1.0",
    "image": "tensorflow/serving:2.20.0",
    "serving_version": "2.20.0",
    "runtime_check": {"serving_version": "2.20.0", "passed": True},
    "models": {
        "pair": {"policy": "latest", "labels": {}, "versions": {
            "1": {**VERSION, "source": "/src/pair.keras"}}},
        "clf": {"policy": "all", "labels": {"stable": 2}, "versions": {
            "10": {**VERSION, "source": "/src/b.keras", "tensorflow_version": "2.21.0"},
            "2": {**VERSION, "source": "/src/a.keras", "tensorflow_version": "2.21.0"}}},
    },
}


@pytest.fixture
def bundle(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "bundle.json").write_text(json.dumps(MANIFEST))
    (folder / "models.config").write_text("model_config_list {}\n")
    return folder


def test_inspect_prints_the_models_and_versions(bundle):
    result = run("inspect", bundle)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{bundle}: bundle",
        "image: tensorflow/serving:2.20.0 (TensorFlow Serving 2.20.0; runtime check passed)",
        "model clf (policy all, labels {'stable': 2}):",
        "  version 2: x float32 [None, 4] -> y  from /src/a.keras, written by TensorFlow 2.21.0",
        "  version 10: x float32 [None, 4] -> y  from /src/b.keras, written by TensorFlow 2.21.0",
        "model pair (policy latest, labels {}):",
        "  version 1: x float32 [None, 4] -> y  from /src/pair.keras",
    ]


def test_inspect_json_is_the_manifest_and_the_python_api_returns_it(bundle):
    from serving import inspect_bundle

    result = run("inspect", bundle, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert list(info) == ["path", "format", "keras_version", "backend", "manifest"]
    assert info == {"path": str(bundle), "format": "bundle", "keras_version": None,
                    "backend": None, "manifest": MANIFEST}
    assert inspect_bundle(bundle) == info


def test_a_damaged_manifest_is_one_error_line(bundle):
    (bundle / "bundle.json").write_text("{not json")
    result = run("inspect", bundle)
    assert result.exit_code == 2
    assert "is not valid JSON; is" in one_error_line(result)


@pytest.mark.parametrize("command", [
    ["convert", "{repo}", "{out}/m.keras"],
    ["slice", "{repo}", "{out}/m.keras", "--output", "y"],
    ["verify", "{repo}", "{repo}"],
    ["inspect", "{repo}", "--layers"],
    ["inspect", "{repo}", "--check"],
])
@pytest.mark.parametrize("kind", ["bundle", "tf_serving_repository"])
def test_model_commands_refuse_a_model_repository(bundle, tmp_path, command, kind):
    repo = bundle
    if kind == "tf_serving_repository":  # TF Serving's own layout: models.config, no bundle.json
        (bundle / "bundle.json").unlink()
    result = run(*[part.format(repo=repo, out=tmp_path) for part in command])
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "is a TensorFlow Serving model repository (it has models.config)" in line
    assert f"name one version folder instead, e.g. {repo}/models/NAME/1." in line
    assert not (tmp_path / "m.keras").exists()


def test_the_library_refuses_a_repository_and_knows_no_bundle_manifest(bundle):
    from exporter import inspect_artifact

    with pytest.raises(FormatError, match="TensorFlow Serving model repository") as error:
        inspect_artifact(bundle)
    assert error.value.exit_code == 2
    # Bundles are serving's: the conversion library names no bundle manifest.
    mentions = [str(path.relative_to(REPO)) for path in (REPO / "exporter").rglob("*.py")
                if "bundle.json" in path.read_text(encoding="utf-8")]
    assert mentions == []
