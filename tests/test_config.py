"""Database configuration files: the shipped ones load; mistakes name the file and key."""

import time

import pytest

from canopy_explorer.plugin.core.lidar.config import load_config
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


BASE = "tiledb:\n  storage_type: local\n  local_path: x\n"
# the 'billion laughs': nine levels of nine aliases, 424 bytes that PyYAML expands to 387 million strings
ALIAS_BOMB = "laughs:\n" + "".join(
    f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
) + BASE + "  capacity: *i\n"


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("content, message", [
    (BASE + "  dimensions: 5\n", r"tiledb.dimensions in .*bad.yaml must be the list \['latitude', 'longitude', 'time'\], not 5$"),
    (BASE + "  dimensions:\n", r"tiledb.dimensions .* not None$"),
    (BASE + "  time_range:\n    start_time: 2018-01-01 12:00:00\n", r"tiledb.time_range.start_time in .*bad.yaml must be a date like "
     r"2018-01-01, not a date and time \(2018-01-01 12:00:00\)"),
    (bytes(range(256)) * 8, r"bad.yaml holds NUL bytes: it is a binary file"),
    (BASE.encode("utf-16"), r"bad.yaml is saved as UTF-16 .*: save it as UTF-8"),
    ((BASE + "  s3_region: 'r\u00e9gion'\n").encode("latin-1"), r"bad.yaml is not UTF-8 text: byte 0xe9 at line 4, column 16"),
    (ALIAS_BOMB, r"bad.yaml, line 2: anchors and aliases \(&a, \*a\) are not allowed"),
    (BASE + "  capacity: 5\n  capacity: 6\n", r"bad.yaml, line 5: the key 'capacity' appears twice"),
    (BASE + "ingest:\n  workers: 4\n", r"unknown block 'ingest' in .*bad.yaml: a database configuration has only a 'tiledb:' block"),
    ("tiledb:\n  storage_type: local\n  local_path: ~nosuchuser/db\n",
     r"tiledb.local_path in .*bad.yaml is '~nosuchuser/db': '~nosuchuser' names no user"),
    ("x" * 300_000, r"bad.yaml is 300,000 bytes"),
    ("tiledb: " + "[" * 5_000 + "]" * 5_000 + "\n", r"bad.yaml nests brackets more than 20 deep"),
], ids=["dimensions: 5", "dimensions: null", "start_time with a time of day", "binary", "UTF-16", "Latin-1", "alias bomb",
        "duplicate key", "unknown block", "~nosuchuser", "300 kB", "brackets 5,000 deep"])
def test_hostile_files_are_refused_quickly_naming_the_file_and_key(tmp_path, content, message):
    path = _write(tmp_path / "bad.yaml", content)
    started = time.perf_counter()
    with pytest.raises(ConfigurationError, match=message):
        load_config(path)
    assert time.perf_counter() - started < 1  # the alias bomb took 55 s and 2.1 GB before


def test_a_symbolic_link_loop_is_named_as_one(tmp_path):
    from canopy_explorer.plugin.core.lidar.config import config_from_source

    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    with pytest.raises(ConfigurationError, match=r"cannot read configuration .*a.yaml: Too many levels of symbolic links"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "db1").symlink_to(tmp_path / "db2")
    (tmp_path / "db2").symlink_to(tmp_path / "db1")
    with pytest.raises(ConfigurationError, match=r"db1 is a symbolic link that leads nowhere"):
        config_from_source(str(tmp_path / "db1"))
    config = _write(tmp_path / "loop.yaml", "tiledb:\n  storage_type: local\n  local_path: db1/atl08\n")
    with pytest.raises(ConfigurationError, match=r"tiledb.local_path in .*loop.yaml \(db1/atl08\) cannot be followed"):
        load_config(config)


def test_a_home_folder_of_nobody_is_named_in_a_typed_location():
    from canopy_explorer.plugin.core.lidar.config import config_from_source

    with pytest.raises(ConfigurationError, match=r"the database location is '~nosuchuser/db': '~nosuchuser' names no user"):
        config_from_source("~nosuchuser/db")


def test_a_long_value_is_shortened_in_messages(tmp_path):
    path = _write(tmp_path / "bad.yaml", BASE + f"  capacity: '{'9' * 100_000}'\n")
    with pytest.raises(ConfigurationError) as error:
        load_config(path)
    assert len(str(error.value)) < 300


def test_a_date_at_midnight_is_a_date():
    from canopy_explorer.plugin.core.lidar.config import config_from_mapping
    import datetime as dt

    config = config_from_mapping({"tiledb": {"storage_type": "local", "local_path": "x",
                                             "time_range": {"start_time": dt.datetime(2018, 1, 1)}}})
    assert config.time_start == dt.date(2018, 1, 1)
