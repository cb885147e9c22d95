"""A private bucket on a non-AWS S3 server, read and written by ``qgis_process.bin`` with ENDPOINT and AUTHCFG.

The server (``private_s3_fixtures``) refuses any request not signed with its IAM user's key. The key
lives only in the private QGIS profile's authentication database, as a Basic configuration (user name =
access key id, password = secret key); ``qgis_process`` opens that database with the master password
from the file ``QGIS_AUTH_PASSWORD_FILE`` names, as a server or a scheduled job does. The runs see no
AWS credentials from the environment or the home folder, so what reaches the bucket comes from AUTHCFG.
"""

import socket
from pathlib import Path

import pytest

from private_s3_fixtures import *  # noqa: F401,F403  (private_s3_server)
from qgis_process_runner import QgisProcessProfile

BUCKET = "atl08-private"
ROI = "7.05,7.25,45.05,45.25 [EPSG:4326]"
START, END = "2020-01-01", "2021-12-31"
VARIABLES = "h_canopy, canopy_h_metrics:95, n_te_photons"
FILTERS = "h_canopy between 5 60\nn_te_photons >= 10"
MASTER_PASSWORD = "qgis_process test master password"

pytestmark = pytest.mark.slow  # 1-2 min: a profile, a private bucket ingested twice, ten qgis_process runs


@pytest.fixture(scope="module")
def private_database(private_s3_server, sample_granules):
    """The sample granules ingested by the engine into the private bucket, with the IAM user's keys."""
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    config = private_s3_server.config(BUCKET)
    ingest_granules(config, sample_granules, workers=1)
    return config


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """A private QGIS profile whose runs see no AWS credentials but the ones AUTHCFG gives, and have the
    master password of the profile's authentication database."""
    folder = tmp_path_factory.mktemp("qgis_process_private")
    password_file = folder / "master-password"
    password_file.write_text(MASTER_PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return QgisProcessProfile(folder / "qgis", extra_env={
        "QGIS_AUTH_PASSWORD_FILE": str(password_file),
        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"), "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata service to wait for
    })


@pytest.fixture(scope="module")
def authcfg(profile, private_s3_server):
    """The id of a Basic configuration holding the bucket's keys, in the profile's authentication database."""
    return profile.store_basic_authentication("private ATL08 bucket", private_s3_server.access_key_id,
                                              private_s3_server.secret_access_key, MASTER_PASSWORD)


def query(profile, output, **changes):
    parameters = {"CONFIG": f"s3://{BUCKET}", "ROI": ROI, "START": START, "END": END, "VARIABLES": VARIABLES,
                  "FILTERS": FILTERS, "OUTPUT": output}
    parameters.update(changes)
    return profile.run("atl08_query", {k: v for k, v in parameters.items() if v is not None})


def engine_rows(config):
    """What the engine reads from the bucket when called directly in this process, by segment id."""
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery

    spec = SegmentQuery.create(roi=(7.05, 45.05, 7.25, 45.25), start=START, end=END, roi_crs="EPSG:4326",
                               variables=[v.strip() for v in VARIABLES.split(",")], filters=FILTERS)
    frame = Atl08Database(config).query(spec)
    return {int(row.segment_id): row for row in frame.itertuples(index=False)}


def written_rows(path):
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    assert dataset is not None, f"OGR cannot open {path}"
    rows = {}
    for feature in dataset.GetLayer(0):
        point = feature.GetGeometryRef()
        rows[feature.GetField("segment_id")] = {"h_canopy": feature.GetField("h_canopy"), "x": point.GetX(), "y": point.GetY(),
                                                "p95": feature.GetField("canopy_h_metrics_p95"),
                                                "n_te_photons": feature.GetField("n_te_photons")}
    return rows


def assert_no_secret(run, secret, *files):
    said = run.stdout + run.stderr
    assert secret not in said, "the secret key appears in qgis_process's output"
    for path in files:
        assert secret.encode() not in Path(path).read_bytes(), f"the secret key appears in {path}"


def assert_failed_cleanly(run):
    assert not run.crashed and run.returncode != 0, run.describe()
    assert "Traceback" not in run.stdout + run.stderr, run.describe()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


# --------------------------------------------------------------------------- the server is private


def test_the_bucket_refuses_requests_without_its_keys(private_s3_server, private_database):
    import botocore.exceptions

    assert private_s3_server.client().list_objects_v2(Bucket=BUCKET)["KeyCount"] > 0
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        private_s3_server.client(secret_access_key="not the secret").list_objects_v2(Bucket=BUCKET)


def test_the_authentication_configuration_lives_in_the_profiles_database_only(profile, authcfg, private_s3_server):
    database = profile.settings_folder / "qgis-auth.db"
    assert database.is_file()
    assert private_s3_server.secret_access_key.encode() not in database.read_bytes()  # encrypted with the master password
    for path in profile.folder.rglob("*"):
        if path.is_file() and path != database:
            assert private_s3_server.secret_access_key.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------- reading with AUTHCFG


def test_query_with_endpoint_and_authcfg_reads_what_the_engine_reads(profile, authcfg, private_s3_server, private_database,
                                                                    tmp_path):
    run = query(profile, tmp_path / "private.gpkg", ENDPOINT=private_s3_server.endpoint, AUTHCFG=authcfg).check()
    written = written_rows(run.results["OUTPUT"])
    expected = engine_rows(private_database)
    assert len(expected) > 50, "the region should hold a fair number of segments"
    assert run.results["SEGMENTS"] == len(written) == len(expected), run.describe()
    assert set(written) == set(expected)
    for segment_id, row in expected.items():
        got = written[segment_id]
        assert got["h_canopy"] == pytest.approx(float(row.h_canopy), rel=1e-6)
        assert got["p95"] == pytest.approx(float(row.canopy_h_metrics_p95), rel=1e-6)
        assert got["n_te_photons"] == int(row.n_te_photons)
        assert (got["x"], got["y"]) == pytest.approx((row.longitude, row.latitude), abs=1e-9)
    assert_no_secret(run, private_s3_server.secret_access_key, run.results["OUTPUT"])
    assert private_s3_server.access_key_id not in run.stdout + run.stderr


def test_ingest_writes_into_a_private_bucket_given_as_an_s3_uri(profile, authcfg, private_s3_server, sample_granules,
                                                               private_database, tmp_path):
    private_s3_server.client().create_bucket(Bucket="atl08-ingested")
    target = "s3://atl08-ingested/v7"
    run = profile.run("atl08_ingest", {"INPUT": Path(sample_granules[0]).parent, "CONFIG": target,
                                       "ENDPOINT": private_s3_server.endpoint, "AUTHCFG": authcfg}).check()
    assert run.results["GRANULES_WRITTEN"] == len(sample_granules), run.describe()
    assert run.results["DATABASE"] == f"{target}/array_uri"
    assert_no_secret(run, private_s3_server.secret_access_key)
    # the same segments as the engine's ingest of the same granules
    written = private_database.with_changes(s3_bucket="atl08-ingested/v7")
    assert set(engine_rows(written)) == set(engine_rows(private_database))
    again = query(profile, tmp_path / "ingested.fgb", CONFIG=target, ENDPOINT=private_s3_server.endpoint, AUTHCFG=authcfg).check()
    assert again.results["SEGMENTS"] == len(engine_rows(private_database)), again.describe()


# --------------------------------------------------------------------------- refused, with the reason


def test_without_authcfg_the_private_bucket_is_refused_naming_the_database(profile, private_s3_server, private_database,
                                                                          tmp_path):
    run = query(profile, tmp_path / "anonymous.gpkg", ENDPOINT=private_s3_server.endpoint)
    assert_failed_cleanly(run)
    said = run.stdout + run.stderr
    assert f"s3://{BUCKET}" in said, run.describe()
    assert "Response Code: 403" in said and "Access Denied" in said, run.describe()
    assert "The bucket is private (the S3 server refused a request without keys): choose AUTHCFG" in said, run.describe()
    assert not (tmp_path / "anonymous.gpkg").exists()


def test_wrong_keys_in_authcfg_are_refused_naming_authcfg(profile, private_s3_server, private_database, tmp_path):
    wrong = profile.store_basic_authentication("wrong secret", private_s3_server.access_key_id, "not the secret key",
                                               MASTER_PASSWORD)
    run = query(profile, tmp_path / "wrong.gpkg", ENDPOINT=private_s3_server.endpoint, AUTHCFG=wrong)
    assert_failed_cleanly(run)
    said = run.stdout + run.stderr
    assert f"s3://{BUCKET}" in said and "SignatureDoesNotMatch" in said, run.describe()
    assert f"The S3 server refused the keys of AUTHCFG ({wrong})" in said, run.describe()
    assert "not the secret key" not in said


def test_a_wrong_endpoint_is_named(profile, authcfg, private_database, private_s3_server, tmp_path):
    wrong = f"http://127.0.0.1:{closed_port()}"
    run = query(profile, tmp_path / "nowhere.gpkg", ENDPOINT=wrong, AUTHCFG=authcfg)
    assert_failed_cleanly(run)
    said = run.stdout + run.stderr
    assert f"s3://{BUCKET}" in said, run.describe()
    assert f"No S3 server answered at ENDPOINT ({wrong}): check the URL" in said, run.describe()
    assert_no_secret(run, private_s3_server.secret_access_key)


def test_an_unknown_authcfg_is_named(profile, authcfg, private_s3_server, private_database, tmp_path):
    run = query(profile, tmp_path / "unknown.gpkg", ENDPOINT=private_s3_server.endpoint, AUTHCFG="nosuch1")
    assert_failed_cleanly(run)
    assert "there is no authentication configuration nosuch1" in run.stdout + run.stderr, run.describe()
    assert "AUTHCFG" in run.stdout + run.stderr, run.describe()


def test_without_the_master_password_the_authentication_configuration_is_named_unreadable(profile, authcfg, private_s3_server,
                                                                                          tmp_path):
    """The same profile run without QGIS_AUTH_PASSWORD_FILE (standard input is /dev/null: no one to ask)."""
    without = QgisProcessProfile(profile.folder, extra_env={**profile.extra_env, "QGIS_AUTH_PASSWORD_FILE": None})
    run = query(without, tmp_path / "locked.gpkg", ENDPOINT=private_s3_server.endpoint, AUTHCFG=authcfg)
    assert_failed_cleanly(run)
    said = run.stdout + run.stderr
    assert f"cannot read the authentication configuration {authcfg}: QGIS's master password is not set" in said, run.describe()
    assert "QGIS_AUTH_PASSWORD_FILE" in said, run.describe()


def test_an_endpoint_with_a_local_database_is_refused_naming_it(profile, tmp_path):
    (tmp_path / "db").mkdir()
    run = query(profile, tmp_path / "local.gpkg", CONFIG=str(tmp_path / "db"), ENDPOINT="http://127.0.0.1:9")
    assert_failed_cleanly(run)
    assert "ENDPOINT (http://127.0.0.1:9) applies to an s3:// URI only" in run.stdout + run.stderr, run.describe()

