"""The CLI contract: exit codes, one-line messages, --json, --force, and bad input of every kind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_helpers import one_error_line, run
from tests.conftest import shared_fixture


def test_convert_json_output_and_exit_zero(k3_files, tmp_path):
    result = run("convert", k3_files["sequential"], tmp_path / "m.h5", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["verified"] is True
    assert document["report"]["outputs"][0]["name"] == "probs"


def test_existing_destination_needs_force(k3_files, tmp_path):
    destination = tmp_path / "m.keras"
    destination.write_bytes(b"keep me")
    result = run("convert", k3_files["sequential"], destination)
    assert result.exit_code == 2
    assert "already exists" in one_error_line(result) and "--force" in result.output
    assert destination.read_bytes() == b"keep me"
    assert run("convert", k3_files["sequential"], destination, "--force").exit_code == 0
    assert destination.read_bytes()[:2] == b"PK"


def test_force_replaces_a_savedmodel_folder(k3_files, tmp_path):
    assert run("convert", k3_files["sequential"], tmp_path / "sm").exit_code == 0
    assert run("convert", k3_files["nested"], tmp_path / "sm", "--force").exit_code == 0
    result = run("inspect", tmp_path / "sm", "--json")
    assert json.loads(result.stdout)["signatures"]["serving_default"]["inputs"][0]["name"] == "x"


def test_verify_two_different_models_exits_one(k3_files, keras3, tmp_path):
    other = keras3.models.load_model(k3_files["sequential"])
    other.get_layer("hidden").set_weights([w + 1.0 for w in other.get_layer("hidden").get_weights()])
    other.save(tmp_path / "other.keras")
    result = run("verify", k3_files["sequential"], tmp_path / "other.keras", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["report"]["outputs"][0]["passed"] is False
    assert run("verify", k3_files["sequential"], k3_files["sequential"]).exit_code == 0


def test_inspect_reports_layers_and_params(k3_files):
    result = run("inspect", k3_files["sequential"], "--json")
    info = json.loads(result.stdout)
    assert info["format"] == "keras" and info["keras_version"].startswith("3.")
    assert [row["name"] for row in info["layers"]] == ["features", "hidden", "probs"]
    assert info["params"]["total"] == 6 * 8 + 8 + 8 * 3 + 3


def test_inspect_does_not_import_tensorflow(k3_files, k2_files, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from exporter.inspect import inspect_artifact; "
        "[inspect_artifact(p) for p in sys.argv[1:]]; "
        "print('tensorflow' in sys.modules)"
    )
    paths = [k3_files["two_in_two_out"], k2_files["bilstm"]["h5"], k2_files["gru"]["json"]]
    out = subprocess.run([sys.executable, "-c", code, *map(str, paths)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "missing.h5", "no such file"),
        (lambda p: _write(p / "empty.h5", b""), "empty"),
        (lambda p: _write(p / "noise.h5", np.random.default_rng(0).bytes(4096)), "not a Keras artifact"),
        (lambda p: _write(p / "noise.keras", b"PK\x03\x04" + bytes(100)), "damaged zip"),
        (lambda p: (p / "folder").mkdir() or p / "folder", "no saved_model.pb"),
    ],
    ids=["missing", "empty", "random-bytes", "random-zip", "folder"],
)
def test_bad_paths_exit_two(tmp_path, make, expected):
    result = run("convert", make(tmp_path), tmp_path / "out.keras")
    assert result.exit_code == 2
    assert expected in one_error_line(result)
    assert not (tmp_path / "out.keras").exists()


def test_truncated_and_bitflipped_hdf5_exit_two(k3_files, tmp_path):
    h5 = tmp_path / "m.h5"
    assert run("convert", k3_files["sequential"], h5).exit_code == 0
    data = h5.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    for offset in range(600, len(flipped), 97):
        flipped[offset] ^= 0xFF
    (tmp_path / "flip.h5").write_bytes(bytes(flipped))
    for name in ("cut.h5", "flip.h5"):
        result = run("convert", tmp_path / name, tmp_path / f"{name}.keras")
        assert result.exit_code == 2, result.output
        one_error_line(result)


def test_unknown_layer_class_suggests_close_matches(k3_files, tmp_path):
    assert run("convert", k3_files["sequential"], tmp_path / "m.json").exit_code == 0
    config = json.loads((tmp_path / "m.json").read_text())
    config["config"]["layers"][1]["class_name"] = "Dens"
    (tmp_path / "bad.json").write_text(json.dumps(config))
    result = run("convert", tmp_path / "bad.json", tmp_path / "out.keras",
                 "--weights", tmp_path / "m.weights.h5")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "Dens (module keras.layers" in line and "did you mean Dense" in line
    assert "--custom-objects" in line


def test_weights_that_do_not_fit_name_layer_and_shapes(k3_files, keras3, tmp_path):
    model = keras3.models.load_model(k3_files["sequential"])
    model.save_weights(tmp_path / "right.weights.h5")
    L = keras3.layers
    wider = keras3.Sequential([keras3.Input((6,)), L.Dense(9, name="hidden"), L.Dense(3, name="probs")])
    (tmp_path / "wider.json").write_text(wider.to_json())
    result = run("convert", tmp_path / "right.weights.h5", tmp_path / "out.keras",
                 "--architecture", tmp_path / "wider.json")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "'hidden'" in line and "(6, 9)" in line and "(6, 8)" in line


def test_weights_by_name_reports_received_and_kept(k2_files, keras3, tmp_path):
    """Keras 2 `load_weights(by_name=True)`: a new head keeps its initial values."""
    L = keras3.layers
    model = keras3.Sequential([keras3.Input((6,)), L.Dense(8, activation="relu", name="hidden"),
                               L.Dense(4, name="probs"), L.Dense(2, name="new_head")])
    (tmp_path / "transfer.json").write_text(model.to_json())
    from exporter.model_io import load_model
    from exporter.model_types import LoadOptions

    options = LoadOptions(architecture=tmp_path / "transfer.json", by_name=True, skip_mismatch=True)
    loaded = load_model(k2_files["sequential"]["weights"], options)
    assert loaded.weights_report == {"received": ["hidden"], "kept_initial": ["probs", "new_head"]}


def test_yaml_python_object_tag_is_refused_as_unsafe(tmp_path):
    (tmp_path / "evil.yaml").write_text("class_name: !!python/object/apply:os.system ['true']\nconfig: {}\n")
    result = run("convert", tmp_path / "evil.yaml", tmp_path / "out.keras")
    assert result.exit_code == 3
    assert "!!python/object" in one_error_line(result)


def test_lambda_layers_refused_without_unsafe(tmp_path):
    fixture = shared_fixture("keras-real", "nnom_mnist_densenet", "keras_mnist_model.h5")
    result = run("convert", fixture, tmp_path / "out.keras")
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "13 Lambda layer" in line and "--unsafe" in line
    assert run("inspect", fixture).exit_code == 0


def test_lambda_in_keras2_savedmodel_refused_before_tf_keras_runs(tf_keras, tmp_path):
    L = tf_keras.layers
    x = L.Input((3,), name="x")
    model = tf_keras.Model(x, L.Lambda(lambda t: t * 2.0, name="double")(x))
    model.save(tmp_path / "lambda_sm")
    result = run("convert", tmp_path / "lambda_sm", tmp_path / "out.keras")
    assert result.exit_code == 3
    assert "double" in one_error_line(result)


def test_savedmodel_without_keras_metadata(tmp_path):
    fixture = shared_fixture("tfserving", "saved_model_half_plus_two_cpu", "00000123")
    info = json.loads(run("inspect", fixture, "--json").stdout)
    assert info["keras_metadata"] is False and "serving_default" in info["signatures"]
    result = run("convert", fixture, tmp_path / "out.keras")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "without Keras metadata" in line and "served" in line
    assert run("verify", fixture, fixture).exit_code == 0


def test_architecture_without_weights_is_refused_for_weight_formats(k3_files, tmp_path):
    assert run("convert", k3_files["nested"], tmp_path / "a.json", "--config-only").exit_code == 0
    result = run("convert", tmp_path / "a.json", tmp_path / "out.h5")
    assert result.exit_code == 2 and "random weights" in one_error_line(result)
    assert run("convert", tmp_path / "a.json", tmp_path / "b.yaml", "--config-only").exit_code == 0


def test_help_is_fast_and_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("inspect", "convert", "verify"):
        assert command in result.output


def test_inspect_layers_lists_nested_paths(k3_files):
    result = run("inspect", k3_files["nested"], "--layers", "--json")
    assert result.exit_code == 0, result.output
    names = json.loads(result.stdout)["addressable_layers"]
    assert "encoder/enc_dense" in names and "head" in names


CUSTOM_LAYER_SOURCE = '''
import keras


class TimesTwoPlus(keras.layers.Layer):
    """A custom layer kexport does not know: y = 2x + offset."""

    def __init__(self, offset=1.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return x * 2.0 + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
'''


def test_custom_objects_from_a_python_file(keras3, tmp_path):
    from exporter.custom_objects import load_custom_objects

    module_file = tmp_path / "my_layers.py"
    module_file.write_text(CUSTOM_LAYER_SOURCE)
    layer_class = load_custom_objects(str(module_file))["TimesTwoPlus"]
    x = keras3.Input((3,), name="x")
    model = keras3.Model(x, keras3.layers.Dense(2, name="out")(layer_class(0.5, name="custom")(x)))
    model.save(tmp_path / "custom.keras")

    missing = run("convert", tmp_path / "custom.keras", tmp_path / "a.h5")
    assert missing.exit_code == 2
    line = one_error_line(missing)
    assert "TimesTwoPlus" in line and "--custom-objects" in line

    given = run("convert", tmp_path / "custom.keras", tmp_path / "b.keras",
                "--custom-objects", module_file)
    assert given.exit_code == 0, given.output


def test_custom_objects_that_cannot_be_imported(k3_files, tmp_path):
    result = run("convert", k3_files["sequential"], tmp_path / "a.h5",
                 "--custom-objects", "no_such_module_anywhere")
    assert result.exit_code == 2
    assert "could not be imported" in one_error_line(result)


def test_debug_shows_the_traceback(tmp_path):
    from exporter.cli import app
    from tests.cli_helpers import runner

    (tmp_path / "empty.h5").write_bytes(b"")
    result = runner.invoke(app, ["convert", str(tmp_path / "empty.h5"), str(tmp_path / "o.keras"),
                                 "--debug"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "FormatError" in result.output
