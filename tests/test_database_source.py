"""DatabaseSource: a source (configuration file, database folder, s3:// URI), an S3 endpoint and a QGIS
authentication configuration, turned into the engine configuration the dialog and Processing use;
and the CONFIG, ENDPOINT and AUTHCFG parameters every database algorithm takes."""

import uuid

import pytest
from qgis.core import QgsApplication, QgsAuthMethodConfig

from canopy_explorer.plugin import database_source
from canopy_explorer.plugin.core.errors import ConfigurationError
from canopy_explorer.plugin.core.lidar.config import load_config
from canopy_explorer.plugin.database_source import PUBLIC_CONFIG, SAMPLE_CONFIG, DatabaseSource

MASTER_PASSWORD = "test master password"  # the one every test of the session sets (test_query_dialog, test_zonal_qgis)
DATABASE_ALGORITHMS = ("atl08_ingest", "atl08_query", "atl08_nearest", "atl08_grid_change", "atl08_district_stats")


def local_yaml(folder, database):
    path = folder / "database.yaml"
    path.write_text(f"tiledb:\n  storage_type: 'local'\n  local_path: '{database}'\n", encoding="utf-8")
    return path


@pytest.fixture
def auth_manager():
    manager = QgsApplication.authManager()
    assert manager.setMasterPassword(MASTER_PASSWORD, True), "the master password of this session's auth database differs"
    return manager


@pytest.fixture
def basic_auth(auth_manager):
    """A Basic configuration holding an access key id and a secret never seen elsewhere; removed afterwards."""
    key, secret = f"AKIA{uuid.uuid4().hex[:16].upper()}", f"secret/{uuid.uuid4().hex}+{uuid.uuid4().hex[:8]}"
    auth = QgsAuthMethodConfig("Basic")
    auth.setName("private ATL08 bucket")
    auth.setConfig("username", key)
    auth.setConfig("password", secret)
    assert auth_manager.storeAuthenticationConfig(auth)[0]
    yield auth.id(), key, secret
    auth_manager.removeAuthenticationConfig(auth.id())


# --------------------------------------------------------------------------- sources


def test_no_source_is_the_public_database_read_anonymously():
    config = DatabaseSource().config()
    assert config == load_config(PUBLIC_CONFIG)
    assert config.storage_type == "s3" and config.anonymous and config.url == "https://s3.gfz-potsdam.de"
    assert "aws_access_key_id" not in config.s3_settings


def test_an_s3_uri_with_an_endpoint_is_that_bucket_and_prefix_on_that_server():
    config = DatabaseSource(" s3://atl08-private/v7/ ", "http://127.0.0.1:9000").config()
    assert (config.storage_type, config.s3_bucket, config.url) == ("s3", "atl08-private/v7", "http://127.0.0.1:9000")
    assert config.array_uri == "s3://atl08-private/v7/array_uri"
    assert not config.anonymous and "aws_access_key_id" not in config.s3_settings  # the default AWS credential chain
    assert config.tiledb_config()["vfs.s3.endpoint_override"] == "127.0.0.1:9000"
    assert DatabaseSource("s3://atl08-private/array_uri").config().s3_bucket == "atl08-private"
    assert DatabaseSource("s3://atl08-private").config().url is None  # AWS


def test_a_database_folder_or_its_array_is_a_local_database(tmp_path):
    (tmp_path / "db" / "array_uri").mkdir(parents=True)
    for given in (tmp_path / "db", tmp_path / "db" / "array_uri"):
        config = DatabaseSource(str(given)).config()
        assert config.storage_type == "local" and config.base_uri == str(tmp_path / "db")


def test_a_configuration_file_is_read_as_written(tmp_path):
    path = local_yaml(tmp_path, tmp_path / "elsewhere")
    assert DatabaseSource(str(path)).config() == load_config(path)


def test_the_sample_database_is_the_built_one_or_the_users_copy(monkeypatch, tmp_path, local_database):
    missing = local_yaml(tmp_path, tmp_path / "never_built")
    monkeypatch.setattr(database_source, "BUNDLED_SAMPLE_CONFIG", str(missing))
    config = DatabaseSource(SAMPLE_CONFIG).config()
    assert config.base_uri == str(database_source.user_sample_folder())
    # what ingest writes: the configuration as written, not the user's copy
    assert DatabaseSource(SAMPLE_CONFIG).config(writing=True) == load_config(SAMPLE_CONFIG)

    built = tmp_path / "built"
    built.mkdir()
    monkeypatch.setattr(database_source, "BUNDLED_SAMPLE_CONFIG", str(local_yaml(built, local_database.base_uri)))
    assert DatabaseSource(SAMPLE_CONFIG).config().base_uri == local_database.base_uri


# --------------------------------------------------------------------------- endpoint and authentication refused where they do not apply


@pytest.mark.parametrize("kind", ["configuration file", "folder", "sample database", "public database"])
def test_an_endpoint_for_a_source_that_sets_its_own_storage_is_refused_naming_the_endpoint(tmp_path, kind):
    (tmp_path / "db").mkdir()
    source = {"configuration file": str(local_yaml(tmp_path, tmp_path / "db")), "folder": str(tmp_path / "db"),
              "sample database": SAMPLE_CONFIG, "public database": ""}[kind]
    with pytest.raises(ConfigurationError) as error:
        DatabaseSource(source, "http://127.0.0.1:9000").config(endpoint_name="ENDPOINT", authcfg_name="AUTHCFG")
    assert "ENDPOINT (http://127.0.0.1:9000) applies to an s3:// URI only" in str(error.value)
    assert "leave ENDPOINT empty" in str(error.value)


def test_an_authentication_configuration_for_a_local_database_is_refused_naming_it(tmp_path, local_database):
    with pytest.raises(ConfigurationError) as error:
        DatabaseSource(local_database.base_uri, "", "abc1234").config(endpoint_name="ENDPOINT", authcfg_name="AUTHCFG")
    assert "AUTHCFG (abc1234) applies to a database on S3 only" in str(error.value)
    assert local_database.base_uri in str(error.value)


# --------------------------------------------------------------------------- keys from QGIS's authentication database


def test_a_basic_authentication_configuration_gives_the_s3_keys(basic_auth):
    authcfg, key, secret = basic_auth
    config = DatabaseSource("s3://atl08-private", "http://127.0.0.1:9000", authcfg).config()
    assert config.s3_settings["aws_access_key_id"] == key
    assert config.s3_settings["aws_secret_access_key"] == secret
    assert not config.anonymous
    settings = config.tiledb_config()
    assert settings["vfs.s3.aws_access_key_id"] == key and settings["vfs.s3.aws_secret_access_key"] == secret
    assert "vfs.s3.no_sign_request" not in settings


def test_keys_replace_anonymous_access_and_keep_the_configurations_other_s3_settings(basic_auth, tmp_path):
    authcfg, key, _ = basic_auth
    path = tmp_path / "bucket.yaml"
    path.write_text("tiledb:\n  storage_type: 's3'\n  s3_bucket: 'atl08'\n  anonymous: true\n"
                    "  s3_settings:\n    connect_timeout_ms: 3000\n", encoding="utf-8")
    config = DatabaseSource(str(path), "", authcfg).config()
    assert not config.anonymous and config.s3_settings["aws_access_key_id"] == key
    assert config.s3_settings["connect_timeout_ms"] == "3000"


def test_a_missing_authentication_configuration_is_named(auth_manager):
    with pytest.raises(ConfigurationError) as error:
        DatabaseSource("s3://atl08-private", "", "nosuch1").config(authcfg_name="AUTHCFG")
    assert "there is no authentication configuration nosuch1" in str(error.value)
    assert "check AUTHCFG" in str(error.value)


def test_an_authentication_configuration_without_a_password_is_refused(auth_manager):
    auth = QgsAuthMethodConfig("Basic")
    auth.setName("key id only")
    auth.setConfig("username", "AKIAONLYTHEKEYID")
    assert auth_manager.storeAuthenticationConfig(auth)[0]
    try:
        with pytest.raises(ConfigurationError, match=f"the authentication configuration {auth.id()} has no user name or password"):
            DatabaseSource("s3://atl08-private", "", auth.id()).config()
    finally:
        auth_manager.removeAuthenticationConfig(auth.id())


def test_the_secret_never_appears_when_the_configuration_is_printed(basic_auth):
    authcfg, _, secret = basic_auth
    config = DatabaseSource("s3://atl08-private", "http://127.0.0.1:9000", authcfg).config()
    assert secret not in str(config) and secret not in repr(config)


# --------------------------------------------------------------------------- what to check when the server refuses or is not there

REFUSED = ("cannot reach s3://b/array_uri: S3: Error while listing with prefix 's3://b/array_uri/__schema/' [Error Type: 15] "
           "[HTTP Response Code: 403] [Exception: AccessDenied] : Access Denied")
UNREACHABLE = ("cannot reach s3://b/array_uri: S3: Error while listing [HTTP Response Code: -1] : curlCode: 7, Could not "
               "connect to server; Details: Failed to connect to 127.0.0.1 port 9 after 0 ms")


def test_a_refused_request_asks_for_keys_or_for_other_keys():
    without = DatabaseSource("s3://b", "http://127.0.0.1:9").advice(REFUSED, "ENDPOINT", "AUTHCFG")
    assert without.startswith("The bucket is private") and "choose AUTHCFG" in without
    wrong = DatabaseSource("s3://b", "http://127.0.0.1:9", "abc1234").advice(REFUSED, "ENDPOINT", "AUTHCFG")
    assert "refused the keys of AUTHCFG (abc1234)" in wrong
    assert "refused the keys" in DatabaseSource("s3://b", "", "x").advice("[HTTP Response Code: 403] SignatureDoesNotMatch")


def test_a_server_that_does_not_answer_names_the_endpoint_or_aws():
    assert (DatabaseSource("s3://b", "http://127.0.0.1:9").advice(UNREACHABLE, "ENDPOINT", "AUTHCFG")
            == "No S3 server answered at ENDPOINT (http://127.0.0.1:9): check the URL, and that the server runs.")
    assert "looked for on AWS" in DatabaseSource("s3://b").advice(UNREACHABLE, "ENDPOINT", "AUTHCFG")
    assert "give its URL as ENDPOINT" in DatabaseSource("s3://b").advice(UNREACHABLE, "ENDPOINT", "AUTHCFG")


def test_other_errors_get_no_advice():
    assert DatabaseSource("s3://b", "http://127.0.0.1:9", "abc1234").advice("unknown variable 'h_canopi'") == ""
    assert DatabaseSource("/data/db").advice(UNREACHABLE) == ""  # a local database has no endpoint to check


# --------------------------------------------------------------------------- the Processing parameters


@pytest.mark.parametrize("name", DATABASE_ALGORITHMS)
def test_every_database_algorithm_takes_config_endpoint_and_authcfg_alike(loaded_plugin, name):
    from canopy_explorer.plugin.qgis_compat import PARAMETER_ADVANCED, name as compat_name

    optional = compat_name("Qgis.ProcessingParameterFlag.Optional", "QgsProcessingParameterDefinition.Flag.FlagOptional")

    algorithm = QgsApplication.processingRegistry().algorithmById(f"canopyexplorer:{name}")
    assert algorithm is not None
    config, endpoint, authcfg = (algorithm.parameterDefinition(key) for key in ("CONFIG", "ENDPOINT", "AUTHCFG"))
    assert config.type() == "string" and config.description() == "Database (configuration YAML, folder or s3:// URI)"
    assert config.defaultValue() == (SAMPLE_CONFIG if name == "atl08_ingest" else PUBLIC_CONFIG)
    assert endpoint.type() == "string" and endpoint.description() == "S3 endpoint URL (empty: AWS, or a local database)"
    assert authcfg.type() == "authcfg"
    assert authcfg.description() == ("Authentication configuration for a private bucket (Basic: user = access key id, "
                                     "password = secret key)")
    for parameter in (endpoint, authcfg):
        assert int(parameter.flags() & PARAMETER_ADVANCED) and int(parameter.flags() & optional), (name, parameter.name())
    assert "AUTHCFG" in algorithm.shortHelpString() and "ENDPOINT" in algorithm.shortHelpString()
