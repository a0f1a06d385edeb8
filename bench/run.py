"""`make bench`: every benchmark side by side in one run, printed as one table of ratios.

The machine is shared and noisy, so each benchmark alternates kexport and its baseline and
reports medians; the ratio is what is compared with the goal, not absolute times.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.measure import Row, compare, print_table
from bench.serving import serving_rows

OUT = Path("bench-out").resolve()
BIN = Path(sys.executable).parent


def startup_rows(model_h5: Path) -> list[Row]:
    """`kexport --help` and `kexport inspect x.h5` against TensorFlow's `saved_model_cli --help`."""
    tf_cli = [str(BIN / "saved_model_cli"), "--help"]
    rows = []
    for label, command in (
        ("start-up: kexport --help", [str(BIN / "kexport"), "--help"]),
        ("start-up: kexport inspect model.h5", [str(BIN / "kexport"), "inspect", str(model_h5)]),
    ):
        # saved_model_cli --help exits non-zero (absl's help convention): time it regardless.
        ours, base = compare(command, tf_cli, repeats=5, check_theirs=False)
        rows.append(Row(f"{label} vs saved_model_cli --help (time)", ours.seconds, base.seconds, "s", "<= 0.10"))
    return rows


PLAIN_EXPORT = (
    "import sys, keras; m = keras.models.load_model(sys.argv[1], compile=False); "
    "m.export(sys.argv[2], format='tf_saved_model')"
)


def conversion_rows(model_h5: Path) -> list[Row]:
    """MobileNetV2 .h5 -> SavedModel, verified, against plain load_model + export."""
    ours = [str(BIN / "kexport"), "convert", str(model_h5), str(OUT / "ours_sm"), "--force", "--quiet"]
    plain = [sys.executable, "-c", PLAIN_EXPORT, str(model_h5), str(OUT / "plain_sm")]
    mine, base = compare(ours, plain, repeats=2)
    return [
        Row("convert MobileNetV2 h5->savedmodel +verify (time)", mine.seconds, base.seconds, "s", "<= 1.3"),
        Row("convert MobileNetV2 h5->savedmodel +verify (peak)", mine.peak_mb, base.peak_mb, "M", "<= 1.3"),
    ]


def build_models() -> Path:
    """A Keras-built MobileNetV2 (random weights, 224x224) saved as legacy HDF5."""
    model_h5 = OUT / "mobilenet_v2.h5"
    if not model_h5.exists():
        from exporter.runtime import keras_module

        keras = keras_module()
        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)).save(model_h5)
    return model_h5


def main() -> None:
    OUT.mkdir(exist_ok=True)
    model_h5 = build_models()
    rows = startup_rows(model_h5)
    rows += conversion_rows(model_h5)
    rows += serving_rows(OUT, model_h5)
    print_table(rows)


if __name__ == "__main__":
    main()
