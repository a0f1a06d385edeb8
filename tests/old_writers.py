"""Files in the exact layouts old Keras wrote, built with h5py where the old Keras cannot run.

Each writer returns golden inputs and outputs computed without kexport (numpy for Keras 1
layers, the pre-damage tf-keras model otherwise), so a conversion is checked against what the
old model computed, not against another reading by the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

RNG = np.random.default_rng(11)


def _hard_sigmoid(x):
    """Keras 1/2's hard sigmoid."""
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm(x, kernels, recurrents, biases, gate):
    """A numpy LSTM over x (batch, time, features); weights per gate in order i, f, c, o."""
    units = recurrents["i"].shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    for t in range(x.shape[1]):
        z = {g: x[:, t] @ kernels[g] + h @ recurrents[g] + biases[g] for g in "ifco"}
        c = gate(z["f"]) * c + gate(z["i"]) * np.tanh(z["c"])
        h = gate(z["o"]) * np.tanh(c)
    return h


def _write_model_file(path: Path, config: dict, layers: list[tuple[str, list[tuple[str, np.ndarray]]]],
                      keras_version: str, backend: str = "tensorflow") -> None:
    """A full-model HDF5 as Keras 1.x/2.x `save_model` laid it out."""
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = keras_version.encode()
        handle.attrs["backend"] = backend.encode()
        handle.attrs["model_config"] = json.dumps(config).encode()
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = [name.encode() for name, _ in layers]
        for name, arrays in layers:
            group = weights.create_group(name)
            group.attrs["weight_names"] = [weight.encode() for weight, _ in arrays]
            for weight, value in arrays:
                group.create_dataset(weight, data=value.astype(np.float32))


def _keras1_dense(name, units, activation, **extra):
    return {"class_name": "Dense", "config": {
        "name": name, "output_dim": units, "init": "glorot_uniform", "activation": activation,
        "W_regularizer": None, "b_regularizer": None, "activity_regularizer": None,
        "W_constraint": None, "b_constraint": None, "bias": True, "trainable": True, **extra}}


def write_keras1_mlp(path: Path):
    """Keras 1.2.2 Sequential: Dense(relu) -> Dropout(p) -> Dense(softmax)."""
    w1, b1 = RNG.standard_normal((6, 8)), RNG.standard_normal(8)
    w2, b2 = RNG.standard_normal((8, 3)), RNG.standard_normal(3)
    config = {"class_name": "Sequential", "config": [
        _keras1_dense("dense_1", 8, "relu", input_dim=6, batch_input_shape=[None, 6],
                      input_dtype="float32"),
        {"class_name": "Dropout", "config": {"name": "dropout_1", "p": 0.5, "trainable": True}},
        _keras1_dense("dense_2", 3, "softmax"),
    ]}
    _write_model_file(path, config, [
        ("dense_1", [("dense_1_W", w1), ("dense_1_b", b1)]),
        ("dropout_1", []),
        ("dense_2", [("dense_2_W", w2), ("dense_2_b", b2)]),
    ], "1.2.2")
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return x, probs / probs.sum(1, keepdims=True)


def write_keras1_lstm(path: Path):
    """Keras 1.2.2 Sequential: LSTM(hard_sigmoid gates, weights stored per gate) -> Dense."""
    units, features = 4, 3
    kernels = {g: RNG.standard_normal((features, units)) * 0.5 for g in "ifco"}
    recurrents = {g: RNG.standard_normal((units, units)) * 0.5 for g in "ifco"}
    biases = {g: RNG.standard_normal(units) * 0.5 for g in "ifco"}
    w, b = RNG.standard_normal((units, 2)), RNG.standard_normal(2)
    lstm = {"class_name": "LSTM", "config": {
        "name": "lstm_1", "output_dim": units, "init": "glorot_uniform", "inner_init": "orthogonal",
        "forget_bias_init": "one", "activation": "tanh", "inner_activation": "hard_sigmoid",
        "W_regularizer": None, "U_regularizer": None, "b_regularizer": None, "dropout_W": 0.0,
        "dropout_U": 0.0, "return_sequences": False, "go_backwards": False, "stateful": False,
        "unroll": False, "consume_less": "cpu", "input_dim": features, "input_length": 5,
        "batch_input_shape": [None, 5, features], "input_dtype": "float32", "trainable": True}}
    config = {"class_name": "Sequential", "config": [lstm, _keras1_dense("dense_1", 2, "linear")]}
    # Keras 1 kept one kernel, recurrent kernel and bias per gate, in the order i, c, f, o.
    per_gate = [(f"lstm_1_{kind}_{g}", source[g]) for g in "icfo"
                for kind, source in (("W", kernels), ("U", recurrents), ("b", biases))]
    _write_model_file(path, config, [
        ("lstm_1", per_gate), ("dense_1", [("dense_1_W", w), ("dense_1_b", b)])], "1.2.2")
    x = RNG.standard_normal((3, 5, features)).astype(np.float32)
    return x, _lstm(x, kernels, recurrents, biases, _hard_sigmoid) @ w + b


def _to_cudnn_kernel(kernel: np.ndarray, gates: int) -> np.ndarray:
    """cuDNN stores each gate's input kernel transposed in memory (layout, not values)."""
    return np.hstack([k.T.reshape(k.shape, order="C") for k in np.hsplit(kernel, gates)])


def write_cudnn_lstm(path: Path):
    """Keras 2.2.4 functional model with a CuDNNLSTM layer, weights in cuDNN layout."""
    units, features = 4, 3
    kernels = {g: RNG.standard_normal((features, units)) * 0.5 for g in "ifco"}
    recurrents = {g: RNG.standard_normal((units, units)) * 0.5 for g in "ifco"}
    biases = {g: RNG.standard_normal(units) * 0.5 for g in "ifco"}
    kernel = np.hstack([kernels[g] for g in "ifco"])
    recurrent = np.hstack([recurrents[g] for g in "ifco"])
    bias = np.concatenate([biases[g] for g in "ifco"])
    cudnn = [
        ("cu_dnnlstm_1/kernel:0", _to_cudnn_kernel(kernel, 4)),
        ("cu_dnnlstm_1/recurrent_kernel:0", np.hstack([r.T for r in np.hsplit(recurrent, 4)])),
        # cuDNN keeps separate input and recurrent biases; their sum is the LSTM bias.
        ("cu_dnnlstm_1/bias:0", np.concatenate([0.25 * bias, 0.75 * bias])),
    ]
    config = {"class_name": "Model", "config": {
        "name": "model_1",
        "layers": [
            {"name": "input_1", "class_name": "InputLayer", "inbound_nodes": [], "config": {
                "batch_input_shape": [None, 5, features], "dtype": "float32", "sparse": False,
                "name": "input_1"}},
            {"name": "cu_dnnlstm_1", "class_name": "CuDNNLSTM",
             "inbound_nodes": [[["input_1", 0, 0, {}]]], "config": {
                 "name": "cu_dnnlstm_1", "trainable": True, "units": units,
                 "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                     "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}},
                 "unit_forget_bias": True, "return_sequences": False, "return_state": False,
                 "go_backwards": False, "stateful": False}},
        ],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["cu_dnnlstm_1", 0, 0]]}}
    _write_model_file(path, config, [("input_1", []), ("cu_dnnlstm_1", cudnn)], "2.2.4")
    x = RNG.standard_normal((3, 5, features)).astype(np.float32)
    return x, _lstm(x, kernels, recurrents, biases, _sigmoid)


def write_theano_conv(path: Path, tf_keras):
    """A Keras 2 HDF5 as the Theano backend wrote it: convolution kernels stored flipped."""
    L = tf_keras.layers
    model = tf_keras.Sequential([L.InputLayer((6, 6, 2), name="image"),
                                 L.Conv2D(3, 3, name="conv"), L.Flatten(name="flat")])
    model.set_weights([RNG.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
    x = RNG.standard_normal((2, 6, 6, 2)).astype(np.float32)
    golden = model.predict(x, verbose=0)
    model.save(path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["backend"] = b"theano"
        handle.attrs["keras_version"] = b"2.1.6"
        weights = handle["model_weights"]
        weights.attrs["backend"] = b"theano"
        kernel = weights["conv"]["conv"]["kernel:0"]
        kernel[...] = kernel[()][::-1, ::-1]
    return x, golden


def write_keras1_theano_conv(path: Path, keras, filters: int = 5):
    """Keras 1.2.2 on Theano: Convolution2D with `th` dim ordering, kernel stored as
    (filters, channels, rows, cols) and flipped (Theano convolves, TensorFlow correlates).
    The 6x6 input gives a 4x4 output."""
    kernel = RNG.standard_normal((3, 3, 2, filters)).astype(np.float32)  # TensorFlow layout
    bias = RNG.standard_normal(filters).astype(np.float32)
    stored = np.transpose(kernel[::-1, ::-1], (3, 2, 0, 1))
    conv = {"class_name": "Convolution2D", "config": {
        "name": "convolution2d_1", "nb_filter": filters, "nb_row": 3, "nb_col": 3,
        "init": "glorot_uniform", "activation": "linear", "border_mode": "valid",
        "subsample": [1, 1], "dim_ordering": "th", "W_regularizer": None, "b_regularizer": None,
        "activity_regularizer": None, "W_constraint": None, "b_constraint": None, "bias": True,
        "batch_input_shape": [None, 2, 6, 6], "input_dtype": "float32", "trainable": True}}
    flatten = {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}}
    config = {"class_name": "Sequential", "config": [conv, flatten]}
    _write_model_file(path, config, [
        ("convolution2d_1", [("convolution2d_1_W", stored), ("convolution2d_1_b", bias)]),
        ("flatten_1", []),
    ], "1.2.2", backend="theano")
    golden_model = keras.Sequential([keras.Input((2, 6, 6)),
                                     keras.layers.Conv2D(filters, 3, data_format="channels_first"),
                                     keras.layers.Flatten()])
    golden_model.layers[0].set_weights([kernel, bias])
    x = RNG.standard_normal((2, 2, 6, 6)).astype(np.float32)
    return x, np.asarray(golden_model(x))


def _gru(x, kernel, recurrent, bias, gate):
    """A numpy Keras 2.0 GRU (reset before the recurrent product); gates z, r, h in order."""
    units = recurrent.shape[0]
    k, u, b = np.hsplit(kernel, 3), np.hsplit(recurrent, 3), np.split(bias, 3)
    h = np.zeros((x.shape[0], units))
    for t in range(x.shape[1]):
        z = gate(x[:, t] @ k[0] + h @ u[0] + b[0])
        r = gate(x[:, t] @ k[1] + h @ u[1] + b[1])
        candidate = np.tanh(x[:, t] @ k[2] + (r * h) @ u[2] + b[2])
        h = z * h + (1 - z) * candidate
    return h


def write_keras204_embedding_gru(path: Path):
    """Keras 2.0.4 Sequential (a bare layer list): Embedding -> GRU -> Dense(sigmoid).

    Keras 2.0 stored the Embedding's *input* dtype as the layer's dtype ("int32"), and its GRU
    had no `reset_after` (it reset before the recurrent product, as `reset_after=False` does).
    """
    vocab, dim, units, steps = 12, 5, 4, 6
    table = RNG.standard_normal((vocab, dim))
    kernel, recurrent = RNG.standard_normal((dim, 3 * units)) * 0.5, RNG.standard_normal((units, 3 * units)) * 0.5
    bias, w, b = RNG.standard_normal(3 * units) * 0.5, RNG.standard_normal((units, 1)), RNG.standard_normal(1)
    uniform = {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05, "seed": None}}
    glorot = {"class_name": "VarianceScaling", "config": {
        "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
    config = {"class_name": "Sequential", "keras_version": "2.0.4", "backend": "tensorflow", "config": [
        {"class_name": "Embedding", "config": {
            "name": "embedding_1", "trainable": True, "batch_input_shape": [None, steps],
            "dtype": "int32", "input_dim": vocab, "output_dim": dim, "embeddings_initializer": uniform,
            "embeddings_regularizer": None, "activity_regularizer": None,
            "embeddings_constraint": None, "mask_zero": False, "input_length": steps}},
        {"class_name": "GRU", "config": {
            "name": "gru_1", "trainable": True, "return_sequences": False, "go_backwards": False,
            "stateful": False, "unroll": False, "implementation": 0, "units": units,
            "activation": "tanh", "recurrent_activation": "hard_sigmoid", "use_bias": True,
            "kernel_initializer": glorot, "recurrent_initializer": {"class_name": "Orthogonal",
                                                                    "config": {"gain": 1.0, "seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "recurrent_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
            "dropout": 0.0, "recurrent_dropout": 0.0}},
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "units": 1, "activation": "sigmoid",
            "use_bias": True, "kernel_initializer": glorot,
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
    ]}
    _write_model_file(path, config, [
        ("embedding_1", [("embedding_1/embeddings:0", table)]),
        ("gru_1", [("gru_1/kernel:0", kernel), ("gru_1/recurrent_kernel:0", recurrent),
                   ("gru_1/bias:0", bias)]),
        ("dense_1", [("dense_1/kernel:0", w), ("dense_1/bias:0", b)]),
    ], "2.0.4")
    tokens = RNG.integers(0, vocab, (3, steps))
    hidden = _gru(table[tokens], kernel, recurrent, bias, _hard_sigmoid)
    return tokens.astype(np.float32), _sigmoid(hidden @ w + b)
