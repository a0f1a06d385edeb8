"""Files other projects wrote with older Keras, read from ../shared/fixtures."""

from __future__ import annotations

import json

from tests.cli_helpers import run
from tests.conftest import shared_fixture


def test_keras_2_0_6_json_and_weights(tmp_path):
    folder = shared_fixture("keras-real", "hls4ml_example_models")
    result = run("convert", folder / "jetTagger_Conv2D_Small.json", tmp_path / "jet.keras",
                 "--weights", folder / "jetTagger_Conv2D_Small_weights.h5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"] is True


def test_keras_2_1_yaml_with_python_tuples(tmp_path):
    fixture = shared_fixture("keras-real", "megana_mnist_yaml", "model.yaml")
    info = json.loads(run("inspect", fixture, "--json").stdout)
    assert info["format"] == "yaml" and info["layers"]
    result = run("convert", fixture, tmp_path / "arch.json", "--config-only")
    assert result.exit_code == 0, result.output


def test_tf_keras_2_10_savedmodel(tmp_path):
    fixture = shared_fixture("keras-real", "mnist_tfkeras_savedmodel_0x7a726f")
    result = run("convert", fixture, tmp_path / "mnist.keras", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"] is True


def test_missing_custom_layer_is_named(tmp_path):
    folder = shared_fixture("keras-real", "hls4ml_example_models")
    result = run("convert", folder / "keras_bnn.json", tmp_path / "bnn.keras",
                 "--weights", folder / "keras_bnn_weights.h5")
    assert result.exit_code == 2
    assert "BinaryDense" in result.output and "--custom-objects" in result.output
