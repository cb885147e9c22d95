"""What the distributed ingest tests compare: a database's rows in full, its ledger and its fragments."""

import hashlib

import numpy as np
import tiledb

from canopy_explorer.plugin.core.lidar.ingest_ledger import ledger_created_ms, read_ledger


def context(config):
    return tiledb.Ctx(tiledb.Config(config.tiledb_config()))


def rows_by_segment(config):
    """Every attribute and coordinate of every row, ordered by segment id."""
    with tiledb.open(config.array_uri, ctx=context(config)) as array:
        rows = array[:]
    order = np.argsort(rows["segment_id"], kind="stable")
    return {name: values[order] for name, values in rows.items()}


def checksum(rows) -> str:
    """One digest of all rows' values (NaN compares equal to NaN through its bytes)."""
    digest = hashlib.sha256()
    for name in sorted(rows):
        values = rows[name]
        digest.update(name.encode())
        digest.update(b"".join(str(v).encode() for v in values) if values.dtype == object else np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def unrecorded_fragments(config) -> list:
    """Fragments no ledger row names (newer than the ledger): what an interrupted run leaves behind."""
    ctx = context(config)
    known = {entry.batch_timestamp for entry in read_ledger(config.ledger_uri, ctx).values()}
    created = ledger_created_ms(config.ledger_uri, ctx)
    return [f.uri for f in tiledb.FragmentInfoList(config.array_uri, ctx=ctx)
            if f.timestamp_range[0] > created and f.timestamp_range[0] not in known]


def assert_no_duplicate(rows) -> None:
    ids = rows["segment_id"]
    assert len(ids) == len(np.unique(ids)), "a segment is stored twice"
