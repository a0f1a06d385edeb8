"""Bring configs written by Keras 1 (and layers Keras 2 later dropped) to what tf-keras builds.

tf-keras still converts old *weights* when it loads them (Keras 1 per-gate recurrent weights,
`th` kernel layouts, cuDNN RNN weights, all told apart by shape), but it no longer builds old
*configs*. This module renames Keras 1 arguments and classes the way Keras 2's legacy interfaces
did, and turns `CuDNNLSTM`/`CuDNNGRU` into the `LSTM`/`GRU` that compute the same; tf-keras then
builds the model and loads the file's weights into it, and that reading is the reference the
Keras 3 translation is verified against. Every change is a note `"<rule>: <layer>: <detail>"`.
"""

from __future__ import annotations

import copy

from exporter.errors import BadInputError
from exporter.legacy.graph import MODEL_CLASSES
from exporter.legacy.translate import layer_objects

CLASS_RENAMES = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "AtrousConvolution1D": "Conv1D",
    "AtrousConvolution2D": "Conv2D",
    "Deconvolution2D": "Conv2DTranspose",
    "SeparableConvolution2D": "SeparableConv2D",
}

# Keras 1 argument -> Keras 2 argument, for every layer that had it.
COMMON_RENAMES = {
    "init": "kernel_initializer",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "bias": "use_bias",
    "border_mode": "padding",
    "subsample": "strides",
    "subsample_length": "strides",
    "filter_length": "kernel_size",
    "pool_length": "pool_size",
    "stride": "strides",
    "nb_filter": "filters",
    "atrous_rate": "dilation_rate",
    "input_dtype": "dtype",
    "inner_init": "recurrent_initializer",
    "inner_activation": "recurrent_activation",
    "U_regularizer": "recurrent_regularizer",
    "U_constraint": "recurrent_constraint",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "beta_init": "beta_initializer",
    "gamma_init": "gamma_initializer",
}
# Arguments whose Keras 2 name depends on the layer.
LAYER_RENAMES = {
    "Dense": {"output_dim": "units"},
    "LSTM": {"output_dim": "units"},
    "GRU": {"output_dim": "units"},
    "SimpleRNN": {"output_dim": "units"},
    "Dropout": {"p": "rate"},
    "SpatialDropout1D": {"p": "rate"},
    "SpatialDropout2D": {"p": "rate"},
    "Embedding": {"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                  "W_constraint": "embeddings_constraint"},
}
DATA_FORMATS = {"tf": "channels_last", "th": "channels_first", "default": None}
IMPLEMENTATIONS = {"cpu": 0, "mem": 1, "gpu": 2}
MERGE_MODES = {"sum": "Add", "concat": "Concatenate", "mul": "Multiply", "ave": "Average",
               "max": "Maximum", "dot": "Dot"}
# Keras 1 arguments that shape nothing the converted model computes (their meaning, where they
# had one, is carried by the arguments set from them above).
DROPPED = ("W_learning_rate_multiplier", "b_learning_rate_multiplier", "cache_enabled",
           "forget_bias_init", "consume_less", "mode")
DROPPED_BY_CLASS = {"Embedding": ("dropout",)}


def needs_pretranslation(config: dict, keras_version: str | None) -> bool:
    """True for Keras 1 configs and configs holding layers Keras 2.3+ dropped."""
    if str(keras_version or "").startswith("1"):
        return True
    inner = config.get("config")
    if isinstance(inner, list):  # Keras 1 Sequential: a bare list of layers
        return True
    return any(
        obj.get("class_name") in CLASS_RENAMES
        or obj.get("class_name") in ("Merge", "CuDNNLSTM", "CuDNNGRU")
        or _keras20_layer(obj)
        for obj in layer_objects(config)
    )


def _keras20_layer(obj: dict) -> bool:
    """Keras 2.0/2.1 layers tf-keras builds differently: an Embedding whose dtype names its
    integer input, a GRU from before `reset_after` existed."""
    cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    if obj.get("class_name") == "Embedding":
        return str(cfg.get("dtype", "")).startswith(("int", "uint"))
    return obj.get("class_name") == "GRU" and "reset_after" not in cfg


def pretranslate(config: dict, notes: list[str]) -> dict:
    """A copy of `config` that tf-keras builds: Keras 1 names and dropped layers translated."""
    config = copy.deepcopy(config)
    if isinstance(config.get("config"), list):
        config["config"] = {"name": "sequential", "layers": config["config"]}
        notes.append("legacy-sequential: model: Keras 1-2.1 layer list wrapped into a Sequential "
                     "config")
    if _first_layer_merges_branches(config):
        config = _branches_to_functional(config, notes)
    _give_embedding_input_its_dtype(config, notes)
    for obj in list(layer_objects(config)):
        _translate_layer(obj, notes)
    return config


def _give_embedding_input_its_dtype(config: dict, notes: list[str]) -> None:
    """Keras 2.0 put an Embedding-first Sequential's input dtype on the Embedding: an InputLayer
    carries it now (token ids stay integers), and the Embedding's table becomes float."""
    layers = config.get("config", {}).get("layers") if config.get("class_name") == "Sequential" else None
    first = layers[0] if isinstance(layers, list) and layers else None
    cfg = first.get("config") if isinstance(first, dict) else None
    if (not isinstance(cfg, dict) or first.get("class_name") != "Embedding"
            or not _keras20_layer(first) or "batch_input_shape" not in cfg):
        return
    name = f"{cfg.get('name', 'embedding')}_input"
    layers.insert(0, {"class_name": "InputLayer", "config": {
        "name": name, "batch_input_shape": cfg.pop("batch_input_shape"), "dtype": cfg["dtype"],
        "sparse": False}})
    notes.append(f"keras20-embedding-input: {cfg.get('name')}: input dtype {cfg['dtype']!r} "
                 f"moved to an InputLayer '{name}'")


def _first_layer_merges_branches(config: dict) -> bool:
    layers = config.get("config", {}).get("layers") if config.get("class_name") == "Sequential" else None
    first = layers[0] if isinstance(layers, list) and layers else None
    branches = first.get("config", {}).get("layers") if isinstance(first, dict) else None
    return (isinstance(branches, list) and first.get("class_name") == "Merge"
            and all(isinstance(b, dict) and b.get("class_name") == "Sequential" for b in branches))


def _branches_to_functional(config: dict, notes: list[str]) -> dict:
    """A Keras 1 Sequential that starts with a Merge of Sequential branches, as the functional
    model it is: one input per branch, each branch's layers in a chain, the Merge joining them,
    the rest after it. Layers keep their names, so the file's weights load by name."""
    layers, inputs, ends = [], [], []
    sequential = config["config"]["layers"]
    merge = sequential[0]
    for branch in merge["config"]["layers"]:
        chain = branch["config"] if isinstance(branch["config"], list) else branch["config"]["layers"]
        chain = copy.deepcopy(chain)
        first = chain[0]["config"]
        name = f"{first.get('name', 'branch')}_input"
        layers.append({"class_name": "InputLayer", "name": name, "inbound_nodes": [], "config": {
            "name": name, "batch_input_shape": first.pop("batch_input_shape"),
            "dtype": first.pop("input_dtype", None) or "float32", "sparse": False}})
        inputs.append([name, 0, 0])
        ends.append(_chain(chain, name, layers))
    merge = {**merge, "name": merge["config"]["name"], "inbound_nodes": [[[end, 0, 0, {}] for end in ends]]}
    layers.append(merge)
    last = _chain(copy.deepcopy(sequential[1:]), merge["name"], layers)
    notes.append(f"keras1-branches: model: Sequential starting with a Merge of {len(inputs)} "
                 "Sequential branches -> functional model with one input per branch")
    return {"class_name": "Model", "config": {
        "name": "model", "layers": layers, "input_layers": inputs, "output_layers": [[last, 0, 0]]}}


def _chain(chain: list[dict], previous: str, layers: list[dict]) -> str:
    """Append `chain` to `layers`, each layer called on the one before; returns the last name."""
    for layer in chain:
        name = layer["config"]["name"]
        layers.append({**layer, "name": name, "inbound_nodes": [[[previous, 0, 0, {}]]]})
        previous = name
    return previous


def _translate_layer(obj: dict, notes: list[str]) -> None:
    cfg = obj.get("config")
    name = cfg.get("name", obj["class_name"]) if isinstance(cfg, dict) else obj["class_name"]
    if not isinstance(cfg, dict) or obj["class_name"] in MODEL_CLASSES:
        return
    old_class = obj["class_name"]
    if old_class in CLASS_RENAMES:
        obj["class_name"] = CLASS_RENAMES[old_class]
        notes.append(f"keras1-class: {name}: {old_class} -> {obj['class_name']}")
    if old_class == "Merge":
        _translate_merge(obj, name, notes)
    if old_class in ("CuDNNLSTM", "CuDNNGRU"):
        _translate_cudnn(obj, name, notes)
    if _keras20_layer(obj):
        _translate_keras20(obj, name, notes)
    class_name = obj["class_name"]
    renames = {**COMMON_RENAMES, **LAYER_RENAMES.get(class_name, {})}
    for old, new in renames.items():
        if old in cfg and new not in cfg:
            cfg[new] = cfg.pop(old)
            notes.append(f"keras1-argument: {name}: {old} -> {new}")
    _translate_values(cfg, class_name, name, notes)


def _translate_values(cfg: dict, class_name: str, name: str, notes: list[str]) -> None:
    if "nb_row" in cfg and "nb_col" in cfg:
        cfg["kernel_size"] = [cfg.pop("nb_row"), cfg.pop("nb_col")]
        notes.append(f"keras1-argument: {name}: nb_row, nb_col -> kernel_size")
    if "dim_ordering" in cfg:
        ordering = cfg.pop("dim_ordering")
        cfg["data_format"] = DATA_FORMATS.get(ordering)
        notes.append(f"keras1-argument: {name}: dim_ordering={ordering!r} -> data_format")
    if "consume_less" in cfg:
        cfg["implementation"] = IMPLEMENTATIONS.get(cfg["consume_less"], 1)
    if cfg.get("forget_bias_init") == "one":
        cfg["unit_forget_bias"] = True
    if class_name == "BatchNormalization" and cfg.get("mode", 0) != 0:
        raise BadInputError(
            f"layer '{name}' is a Keras 1 BatchNormalization in mode {cfg['mode']}; only mode 0 "
            "(feature-wise, what later Keras kept) can be converted."
        )
    for key in DROPPED + DROPPED_BY_CLASS.get(class_name, ()):
        if key in cfg:
            del cfg[key]
            notes.append(f"keras1-dropped: {name}: {key}")
    if isinstance(cfg.get("padding"), str):
        cfg["padding"] = cfg["padding"].lower()


def _translate_keras20(obj: dict, name: str, notes: list[str]) -> None:
    cfg = obj["config"]
    if obj["class_name"] == "Embedding":
        # Its table is float: built as int32, its float initializer cannot even run.
        notes.append(f"keras20-embedding-dtype: {name}: dtype {cfg['dtype']!r} (the input's) "
                     "-> 'float32'; token ids are still cast to integers")
        cfg["dtype"] = "float32"
    else:
        cfg["reset_after"] = False  # what Keras 2.0/2.1's GRU computed
        notes.append(f"keras20-gru: {name}: no reset_after recorded -> reset_after=False")


def _translate_merge(obj: dict, name: str, notes: list[str]) -> None:
    cfg = obj["config"]
    mode = cfg.get("mode")
    if not isinstance(mode, str) or mode not in MERGE_MODES:
        raise BadInputError(
            f"layer '{name}' is a Keras 1 Merge with mode {mode!r}; convertible modes: "
            f"{', '.join(MERGE_MODES)} (a lambda mode would be code)."
        )
    obj["class_name"] = MERGE_MODES[mode]
    kept = {"name": cfg["name"], "trainable": cfg.get("trainable", True)}
    if mode == "concat":
        kept["axis"] = cfg.get("concat_axis", -1)
    if mode == "dot":
        kept["axes"] = cfg.get("dot_axes", -1)
    obj["config"] = kept
    notes.append(f"keras1-merge: {name}: Merge(mode={mode!r}) -> {obj['class_name']}")


def _translate_cudnn(obj: dict, name: str, notes: list[str]) -> None:
    """CuDNNLSTM/CuDNNGRU compute LSTM/GRU with fixed activations; tf-keras converts the
    weights itself when it sees cuDNN-shaped biases (8*units for LSTM, 6*units for GRU)."""
    cfg = obj["config"]
    target = "LSTM" if obj["class_name"] == "CuDNNLSTM" else "GRU"
    obj["class_name"] = target
    cfg.update(activation="tanh", recurrent_activation="sigmoid", use_bias=True)
    if target == "GRU":
        cfg["reset_after"] = True
    notes.append(f"cudnn-layer: {name}: CuDNN{target} -> {target}")
