"""The ingest ledger: which granules a database holds, beside the data (``ingest_ledger``).

A small sparse TileDB array keyed on the granule's content identity (``granule_identity``):
the TileDB timestamp of the batch that wrote it, its segment count, the file it came from, the
product's granule id, its segment ranges per beam (``segment_coverage``) and the product release
the file states (``"006"``, ``"007"``; "" when it does not say). The ingest writes a batch's fragments first and its ledger rows
second, so fragments newer than the ledger that no row names are the leftovers of a run that
died in between.

Ledgers written by the version before content identities are keyed on file names and lack ``file_name``,
``product_id`` and ``segment_ranges``: opening one adds those attributes (TileDB schema evolution; old rows read as
empty) and its rows stay valid until the ingest matches them to a file and re-keys them
(``claim``). Ledgers written before releases were recorded lack ``product_version``: it is added the same
way, and their rows read with an empty release.
"""

import time
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np

from .granule_identity import is_identity_key

VERSION = 3


@dataclass(frozen=True)
class LedgerEntry:
    key: str  # content identity, or a file name in rows written by the previous version
    batch_timestamp: int
    segments: int
    file_name: str = ""
    product_id: str = ""
    segment_ranges: str = ""  # the file's segment ranges per beam (granule_identity.ranges_text)
    product_version: str = ""  # the product release the file states ("006", "007"), "" when unknown

    @property
    def legacy(self) -> bool:
        return not is_identity_key(self.key)


def _new_attributes():
    import tiledb

    return [tiledb.Attr(name, dtype=str, var=True) for name in ("file_name", "product_id", "segment_ranges", "product_version")]


def create_ledger(uri: str, ctx) -> None:
    import tiledb

    schema = tiledb.ArraySchema(
        domain=tiledb.Domain(tiledb.Dim("granule", dtype="ascii")),
        attrs=[tiledb.Attr("batch_timestamp", dtype=np.int64), tiledb.Attr("segments", dtype=np.int64)] + _new_attributes(),
        sparse=True,
        allows_duplicates=False,
    )
    tiledb.Array.create(uri, schema, ctx=ctx)
    with tiledb.open(uri, "w", ctx=ctx) as ledger:
        # Fragments older than the ledger came from elsewhere (another tool, an earlier
        # copy): they are never mistaken for the leftovers of an interrupted run.
        ledger.meta["created_ms"] = int(time.time() * 1000)
        ledger.meta["version"] = VERSION


def upgrade_ledger(uri: str, ctx) -> Tuple[str, ...]:
    """Add the attributes a ledger of an earlier version lacks; returns their names (none: it was current)."""
    import tiledb

    with tiledb.open(uri, "r", ctx=ctx) as ledger:
        names = {ledger.schema.attr(i).name for i in range(ledger.schema.nattr)}
    added = tuple(attribute.name for attribute in _new_attributes() if attribute.name not in names)
    if not added:
        return ()
    evolution = tiledb.ArraySchemaEvolution(ctx)
    for attribute in _new_attributes():
        if attribute.name in added:
            evolution.add_attribute(attribute)
    evolution.array_evolve(uri)
    with tiledb.open(uri, "w", ctx=ctx) as ledger:
        ledger.meta["version"] = VERSION
    return added


def ledger_created_ms(uri: str, ctx) -> int:
    import tiledb

    with tiledb.open(uri, "r", ctx=ctx) as ledger:
        return int(ledger.meta.get("created_ms", 0))


def read_ledger(uri: str, ctx) -> Dict[str, LedgerEntry]:
    """Every row, by key (content identity, or file name for rows of the previous version)."""
    import tiledb

    with tiledb.open(uri, "r", ctx=ctx) as ledger:
        rows = ledger[:]
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in rows["granule"]]
    empty = [""] * len(keys)
    files = rows.get("file_name", empty)
    products = rows.get("product_id", empty)
    ranges = rows.get("segment_ranges", empty)
    versions = rows.get("product_version", empty)
    return {
        key: LedgerEntry(key, int(stamp), int(count), str(file_name or ""), str(product or ""), str(span or ""),
                         str(version or ""))
        for key, stamp, count, file_name, product, span, version
        in zip(keys, rows["batch_timestamp"], rows["segments"], files, products, ranges, versions)
    }


def record(uri: str, ctx, entries: Sequence[LedgerEntry]) -> None:
    """Write (or replace) ledger rows."""
    import tiledb

    if not entries:
        return
    with tiledb.open(uri, "w", ctx=ctx) as ledger:
        ledger[np.array([e.key for e in entries], dtype=object)] = {
            "batch_timestamp": np.array([e.batch_timestamp for e in entries], dtype=np.int64),
            "segments": np.array([e.segments for e in entries], dtype=np.int64),
            "file_name": np.array([e.file_name for e in entries], dtype=object),
            "product_id": np.array([e.product_id for e in entries], dtype=object),
            "segment_ranges": np.array([e.segment_ranges for e in entries], dtype=object),
            "product_version": np.array([e.product_version for e in entries], dtype=object),
        }


def claim(uri: str, ctx, legacy: LedgerEntry, entry: LedgerEntry) -> None:
    """Re-key a row of the previous version (a file name) to the content identity of its file."""
    import tiledb

    record(uri, ctx, [entry])
    with tiledb.open(uri, "d", ctx=ctx) as ledger:
        # TileDB parses conditions as Python expressions: repr() is an exact string literal
        ledger.query(cond=f"granule == {legacy.key!r}").submit()
