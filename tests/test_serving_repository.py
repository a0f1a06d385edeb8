"""Model repositories on disk: models.config parsing, bundle path mapping, versions, policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.errors import BadInputError
from serving.models_config import ServedModel, aspired_versions, container_path_to_local
from serving.version_folders import list_versions, load_repository
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_cpu"
TWO_VERSIONS = FIXTURES / "saved_model_half_plus_two_2_versions"


def test_base_path_serves_one_model_named_default():
    [model] = load_repository(HALF_PLUS_TWO)
    assert model == ServedModel("default", HALF_PLUS_TWO.resolve())
    assert list(list_versions(model.base_path)) == [123]  # "00000123" is version 123


def test_bundle_config_maps_container_paths_into_the_bundle(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "half").symlink_to(TWO_VERSIONS)
    (tmp_path / "models.config").write_text("""
model_config_list {
  config {
    name: "half"
    base_path: "/models/half"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 123 versions: 124 } }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
  config { name: "other" base_path: "/srv/other" model_version_policy { all {} } }
  config { name: "few" base_path: "/models/few" model_version_policy { latest { num_versions: 2 } } }
}""")
    half, other, few = load_repository(tmp_path)
    assert half.base_path == (tmp_path / "models" / "half").resolve()
    assert (half.policy, half.versions) == ("specific", (123, 124))
    assert half.labels == {"stable": 123, "canary": 124}
    assert list_versions(half.base_path).keys() == {123, 124}
    assert (other.base_path, other.policy) == (Path("/srv/other"), "all")
    assert (few.policy, few.count) == ("latest", 2)
    assert load_repository(tmp_path / "models.config")[0].name == "half"  # the file itself works


def test_container_path_mapping(tmp_path):
    assert container_path_to_local("/models", tmp_path) == (tmp_path / "models").resolve()
    assert container_path_to_local("/models/a/b", tmp_path) == (tmp_path / "models/a/b").resolve()
    assert container_path_to_local("/modelsX/a", tmp_path) == Path("/modelsX/a")


def test_tf_serving_bad_config_fixture_is_refused(tmp_path):
    with pytest.raises(BadInputError,
                       match="Error parsing text-format tensorflow.serving.ModelServerConfig"):
        load_repository(FIXTURES / "bad_model_config.txt")


def test_tf_serving_good_config_fixture_parses(tmp_path):
    text = (FIXTURES / "good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(HALF_PLUS_TWO)).replace(
        "${TEST_HALF_PLUS_THREE_DIR}", str(FIXTURES / "saved_model_half_plus_three"))
    (tmp_path / "models.config").write_text(text)
    names = [(m.name, m.base_path, m.policy, m.count) for m in load_repository(tmp_path)]
    assert names == [("half_plus_two", HALF_PLUS_TWO, "latest", 1),
                     ("half_plus_three", FIXTURES / "saved_model_half_plus_three", "latest", 1)]


@pytest.mark.parametrize("config, message", [
    ('model_config_list { config { name: "a" base_path: "models/a" } }', "relative base_path"),
    ('model_config_list { config { name: "a" } }', "has no base_path"),
    ('model_config_list { config { base_path: "/models/a" } }', "has no name"),
    ('model_config_list { config { name: "a" base_path: "/m" model_platform: "tflite" } }',
     "only 'tensorflow'"),
    ('model_config_list { config { name: "a" base_path: "/m" } config { name: "a" base_path: "/n" } }',
     "twice"),
    ("model_config_list { }", "lists no models"),
])
def test_invalid_configs_say_what_to_fix(tmp_path, config, message):
    (tmp_path / "models.config").write_text(config)
    with pytest.raises(BadInputError, match=message):
        load_repository(tmp_path)


def test_a_bare_savedmodel_is_not_a_base_path():
    with pytest.raises(BadInputError, match="is a SavedModel, not a model base path") as err:
        load_repository(HALF_PLUS_TWO / "00000123")
    assert "/1/" in str(err.value)


def test_missing_path(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        load_repository(tmp_path / "nope")


def test_only_integer_folders_with_a_savedmodel_are_versions(tmp_path):
    for name in ("7", "0012", "v3", "1.5", "tmp", "99"):
        (tmp_path / name).mkdir()
    for name in ("7", "0012", "v3", "1.5", "tmp"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "42").write_text("a file, not a folder")
    # 99 has no saved_model.pb yet: a version being copied in, picked up by a later poll
    assert sorted(list_versions(tmp_path)) == [7, 12]
    assert list_versions(tmp_path / "absent") == {}


@pytest.mark.parametrize("model, expected", [
    (ServedModel("m", Path("/")), {124}),
    (ServedModel("m", Path("/"), count=2), {123, 124}),
    (ServedModel("m", Path("/"), policy="all"), {7, 123, 124}),
    (ServedModel("m", Path("/"), policy="specific", versions=(123, 999)), {123}),
])
def test_version_policies(model, expected):
    assert aspired_versions(model, [123, 7, 124]) == expected
