"""`kexport slice`: output and input cuts on real Keras models, verified, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import one_error_line, run
from tests.conftest import _randomize


@pytest.fixture(scope="module")
def mobilenet(keras3, tmp_path_factory) -> Path:
    """A small MobileNetV2 saved as .keras (seconds to build and save: only its own test pays)."""
    model = keras3.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=4)
    path = tmp_path_factory.mktemp("slice_mobilenet") / "mobilenet.keras"
    _randomize(model).save(path)
    return path


@pytest.fixture(scope="module")
def models(keras3, tmp_path_factory) -> dict:
    """Small slicing fixtures saved as .keras: {name: path}."""
    keras, L = keras3, keras3.layers
    built = {}
    vgg = [keras.Input((16, 16, 3), name="image")]
    for block in range(1, 5):
        vgg += [L.Conv2D(4, 3, padding="same", activation="relu", name=f"block{block}_conv1"),
                L.MaxPooling2D(name=f"block{block}_pool")]
    built["vgg"] = keras.Sequential(vgg + [L.Flatten(name="flatten"),
                                           L.Dense(3, activation="softmax", name="predictions")],
                                    name="vgg")
    built["vgg"].get_layer("block1_conv1").trainable = False
    x = keras.Input((6,), name="x")
    shared = L.Dense(6, activation="tanh", name="shared")
    built["shared"] = keras.Model(x, L.Dense(2, name="out")(shared(shared(x))), name="shared_model")
    image = keras.Input((8, 8, 2), name="features_in")
    conv = L.Conv2D(3, 3, padding="same", activation="relu", name="conv_a")(image)
    backbone = keras.Model(image, L.Conv2D(4, 3, name="conv_b")(conv), name="backbone")
    raw = keras.Input((8, 8, 3), name="raw")
    stem = L.Conv2D(2, 1, name="stem")(raw)
    pooled = L.GlobalAveragePooling2D(name="gap")(backbone(stem))
    built["functional_nested"] = keras.Model(raw, L.Dense(2, name="logits")(pooled), name="classifier")
    root = tmp_path_factory.mktemp("slice")
    paths = {}
    for name, model in built.items():
        paths[name] = root / f"{name}.keras"
        _randomize(model).save(paths[name])
    return paths


def sliced(keras3, path):
    return keras3.models.load_model(path, compile=False)


@pytest.mark.slow
def test_mobilenet_cut_at_two_named_layers(mobilenet, keras3, tmp_path):
    destination = tmp_path / "features.keras"
    result = run("slice", mobilenet, destination, "--output", "block_3_expand_relu",
                 "--output", "block_6_project_BN", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["verified"] and document["outputs"] == ["block_3_expand_relu", "block_6_project_BN"]
    model = sliced(keras3, destination)
    assert [tuple(t.shape) for t in model.outputs] == [(None, 8, 8, 48), (None, 2, 2, 24)]
    assert "Conv_1" not in [layer.name for layer in model.layers]


def test_vgg_sequential_cut_at_block4_pool_keeps_weights_and_trainable(models, keras3, tmp_path):
    destination = tmp_path / "base.h5"
    result = run("slice", models["vgg"], destination, "--output", "block4_pool")
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and f"wrote {destination}" in result.output
    source, model = sliced(keras3, models["vgg"]), sliced(keras3, destination)
    assert model.output_shape == (None, 1, 1, 4)
    assert not model.get_layer("block1_conv1").trainable and model.get_layer("block2_conv1").trainable
    for a, b in zip(source.get_layer("block3_conv1").get_weights(),
                    model.get_layer("block3_conv1").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_library_slice_shares_layers(models, keras3):
    from exporter.slicing import slice_model

    source = sliced(keras3, models["vgg"])
    sub = slice_model(source, ["block2_pool"])
    assert sub.get_layer("block2_conv1") is source.get_layer("block2_conv1")


def test_cut_inside_a_nested_model_by_path(k3_files, keras3, tmp_path):
    destination = tmp_path / "inner.keras"
    result = run("slice", k3_files["nested"], destination, "--output", "encoder/enc_dense",
                 "--output", "head", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"] == ["enc_dense", "head"]
    assert sliced(keras3, destination).output_shape == [(None, 5), (None, 2)]


def test_cut_inside_a_nested_functional_and_after_it(models, keras3, tmp_path):
    destination = tmp_path / "inner.h5"
    result = run("slice", models["functional_nested"], destination, "--output", "backbone/conv_a",
                 "--output", "logits", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"] == ["conv_a", "logits"]
    assert sliced(keras3, destination).output_shape == [(None, 8, 8, 3), (None, 2)]


def test_input_cut_in_front_of_a_nested_model_keeps_it_whole(models, keras3, tmp_path):
    destination = tmp_path / "tail.keras"
    result = run("slice", models["functional_nested"], destination, "--input", "stem",
                 "--output", "logits")
    assert result.exit_code == 0, result.output
    model = sliced(keras3, destination)
    assert [layer.name for layer in model.layers] == ["stem", "backbone", "gap", "logits"]
    assert model.input_shape == (None, 8, 8, 2)


def test_shared_layer_addressed_by_node(models, keras3, tmp_path):
    destination = tmp_path / "shared.keras"
    result = run("slice", models["shared"], destination, "--output", "shared:0",
                 "--output", "shared:1", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["outputs"] == ["shared", "shared_1"] and document["verified"]
    source = sliced(keras3, models["shared"])
    x = np.random.default_rng(1).standard_normal((2, 6)).astype("float32")
    first, second = sliced(keras3, destination)(x)
    layer = source.get_layer("shared")
    np.testing.assert_allclose(second, layer(layer(x)), atol=1e-6)
    np.testing.assert_allclose(first, layer(x), atol=1e-6)


def test_two_input_model_cut_at_the_merge(k3_files, keras3, tmp_path):
    destination = tmp_path / "merge.keras"
    result = run("slice", k3_files["two_in_two_out"], destination, "--output", "merge", "--json")
    assert result.exit_code == 0, result.output
    model = sliced(keras3, destination)
    assert [t.name for t in model.inputs] == ["left", "right"] and model.output_shape == (None, 8)


def test_input_cut_runs_the_head_on_saved_features(models, keras3, tmp_path):
    head = tmp_path / "head.keras"
    result = run("slice", models["vgg"], head, "--input", "block2_pool", "--output", "predictions",
                 "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inputs"] == ["block2_pool"]
    source = sliced(keras3, models["vgg"])
    images = np.random.default_rng(2).standard_normal((3, 16, 16, 3)).astype("float32")
    extractor = keras3.Model(source.inputs, source.get_layer("block2_pool").output)
    np.savez(tmp_path / "features.npz", block2_pool=np.asarray(extractor(images)))
    with np.load(tmp_path / "features.npz") as saved:
        predictions = sliced(keras3, head)(saved["block2_pool"])
    np.testing.assert_allclose(predictions, source(images), atol=1e-6)


def test_input_cut_on_a_two_input_model_needs_every_path_cut(k3_files, tmp_path):
    result = run("slice", k3_files["two_in_two_out"], tmp_path / "m.keras", "--input", "left_dense",
                 "--output", "score")
    assert result.exit_code == 2
    assert "still depends on input 'right' through right -> merge -> score" in one_error_line(result)
    both = run("slice", k3_files["two_in_two_out"], tmp_path / "m.keras", "--input", "left_dense",
               "--input", "right", "--output", "score", "--output", "flag")
    assert both.exit_code == 0, both.output


def test_input_cut_alone_keeps_the_model_outputs(k3_files, keras3, tmp_path):
    """The head of a two-output model: only --input cuts, the model's own outputs, verified."""
    head = tmp_path / "head.keras"
    result = run("slice", k3_files["two_in_two_out"], head, "--input", "left_dense",
                 "--input", "right", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["verified"] and document["inputs"] == ["left_dense", "right"]
    assert document["outputs"] == ["score", "flag"]
    assert sliced(keras3, head).output_shape == [(None, 2), (None, 1)]


@pytest.mark.parametrize("args, message", [
    (["--output", "block4_pol"], "layer 'block4_pol' not found in model 'vgg'. Did you mean: block4_pool"),
    ([], "nothing to slice"),
    (["--output", "flatten", "--output", "flatten"], "--output names repeated: flatten"),
    (["--output", "block2_pool", "--input", "block3_pool"], "comes before the --input cut at block3_pool"),
    (["--output", "flatten", "--input", "flatten"], "given as both --output and --input"),
    (["--output", "flatten/x"], "'flatten' is a Flatten layer, not a nested model"),
    (["--output", "flatten:3"], "has no node '3'"),
])
def test_bad_selections_exit_two(models, tmp_path, args, message):
    destination = tmp_path / "m.keras"
    result = run("slice", models["vgg"], destination, *args)
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result)
    assert not destination.exists()


def test_unknown_layer_points_to_inspect(models, tmp_path):
    result = run("slice", models["vgg"], tmp_path / "m.keras", "--output", "nope", "--json")
    assert result.exit_code == 2
    assert f"kexport inspect {models['vgg']}" in json.loads(result.stdout)["error"]


def test_ambiguous_shared_layer_lists_choices(models, tmp_path):
    result = run("slice", models["shared"], tmp_path / "m.keras", "--output", "shared")
    assert result.exit_code == 2
    assert "choose one of shared:0, shared:1" in one_error_line(result)


def test_same_output_twice_by_two_spellings(models, tmp_path):
    result = run("slice", models["vgg"], tmp_path / "m.keras", "--output", "flatten",
                 "--output", "flatten:0")
    assert result.exit_code == 2 and "name the same layer output" in one_error_line(result)


def test_existing_destination_needs_force(models, tmp_path):
    destination = tmp_path / "m.keras"
    destination.write_bytes(b"keep")
    result = run("slice", models["vgg"], destination, "--output", "flatten")
    assert result.exit_code == 2 and "--force" in result.output
    assert destination.read_bytes() == b"keep"
    assert run("slice", models["vgg"], destination, "--output", "flatten", "--force").exit_code == 0


def test_verification_failure_exits_one_and_publishes_nothing(models, tmp_path, monkeypatch):
    from exporter import slicing

    real = slicing.slice_reference

    def off_by_one(*args):
        fed, expected = real(*args)
        return fed, [value + 1.0 for value in expected]

    # The reference is deliberately wrong here, to prove a mismatch stops the publish.
    monkeypatch.setattr(slicing, "slice_reference", off_by_one)
    destination = tmp_path / "m.keras"
    result = run("slice", models["vgg"], destination, "--output", "block3_pool")
    assert result.exit_code == 1 and "outputs differ" in one_error_line(result)
    assert not destination.exists()


def test_nested_typo_suggests_the_path(k3_files, tmp_path):
    result = run("slice", k3_files["nested"], tmp_path / "m.keras", "--output", "encoder/enc_dens")
    assert result.exit_code == 2
    assert "layer 'encoder/enc_dens' not found" in one_error_line(result)
    assert "Did you mean: encoder/enc_dense" in result.output


def test_input_cut_inside_a_nested_model_is_refused(k3_files, tmp_path):
    result = run("slice", k3_files["nested"], tmp_path / "m.keras", "--input", "encoder/enc_dense",
                 "--output", "head")
    assert result.exit_code == 2 and "inside a nested model" in one_error_line(result)


def test_verifies_on_inputs_from_a_file(k3_files, tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "in.npz", left=rng.standard_normal((4, 4)).astype("float32"),
             right=rng.standard_normal((4, 5)).astype("float32"))
    result = run("slice", k3_files["two_in_two_out"], tmp_path / "m.keras", "--output", "left_dense",
                 "--inputs", tmp_path / "in.npz", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"]["inputs"] == {"left": [4, 4], "right": [4, 5]}
