"""Round trips between formats, every result verified (convert raises if outputs differ)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.convert import convert
from exporter.model_io import load_model
from exporter.model_types import LoadOptions
from exporter.verify import make_inputs

TARGETS = {
    "h5": "model.h5",
    "keras": "model.keras",
    "savedmodel": "model_savedmodel",
    "json": "model.json",
    "yaml": "model.yaml",
    "weights": "model.weights.h5",
}


def _convert(src, dst, arch=None, **kwargs):
    result = convert(src, dst, options=LoadOptions(architecture=arch), **kwargs)
    assert result.report is not None and result.report.passed, result.report
    return result


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("model", ["sequential", "two_in_two_out", "nested", "rnn", "batchnorm", "embedding"])
def test_keras3_model_to_every_format(k3_files, tmp_path, model, target):
    result = _convert(k3_files[model], tmp_path / TARGETS[target], arch=k3_files[model])
    assert result.format == target
    for written in result.written:
        assert (tmp_path / written.split("/")[-1]).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kexport-staging")]


# Each source format of one model: json writes model.weights.h5 beside it, which is also the
# weights-format source; the YAML architecture is written alone and read with --weights.
SOURCES = {"h5": "model.h5", "json": "model.json", "yaml": "arch.yaml", "weights": "model.weights.h5"}


@pytest.fixture(scope="module")
def every_format_of_two_in_two_out(k3_files, tmp_path_factory):
    root = tmp_path_factory.mktemp("all_formats")
    source = k3_files["two_in_two_out"]
    _convert(source, root / "model.h5")
    _convert(source, root / "model.json")
    _convert(source, root / "arch.yaml", config_only=True)
    return root


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_pair_of_formats(every_format_of_two_in_two_out, tmp_path, source, target):
    root = every_format_of_two_in_two_out
    options = LoadOptions(architecture=root / "arch.yaml", weights=root / "model.weights.h5")
    result = convert(root / SOURCES[source], tmp_path / TARGETS[target], options=options)
    assert result.report.passed and result.source_format == source


def test_savedmodel_signature_uses_layer_names(k3_files, tmp_path):
    from exporter.formats.savedmodel import describe_signatures

    _convert(k3_files["two_in_two_out"], tmp_path / "sm")
    signature = describe_signatures(tmp_path / "sm")["serving_default"]
    assert [s["name"] for s in signature["inputs"]] == ["left", "right"]
    assert [s["name"] for s in signature["outputs"]] == ["flag", "score"]


def test_savedmodel_write_prints_nothing_to_stdout(k3_files, tmp_path, capfd):
    capfd.readouterr()
    _convert(k3_files["sequential"], tmp_path / "sm")
    assert capfd.readouterr().out == ""


def test_yaml_is_plain_to_json_structure(k3_files, tmp_path, keras3):
    import yaml

    _convert(k3_files["nested"], tmp_path / "m.yaml", config_only=True)
    document = yaml.safe_load((tmp_path / "m.yaml").read_text())
    rebuilt = keras3.models.model_from_json(json.dumps(document))
    assert [layer.name for layer in rebuilt.layers] == ["x", "encoder", "head"]
    assert not (tmp_path / "m.weights.h5").exists()


@pytest.mark.parametrize("model", ["sequential", "two_in_two_out", "nested", "gru", "gru_v1",
                                   "bilstm", "separable", "attention"])
@pytest.mark.parametrize("kind", ["h5", "savedmodel", "json"])
def test_keras2_artifacts_translate_and_verify_against_tf_keras(k2_files, tmp_path, model, kind):
    files = k2_files[model]
    options = LoadOptions(weights=files["weights"] if kind == "json" else None)
    result = convert(files[kind], tmp_path / "out.keras", options=options)
    assert result.report.passed
    assert result.source_format == kind


def test_translated_model_matches_tf_keras_itself(k2_files, tf_keras):
    """The reference of a Keras 2 file is tf-keras's own reading of it, not the translation."""
    loaded = load_model(k2_files["bilstm"]["h5"])
    original = tf_keras.models.load_model(k2_files["bilstm"]["h5"], compile=False)
    feed = make_inputs(loaded.inputs, seed=5)
    expected = original.predict(feed["sequence"], verbose=0)
    translated = loaded.model(feed["sequence"], training=False)
    np.testing.assert_allclose(np.asarray(translated), expected, rtol=1e-5, atol=1e-6)
    assert any("time_major" in note for note in loaded.notes)


def test_verification_failure_publishes_nothing(k3_files, tmp_path):
    """A negative tolerance can never be met: the write must be verified and then dropped."""
    from exporter.errors import VerificationError

    with pytest.raises(VerificationError):
        convert(k3_files["rnn"], tmp_path / "out_sm", atol=-1.0, rtol=0.0)
    assert not (tmp_path / "out_sm").exists()
    assert list(tmp_path.iterdir()) == []
