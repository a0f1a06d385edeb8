"""The recipes Keras tutorials teach, end to end: transfer learning on an `include_top=False`
base, a feature extractor cut at `block4_pool`, `to_json` + `save_weights` back into one model,
and an image classifier bundled, served and queried with an image. Models are built the way the
tutorials build them (tf.keras 2 where they use it), with `weights=None`: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import run
from tests.conftest import _randomize

CLASSES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead"]


def add_head(tf_keras, base, classes: int, hidden: int):
    """The transfer-learning recipe: a new head on a frozen base, compiled, as the tutorial."""
    layers = tf_keras.layers
    x = layers.GlobalAveragePooling2D()(base.output)
    x = layers.Dense(hidden, activation="relu")(x)
    predictions = layers.Dense(classes, activation="softmax")(x)
    model = tf_keras.Model(inputs=base.input, outputs=predictions)
    for layer in base.layers:
        layer.trainable = False
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    return model


def check_transfer_recipe(tf_keras, keras3, model, tmp_path: Path, size: int) -> None:
    """Save with tf.keras 2 to h5, convert to SavedModel and .keras, both verified; the .keras
    keeps the frozen flags and computes what tf.keras computes on an image of another size."""
    model.save(tmp_path / "x.h5")
    for destination in ("x_savedmodel", "x.keras"):
        result = run("convert", tmp_path / "x.h5", tmp_path / destination, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)["report"]
        assert report["passed"] and report["pairing"] == "by name"
        [source] = report["input_sources"].values()
        assert source["source"].endswith("by shape inference"), source
        assert source["shape"][1:] == [size, size, 3]
    converted = keras3.models.load_model(tmp_path / "x.keras")
    frozen = {layer.name for layer in converted.layers if not layer.trainable}
    assert frozen == {layer.name for layer in model.layers
                      if not layer.trainable and type(layer).__name__ != "InputLayer"}
    assert converted.layers[-1].trainable  # the new head still trains
    images = np.random.default_rng(0).uniform(-1, 1, (2, size + 16, size + 16, 3)).astype("float32")
    expected = model(images, training=False).numpy()
    assert not np.allclose(expected[0], expected[1])  # the outputs depend on the image
    np.testing.assert_allclose(converted(images, training=False), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_include_top_false_base_with_a_new_head(tf_keras, keras3, tmp_path):
    base = tf_keras.applications.MobileNet(
        weights=None, include_top=False, alpha=0.25, input_shape=(None, None, 3))
    model = _randomize(add_head(tf_keras, base, classes=5, hidden=16))
    check_transfer_recipe(tf_keras, keras3, model, tmp_path, size=32)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("KEXPORT_BIG_RECIPES"), reason=(
    "InceptionV3 takes over a minute of CPU (98 MB h5); run with KEXPORT_BIG_RECIPES=1"))
def test_inception_v3_recipe_from_the_issue(tf_keras, keras3, tmp_path):
    """The exact recipe: verification must feed at least 75x75 (32x32 broke it)."""
    base = tf_keras.applications.InceptionV3(weights=None, include_top=False)
    model = add_head(tf_keras, base, classes=200, hidden=1024)
    check_transfer_recipe(tf_keras, keras3, model, tmp_path, size=75)


def vgg_style(tf_keras):
    """VGG's layer names and block layout, with few filters and an open image size."""
    layers = tf_keras.layers
    x = image = tf_keras.Input((None, None, 3), name="input_1")
    for block, (convs, filters) in enumerate([(2, 4), (2, 4), (3, 8), (3, 8), (3, 8)], start=1):
        for index in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"block{block}_conv{index}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Dense(6, activation="relu", name="fc1")(layers.GlobalAveragePooling2D()(x))
    return tf_keras.Model(image, layers.Dense(3, activation="softmax", name="predictions")(x),
                          name="vgg_style")


def test_vgg_style_features_at_block4_pool(tf_keras, keras3, tmp_path):
    """`Model(base.input, base.get_layer('block4_pool').output)`, done by `kexport slice`."""
    base = _randomize(vgg_style(tf_keras))
    base.save(tmp_path / "vgg.h5")
    result = run("slice", tmp_path / "vgg.h5", tmp_path / "features.keras",
                 "--output", "block4_pool", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outputs"] == ["block4_pool"] and data["verified"]
    assert data["report"]["inputs"] == {"input_1": [2, 32, 32, 3]}  # five poolings: 32 is least
    features = tf_keras.Model(base.input, base.get_layer("block4_pool").output)
    images = np.random.default_rng(1).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    sliced = keras3.models.load_model(tmp_path / "features.keras")
    np.testing.assert_allclose(sliced(images), features(images), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("writer, weights_name", [("tf_keras", "w.h5"),
                                                  ("keras3", "w.weights.h5")])
def test_to_json_and_save_weights_back_into_one_model(request, tmp_path, writer, weights_name):
    keras = request.getfixturevalue(writer)
    layers = keras.layers
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    hidden = layers.LSTM(4, name="lstm")(layers.Embedding(20, 3, name="embed")(tokens))
    model = _randomize(keras.Model(tokens, layers.Dense(2, name="out")(hidden)))
    (tmp_path / "arch.json").write_text(model.to_json())
    model.save_weights(tmp_path / weights_name)
    for destination in ("model.keras", "model.h5"):
        result = run("convert", tmp_path / "arch.json", tmp_path / destination,
                     "--weights", tmp_path / weights_name, "--json")
        assert result.exit_code == 0, result.output
        source = json.loads(result.stdout)["report"]["input_sources"]["tokens"]
        assert source["values"] == "token ids in [0, 10) for Embedding 'embed'"
    ids = np.random.default_rng(2).integers(0, 20, (3, 7)).astype("int32")
    keras3 = request.getfixturevalue("keras3")
    for destination in ("model.keras", "model.h5"):
        restored = keras3.models.load_model(tmp_path / destination)
        np.testing.assert_allclose(restored(ids), model(ids), rtol=1e-4, atol=1e-6)


def image_file(path: Path, seed: int) -> Path:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 36, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def served_bundle(tf_keras, tmp_path):
    """A tf.keras 2 image classifier bundled and served by `kexport serve` on port 0."""
    layers = tf_keras.layers
    image = tf_keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(image)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    model = _randomize(tf_keras.Model(image, layers.Dense(
        len(CLASSES), activation="softmax", name="predictions")(x)))
    model.save(tmp_path / "classifier.h5")
    bundled = run("bundle", tmp_path / "bundle", "--model", f"clf={tmp_path / 'classifier.h5'}",
                  "--warmup", "1")
    assert bundled.exit_code == 0, bundled.output
    kexport = Path(sys.executable).with_name("kexport")
    server = subprocess.Popen([str(kexport), "serve", str(tmp_path / "bundle"), "--port", "0",
                               "--json", "--poll-seconds", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = server.stdout.readline()
        assert ready, server.stderr.read()
        yield model, json.loads(ready)["address"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_classifier_bundled_served_and_queried_with_an_image(served_bundle, tmp_path):
    from keras.applications import imagenet_utils
    from PIL import Image

    model, address = served_bundle
    labels = tmp_path / "imagenet_class_index.json"
    labels.write_text(json.dumps({str(i): [f"n0{i}", name] for i, name in enumerate(CLASSES)}))
    picture = image_file(tmp_path / "fish.png", 4)
    with Image.open(picture) as opened:  # the client resizes to the signature's 32x32
        pixels = np.asarray(opened.resize((32, 32), Image.Resampling.NEAREST), "float32")
    expected = model(imagenet_utils.preprocess_input(pixels[None], mode="caffe")).numpy()[0]
    result = subprocess.run(
        [sys.executable, "-m", "serving.client", "--target", address, "--model", "clf",
         "--preprocess", "caffe", "--labels", str(labels), "--top", "3", str(picture)],
        check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [top] = json.loads(result.stdout)["predictions"]["top"]
    order = np.argsort(-expected)[:3]
    assert [entry["index"] for entry in top] == order.tolist()
    assert [entry["label"] for entry in top] == [CLASSES[i] for i in order]
    np.testing.assert_allclose([entry["score"] for entry in top], expected[order], rtol=1e-4)
