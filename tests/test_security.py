"""Safe mode on every loader path: code in an artifact (Lambda bytecode) is refused with exit 3
by every command that reads it, before tf-keras or Keras could run it."""

from __future__ import annotations

import json

import pytest

from exporter.artifact_config import dump_yaml
from tests.cli_helpers import one_error_line, run


@pytest.fixture(scope="module")
def lambda_artifacts(keras3, tf_keras, tmp_path_factory):
    """The same Lambda model in every form a user could hand over: {kind: path}."""
    root = tmp_path_factory.mktemp("lambda")
    marker = str(root / "RAN")
    paths = {}
    x = keras3.Input((3,), name="x")
    k3 = keras3.Model(x, keras3.layers.Lambda(
        lambda t, m=marker: (open(m, "w").close(), t * 2.0)[1], name="double")(x))
    paths["keras3 .keras"] = root / "k3.keras"
    k3.save(paths["keras3 .keras"])
    (root / "RAN").unlink(missing_ok=True)  # building the model ran it once; loads must not
    L = tf_keras.layers
    y = L.Input((3,), name="x")
    k2 = tf_keras.Model(y, L.Lambda(lambda t: t * 2.0, name="double")(y))
    paths["keras2 h5"] = root / "k2.h5"
    k2.save(paths["keras2 h5"])
    paths["keras2 savedmodel"] = root / "k2_savedmodel"
    k2.save(paths["keras2 savedmodel"])
    config = json.loads(k2.to_json())
    paths["json"] = root / "k2.json"
    paths["json"].write_text(json.dumps(config))
    paths["yaml"] = root / "k2.yaml"
    paths["yaml"].write_text(dump_yaml(config))
    k2.save_weights(root / "k2.weights.h5")
    return root, paths


KINDS = ["keras3 .keras", "keras2 h5", "keras2 savedmodel", "json", "yaml"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_refuses_code_without_unsafe(kind, lambda_artifacts, tmp_path):
    root, paths = lambda_artifacts
    path = paths[kind]
    commands = [
        ["convert", path, tmp_path / "out.keras"],
        ["verify", path, path],
        ["slice", path, tmp_path / "part.keras", "--output", "double"],
        ["inspect", path, "--layers"],
        ["bundle", tmp_path / "bundle", "--model", f"m={path}@1"],
    ]
    for args in commands:
        result = run(*args)
        assert result.exit_code == 3, (args, result.output)
        assert "Lambda" in one_error_line(result) and "--unsafe" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []
    assert not (root / "RAN").exists()


def test_weights_with_a_lambda_architecture_is_refused(lambda_artifacts, tmp_path):
    root, paths = lambda_artifacts
    result = run("convert", root / "k2.weights.h5", tmp_path / "o.keras",
                 "--architecture", paths["json"])
    assert result.exit_code == 3, result.output


@pytest.mark.parametrize("kind", KINDS)
def test_inspect_names_the_lambda_up_front(kind, lambda_artifacts):
    """inspect reads the file without loading it, and says before the layer table what the
    loading commands will refuse and how to get past it."""
    root, paths = lambda_artifacts
    result = run("inspect", paths[kind])
    assert result.exit_code == 0, result.output
    warning = [i for i, line in enumerate(result.output.splitlines()) if "Lambda" in line]
    assert warning and warning[0] <= 2, result.output
    line = result.output.splitlines()[warning[0]]
    assert "double" in line and "--unsafe" in line and "convert" in line
    assert json.loads(run("inspect", paths[kind], "--json").stdout)["code_layers"] == ["double"]
    assert not (root / "RAN").exists()
