"""Shared fixtures: tiny deterministic models, Keras 3 and tf-keras, each built on first use.

Models are small (a few hundred weights) and seeded, so every test is fast and repeatable.
The real-world files other projects wrote are read from ../shared/fixtures, never copied here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

# TensorFlow's environment (log level, oneDNN for channels_first kernels) before anything imports it.
import exporter.runtime  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """A file under ../shared/fixtures; a missing one fails the test (never a silent skip)."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared fixture missing: {path}; the real-model fixtures are expected in "
                    f"{SHARED_FIXTURES} (the repository's sibling folder shared/fixtures, "
                    "see its README.md)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def keras3():
    from exporter.runtime import keras_module

    keras = keras_module()
    keras.utils.set_random_seed(7)
    return keras


@pytest.fixture(scope="session")
def tf_keras():
    from exporter.runtime import tf_keras_module

    tf_keras = tf_keras_module()
    tf_keras.utils.set_random_seed(7)
    return tf_keras


def _randomize(model, seed: int = 3):
    """Give every weight a random value, so zero-initialized biases and BN statistics count."""
    import numpy as np

    rng = np.random.default_rng(seed)
    model.set_weights([
        (np.abs(rng.standard_normal(w.shape)) + 0.5 if "variance" in getattr(v, "name", "")
         else rng.standard_normal(w.shape) * 0.5).astype(w.dtype)
        for w, v in zip(model.get_weights(), model.weights)
    ])
    return model


class LazyMap(Mapping):
    """A read-only mapping whose values are made on first access and kept: a test pays only
    for the models and files it uses, not for every fixture model in every format."""

    def __init__(self, keys, make):
        self._keys = tuple(keys)
        self._make = make
        self._made = {}

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._made:
            self._made[key] = self._make(key)
        return self._made[key]

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)


def _k3_sequential(keras, L):
    return keras.Sequential(
        [keras.Input((6,), name="features"), L.Dense(8, activation="relu", name="hidden"),
         L.Dense(3, activation="softmax", name="probs")], name="seq")


def _k3_two_in_two_out(keras, L):
    a, b = keras.Input((4,), name="left"), keras.Input((5,), name="right")
    merged = L.Concatenate(name="merge")([L.Dense(3, name="left_dense")(a), b])
    return keras.Model(
        [a, b], [L.Dense(2, name="score")(merged), L.Dense(1, activation="sigmoid", name="flag")(merged)])


def _k3_nested(keras, L):
    inner = keras.Sequential([keras.Input((4,)), L.Dense(5, activation="tanh", name="enc_dense")], name="encoder")
    x = keras.Input((4,), name="x")
    return keras.Model(x, L.Dense(2, name="head")(inner(x)), name="nested")


def _k3_rnn(keras, L):
    seq = keras.Input((7, 3), name="sequence")
    return keras.Model(seq, L.Dense(2, name="rnn_out")(L.GRU(4, name="gru")(L.LSTM(5, return_sequences=True, name="lstm")(seq))))


def _k3_batchnorm(keras, L):
    img = keras.Input((8, 8, 3), name="image")
    y = L.BatchNormalization(name="bn")(L.Conv2D(4, 3, name="conv")(img))
    return keras.Model(img, L.Dense(2, name="logits")(L.GlobalAveragePooling2D(name="gap")(y)))


def _k3_embedding(keras, L):
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    emb = L.Embedding(12, 4, name="embed")(tokens)
    return keras.Model(tokens, L.Dense(2, name="cls")(L.GlobalAveragePooling1D(name="pool")(emb)))


KERAS3_BUILDERS = {"sequential": _k3_sequential, "two_in_two_out": _k3_two_in_two_out,
                   "nested": _k3_nested, "rnn": _k3_rnn, "batchnorm": _k3_batchnorm,
                   "embedding": _k3_embedding}


def keras3_models(keras) -> Mapping:
    """{name: randomized Keras 3 model}, each built when first looked up."""
    return LazyMap(KERAS3_BUILDERS, lambda name: _randomize(KERAS3_BUILDERS[name](keras, keras.layers)))


def _k2_sequential(tf_keras, L):
    return tf_keras.Sequential(
        [L.InputLayer((6,), name="features"), L.Dense(8, activation="relu", name="hidden"),
         L.Dense(3, activation="softmax", name="probs")])


def _k2_two_in_two_out(tf_keras, L):
    a, b = L.Input((4,), name="left"), L.Input((5,), name="right")
    merged = L.Concatenate(name="merge")([L.Dense(3, name="left_dense")(a), b])
    return tf_keras.Model([a, b], [L.Dense(2, name="score")(merged), L.Dense(1, name="flag")(merged)])


def _k2_nested(tf_keras, L):
    inner = tf_keras.Sequential([L.InputLayer((4,)), L.Dense(5, activation="tanh", name="enc_dense")], name="encoder")
    x = L.Input((4,), name="x")
    return tf_keras.Model(x, L.Dense(2, name="head")(inner(x)))


def _k2_gru(tf_keras, L):
    seq = L.Input((7, 3), name="sequence")
    return tf_keras.Model(seq, L.GRU(4, name="gru")(seq))


def _k2_gru_v1(tf_keras, L):
    seq = L.Input((7, 3), name="sequence")
    return tf_keras.Model(seq, L.GRU(4, reset_after=False, name="gru_v1")(seq))


def _k2_bilstm(tf_keras, L):
    seq = L.Input((7, 3), name="sequence")
    return tf_keras.Model(seq, L.Bidirectional(L.LSTM(4), name="bilstm")(seq))


def _k2_separable(tf_keras, L):
    img = L.Input((8, 8, 3), name="image")
    z = L.DepthwiseConv2D(3, name="depthwise")(L.SeparableConv2D(4, 3, name="separable")(img))
    return tf_keras.Model(img, L.BatchNormalization(name="bn")(z))


def _k2_attention(tf_keras, L):
    tokens = L.Input((6,), dtype="int32", name="tokens")
    emb = L.LayerNormalization(name="ln")(L.Embedding(12, 8, name="embed")(tokens))
    att = L.MultiHeadAttention(2, 4, name="mha")(emb, emb)
    return tf_keras.Model(tokens, L.GlobalAveragePooling1D(name="pool")(att))


KERAS2_BUILDERS = {"sequential": _k2_sequential, "two_in_two_out": _k2_two_in_two_out,
                   "nested": _k2_nested, "gru": _k2_gru, "gru_v1": _k2_gru_v1,
                   "bilstm": _k2_bilstm, "separable": _k2_separable, "attention": _k2_attention}


def keras2_models(tf_keras) -> Mapping:
    """{name: randomized tf-keras (Keras 2) model}, each built when first looked up."""
    return LazyMap(KERAS2_BUILDERS, lambda name: _randomize(KERAS2_BUILDERS[name](tf_keras, tf_keras.layers)))


@pytest.fixture(scope="session")
def k3_files(keras3, tmp_path_factory) -> Mapping:
    """Each Keras 3 model saved as .keras: {name: path}, saved on first lookup."""
    root = tmp_path_factory.mktemp("keras3")
    models = keras3_models(keras3)

    def save(name: str) -> Path:
        path = root / f"{name}.keras"
        models[name].save(path)
        return path

    return LazyMap(KERAS3_BUILDERS, save)


# How each tf-keras artifact kind is named and written; a SavedModel costs seconds, so each
# kind is written only when a test asks for it.
KERAS2_KINDS = {
    "h5": (".h5", lambda model, path: model.save(path)),
    "savedmodel": ("_savedmodel", lambda model, path: model.save(path)),
    "json": (".json", lambda model, path: path.write_text(model.to_json())),
    "weights": ("_w.h5", lambda model, path: model.save_weights(path)),
}


@pytest.fixture(scope="session")
def k2_files(tf_keras, tmp_path_factory) -> Mapping:
    """Each tf-keras model as h5, SavedModel, and JSON + Keras 2 weights: {name: {kind: path}},
    each model built and each file written on first lookup."""
    root = tmp_path_factory.mktemp("keras2")
    models = keras2_models(tf_keras)

    def files_of(name: str) -> Mapping:
        def write(kind: str) -> Path:
            suffix, save = KERAS2_KINDS[kind]
            path = root / f"{name}{suffix}"
            save(models[name], path)
            return path

        return LazyMap(KERAS2_KINDS, write)

    return LazyMap(KERAS2_BUILDERS, files_of)
