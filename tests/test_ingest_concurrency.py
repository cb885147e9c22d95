"""Ingests into one database at the same time, on local disk and on the loopback S3 server: one
writes, the other waits and then finds every granule in the ledger; a killed ingest's lock does
not block the next one; a lock held elsewhere is waited for, then refused with a clear message."""

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import tiledb

from canopy_explorer.plugin.core.lidar.config import load_config
from canopy_explorer.plugin.core.errors import Cancelled, StorageError
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules, read_ledger
from canopy_explorer.plugin.core.lidar.ingest_lock import LOCK_NAME, IngestLock
from conftest import s3_config
from granule_truth import segments


@pytest.fixture(scope="module")
def granules(tmp_path_factory):
    """Enough granules that an ingest takes a few seconds: two started together overlap."""
    from canopy_explorer.plugin.core.samples.granules import generate_granules

    folder = tmp_path_factory.mktemp("many_granules")
    return generate_granules(folder, region=(45.0, 45.4, 7.0, 7.4), start=dt.date(2020, 1, 1), end=dt.date(2021, 12, 31),
                             n_tracks=12, seed=23)


def database_file(storage, tmp_path, request, **extra):
    """A configuration YAML for a new database, local or in a new bucket; (path, config)."""
    lines = [f"  {key}: {value}" for key, value in extra.items()]
    if storage == "local":
        body = ["  storage_type: local", f"  local_path: {tmp_path / 'db'}"]
    else:
        endpoint = request.getfixturevalue("s3_server")
        bucket = f"atl08-concurrent-{uuid.uuid4().hex[:8]}"
        s3_config(endpoint, bucket)  # creates the bucket
        body = ["  storage_type: s3", f"  s3_bucket: {bucket}", f"  url: {endpoint}", "  s3_region: us-east-1",
                "  s3_settings:", "    aws_access_key_id: testing", "    aws_secret_access_key: testing"]
    path = tmp_path / "db.yaml"
    path.write_text("tiledb:\n" + "\n".join(body + lines) + "\n")
    return path, load_config(path)


def ingest_process(config_file, folder, *arguments):
    return subprocess.Popen(
        [sys.executable, "-m", "canopy_explorer.plugin.core.lidar.ingest", str(config_file), str(folder), "--workers", "1",
         "--executor", "thread", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def context(config):
    return tiledb.Ctx(tiledb.Config(config.tiledb_config()))


def stored_ids(config):
    with tiledb.open(config.array_uri, ctx=context(config)) as array:
        return np.sort(array.query(attrs=["segment_id"])[:]["segment_id"])


def lock_entries(config):
    uri = f"{config.base_uri}/{LOCK_NAME}"
    if config.storage_type == "local":
        return sorted(os.listdir(uri)) if os.path.isdir(uri) else []
    return sorted(u.rsplit("/", 1)[-1] for u in tiledb.VFS(ctx=context(config)).ls(uri))


def put_claim(config, name):
    uri = f"{config.base_uri}/{LOCK_NAME}/{name}"
    if config.storage_type == "local":
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        open(uri, "w").close()
    else:
        with tiledb.VFS(ctx=context(config)).open(uri, "wb") as handle:
            handle.write(b"{}")


def assert_every_segment_once(config, paths):
    ids = stored_ids(config)
    truth = np.sort(segments(paths)["segment_id"])
    assert len(ids) == len(np.unique(ids)), f"{len(ids) - len(np.unique(ids))} segments stored twice"
    np.testing.assert_array_equal(ids, truth)
    ledger = read_ledger(config.ledger_uri, context(config))
    assert sorted(e.file_name for e in ledger.values()) == sorted(p.name for p in paths)
    assert sum(e.segments for e in ledger.values()) == len(ids)


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_two_ingests_started_together_store_every_segment_once(storage, granules, tmp_path, request):
    config_file, config = database_file(storage, tmp_path, request)
    folder = granules[0].parent
    runs = [ingest_process(config_file, folder) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err
    written = sorted(int(re.search(r"(\d+) granules written", out).group(1)) for out, _ in outputs)
    assert written == [0, len(granules)]
    assert any(f"{len(granules)} already in the database" in out for out, _ in outputs)
    assert any("waiting for another ingest" in err for _, err in outputs), "the two ingests did not overlap"
    assert_every_segment_once(config, granules)
    assert lock_entries(config) == []


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_an_ingest_killed_while_holding_the_lock_does_not_block_the_next(storage, granules, tmp_path, request):
    config_file, config = database_file(storage, tmp_path, request, flush_every=1)
    run = ingest_process(config_file, granules[0].parent)
    deadline = time.monotonic() + 300
    while not (lock_entries(config) and tiledb.object_type(config.ledger_uri, ctx=context(config))
               and read_ledger(config.ledger_uri, context(config))):  # killed once some granules are in
        assert time.monotonic() < deadline and run.poll() is None, "the first ingest never wrote a granule"
        time.sleep(0.05)
    run.kill()
    run.communicate()
    left = lock_entries(config)
    assert len(left) == 1 and f".{run.pid}." in left[0]
    started = time.monotonic()
    taken_over = []

    def log(message):
        if "removed a stale ingest lock" in message:
            taken_over.append(time.monotonic() - started)

    report = ingest_granules(config, granules, workers=1, lock_wait_s=120, log=log)
    assert len(taken_over) == 1 and taken_over[0] < 10  # at once, not after the 60 s lease
    assert any(f"removed a stale ingest lock of process {run.pid} on" in note and "its process no longer runs" in note
               for note in report.notes)
    assert 0 < len(report.already_ingested) < len(granules)  # resumed where the killed one stopped
    assert_every_segment_once(config, granules)
    assert lock_entries(config) == []


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_lock_held_on_another_machine_is_waited_for_then_refused_clearly(storage, sample_granules, tmp_path, request):
    _, config = database_file(storage, tmp_path, request)
    future_ms = int((time.time() + 300) * 1000)
    put_claim(config, f"claim.{future_ms}.0123456789abcdef.4242.other-host~1a2b3c4d")
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"is being written by another ingest \(process 4242 on other-host; waited \d+ s\): "
                                           r"try again when it has finished"):
        ingest_granules(config, sample_granules, workers=1, lock_wait_s=1.5)
    assert 1.5 <= time.monotonic() - started < 30
    assert tiledb.object_type(config.array_uri, ctx=context(config)) is None  # nothing created
    assert lock_entries(config) == [f"claim.{future_ms}.0123456789abcdef.4242.other-host~1a2b3c4d"]  # not ours to remove


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_an_expired_lock_from_another_machine_is_taken_over(storage, sample_granules, tmp_path, request):
    _, config = database_file(storage, tmp_path, request)
    put_claim(config, f"claim.{int((time.time() - 90) * 1000)}.0123456789abcdef.4242.other-host~1a2b3c4d")
    report = ingest_granules(config, sample_granules, workers=1, lock_wait_s=5)
    assert any(re.search(r"removed a stale ingest lock of process 4242 on other-host: its lease ended 9\d s ago", note)
               for note in report.notes)
    assert_every_segment_once(config, sample_granules)
    assert lock_entries(config) == []


def test_two_ingests_in_one_process_take_turns(sample_granules, tmp_path, request):
    """QGIS runs Processing algorithms on a thread pool: two ingests of one database from one process."""
    _, config = database_file("local", tmp_path, request)
    reports, errors, messages = [], [], []

    def ingest(paths):
        try:
            reports.append(ingest_granules(config, paths, workers=1, executor="thread", log=messages.append))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=ingest, args=(sample_granules,)), threading.Thread(target=ingest, args=(sample_granules[::-1],))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    assert sorted(len(r.written) for r in reports) == [0, len(sample_granules)]
    assert_every_segment_once(config, sample_granules)


def test_threads_of_one_process_never_hold_the_lock_together(tmp_path, request):
    """A thread that has written its claim but not yet listed the folder is a contender, not a leftover
    of a failed run: no other thread may remove its claim (both then held the lock)."""
    _, config = database_file("local", tmp_path, request)
    inside, overlaps, errors = [], [], []

    def contend():
        try:
            for _ in range(10):
                with IngestLock(config, tiledb.Ctx()) as lock:
                    inside.append(lock.token)
                    if len(inside) > 1:
                        overlaps.append(list(inside))
                    time.sleep(0.002)
                    inside.remove(lock.token)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == [] and overlaps == []
    assert not (tmp_path / "db" / LOCK_NAME).exists()


def test_cancel_while_waiting_for_the_lock_stops_without_writing(sample_granules, tmp_path, request):
    _, config = database_file("local", tmp_path, request)
    calls = []

    def cancel_while_waiting(fraction):
        calls.append(fraction)
        raise Cancelled("cancelled")

    with IngestLock(config, tiledb.Ctx()):
        with pytest.raises(Cancelled):
            ingest_granules(config, sample_granules, workers=1, progress=cancel_while_waiting)
    assert calls == [0.0]
    assert list((tmp_path / "db").iterdir()) == []  # no database, no ledger, no lock (the folder is the holder's)


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_the_lease_is_renewed_and_a_holder_that_lost_its_claim_stops(storage, tmp_path, request):
    _, config = database_file(storage, tmp_path, request)
    lock = IngestLock(config, context(config), lease_s=0.8)
    lock.acquire()
    try:
        first = lock_entries(config)
        time.sleep(0.7)
        renewed = lock_entries(config)
        assert len(first) == len(renewed) == 1 and first != renewed
        assert int(renewed[0].split(".")[1]) > int(first[0].split(".")[1])
        rival = IngestLock(config, context(config), wait_s=0.5)
        with pytest.raises(StorageError, match="being written by another ingest"):
            rival.acquire()
        lock.check()
        deadline = time.monotonic() + 10
        while lock._lost is None and time.monotonic() < deadline:  # someone removes the holder's claims
            for name in lock_entries(config):
                try:
                    if storage == "local":
                        os.remove(f"{config.base_uri}/{LOCK_NAME}/{name}")
                    else:
                        tiledb.VFS(ctx=context(config)).remove_file(f"{config.base_uri}/{LOCK_NAME}/{name}")
                except (OSError, tiledb.TileDBError):
                    pass  # renewed meanwhile
            time.sleep(0.02)
        with pytest.raises(StorageError, match=r"the ingest lock on .* was lost: its claim was removed by another process"):
            lock.check()
    finally:
        lock.release()
    assert lock_entries(config) == []
