"""`kexport bundle`: a TF Serving repository checked with TF Serving's own protos and tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import run
from tests.conftest import shared_fixture


@pytest.fixture(scope="module")
def bundle(k3_files, tmp_path_factory):
    """Two Keras models, one in two versions with a label, and a ready TF Serving SavedModel."""
    out = tmp_path_factory.mktemp("bundles") / "repo"
    half = shared_fixture("tfserving", "saved_model_half_plus_two_cpu", "00000123")
    first = run("bundle", out, "--model", f"clf={k3_files['sequential']}@1",
                "--model", f"pair={k3_files['two_in_two_out']}", "--model", f"half={half}",
                "--warmup", 5, "--batching")
    assert first.exit_code == 0, first.output
    second = run("bundle", out, "--model", f"clf={k3_files['sequential']}@2",
                 "--label", "clf:stable=1", "--policy", "clf:all", "--json")
    assert second.exit_code == 0, second.output
    return out


def test_layout_and_manifest(bundle):
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert sorted(manifest["models"]) == ["clf", "half", "pair"]
    assert sorted(manifest["models"]["clf"]["versions"]) == ["1", "2"]
    assert list(manifest["models"]["half"]["versions"]) == ["123"]
    pair = manifest["models"]["pair"]["versions"]["1"]
    assert [s["name"] for s in pair["inputs"]] == ["left", "right"]
    assert pair["verified"] and len(pair["source_sha256"]) == 64
    for name, version in (("clf", 1), ("clf", 2), ("pair", 1), ("half", 123)):
        folder = bundle / "models" / name / str(version)
        assert (folder / "saved_model.pb").is_file() and (folder / "variables").is_dir()


def test_models_config_parses_with_tf_serving_proto(bundle):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((bundle / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries["clf"].base_path == "/models/clf"
    assert entries["clf"].model_platform == "tensorflow"
    assert entries["clf"].model_version_policy.WhichOneof("policy_choice") == "all"
    assert dict(entries["clf"].version_labels) == {"stable": 1}
    assert entries["pair"].model_version_policy.latest.num_versions == 1


def test_warmup_records_are_prediction_logs(bundle):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = bundle / "models" / "pair" / "1" / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == 5
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    request = log.predict_log.request
    assert request.model_spec.name == "pair"
    assert sorted(request.inputs) == ["left", "right"]
    assert tf.make_ndarray(request.inputs["left"]).shape[1:] == (4,)


def test_dockerfile_is_hadolint_clean_and_serves_the_config(bundle):
    dockerfile = (bundle / "Dockerfile").read_text()
    assert dockerfile.startswith("# TensorFlow Serving image") and "FROM tensorflow/serving:" in dockerfile
    assert "--model_config_file=/models/models.config" in dockerfile
    assert "--batching_parameters_file=/models/batching.config" in dockerfile
    assert "EXPOSE 8500 8501" in dockerfile and "USER 10001" in dockerfile
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(bundle / "Dockerfile")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "docker build" in (bundle / "README.md").read_text()
    assert "8500:8500" in (bundle / "docker-compose.yml").read_text()


def test_inspect_prints_the_manifest(bundle):
    result = run("inspect", bundle)
    assert result.exit_code == 0
    assert "model clf (policy all" in result.output and "version 123" in result.output


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--model", "clf={seq}@1"], 2, "already has version 1"),
        (["--model", "clf={seq}@3", "--label", "clf:beta=9"], 2, "version 9, which does not exist"),
        (["--model", "new={seq}", "--label", "clf:old=1", "--policy", "clf:latest"], 2,
         "does not load"),
        (["--model", "bad/name={seq}"], 2, "cannot be served"),
        (["--model", "ok={seq}", "--model", "nope={missing}"], 2, "no such file"),
    ],
    ids=["existing-version", "label-to-missing", "label-not-served", "bad-name", "second-fails"],
)
def test_bad_requests_leave_the_bundle_untouched(bundle, k3_files, tmp_path, args, code, message):
    before = _snapshot(bundle)
    values = {"seq": k3_files["sequential"], "missing": tmp_path / "missing.keras"}
    result = run("bundle", bundle, *[a.format(**values) for a in args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert _snapshot(bundle) == before
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".kexport-staging")]


@pytest.mark.slow  # a recurrent model exported and verified to fail
def test_failed_verification_publishes_nothing(k3_files, tmp_path):
    from exporter.errors import VerificationError
    from serving.bundle_builder import BundleRequest, build_bundle, parse_model_spec

    request = BundleRequest(tmp_path / "repo", [parse_model_spec(f"m={k3_files['rnn']}")], atol=-1.0)
    with pytest.raises(VerificationError):
        build_bundle(request)
    assert list(tmp_path.iterdir()) == []


def test_docker_targets_fail_clearly_without_an_engine():
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        pytest.skip("a container engine is running here")
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(["make", "-s", "docker-build", "BUNDLE=/nonexistent"], cwd=repo,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "no container engine" in result.stderr + result.stdout
