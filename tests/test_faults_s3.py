"""S3 under faults: a proxy in front of the loopback S3 server drops connections, delays answers and
returns 503s; queries retry and return the right rows or fail clearly, ingests resume without
duplicates or losses."""

import time

import boto3
import numpy as np
import pytest

from canopy_explorer.plugin.core.lidar.config import DatabaseConfig
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.errors import StorageError
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from fault_proxy import FaultProxy
from granule_truth import segments

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def config_through(url: str, bucket: str, **settings) -> DatabaseConfig:
    return DatabaseConfig(storage_type="s3", s3_bucket=bucket, url=url, s3_region="us-east-1",
                          s3_settings={**KEYS, "connect_timeout_ms": "2000", "request_timeout_ms": "5000", **settings},
                          source="test").with_changes()


def create_bucket(endpoint: str, bucket: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **KEYS).create_bucket(Bucket=bucket)


def checksum(ids) -> int:
    return int(np.bitwise_xor.reduce(np.asarray(ids, dtype=np.int64))) if len(ids) else 0


@pytest.fixture(scope="module")
def clean_result(s3_database):
    spec = SegmentQuery.create(variables=["h_canopy", "canopy_h_metrics:95"], filters="h_canopy >= 0")
    frame = Atl08Database(s3_database).query(spec)
    return spec, frame.sort_values("segment_id").reset_index(drop=True)


def test_the_proxy_counts_requests_connections_and_the_bytes_it_sends_back_until_reset(s3_server):
    bucket = "proxy-counts"
    create_bucket(s3_server, bucket)
    direct = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **KEYS)
    direct.put_object(Bucket=bucket, Key="object", Body=b"x" * 1000)
    direct.close()
    with FaultProxy(s3_server, delay_rate=1.0, delay_s=0.01) as proxy:
        proxy.set(connection_delay_s=0.02)
        client = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1", **KEYS)
        assert client.get_object(Bucket=bucket, Key="object")["Body"].read() == b"x" * 1000
        assert client.get_object(Bucket=bucket, Key="object", Range="bytes=0-99")["Body"].read() == b"x" * 100
        counts = proxy.counts()
        # one kept-alive connection: its handshakes' delay is added to its first request only
        assert (counts["requests"], counts["delays"], counts["connections"], counts["bytes"]) == (2, 2, 1, 1100)
        assert [tuple(entry) for entry in proxy.requests()] == [("GET", f"/{bucket}/object", 200, 1000), ("GET", f"/{bucket}/object", 206, 100)]
        proxy.reset()
        assert set(proxy.counts().values()) == {0} and proxy.requests() == []
        proxy.set(delay_s=0.0)
        client.head_object(Bucket=bucket, Key="object")
        assert (proxy.counts()["requests"], proxy.counts()["bytes"]) == (1, 0)  # a HEAD answer has no body
        assert proxy.counts()["connections"] == 0
        other = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1", **KEYS)
        other.head_object(Bucket=bucket, Key="object")
        assert proxy.counts()["connections"] == 1
        other.close()
        client.close()


def test_queries_through_503s_drops_and_delays_return_the_right_rows(s3_server, s3_database, clean_result):
    spec, expected = clean_result
    with FaultProxy(s3_server, error_rate=0.1, drop_rate=0.03, delay_rate=0.1, delay_s=0.2, seed=1) as proxy:
        config = config_through(proxy.url, s3_database.s3_bucket)
        # Rounds until every kind of fault has met a request: each round opens the database anew
        # (TileDB's read-ahead cache answers the small tiles of a database it has read once)
        for _ in range(10):
            database = Atl08Database(config)
            frame = database.query(spec).sort_values("segment_id").reset_index(drop=True)
            np.testing.assert_array_equal(frame["segment_id"], expected["segment_id"])
            np.testing.assert_array_equal(frame["h_canopy"], expected["h_canopy"])
            batches = [b for b in database.iter_batches(spec, rows=5_000)]
            assert sum(len(b) for b in batches) == len(expected)
            database.close()
            counts = proxy.counts()
            if counts["errors"] and counts["drops"] and counts["delays"]:
                break
    assert counts["errors"] > 0 and counts["drops"] > 0 and counts["delays"] > 0


# Opening an array on S3 loads every fragment's footer (a HEAD and a ranged GET each). The dialog's
# and Processing's batched reads borrow the array the database holds, with a context of bounded
# memory for the query, rather than open another one.
def test_a_batched_read_after_a_query_loads_no_fragment_footer_again(s3_server, s3_database, clean_result):
    spec, expected = clean_result

    def footers(proxy):
        # each fragment's __fragment_metadata.tdb, or one __fragment_meta/*.meta where they are consolidated
        return [path for _, path, _, _ in proxy.requests() if "/__fragment_meta" in path]

    with FaultProxy(s3_server) as proxy:
        database = Atl08Database(config_through(proxy.url, s3_database.s3_bucket))
        assert footers(proxy)
        assert len(database.query(spec)) == len(expected)
        proxy.reset()
        batches = list(database.iter_batches(spec, rows=2_000))
        assert len(batches) > 1 and sum(len(b) for b in batches) == len(expected)
        assert footers(proxy) == []


# tiledb-py opens the array again for every query with a TileDB query condition (to read its
# schema), which on S3 loads every fragment's footer again; filters are applied to the rows read.
def test_a_filtered_query_does_not_open_the_array_again(s3_server, s3_database, clean_result):
    spec, expected = clean_result
    assert spec.filter is not None
    with FaultProxy(s3_server) as proxy:
        database = Atl08Database(config_through(proxy.url, s3_database.s3_bucket))
        proxy.reset()
        frame = database.query(spec).sort_values("segment_id").reset_index(drop=True)
        # what an open reads and a query does not: the schema, and the footers (consolidated here)
        opening = [path for _, path, _, _ in proxy.requests() if "/__schema/" in path or "/__fragment_meta/" in path]
    np.testing.assert_array_equal(frame["segment_id"], expected["segment_id"])
    assert opening == []


def test_a_server_that_only_fails_gives_a_clear_error_within_a_deadline(s3_server, s3_database, clean_result, tmp_path):
    from canopy_explorer.plugin.core.segment_files import write_segments

    spec, _ = clean_result
    with FaultProxy(s3_server, seed=2) as proxy:
        database = Atl08Database(config_through(proxy.url, s3_database.s3_bucket, connect_max_tries="3"))
        # every connection is dropped (a 503 on every request is retried by the AWS SDK inside TileDB
        # for longer than any test should wait; see docs/ROBUSTNESS.md)
        proxy.set(drop_rate=1.0)
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"s3://atl08-sample/array_uri failed \(after \d+ attempts\)"):
            database.query(spec)
        with pytest.raises(StorageError):
            write_segments(database.iter_batches(spec, rows=2_000), tmp_path / "out.gpkg", "segments")
        assert time.monotonic() - started < 120
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_ingest_through_faults_resumes_without_duplicates_or_losses(s3_server, sample_granules):
    bucket = "atl08-faults"
    create_bucket(s3_server, bucket)
    truth = np.sort(segments(sample_granules)["segment_id"])
    with FaultProxy(s3_server, error_rate=0.03, drop_rate=0.02, delay_rate=0.05, delay_s=0.1, seed=3) as proxy:
        config = config_through(proxy.url, bucket)
        attempts = 0
        while True:
            attempts += 1
            try:
                ingest_granules(config, sample_granules, workers=1)
                break
            except StorageError:
                assert attempts < 5, "the ingest never got through"
        again = ingest_granules(config, sample_granules, workers=1)  # idempotent, even through faults
        assert again.written == [] and again.segments == 0
        counts = proxy.counts()
    ids = np.sort(Atl08Database(config_through(s3_server, bucket)).query(SegmentQuery.create(variables=["h_canopy"]))["segment_id"])
    assert len(ids) == len(truth) and len(np.unique(ids)) == len(ids)
    assert checksum(ids) == checksum(truth) and np.array_equal(ids, truth)
    assert counts["errors"] + counts["drops"] > 0


def test_ingest_failing_midway_is_completed_by_the_next_run(s3_server, sample_granules):
    """The S3 server stops answering halfway through; the rerun resumes from the ledger."""
    bucket = "atl08-midway"
    create_bucket(s3_server, bucket)
    truth = np.sort(segments(sample_granules)["segment_id"])
    with FaultProxy(s3_server, seed=4) as proxy:
        config = config_through(proxy.url, bucket, connect_max_tries="2").with_changes(flush_every=1)
        def progress(fraction):
            if fraction >= 0.5:
                proxy.set(drop_rate=1.0)  # once the first granule is written, every connection is dropped

        with pytest.raises(StorageError):
            ingest_granules(config, sample_granules, workers=1, progress=progress)
        proxy.set(drop_rate=0.0)
        report = ingest_granules(config, sample_granules, workers=1)
        assert 0 < len(report.written) < len(sample_granules)  # only what the first run did not record
    ids = np.sort(Atl08Database(config_through(s3_server, bucket)).query(SegmentQuery.create(variables=["h_canopy"]))["segment_id"])
    assert np.array_equal(ids, truth)
