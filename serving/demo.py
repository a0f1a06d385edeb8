"""`make demo`: the main job on built-in defaults, run through the real `kexport` command line.

Builds a small seeded image classifier, converts it through every format (each step verified),
slices a feature extractor out of it, bundles both for TensorFlow Serving, starts `kexport serve`
on the bundle in the background, predicts over gRPC and over TF Serving's REST API with the
standalone client script, prints the results and stops the server. Every command is printed before it runs.

Usage: python -m serving.demo OUT_DIR [--bundle-only]
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


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


def slice_and_bundle(out: Path) -> Path:
    """Cut a feature extractor at `block2_pool`, bundle classifier and extractor together."""
    kexport("slice", out / "sample.keras", out / "features.keras", "--output", "block2_pool",
            "--force")
    bundle = out / "bundle"
    kexport("bundle", bundle, "--model", f"classifier={out / 'sample.keras'}@1",
            "--model", f"features={out / 'features.keras'}@1", "--warmup", "4", "--force")
    kexport("inspect", bundle)
    return bundle


def write_images(out: Path, count: int = 3) -> list[Path]:
    """A few seeded 32x32 RGB PNG images for the client to send."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = out / f"image_{index}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def serve_and_predict(out: Path, bundle: Path) -> None:
    """Start `kexport serve` on free ports, predict with serving/client.py over gRPC and REST,
    stop the server."""
    command = [sys.executable, "-m", "exporter.cli", "serve", str(bundle), "--port", "0",
               "--rest_api_port", "0", "--json"]
    print(f"\n$ kexport serve {bundle} --port 0 --rest_api_port 0 --json &", flush=True)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line:
            sys.exit("demo: `kexport serve` stopped before it was ready")
        ready = json.loads(line)
        target, rest_url = ready["address"], ready["rest_url"]
        images = write_images(out)
        labels = out / "labels.txt"  # class names for --top (nothing is downloaded at run time)
        labels.write_text("\n".join(CLASS_NAMES) + "\n")
        import serving.client  # the script ships inside the package: a wheel install runs it too

        client = [sys.executable, serving.client.__file__]
        classify = ["--model", "classifier", "--preprocess", "tf", "--top", "3", "--labels",
                    str(labels), *map(str, images)]
        for args in (
            ["--target", target, *classify],
            ["--target", target, "--model", "features", "--preprocess", "tf", "--output",
             f"npz:{out / 'features.npz'}", str(images[0])],
            ["--rest", rest_url, *classify],  # the same answer over TF Serving's REST API
        ):
            print(f"\n$ python serving/client.py {' '.join(args)}", flush=True)
            result = subprocess.run(client + args, check=False)
            if result.returncode != 0:
                sys.exit(f"demo: the client failed with exit code {result.returncode}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        print(f"\ndemo: server stopped (exit code {server.returncode})", flush=True)


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "demo-out").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"demo: building a sample model in {out}", flush=True)
    build_sample_model(out / "sample.keras")
    if "--bundle-only" in argv:
        kexport("slice", out / "sample.keras", out / "features.keras", "--output", "block2_pool")
        slice_and_bundle(out)
        return
    convert_through_every_format(out)
    bundle = slice_and_bundle(out)
    serve_and_predict(out, bundle)
    print("\ndemo: done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
