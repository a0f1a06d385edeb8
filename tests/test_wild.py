"""Real files other projects saved (../shared/fixtures/keras-wild), and the failure classes they
showed, each rebuilt in the exact layout its old writer used.

Every corpus case converts to `.keras` and the written file, read back by Keras 3, reproduces the
case's reference outputs (relative tolerance; the weak references by relative difference only),
or it is refused with a pinned exit code and reason. A representative subset (one per loading
route: Keras 1 translation, Keras 2 translation, Windows tf.keras archive, revived and
signature-only SavedModels) is also converted to SavedModel here; `make bench-wild` converts
every case to both formats.
"""

from __future__ import annotations

import json

import pytest

from exporter.convert import convert
from exporter.errors import KexportError
from exporter.model_types import LoadOptions
from tests.cli_helpers import one_error_line, run
from tests.conftest import shared_fixture
from tests.wild_corpus import CASES, WILD, WildCase, mismatches, reference_arrays


def _params(cases):
    return [pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.slow else [])
            for case in cases]


def _options(case: WildCase) -> LoadOptions:
    return LoadOptions(weights=WILD / case.weights if case.weights else None)


@pytest.mark.parametrize("case", _params(CASES))
def test_wild_case_converts_to_keras_or_is_refused(case, keras3, tmp_path):
    shared_fixture("keras-wild", case.source)
    destination = tmp_path / "out.keras"
    if case.refused:
        with pytest.raises(KexportError) as caught:
            convert(case.path, destination, options=_options(case),
                    inputs_file=case.reference_path)
        assert caught.value.exit_code == case.refused[0]
        assert case.refused[1] in str(caught.value)
        assert not destination.exists()
        return
    result = convert(case.path, destination, options=_options(case),
                     inputs_file=case.reference_path, rtol=case.rtol)
    assert result.report.passed and result.route == "keras3"
    if case.reference:
        xs, ys = reference_arrays(case)
        model = keras3.models.load_model(destination, compile=False)
        outputs = model(xs if len(xs) > 1 else xs[0], training=False)
        assert not mismatches(outputs if isinstance(outputs, (list, tuple)) else [outputs], ys, case)


@pytest.mark.parametrize("case", _params([c for c in CASES if c.savedmodel]))
def test_wild_case_converts_to_savedmodel(case, tmp_path):
    from exporter.formats.savedmodel import load_signature

    shared_fixture("keras-wild", case.source)
    result = convert(case.path, tmp_path / "sm", options=_options(case),
                     inputs_file=case.reference_path, rtol=case.rtol)
    assert result.report.passed
    if case.reference:
        xs, ys = reference_arrays(case)
        written = load_signature(tmp_path / "sm")
        feed = {spec.name: x for spec, x in zip(written.inputs, xs, strict=True)}
        assert not mismatches(list(written.reference(feed).values()), ys, case)


def test_pickled_keras_is_refused_without_being_opened(tmp_path):
    pickled = shared_fixture("keras-wild", "spam_mlp_tf215_three_formats", "my_model.keras")
    result = run("convert", pickled, tmp_path / "out.keras", "--unsafe")
    assert result.exit_code == 3
    assert "Python pickle" in one_error_line(result) and "never opens" in one_error_line(result)


def test_signature_only_savedmodel_is_copied_and_says_so(tmp_path):
    source = shared_fixture("keras-wild", "savedmodel_nometa_tf241_augment", "my_model")
    result = run("convert", source, tmp_path / "sm", "--json", "--inputs",
                 source.parent / "reference_tf_signature.npz")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["route"] == "signature" and "copied as it is" in data["route_reason"]
    assert any(note.startswith("keras-revive-failed") for note in data["notes"])


def test_revived_savedmodel_reports_the_object_graph(tmp_path):
    source = shared_fixture("keras-wild", "savedmodel_nometa_tf22_conv1d", "my_model")
    result = convert(source, tmp_path / "out.keras")
    assert result.route == "keras3"
    assert result.notes[0].startswith("keras-object-graph")


def test_windows_archive_repairs_are_reported(tmp_path):
    source = shared_fixture("keras-wild", "winkeras_convT_tf2131", "autoencoder.keras")
    result = convert(source, tmp_path / "out.keras")
    rules = {note.split(":")[0] for note in result.notes}
    assert {"windows-archive", "archive-prefix", "archive-renumbered"} <= rules
    renumbered = next(note for note in result.notes if note.startswith("archive-renumbered"))
    assert "conv2d_2 -> conv2d_1" in renumbered and "conv2d_transpose_4 -> conv2d_transpose_2" in renumbered
