"""Models from the wild: `convert --to keras` over a folder of artifacts old and new Keras wrote.

Prints one table: per artifact whether kexport loaded it as it was, loaded it with repairs,
refused it (with the reason and exit code) or crashed (anything else: must stay at zero), and
whether plain `keras.models.load_model` (Keras 3) loads the same file. Run: `make bench-wild`.
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


def kexport_outcome(artifact: Artifact, out: Path) -> tuple[str, str]:
    """(loaded | repaired | refused | crashed, detail) for one `convert --to keras`."""
    from exporter.convert import convert
    from exporter.errors import KexportError
    from exporter.loaded import LoadOptions

    destination = out / (artifact.path.name.replace(".", "_") + (".json" if artifact.config_only else ".keras"))
    try:
        result = convert(artifact.path, destination, options=LoadOptions(weights=artifact.weights),
                         force=True, config_only=artifact.config_only)
    except KexportError as error:
        return "refused", f"exit {error.exit_code}: {str(error)[:90]}"
    except Exception as error:  # noqa: BLE001 - a crash is exactly what this counts
        return "crashed", f"{type(error).__name__}: {str(error)[:90]}"
    rules = sorted({note.split(":")[0] for note in result.notes})
    return ("repaired", ", ".join(rules)) if rules else ("loaded", "")


def plain_keras_loads(artifact: Artifact) -> bool:
    from exporter.runtime import keras_module, quiet_stdout

    keras = keras_module()
    try:
        with quiet_stdout():
            if artifact.path.suffix in (".json", ".yaml"):
                model = keras.models.model_from_json(artifact.path.read_text())
                if artifact.weights:
                    model.load_weights(artifact.weights)
            else:
                keras.models.load_model(artifact.path, compile=False)
    except Exception:  # noqa: BLE001 - any failure means "does not load"
        return False
    return True


def main() -> None:
    root = Path("bench-out/wild").resolve()
    artifacts = build_folder(root / "artifacts")
    (root / "converted").mkdir(exist_ok=True)
    counts = {"loaded": 0, "repaired": 0, "refused": 0, "crashed": 0}
    plain = 0
    print(f"{'artifact':<44} {'kexport':<9} {'plain keras':<11} detail")
    for artifact in artifacts:
        outcome, detail = kexport_outcome(artifact, root / "converted")
        loads = plain_keras_loads(artifact)
        counts[outcome] += 1
        plain += loads
        print(f"{artifact.path.name[:44]:<44} {outcome:<9} {'yes' if loads else 'no':<11} {detail}")
    total = len(artifacts)
    print(f"\n{total} artifacts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"kexport loads {counts['loaded'] + counts['repaired']}/{total} "
          f"({(counts['loaded'] + counts['repaired']) / total:.0%}); plain keras.models.load_model "
          f"loads {plain}/{total} ({plain / total:.0%}); crashes: {counts['crashed']} (goal 0)")


if __name__ == "__main__":
    main()
