"""Database configuration files: the shipped ones load; mistakes name the file and key."""

import pytest

from canopy_explorer.plugin.core.config import load_config
from canopy_explorer.plugin.core.errors import ConfigurationError
from conftest import ROOT


def test_public_config_points_at_the_public_bucket_anonymously():
    config = load_config(ROOT / "configs" / "public_atl08_v007.yaml")
    assert config.array_uri == "s3://dog-ext.icesat2db.icesat2-atl08-v007/array_uri"
    settings = config.tiledb_config()
    assert settings["vfs.s3.endpoint_override"] == "s3.gfz-potsdam.de"
    assert settings["vfs.s3.scheme"] == "https"
    assert settings["vfs.s3.no_sign_request"] == "true"
    assert settings["vfs.s3.use_virtual_addressing"] == "false"
    assert settings["vfs.s3.region"] == "eu-central-1"
    assert config.tile_degrees == (30.0, 30.0) and config.capacity == 100000


def test_sample_config_resolves_its_path_relative_to_the_file():
    config = load_config(ROOT / "configs" / "sample_local.yaml")
    assert config.array_uri == str(ROOT / "sample_data" / "atl08_db" / "array_uri")


@pytest.mark.parametrize(
    "body, message",
    [
        ("tiledb:\n  storage_type: local\n  local_path: x\n  capacity: lots\n", "tiledb.capacity in .* must be int, not str"),
        ("tiledb:\n  storage_type: local\n  local_path: x\n  colour: red\n", "unknown key tiledb.colour in"),
        ("tiledb:\n  storage_type: ftp\n", "tiledb.storage_type in .* must be 'local' or 's3'"),
        ("tiledb:\n  storage_type: s3\n", "tiledb.s3_bucket in .* is required"),
        ("tiledb:\n  storage_type: local\n  local_path: x\n  time_range:\n    start_time: '2018-13-01'\n", "time_range.start_time in .* must be a date"),
        ("tiledb:\n  storage_type: local\n  local_path: x\n  latitude_tile: 7\n", "whole tiles"),
        ("storage_type: local\n", "must contain a 'tiledb:' block"),
        ("tiledb: [unclosed\n", "is not valid YAML"),
        ("tiledb:\n  time_range:\n    start_time: 2018-13-01\n", "is not valid YAML: month must be in 1..12"),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigurationError, match=message) as error:
        load_config(path)
    assert "bad.yaml" in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read configuration"):
        load_config(tmp_path / "nope.yaml")
