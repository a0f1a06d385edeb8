"""models.config and batching.config as `kexport bundle` writes them: TF Serving's messages printed
by text_format, checked by parsing them back with TF Serving's own generated code and against the
configs of TF Serving's tests (../shared/fixtures/tfserving)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.batching_config import BatchingSettings, read_batching_config
from serving.models_config import (
    ServedModel,
    container_path_to_local,
    models_config_text,
    models_from_config,
)
from tests.conftest import shared_fixture

MODELS = [
    ServedModel("clf", Path("/models/clf"), policy="all", labels={"stable": 1, "canary": 2}),
    ServedModel("pair", Path("/models/pair")),
    ServedModel("few", Path("/models/few"), count=3),
    ServedModel("pinned", Path("/models/pinned"), policy="specific", versions=(7, 3),
                labels={"prod": 7}),
]


def parse_models_config(text: str):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_models_config_parses_back_to_the_same_models():
    config = parse_models_config(models_config_text(MODELS))
    read = models_from_config(config, "written", bundle=None)
    assert [m.name for m in read] == ["clf", "pair", "few", "pinned"]
    assert read[:3] == MODELS[:3]
    assert read[3].versions == (3, 7) and read[3].labels == {"prod": 7}  # written sorted
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert {entry.model_platform for entry in entries.values()} == {"tensorflow"}
    assert entries["clf"].model_version_policy.HasField("all")
    assert entries["pair"].model_version_policy.latest.num_versions == 1


def test_models_config_says_what_tf_servings_own_test_config_says(tmp_path):
    """TF Serving's testGoodModelConfig file, its placeholders filled as its test does, read and
    written again: the same models, policy spelled out (latest 1 is TF Serving's default)."""
    text = shared_fixture("tfserving", "good_model_config.txt").read_text()
    text = (text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(tmp_path / "half_plus_two"))
                .replace("${TEST_HALF_PLUS_THREE_DIR}", str(tmp_path / "half_plus_three")))
    theirs = models_from_config(parse_models_config(text), "good_model_config.txt", None)
    ours = models_from_config(parse_models_config(models_config_text(theirs)), "written", None)
    assert ours == theirs
    assert [m.name for m in ours] == ["half_plus_two", "half_plus_three"]
    assert ours[0].base_path == tmp_path / "half_plus_two" and ours[0].policy == "latest"


def test_container_paths_stay_as_they_are_without_a_bundle():
    # A server started on one base path applies a posted config's paths unchanged.
    assert container_path_to_local("/models/x", None) == Path("/models/x")


def test_batching_config_says_what_tf_servings_batching_config_says(tmp_path):
    """The fixture's values written by BatchingSettings read back as TF Serving's own file does."""
    fixture = shared_fixture("tfserving", "batching_config.txt")
    settings = BatchingSettings(max_batch_size=128, batch_timeout_micros=0,
                                max_enqueued_batches=1000000, num_batch_threads=8)
    (tmp_path / "batching.config").write_text(settings.render())
    assert read_batching_config(tmp_path / "batching.config") == read_batching_config(fixture)

