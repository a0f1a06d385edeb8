"""Models from the wild: real files other projects saved, and a folder of old and new layouts.

Per artifact, side by side: what kexport does (`convert` to `.keras`; when that is refused, to a
SavedModel), what plain `keras.models.load_model` and `tf_keras.models.load_model` do, and for
the keras-wild corpus whether the written model reproduces the reference outputs. kexport's
outcomes: loaded (as is), repaired (translated; the rules are listed), via tf-keras only (a
SavedModel from tf-keras's model: Keras 3 cannot express it), signature only (a SavedModel
without a Keras model, copied), refused (with exit code and reason), crashed (must stay at 0).
Plain loaders are not run on artifacts that carry code (Lambda bytecode, pickles).
Run: `make bench-wild` (add `--corpus-only` to skip the generated folder).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "keras-real"


@dataclass
class Artifact:
    path: Path
    weights: Path | None = None
    config_only: bool = False
    case: object | None = None  # the keras-wild corpus row (tests/wild_corpus.py), if any
    label: str = ""


def corpus_artifacts() -> list[Artifact]:
    """Every keras-wild case, with its weights file and reference."""
    sys.path.insert(0, str(REPO))
    from tests.wild_corpus import CASES, WILD

    return [Artifact(case.path, WILD / case.weights if case.weights else None, case=case,
                     label=case.id) for case in CASES]


def build_folder(root: Path) -> list[Artifact]:
    """Write the artifacts: tf-keras (Keras 2) models, old layouts, Keras 3 models, fixtures."""
    sys.path.insert(0, str(REPO))
    from exporter.runtime import keras_module, tf_keras_module
    from tests import old_writers
    from tests.conftest import keras2_models, keras3_models

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    artifacts = []
    for name, model in keras2_models(tf_keras_module()).items():
        model.save(root / f"k2_{name}.h5")
        model.save(root / f"k2_{name}_savedmodel")
        artifacts += [Artifact(root / f"k2_{name}.h5"), Artifact(root / f"k2_{name}_savedmodel")]
    for name, model in keras3_models(keras_module()).items():
        model.save(root / f"k3_{name}.keras")
        model.save(root / f"k3_{name}.h5")
        artifacts += [Artifact(root / f"k3_{name}.keras"), Artifact(root / f"k3_{name}.h5")]
    for writer in ("write_keras1_mlp", "write_keras1_lstm", "write_cudnn_lstm"):
        getattr(old_writers, writer)(root / f"{writer}.h5")
        artifacts.append(Artifact(root / f"{writer}.h5"))
    old_writers.write_theano_conv(root / "theano_conv.h5", tf_keras_module())
    old_writers.write_keras1_theano_conv(root / "keras1_theano_conv.h5", keras_module())
    artifacts += [Artifact(root / "theano_conv.h5"), Artifact(root / "keras1_theano_conv.h5")]
    artifacts += _op_layer_models(root, tf_keras_module())
    hls = FIXTURES / "hls4ml_example_models"
    artifacts += [
        Artifact(hls / "jetTagger_Conv2D_Small.json", hls / "jetTagger_Conv2D_Small_weights.h5"),
        Artifact(hls / "keras_bnn.json", hls / "keras_bnn_weights.h5"),
        Artifact(FIXTURES / "megana_mnist_yaml" / "model.yaml", config_only=True),
        Artifact(FIXTURES / "mnist_tfkeras_savedmodel_0x7a726f"),
        Artifact(FIXTURES / "nnom_mnist_densenet" / "keras_mnist_model.h5"),
    ]
    return [a for a in artifacts if a.path.exists()]


def _op_layer_models(root: Path, tf_keras) -> list[Artifact]:
    """tf.keras models with auto-generated TFOpLambda layers: rewritable ops, and one that is not."""
    from exporter.runtime import tf_module

    tf, L = tf_module(), tf_keras.layers
    x = L.Input((4,), name="x")
    rewritable = tf_keras.Model(x, tf.nn.softmax(tf.reshape(tf.nn.relu(x * 2.0 - 1.0), (-1, 2, 2))))
    rewritable.save(root / "tf_op_layers.h5")
    seq = L.Input((4, 3), name="seq")
    tf_keras.Model(seq, tf.math.reduce_mean(seq, axis=1)).save(root / "tf_op_reduce_mean.h5")
    return [Artifact(root / "tf_op_layers.h5"), Artifact(root / "tf_op_reduce_mean.h5")]


OUTCOMES = ("loaded", "repaired", "via tf-keras only", "signature only", "refused", "crashed")


def _convert(artifact: Artifact, destination: Path):
    from exporter.convert import convert
    from exporter.model_types import LoadOptions

    case = artifact.case
    return convert(artifact.path, destination, options=LoadOptions(weights=artifact.weights),
                   force=True, config_only=artifact.config_only,
                   inputs_file=case.reference_path if case else None,
                   rtol=case.rtol if case else 1e-4)


def kexport_outcome(artifact: Artifact, out: Path) -> tuple[str, str, Path | None]:
    """(outcome, detail, written .keras or None): `convert` to .keras, else to a SavedModel."""
    from exporter.errors import KexportError

    stem = out / (artifact.label or artifact.path.name.replace(".", "_"))
    destination = stem.with_suffix(".json" if artifact.config_only else ".keras")
    try:
        try:
            result = _convert(artifact, destination)
        except KexportError as refusal:
            try:
                result = _convert(artifact, stem.with_name(stem.name + "_savedmodel"))
            except KexportError:
                return "refused", f"exit {refusal.exit_code}: {str(refusal)[:90]}", None
            route = {"tf-keras": "via tf-keras only", "signature": "signature only"}[result.route]
            return route, f"keras refused (exit {refusal.exit_code}): {str(refusal)[:70]}", None
    except Exception as error:  # noqa: BLE001 - a crash is exactly what this counts
        return "crashed", f"{type(error).__name__}: {str(error)[:90]}", None
    rules = sorted({note.split(":")[0] for note in result.notes})
    return ("repaired" if rules else "loaded"), ", ".join(rules), destination


def carries_code(artifact: Artifact) -> bool:
    """Lambda bytecode or a pickle: plain loaders would run it, so they are not tried."""
    from exporter.errors import KexportError
    from exporter.formats.detection import detect
    from exporter.safety import check_safe

    try:
        check_safe(detect(artifact.path), unsafe=False)
    except KexportError as error:
        return error.exit_code == 3
    return False


def plain_load(artifact: Artifact, library: str) -> str:
    """'yes' / 'no' for `keras` or `tf_keras` loading the artifact as a user would."""
    from exporter.runtime import keras_module, quiet_stdout, tf_keras_module

    keras = keras_module() if library == "keras" else tf_keras_module()
    try:
        with quiet_stdout():
            if artifact.path.suffix in (".json", ".yaml"):
                model = keras.models.model_from_json(artifact.path.read_text())
                if artifact.weights:
                    model.load_weights(artifact.weights)
            else:
                keras.models.load_model(artifact.path, compile=False)
    except Exception:  # noqa: BLE001 - any failure means "does not load"
        return "no"
    return "yes"


def matches_reference(artifact: Artifact, written: Path | None) -> str:
    """For corpus cases: does the written .keras reproduce the reference outputs?"""
    from tests.wild_corpus import mismatches, reference_arrays

    case = artifact.case
    if case is None or case.reference is None:
        return "-"
    if written is None or not written.exists():
        return "n/a"
    from exporter.runtime import keras_module

    xs, ys = reference_arrays(case)
    model = keras_module().models.load_model(written, compile=False)
    got = model(xs if len(xs) > 1 else xs[0], training=False)
    return "NO" if mismatches(got if isinstance(got, (list, tuple)) else [got], ys, case) else "yes"


def main() -> None:
    root = Path("bench-out/wild").resolve()
    artifacts = corpus_artifacts()
    if "--corpus-only" not in sys.argv:
        artifacts += build_folder(root / "artifacts")
    (root / "converted").mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(OUTCOMES, 0)
    plain = {"keras": 0, "tf_keras": 0}
    print(f"{'artifact':<34} {'kexport':<18} {'keras':<6} {'tf_keras':<8} {'ref':<4} detail")
    for artifact in artifacts:
        outcome, detail, written = kexport_outcome(artifact, root / "converted")
        code = carries_code(artifact)
        loads = {lib: "code" if code else plain_load(artifact, lib) for lib in plain}
        ref = matches_reference(artifact, written)
        counts[outcome] += 1
        for lib, answer in loads.items():
            plain[lib] += answer == "yes"
        name = (artifact.label or artifact.path.name)[:34]
        print(f"{name:<34} {outcome:<18} {loads['keras']:<6} {loads['tf_keras']:<8} {ref:<4} "
              f"{detail}", flush=True)
    total = len(artifacts)
    served = total - counts["refused"] - counts["crashed"]
    print(f"\n{total} artifacts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"kexport converts {counts['loaded'] + counts['repaired']}/{total} to .keras and serves "
          f"{served}/{total} as a SavedModel; plain keras.models.load_model loads "
          f"{plain['keras']}/{total}, tf_keras.models.load_model {plain['tf_keras']}/{total}; "
          f"crashes: {counts['crashed']} (goal 0)")


if __name__ == "__main__":
    main()
