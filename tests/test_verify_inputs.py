"""Verification inputs the model accepts: --input-shape, sizes found by shape inference, token
ids for Embedding inputs, inputs paired by name, and one-line errors when nothing fits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.errors import BadInputError
from exporter.input_shapes import parse_input_shapes
from exporter.model_tensors import input_specs
from exporter.model_types import TensorSpec
from exporter.verify import make_inputs, pair_names
from exporter.verify_inputs import plan_inputs
from tests.cli_helpers import one_error_line, run


def downsampler(keras, name="image"):
    """Five stride-2 3x3 valid convolutions: 32x32 shrinks to 1x1 before the last one (the
    old fixed size fails), 64x64 is the smallest candidate every stage accepts."""
    layers = keras.layers
    x = image = keras.Input((None, None, 3), name=name)
    for index in range(5):
        x = layers.Conv2D(2, 3, strides=2, name=f"conv{index}")(x)
    return keras.Model(image, layers.Dense(2, name="scores")(layers.GlobalMaxPooling2D(name="gmp")(x)))


@pytest.fixture(scope="module")
def fully_conv(keras3, tmp_path_factory):
    path = tmp_path_factory.mktemp("fc") / "fc.keras"
    downsampler(keras3).save(path)
    return path


def test_the_smallest_size_every_stage_accepts_is_found(fully_conv, tmp_path):
    result = run("convert", fully_conv, tmp_path / "fc_sm", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report"]
    assert report["inputs"] == {"image": [2, 64, 64, 3]}
    assert report["input_sources"]["image"]["source"] == (
        "smallest image size the model accepts (64), by shape inference")
    assert report["pairing"] == "by name"


def test_signature_only_models_are_probed_by_calls(keras3, tmp_path):
    """A SavedModel without Keras metadata has no architecture: sizes are tried by calling it
    on zeros. Six 2x2 poolings empty a 32x32 image, whose global max is then -inf."""
    x = image = keras3.Input((None, None, 3), name="image")
    for index in range(6):
        x = keras3.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    model = keras3.Model(image, keras3.layers.GlobalMaxPooling2D(name="gmp")(x))
    model.save(tmp_path / "pools.keras")
    assert run("convert", tmp_path / "pools.keras", tmp_path / "sm", "-q").exit_code == 0
    result = run("verify", tmp_path / "sm", tmp_path / "sm", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"]["inputs"] == {"image": [2, 64, 64, 3]}


def test_input_shape_option_wins_and_is_reported(fully_conv, tmp_path):
    for option in ("image=96,80,3", "1,96,80,3", "image=1,96,80,3"):
        result = run("convert", fully_conv, tmp_path / f"{len(option)}.keras", "--json",
                     "--input-shape", option)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)["report"]
        batch = 1 if option.count(",") == 3 else 2
        assert report["inputs"] == {"image": [batch, 96, 80, 3]}
        assert report["input_sources"]["image"]["source"] == "--input-shape"
    text = run("verify", fully_conv, fully_conv, "--input-shape", "image=70,70,3")
    assert text.exit_code == 0
    assert "input image: [2, 70, 70, 3] float32, normal(0, 1) (shape: --input-shape)" in text.output


@pytest.mark.parametrize("args, message", [
    (["--input-shape", "imag=64,64,3"], ("names input 'imag', which the model does not have "
     "(inputs: image). Did you mean: image?")),
    (["--input-shape", "image=64,64,4"], "sets dimension 3 to 4; the model fixes it at 3"),
    (["--input-shape", "image=64,3"], "has 2 dimensions; the input has 4"),
    (["--input-shape", "image=64,x,3"], "is not NAME=D1,D2,... with positive integer sizes"),
    (["--input-shape", "image=0,64,3"], "is not NAME=D1,D2,..."),
    (["--input-shape", "image=64,64,3", "--input-shape", "image=32,32,3"], "gives input 'image' twice"),
    (["--input-shape", "image=16,16,3"], ("error: the model rejects the verification inputs "
     "(image [2, 16, 16, 3] float32, normal(0, 1) (--input-shape)): ")),
])
def test_bad_input_shapes_are_one_line_exit_2(fully_conv, tmp_path, args, message):
    result = run("convert", fully_conv, tmp_path / "out.keras", *args)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert message in line
    assert not (tmp_path / "out.keras").exists()
    if "rejects" in message:
        assert line.endswith("Give inputs it accepts: --input-shape NAME=D1,D2,... or "
                             "--inputs FILE.npz.")


def test_inputs_file_and_input_shape_together_are_refused(fully_conv, tmp_path):
    np.savez(tmp_path / "x.npz", image=np.zeros((1, 64, 64, 3), np.float32))
    result = run("verify", fully_conv, fully_conv, "--inputs", tmp_path / "x.npz",
                 "--input-shape", "image=64,64,3")
    assert result.exit_code == 2
    assert "--inputs fixes every input's shape; drop --input-shape." in one_error_line(result)


def test_when_nothing_fits_exit_2_names_the_input_and_both_options(keras3, tmp_path):
    """A 600-row kernel fits no candidate size: the error says so and how to fix it."""
    image = keras3.Input((None, None, 3), name="tall")
    feature = keras3.layers.Conv2D(1, (600, 1), name="tall_kernel")(image)
    model = keras3.Model(image, keras3.layers.GlobalAveragePooling2D(name="gap")(feature))
    model.save(tmp_path / "tall.keras")
    result = run("convert", tmp_path / "tall.keras", tmp_path / "tall_sm")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "tall [2, 32, 32, 3] float32" in line and "shape inference found none that fits" in line
    assert "--input-shape NAME=D1,D2,... or --inputs FILE.npz" in line
    assert not (tmp_path / "tall_sm").exists()
    fixed = run("convert", tmp_path / "tall.keras", tmp_path / "tall_sm",
                "--input-shape", "tall=600,4,3")
    assert fixed.exit_code == 0, fixed.output


def test_sequences_get_a_short_length(keras3):
    steps = keras3.Input((None, 3), name="steps")
    model = keras3.Model(steps, keras3.layers.GRU(2, name="gru")(steps))
    [choice] = plan_inputs(input_specs(model), model).choices
    assert choice.shape == [2, 8, 3]
    assert choice.source == "smallest sequence length the model accepts (8), by shape inference"


def test_embedding_inputs_get_token_ids_even_as_floats(keras3):
    """Token ids below min(vocabulary, 10), for float32 inputs too, also through nested models."""
    layers = keras3.layers
    words = keras3.Input((None,), dtype="float32", name="words")
    chars = keras3.Input((5,), dtype="int32", name="chars")
    inner_in = keras3.Input((5,), dtype="int32")
    inner = keras3.Model(inner_in, layers.Embedding(4, 2, name="char_embed")(inner_in), name="inner")
    pooled = [layers.GlobalAveragePooling1D(name=f"pool{i}")(t) for i, t in
              enumerate([layers.Embedding(50, 2, name="word_embed")(words), inner(chars)])]
    model = keras3.Model([words, chars], layers.Concatenate(name="join")(pooled))
    plan = plan_inputs(input_specs(model), model)
    by_name = {choice.name: choice for choice in plan.choices}
    assert by_name["words"].values == "token ids in [0, 10) for Embedding 'word_embed'"
    assert by_name["chars"].values == "token ids in [0, 4) for Embedding 'char_embed'"
    feed = plan.make(seed=3)
    assert feed["words"].dtype == np.float32 and feed["words"].shape == (2, 8)
    assert np.array_equal(feed["words"], np.round(feed["words"])) and feed["words"].max() < 10
    assert feed["chars"].dtype == np.int32 and 0 <= feed["chars"].min() and feed["chars"].max() < 4
    assert len(np.unique(feed["words"])) > 3  # drawn, not a constant
    model(feed)  # the model accepts them


def test_tf_keras_models_are_probed_too(tf_keras):
    image = tf_keras.Input((None, None, 3), name="image")
    x = image
    for index in range(5):
        x = tf_keras.layers.Conv2D(2, 3, strides=2, name=f"conv{index}")(x)
    model = tf_keras.Model(image, tf_keras.layers.GlobalMaxPooling2D()(x))
    [choice] = plan_inputs(input_specs(model), model).choices
    assert choice.shape == [2, 64, 64, 3]


def test_dtypes_are_respected_and_values_are_seeded():
    specs = [TensorSpec("ids", (None, 4), "int64"), TensorSpec("mask", (None, 4), "bool"),
             TensorSpec("pixels", (None, 2), "uint8"), TensorSpec("x", (None, 4), "float16")]
    first, again = make_inputs(specs, seed=1), make_inputs(specs, seed=1)
    assert {name: a.dtype.name for name, a in first.items()} == {
        "ids": "int64", "mask": "bool", "pixels": "uint8", "x": "float16"}
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["x"], make_inputs(specs, seed=2)["x"])
    assert first["ids"].max() < 10 and first["ids"].min() >= 0
    with pytest.raises(BadInputError, match="dtype string"):
        make_inputs([TensorSpec("text", (None,), "string")])


def test_parse_input_shapes():
    assert parse_input_shapes(["a=1,2", "b/c=3"]) == {"a": (1, 2), "b/c": (3,)}
    assert parse_input_shapes(["7,7,3"]) == {None: (7, 7, 3)}
    for bad in ("=1,2", "a=", "a=1,,2", "a=-1"):
        with pytest.raises(BadInputError):
            parse_input_shapes([bad])


def test_pairing_by_name_by_position_only_without_names():
    assert pair_names(["zeta", "alpha"], ["alpha", "zeta"]) == (
        {"zeta": "zeta", "alpha": "alpha"}, "by name")
    assert pair_names(["x"], ["input_1"]) == ({"x": "input_1"}, "the only input of each")
    assert pair_names(["input_1", "input_2"], ["keras_tensor", "keras_tensor_1"])[1] == (
        "by position (neither side names its inputs)")
    with pytest.raises(BadInputError, match="cannot be paired by name: left, right vs a, b"):
        pair_names(["left", "right"], ["a", "b"])
    with pytest.raises(BadInputError, match="cannot be paired by name"):
        pair_names(["left", "right"], ["input_1", "input_2"])


@pytest.fixture(scope="module")
def swapped_names(keras3, tf_keras, tmp_path_factory):
    """Two inputs of one shape whose names sort opposite to their order: `zeta` first, then
    `alpha`. A SavedModel lists them sorted, so pairing by position would swap them."""
    root = tmp_path_factory.mktemp("swap")
    layers = keras3.layers
    zeta, alpha = keras3.Input((3,), name="zeta"), keras3.Input((3,), name="alpha")
    out = layers.Dense(2, name="out")(layers.Concatenate(name="cat")([zeta, alpha]))
    keras3.Model([zeta, alpha], out).save(root / "k3.keras")
    zeta2, alpha2 = tf_keras.Input((3,), name="zeta"), tf_keras.Input((3,), name="alpha")
    out2 = tf_keras.layers.Dense(2, name="out")(tf_keras.layers.Concatenate()([zeta2, alpha2]))
    tf_keras.Model([zeta2, alpha2], out2).save(root / "k2.h5")
    return root


@pytest.mark.parametrize("source", ["k3.keras", "k2.h5"])
def test_two_inputs_sorted_differently_verify_by_name_against_savedmodel(swapped_names, source):
    from exporter.model_io import load_model

    source = swapped_names / source
    saved = swapped_names / f"{source.stem}_sm"
    assert run("convert", source, saved, "-q").exit_code == 0
    assert [s.name for s in load_model(source).inputs] == ["zeta", "alpha"]
    assert [s.name for s in load_model(saved).inputs] == ["alpha", "zeta"]
    for first, second in ((source, saved), (saved, source)):
        result = run("verify", first, second, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)["report"]
        assert report["pairing"] == "by name" and report["passed"]
    # The swap is real: fed by position, the SavedModel computes something else.
    reference, written = load_model(source), load_model(saved)
    feed = make_inputs(reference.inputs, seed=0)
    swapped = dict(zip([s.name for s in written.inputs], feed.values()))
    assert not np.allclose(reference.reference(feed)["out"], written.reference(swapped)["out"])


def test_a_candidate_that_rejects_the_inputs_fails_verification(keras3, fully_conv, tmp_path):
    fixed = keras3.Model.from_config(downsampler(keras3).get_config())  # same graph, new size
    image = keras3.Input((96, 96, 3), name="image")
    keras3.Model(image, fixed(image)).save(tmp_path / "fixed.keras")
    result = run("verify", fully_conv, tmp_path / "fixed.keras")
    assert result.exit_code == 1, result.output
    assert "fails on inputs the reference accepts" in result.output


def test_writer_failures_are_one_line_exit_2(fully_conv, tmp_path, monkeypatch):
    """Whatever a writer raises (here TensorFlow refusing to trace) is one line, exit 2."""
    from exporter.formats import savedmodel

    def refuse(model, path, options):
        path.mkdir()
        raise RuntimeError("Could not trace the serving function\nmore detail")

    monkeypatch.setattr(savedmodel, "save", refuse)
    result = run("convert", fully_conv, tmp_path / "out_sm")
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "error: cannot write out_sm as savedmodel: RuntimeError: Could not trace the serving "
        "function Try another format with --to, or --debug for the traceback.")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a bundle export, then TensorFlow Serving's protos read its records
def test_bundle_warmup_uses_the_verified_shapes(fully_conv, tmp_path):
    from exporter.runtime import tf_module
    from serving.warmup import WARMUP_FILE

    result = run("bundle", tmp_path / "b", "--model", f"fc={fully_conv}", "--warmup", "2",
                 "--input-shape", "image=80,80,3")
    assert result.exit_code == 0, result.output
    tf = tf_module()
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(tmp_path / "b/models/fc/1" / WARMUP_FILE)))
    assert len(records) == 2
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        dims = [d.size for d in log.predict_log.request.inputs["image"].tensor_shape.dim]
        assert dims == [2, 80, 80, 3]
    unknown = run("bundle", tmp_path / "c", "--model", f"fc={fully_conv}", "--input-shape",
                  "pixels=80,80,3")
    assert unknown.exit_code == 2
    assert "names 'pixels', which no bundled model has as an input" in one_error_line(unknown)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("suffix, opening, fmt", [
    (".json", '{"class_name": "Sequential", "config": {"name": "', "json"),
    (".yaml", 'class_name: Sequential\nconfig:\n  name: "', "yaml"),
])
def test_detection_survives_a_character_cut_by_the_sniffed_bytes(tmp_path, suffix, opening, fmt):
    """The first 4096 bytes end inside a 3-byte character: still text, still detected."""
    from exporter.formats.detection import TEXT_SAMPLE, detect

    head = opening + "x" * (TEXT_SAMPLE - 1 - len(opening.encode()))
    data = (head + "模型" + '"}}' * (suffix == ".json") + "\n").encode("utf-8")
    assert data[:TEXT_SAMPLE].decode("utf-8", "replace").endswith("\ufffd")  # really cut
    path = tmp_path / f"model{suffix}"
    path.write_bytes(data)
    assert detect(path).format == fmt
    path.write_bytes(data[:TEXT_SAMPLE])  # the cut is the end of the file: not UTF-8 text
    with pytest.raises(BadInputError, match="not a Keras artifact"):
        detect(path)


@pytest.mark.slow  # builds a tf-keras MobileNet
def test_a_recognised_base_falls_back_to_its_default_size(tf_keras):
    from exporter.shape_inference import choose_sizes, recognised_application

    base = tf_keras.applications.MobileNet(weights=None, include_top=False, alpha=0.25,
                                           input_shape=(None, None, 3))
    assert recognised_application(base) == "mobilenet"
    wrapper = tf_keras.Sequential([base, tf_keras.layers.GlobalAveragePooling2D()])
    assert recognised_application(wrapper) == "mobilenet"

    def refuse(shapes):
        raise ValueError("no symbolic shapes here")

    [choice] = choose_sizes({"x": (None, None, None, 3)}, refuse, "inception_v3").values()
    assert (choice.size, choice.found, choice.application) == (299, False, "inception_v3")
    assert choice.reason == "no symbolic shapes here"


def test_slice_plans_on_the_layers_it_keeps(fully_conv, tmp_path):
    """Cut at conv2, the later stages that need 64x64 are gone: 32x32 (and 40x40) fit."""
    found = run("slice", fully_conv, tmp_path / "a.keras", "--output", "conv2", "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["report"]["inputs"] == {"image": [2, 32, 32, 3]}
    given = run("slice", fully_conv, tmp_path / "b.keras", "--output", "conv2", "--json",
                "--input-shape", "image=40,40,3")
    assert given.exit_code == 0, given.output
    report = json.loads(given.stdout)["report"]
    assert report["inputs"] == {"image": [2, 40, 40, 3]}
    assert report["input_sources"]["image"]["source"] == "--input-shape"
