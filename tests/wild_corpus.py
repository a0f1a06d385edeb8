"""The keras-wild corpus (../shared/fixtures/keras-wild): every artifact and what kexport must do.

One row per artifact other projects saved (its README has the writers and the sources). A row
either converts and matches its reference outputs (`reference*.npz`: inputs `x_i`, outputs `y_i`
in model order) or is refused with a pinned exit code and reason. Shared by tests/test_wild.py
and `make bench-wild`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WILD = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "keras-wild"


@dataclass(frozen=True)
class WildCase:
    """One artifact of the corpus.

    Attributes:
        id: test id.
        source: path inside keras-wild.
        weights: companion weights file (JSON architectures).
        reference: the npz to match; None when no loader could write one.
        weak: the reference's outputs are saturated: compare by relative difference only.
        refused: (exit code, words of the reason) when kexport must refuse a Keras format.
        savedmodel: also converted to SavedModel in the default test run (a representative
            subset; bench-wild converts every case to both).
        slow: over ~10 s here (large activations, or a MobileNet's config rebuilt per repair):
            marked slow, still run in CI.
        rtol: relative tolerance. The transformer normalizes over a single feature (LayerNorm on
            (10, 1)), which turns rounding into signal: Keras 3 traced (SavedModel) and eager
            differ by 1.7e-4 relative on its outputs (tf-keras graph vs eager: 1e-6).
    """

    id: str
    source: str
    weights: str | None = None
    reference: str | None = "reference.npz"
    weak: bool = False
    refused: tuple[int, str] | None = None
    savedmodel: bool = False
    slow: bool = False
    rtol: float = 1e-4

    @property
    def path(self) -> Path:
        return WILD / self.source

    @property
    def reference_path(self) -> Path | None:
        return WILD / Path(self.source).parts[0] / self.reference if self.reference else None


CASES = [
    WildCase("keras1_nvidia", "keras1_nvidia_k121/model.h5", reference=None, savedmodel=True),
    WildCase("keras1_merge_branches", "keras1_merge_branches_k110/model.h5", reference=None),
    WildCase("keras1_merge_branches_json", "keras1_merge_branches_k110/model.json",
             weights="keras1_merge_branches_k110/model.h5", reference=None),
    WildCase("theano_lstm", "theano_vs_tf_lstm_k213/pollution_theano.h5", savedmodel=True),
    WildCase("tf_lstm", "theano_vs_tf_lstm_k213/pollution_tensorflow.h5",
             reference="reference_pollution_tensorflow.npz"),
    WildCase("json_weights_crop_bn", "json_weights_crop_bn_k231/model.json",
             weights="json_weights_crop_bn_k231/model.h5", reference="reference_uniform255.npz"),
    WildCase("sepconv_xception", "sepconv_big_xception_k205/fer2013_big_XCEPTION.54-0.66.hdf5"),
    WildCase("s2s_decoder_states", "s2s_decoder_embed_states_k224/decoder_model.h5"),
    WildCase("gru_decoder_state", "gru_decoder_state_tf24/decoder_model.h5"),
    WildCase("bilstm", "bilstm_k224/bilstm.h5", weak=True, slow=True),
    WildCase("convlstm_video", "convlstm_timedist_tf27/convlstm_model.h5", weak=True, slow=True),
    WildCase("convlstm_k37_h5", "convlstm_k37_h5/convlstm_model.h5"),
    WildCase("dcgan_generator", "dcgan_generator_convT_tf23/generator.h5", savedmodel=True),
    WildCase("triplet_shared_nested", "triplet_shared_nested_tf25/siamese.h5"),
    WildCase("mha_tfoplambda", "mha_tfoplambda_tf28/transformer_model.h5", rtol=1e-3, slow=True),
    WildCase("mha_k310_h5", "mha_k310_h5/transformer_model.h5", reference=None),
    WildCase("k392_multiinput", "k392_multiinput_embed_lstm/lstm_tree_model.keras"),
    WildCase("k300_autoencoder", "k300_conv_autoencoder/autoencoder.keras", slow=True),
    WildCase("winkeras_convT", "winkeras_convT_tf2131/autoencoder.keras",
             reference="reference_repaired.npz", savedmodel=True),
    WildCase("winkeras_lstm", "winkeras_lstm_tf214/my_model.keras",
             reference="reference_repaired.npz"),
    WildCase("spam_h5", "spam_mlp_tf215_three_formats/spam_classifier_model.h5", weak=True),
    WildCase("spam_savedmodel", "spam_mlp_tf215_three_formats/my_model_tf",
             reference="reference_my_model_tf.npz"),
    WildCase("spam_pickle", "spam_mlp_tf215_three_formats/my_model.keras", reference=None,
             refused=(3, "is a Python pickle")),
    WildCase("savedmodel_tf21_zerodce", "savedmodel_nometa_tf21_zerodce/my_model",
             reference=None, slow=True),
    WildCase("savedmodel_tf22_conv1d", "savedmodel_nometa_tf22_conv1d/my_model", savedmodel=True),
    WildCase("savedmodel_tf241_augment", "savedmodel_nometa_tf241_augment/my_model",
             reference="reference_tf_signature.npz", savedmodel=True,
             refused=(2, "tf-keras cannot revive")),
    WildCase("savedmodel_tf28_mobilenet", "savedmodel_tf28_mobilenet_nested/model", slow=True),
    WildCase("hdf5_named_keras", "hdf5_named_dot_keras_k220/model.keras"),
    WildCase("tm_mobilenet_nested", "tm_mobilenet_nested_tf24/keras_model.h5", slow=True),
]


def reference_arrays(case: WildCase) -> tuple[list, list]:
    """The case's reference inputs `x_0, x_1, ...` and outputs `y_0, y_1, ...`, in order."""
    import numpy as np

    with np.load(case.reference_path) as archive:
        count = {prefix: sum(key.startswith(prefix) for key in archive.files) for prefix in "xy"}
        return ([archive[f"x_{i}"] for i in range(count["x"])],
                [archive[f"y_{i}"] for i in range(count["y"])])


def mismatches(actual: list, expected: list, case: WildCase) -> list[str]:
    """Outputs that differ: |a - y| > rtol |y| (+ 1e-5 max|y| unless the reference is weak)."""
    import numpy as np

    if len(actual) != len(expected):
        return [f"{len(actual)} outputs, expected {len(expected)}"]
    problems = []
    for index, (got, want) in enumerate(zip(actual, expected)):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        atol = 0.0 if case.weak else 1e-5 * float(np.max(np.abs(want)))
        if got.shape != want.shape:
            problems.append(f"y_{index}: shape {got.shape} != {want.shape}")
        elif not np.allclose(got, want, rtol=max(case.rtol, 1e-4), atol=atol):
            problems.append(f"y_{index}: max abs diff {np.max(np.abs(got - want)):.3g}")
    return problems
