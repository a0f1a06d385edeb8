"""`kexport bundle --check-runtime`: the serving image's own TensorFlow loads and runs the bundle.

The runtime environment (tensorflow-cpu of the image's version, ~250 MB) is installed once into
~/.cache/kexport/runtime-<version> (`make runtime-env` prepares it in CI); these tests then cost
one TensorFlow start in it per check. The SavedModel the image's TensorFlow (2.20) cannot run
uses `DecodeJxl`, a real op TensorFlow 2.21 added (the only op 2.21 added over 2.20). The
wording TensorFlow uses for an attribute it does not know is checked on its message alone: its
Python SavedModel loader accepted unknown attributes crafted into a graph.
"""

from __future__ import annotations

import json
import shutil

import pytest

from serving.runtime_check import DEFAULT_SERVING_VERSION, load_failure_cause
from tests.cli_helpers import run

pytestmark = pytest.mark.slow


def jxl_savedmodel(path):
    """A tf.Module whose serving function holds DecodeJxl (in a branch that never runs)."""
    from exporter.runtime import tf_module

    tf = tf_module()

    class UsesJxl(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            decoded = tf.cond(
                tf.size(x) < 0,
                lambda: tf.cast(tf.reduce_sum(tf.raw_ops.DecodeJxl(contents=b"")), tf.float32),
                lambda: tf.constant(0.0))
            return {"y": x * 2.0 + decoded}

    module = UsesJxl()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def shift_recorded_outputs(version_dir):
    """Make the outputs recorded at bundle time differ from what the model computes."""
    import numpy as np

    from serving.warmup import EXPECTED_FILE

    path = version_dir / EXPECTED_FILE
    with np.load(path) as archive:
        arrays = {key: archive[key] + (0.01 if key.startswith("output/") else 0)
                  for key in archive.files}
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def bundles(k3_files, tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    good = root / "good"
    result = run("bundle", good, "--model", f"clf={k3_files['sequential']}@1",
                 "--model", f"pair={k3_files['two_in_two_out']}@1", "--warmup", 3, "-q",
                 "--check-runtime")
    assert result.exit_code == 0, result.output
    bad = root / "bad"
    shutil.copytree(good, bad)
    result = run("bundle", bad, "--model", f"jxl={jxl_savedmodel(root / 'jxl_sm')}@1", "-q")
    assert result.exit_code == 0, result.output
    shift_recorded_outputs(bad / "models" / "clf" / "1")
    return good, bad


def test_bundle_records_writer_and_target(bundles):
    manifest = json.loads((bundles[0] / "bundle.json").read_text())
    assert manifest["serving_version"] == DEFAULT_SERVING_VERSION
    assert manifest["image"] == f"tensorflow/serving:{DEFAULT_SERVING_VERSION}"
    entry = manifest["models"]["clf"]["versions"]["1"]
    assert entry["tensorflow_version"].startswith("2.21")
    assert entry["expected_outputs"] is True
    assert f"FROM tensorflow/serving:{DEFAULT_SERVING_VERSION}" in (bundles[0] / "Dockerfile").read_text()
    assert manifest["runtime_check"] == {"serving_version": DEFAULT_SERVING_VERSION,
                                         "tensorflow_version": DEFAULT_SERVING_VERSION,
                                         "passed": True}
    shown = run("inspect", bundles[0]).output
    assert "(TensorFlow Serving 2.20.0; runtime check passed)" in shown
    assert "written by TensorFlow 2.21" in shown
    # A run that adds a version without checking drops the record: the new one is unchecked.
    bad = json.loads((bundles[1] / "bundle.json").read_text())
    assert "runtime_check" not in bad


def test_check_passes_under_the_image_tensorflow(bundles):
    result = run("bundle", bundles[0], "--check-runtime", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["tensorflow_version"] == DEFAULT_SERVING_VERSION
    assert [(v["model"], v["ran"]) for v in report["versions"]] == [("clf", True), ("pair", True)]
    # Every version compared its replayed warm-up requests with the recorded outputs.
    assert all(v["report"]["passed"] for v in report["versions"])


def test_check_names_the_op_at_fault_and_outputs_that_differ(bundles):
    result = run("bundle", bundles[1], "--check-runtime")
    assert result.exit_code == 1, result.output
    assert "FAIL clf version 1: loads in TensorFlow 2.20.0; outputs differ" in result.output
    assert "jxl version 1: TensorFlow 2.20.0" in result.output
    assert "op 'DecodeJxl' is not registered in TensorFlow 2.20.0" in result.output
    assert "ok   pair version 1" in result.output


def test_a_failing_check_publishes_nothing(bundles, tmp_path):
    bundle = tmp_path / "repo"
    shutil.copytree(bundles[0], bundle)
    before = sorted(p.relative_to(bundle) for p in bundle.rglob("*"))
    result = run("bundle", bundle, "--model", f"jxl={jxl_savedmodel(tmp_path / 'sm')}@1",
                 "--check-runtime")
    assert result.exit_code == 1, result.output
    assert "nothing was published" in result.output
    assert sorted(p.relative_to(bundle) for p in bundle.rglob("*")) == before


def test_causes_are_read_from_tensorflow_messages():
    assert load_failure_cause("NotFoundError: Op type not registered 'Foo' in binary running "
                              "on host.", "2.20.0") == "op 'Foo' is not registered in TensorFlow 2.20.0"
    assert load_failure_cause("InvalidArgumentError: NodeDef mentions attr 'bar' not in "
                              "Op<name=Conv2D; signature=...>", "2.19.0") == (
        "attribute 'bar' of op 'Conv2D' is unknown to TensorFlow 2.19.0")
    assert load_failure_cause("ValueError: odd\nmore", "2.20.0") == "ValueError: odd"
