"""The prediction client against a real local server: inputs of every kind, images with Keras
preprocessing, outputs, errors and exit codes, the standalone script (without TensorFlow) and
`kexport predict`. The server runs in this process, so every test also shows that the client
works where TensorFlow is loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving.client import PredictClient, main
from serving.errors import ServingError
from serving.predict_job import run_predict
from serving.server import start_server
from tests.cli_helpers import run_script_without_tensorflow
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "serving" / "client.py"
CLASSES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead"]


def export_keras_models(models: Path):
    """A two-input two-output model and an image classifier, exported as TF Serving versions
    with a serving_default signature named after the input and output layers."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    features = keras.Input(shape=(4,), name="features")
    scale = keras.Input(shape=(1,), name="scale")
    scaled = keras.layers.Multiply(name="scaled")([keras.layers.Dense(3, name="dense")(features),
                                                   scale])
    total = keras.layers.Dense(1, name="total")(
        keras.layers.Concatenate(name="concat")([features, scale]))
    multi = keras.Model([features, scale], [scaled, total])
    image = keras.Input(shape=(8, 8, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(image)
    classifier = keras.Model(image, keras.layers.Dense(5, activation="softmax", name="probs")(pooled))
    for model, path in ((multi, models / "multi" / "1"), (classifier, models / "image" / "1")):
        specs = {i.name: tf.TensorSpec(i.shape, i.dtype, name=i.name) for i in model.inputs}
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", _named_outputs(model), input_signature=[specs])
        archive.write_out(str(path), verbose=False)
    return multi, classifier


def _named_outputs(model):
    """The serving function: a dict of inputs by layer name in, outputs by layer name out."""
    import keras

    def serve(inputs):
        args = inputs if len(inputs) > 1 else next(iter(inputs.values()))
        return dict(zip(model.output_names, keras.tree.flatten(model(args))))

    return serve


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    bundle = tmp_path_factory.mktemp("bundle")
    multi, classifier = export_keras_models(bundle / "models")
    (bundle / "models" / "half").symlink_to(FIXTURES / "saved_model_half_plus_two_cpu")
    (bundle / "models" / "two").symlink_to(FIXTURES / "saved_model_half_plus_two_2_versions")
    configs = " ".join(f'config {{ name: "{n}" base_path: "/models/{n}" {extra} }}' for n, extra in [
        ("multi", ""), ("image", ""), ("half", ""),
        ("two", 'model_version_policy { all {} } version_labels { key: "stable" value: 123 }')])
    (bundle / "models.config").write_text(f"model_config_list {{ {configs} }}")
    running = start_server(bundle, port=0, poll_seconds=0)
    yield running, multi, classifier
    running.stop()


@pytest.fixture()
def target(setup):
    return setup[0].address


def write_json(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def cli(*args, capsys):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_signature_discovery(target):
    assert "tensorflow" in sys.modules  # the server's TensorFlow shares this process
    with PredictClient(target) as client:
        signature = client.signature("multi")
    assert {n: (s.dtype_name, s.shape) for n, s in signature.inputs.items()} == {
        "features": ("float", (-1, 4)), "scale": ("float", (-1, 1))}
    assert set(signature.outputs) == {"scaled", "total"}


def test_two_inputs_two_outputs_match_keras(setup, target):
    _, multi, _ = setup
    features = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    scale = np.arange(5, dtype=np.float64).reshape(5, 1)  # float64 -> float: lossless cast
    with PredictClient(target) as client:
        result = client.predict("multi", {"features": features, "scale": scale})
    expected = multi([features, scale.astype(np.float32)])
    assert result.version == 1
    np.testing.assert_allclose(result.outputs["scaled"], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.outputs["total"], expected[1], rtol=1e-5, atol=1e-6)


def test_npz_json_npy_and_named_inputs(setup, target, tmp_path, capsys):
    _, multi, _ = setup
    features = np.arange(8, dtype=np.float32).reshape(2, 4)
    scale = np.array([[2.0], [3.0]], np.float32)
    expected = [np.asarray(t) for t in multi([features, scale])]
    np.savez(tmp_path / "in.npz", features=features, scale=scale)
    np.save(tmp_path / "features.npy", features)
    runs = [
        [str(tmp_path / "in.npz")],
        [write_json(tmp_path / "in.json", {"features": features.tolist(), "scale": [[2], [3]]})],
        ["--input", f"features={tmp_path / 'features.npy'}",
         "--input", f"scale={write_json(tmp_path / 'scale.json', [[2.0], [3.0]])}"],
    ]
    for files in runs:
        code, out, err = cli("--target", target, "--model", "multi", *files, capsys=capsys)
        assert code == 0, err
        result = json.loads(out)
        assert result["scaled"]["shape"] == [2, 3] and result["scaled"]["dtype"] == "float32"
        np.testing.assert_allclose(result["scaled"]["values"], expected[0], rtol=1e-5)
        np.testing.assert_allclose(result["total"]["values"], expected[1], rtol=1e-5)
        assert "model multi version 1 signature serving_default" in err


def test_single_input_needs_no_name_and_files_are_batched(target, tmp_path, capsys):
    files = [write_json(tmp_path / f"{i}.json", [[float(i)]]) for i in range(5)]
    files.append(write_json(tmp_path / "rest.json", {"instances": [[10.0], [20.0]]}))
    code, out, err = cli("--target", target, "--model", "half", "--batch-size", "3",
                         "--concurrency", "2", *files, capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["y"]["values"] == [[2.0], [2.5], [3.0], [3.5], [4.0], [7.0], [12.0]]
    assert "predict: 3/3 batches" in err


def test_one_example_gets_a_batch_axis_and_rest_rows_work(setup, target, tmp_path):
    from serving.predict_job import predict_files

    _, multi, _ = setup
    example = write_json(tmp_path / "one.json", [1, 2, 3, 4])  # features of one example
    rows = write_json(tmp_path / "rows.json", {"instances": [
        {"features": [1, 2, 3, 4], "scale": [1]}, {"features": [0, 0, 0, 1], "scale": [2]}]})
    with PredictClient(target) as client:
        one = predict_files(client, "multi", named=[("features", example), (
            "scale", write_json(tmp_path / "s.json", [1]))])
        two = predict_files(client, "multi", files=[rows])
    assert one.outputs["scaled"].shape == (1, 3)
    expected = multi([np.array([[1, 2, 3, 4], [0, 0, 0, 1]], np.float32),
                      np.array([[1], [2]], np.float32)])
    np.testing.assert_allclose(two.outputs["total"], expected[1], rtol=1e-5)


def test_version_and_label(target, tmp_path, capsys):
    x = write_json(tmp_path / "x.json", [[1.0]])
    for flags, version in ([], 124), (["--version", "123"], 123), (["--label", "stable"], 123):
        code, _, err = cli("--target", target, "--model", "two", *flags, x, capsys=capsys)
        assert code == 0 and f"model two version {version} " in err


def image_file(path: Path, seed: int) -> str:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return str(path)


@pytest.mark.parametrize("mode", ["none", "tf", "caffe", "torch"])
def test_images_are_resized_and_preprocessed_like_keras(setup, target, tmp_path, mode):
    import keras
    from keras.applications import imagenet_utils

    _, _, classifier = setup
    files = [image_file(tmp_path / f"{i}.{'png' if i % 2 else 'jpg'}", i) for i in range(3)]
    result = run_predict(target, "image", files=files, preprocess=mode, batch_size=2,
                         concurrency=2)
    pixels = np.stack([keras.utils.img_to_array(keras.utils.load_img(f, target_size=(8, 8)))
                       for f in files])
    x = pixels if mode == "none" else imagenet_utils.preprocess_input(pixels, mode=mode)
    np.testing.assert_allclose(result.prediction.outputs["probs"], classifier(x), rtol=1e-4,
                               atol=1e-6)


def test_top_k_with_labels(target, tmp_path, capsys):
    image = image_file(tmp_path / "cat.png", 7)
    text_labels = tmp_path / "labels.txt"
    text_labels.write_text("\n".join(CLASSES))
    index = write_json(tmp_path / "imagenet_class_index.json",
                       {str(i): [f"n0{i}", name] for i, name in enumerate(CLASSES)})
    with PredictClient(target) as client:
        probs = client.predict("image", np.zeros((1, 8, 8, 3), np.float32)).outputs["probs"]
    assert probs.shape == (1, 5)
    tops = []
    for labels in (str(text_labels), index):
        code, out, err = cli("--target", target, "--model", "image", "--top", "2", "--labels",
                             labels, image, capsys=capsys)
        assert code == 0, err
        tops.append(json.loads(out)["probs"]["top"])
    assert tops[0] == tops[1]
    [[first, second]] = tops[0]
    assert first["score"] >= second["score"] and first["label"] == CLASSES[first["index"]]
    code, out, _ = cli("--target", target, "--model", "image", "--top", "1", "--labels", index,
                       "--output", "table", image, capsys=capsys)
    assert code == 0 and f"#0  1. {first['label']} ({first['index']})" in out


def test_npz_output(target, tmp_path, capsys):
    x = write_json(tmp_path / "x.json", [[1.0], [2.0]])
    out_file = tmp_path / "out" / "y.npz"
    code, out, err = cli("--target", target, "--model", "half", "--output", f"npz:{out_file}", x,
                         capsys=capsys)
    assert code == 0 and out == "" and f"wrote {out_file}" in err
    np.testing.assert_array_equal(np.load(out_file)["y"], [[2.5], [3.0]])
    code, _, err = cli("--target", target, "--model", "half", "--output", f"npz:{out_file}", x,
                       capsys=capsys)
    assert code == 2 and "exists" in err
    assert cli("--target", target, "--model", "half", "--output", f"npz:{out_file}", "--force", x,
               capsys=capsys)[0] == 0


@pytest.mark.parametrize("args, code, message", [
    (["--model", "nope", "{x}"], 4,
     "failed with NOT_FOUND: Servable not found for request: Latest(nope)."),
    (["--model", "half", "--version", "9", "{x}"], 4, "Specific(half, 9)"),
    (["--model", "two", "--label", "nope", "{x}"], 4,
     "INVALID_ARGUMENT: Unrecognized servable version label: nope"),
    (["--model", "half", "--signature", "nope", "{x}"], 4,
     ('Model \'half\' has no signature "nope" (FAILED_PRECONDITION: Serving signature key "nope" '
     'not found.). Its signatures: classify_x_to_y, regress_x2_to_y3, regress_x_to_y, '
     'regress_x_to_y2, serving_default.')),
    (["--model", "multi", "--input", "features={wide}", "--input", "scale={x}"], 4,
     "Predict on model 'multi' failed with INVALID_ARGUMENT: "),
    (["--model", "half", "{text}"], 2, "Input 'x' holds text but the signature expects float."),
    (["--model", "multi", "--input", "featurs={x}"], 2, "Did you mean: features?"),
    (["--model", "multi", "{x}"], 2, "has 2 inputs (features, scale)"),
    (["--model", "half", "{missing}"], 2, "No such file or directory"),
    (["--model", "half", "{ragged}"], 2, "holds a ragged list, not a rectangular array."),
    (["--model", "half"], 2, "No inputs given."),
])
def test_failures_are_one_line_with_exit_codes(target, tmp_path, capsys, args, code, message):
    files = {"x": write_json(tmp_path / "x.json", [[1.0], [2.0]]),
             "wide": write_json(tmp_path / "wide.json", [[1.0] * 5] * 2),
             "text": write_json(tmp_path / "text.json", ["a"]),
             "missing": str(tmp_path / "missing.json"),
             "ragged": write_json(tmp_path / "ragged.json", [[1.0], [2.0, 3.0]])}
    args = [a.format(**files) for a in args]
    got, out, err = cli("--target", target, *args, capsys=capsys)
    assert (got, out) == (code, "")
    assert len(err.strip().splitlines()) == 1 and err.startswith("client.py: error: ")
    assert message in err


def test_unreachable_server_is_exit_4(tmp_path, capsys):
    x = write_json(tmp_path / "x.json", [[1.0]])
    code, _, err = cli("--target", "127.0.0.1:9", "--timeout", "0.5", "--model", "half", x,
                       capsys=capsys)
    assert code == 4
    assert err.strip() == ("client.py: error: Cannot reach a server at 127.0.0.1:9 within 0.5 s. "
                           "Is it running? Check --target (HOST:PORT), and --tls if it uses TLS.")


@pytest.mark.parametrize("args, message", [
    # TF Serving's ModelSpec holds the version and the label as a oneof: never both.
    (["--version", "123", "--label", "stable"],
     "--version and --label exclude each other; pass one."),
    (["--method", "classify", "--version", "123", "--label", "stable"],
     "--version and --label exclude each other; pass one."),
    (["--preprocess", "nope"],
     "Unknown --preprocess mode 'nope'; expected one of none, tf, caffe, torch."),
    (["--method", "nope"], "Unknown --method 'nope'; expected one of predict, classify, regress."),
])
def test_script_and_kexport_predict_refuse_the_same_options_up_front(tmp_path, capsys, args,
                                                                      message):
    """One declaration, one check: both front ends refuse with exit 2 before connecting (the
    target is closed, so asking it would be exit 4), each in its own error format."""
    from tests.cli_helpers import run

    command = ["--target", "127.0.0.1:9", "--timeout", "0.5", "--model", "two", *args,
               write_json(tmp_path / "x.json", [[1.0]])]
    assert cli(*command, capsys=capsys) == (2, "", f"client.py: error: {message}\n")
    result = run("predict", *command)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {message}\n")


def test_script_usage_errors_name_the_script(capsys):
    code, out, err = cli(capsys=capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == ["Usage: client.py [OPTIONS] [FILE]...",
                                "client.py: error: Missing option '--model'."]
    code, _, err = cli("--model", "half", "--version", "x", capsys=capsys)
    assert code == 2 and err.splitlines()[-1] == (
        "client.py: error: Invalid value for '--version': 'x' is not a valid integer.")
    code, out, _ = cli("--help", capsys=capsys)
    assert code == 0 and "--preprocess" in out and "--label" in out


@pytest.mark.slow  # an RSA key, a TLS server, and a 1 s plain-text timeout
def test_tls_with_a_private_ca(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    running = start_server(FIXTURES / "saved_model_half_plus_two_cpu", port=0, poll_seconds=0,
                           credentials=credentials)
    x = write_json(tmp_path / "x.json", [[2.0]])
    try:
        result = run_predict(f"localhost:{running.port}", "default", files=[x], tls=True,
                             ca_cert=str(cert))
        assert json.loads(result.text)["y"]["values"] == [[3.0]]
        with pytest.raises(ServingError, match="Cannot reach a server"):  # plain text to TLS
            run_predict(f"localhost:{running.port}", "default", files=[x], timeout=1)
    finally:
        running.stop()


def run_script(*args, cwd, python_flags=()):
    return subprocess.run([sys.executable, *python_flags, str(SCRIPT), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_script_runs_without_tensorflow(target, tmp_path):
    x = write_json(tmp_path / "x.json", [[1.0], [2.0], [5.0]])
    result = run_script("--target", target, "--model", "half", x, cwd=tmp_path,
                        python_flags=["-X", "importtime"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"y": {"shape": [3, 1], "dtype": "float32",
                                               "values": [[2.5], [3.0], [4.5]]}}
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "grpc" in imported and "serving.grpc_client" in imported
    assert not [m for m in imported if m.split(".")[0] in ("tensorflow", "tensorflow_serving",
                                                          "keras")]
    # The same check on the interpreter's module table, after a full run of main().
    checked = run_script_without_tensorflow(SCRIPT, ["--target", target, "--model", "half", x],
                                            tmp_path)
    assert "'serving.grpc_client'" in checked.stdout.splitlines()[-1]


def test_script_failure_is_one_line(target, tmp_path):
    x = write_json(tmp_path / "x.json", [[1.0]])
    result = run_script("--target", target, "--model", "nope", x, cwd=tmp_path)
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.splitlines() == [
        ("client.py: error: GetModelMetadata for model 'nope' failed with NOT_FOUND: Servable not "
        "found for request: Latest(nope). Check --model and --version/--label against the "
        "server's models.")]


def test_kexport_predict_command(target, tmp_path):
    import typer
    from typer.testing import CliRunner

    from serving.cli import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    x = write_json(tmp_path / "x.json", [[1.0], [2.0]])
    runner = CliRunner()
    ok = runner.invoke(app, ["predict", "--target", target, "--model", "half", "--json",
                             "--output", "table", x])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["y"]["values"] == [[2.5], [3.0]]
    missing = runner.invoke(app, ["predict", "--target", target, "--model", "nope", x])
    assert missing.exit_code == 4 and missing.stdout == ""
    assert missing.stderr.startswith("error: GetModelMetadata for model 'nope' failed with "
                                     "NOT_FOUND") and len(missing.stderr.splitlines()) == 1
    bad = runner.invoke(app, ["predict", "--target", target, "--model", "half", "--preprocess",
                              "nope", "--json", x])
    assert bad.exit_code == 2
    assert json.loads(bad.stdout) == {"ok": False, "exit_code": 2, "report": None, "error": (
        "Unknown --preprocess mode 'nope'; expected one of none, tf, caffe, torch.")}
