"""What loading an artifact yields: a Keras 3 model and what the source itself computes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# name -> array, for inputs and for outputs alike.
Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: name, shape (None for unknown dims, or for an unknown
    rank) and dtype name."""

    name: str
    shape: tuple | None
    dtype: str

    def as_dict(self) -> dict:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "shape": shape, "dtype": self.dtype}


@dataclass
class LoadOptions:
    """How to read an artifact: companion files, custom classes, and the safety switch."""

    source_format: str | None = None
    weights: Path | None = None
    architecture: Path | None = None
    custom_objects: dict = field(default_factory=dict)
    unsafe: bool = False
    by_name: bool = False
    skip_mismatch: bool = False


@dataclass
class SaveOptions:
    """How to write: the format, whether a config format skips its weights file, and for
    which Keras version."""

    format: str
    config_only: bool = False
    keras_compat: int | None = None  # 2: an HDF5 that tf-keras (Keras 2) loads
    notes: list[str] = field(default_factory=list)  # what the writer had to change


@dataclass
class LoadedModel:
    """A loaded artifact.

    Attributes:
        model: the Keras 3 model, or None for a SavedModel without Keras metadata.
        format: the format it was read as.
        path: where it was read from.
        reference: computes what the *source* computes (tf-keras for Keras 2 artifacts, the
            SavedModel signature for plain SavedModels, else the model itself); verification
            compares against this, never against a translation of it.
        inputs / outputs: the specs verification builds inputs from and pairs outputs by.
        keras_version: the writer's Keras version when known.
        notes: repairs and remarks worth reporting (translated arguments, dropped training state).
        weights_report: for weights loaded by name, which layers received weights.
        weights_loaded: False when only an architecture was read (JSON/YAML with no weights).
        route: how the model reached kexport: "keras3" (a Keras 3 model, translated or not),
            "tf-keras" (tf-keras's model only: Keras 3 cannot express it), or "signature" (a
            SavedModel read as its serving signature).
        native: with no Keras 3 model, what a SavedModel is written from (tf-keras's model, or
            the source SavedModel folder); None when nothing can write one.
        keras3_refusal: with no Keras 3 model, the error that says why (raised when a Keras
            format is asked for).
    """

    model: object | None
    format: str
    path: Path
    reference: Callable[[Tensors], Tensors]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    keras_version: str | None = None
    notes: list[str] = field(default_factory=list)
    weights_report: dict | None = None
    weights_loaded: bool = True  # False for an architecture read without its weights
    custom_objects: dict = field(default_factory=dict)  # what reading it took; re-reads need it
    route: str = "keras3"
    native: object | None = None
    keras3_refusal: Exception | None = None
