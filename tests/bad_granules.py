"""Granules a careless or hostile user might feed the ingest, made by copying a sample granule
and editing it with h5py, and databases written the way earlier versions wrote them.

Shared by the ingest integrity and concurrency tests and the bad-input matrix."""

import shutil
from pathlib import Path

import h5py
import numpy as np

FILL = np.float32(3.4028235e38)


def copy_as(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def set_values(path: Path, beam: str, dataset: str, rows, value) -> Path:
    """``<beam>/land_segments/<dataset>[rows] = value`` in place."""
    with h5py.File(path, "r+") as h5:
        data = h5[f"{beam}/land_segments/{dataset}"]
        values = data[:]
        values[rows] = value
        data[...] = values
    return path


def shorten(path: Path, beam: str, dataset: str, by: int = 5) -> Path:
    """Rewrite ``<beam>/land_segments/<dataset>`` ``by`` rows shorter than the beam's other datasets."""
    with h5py.File(path, "r+") as h5:
        land = h5[f"{beam}/land_segments"]
        values = land[dataset][:]
        attributes = dict(land[dataset].attrs)
        del land[dataset]
        data = land.create_dataset(dataset, data=values[:-by])
        for key, value in attributes.items():
            data.attrs[key] = value
    return path


def subset(path: Path, keep_beams, rows: slice) -> Path:
    """What a subsetting service (Harmony, icepyx) makes of a granule: only ``keep_beams``, and of each
    only ``rows`` of every land_segments dataset."""
    with h5py.File(path, "r+") as h5:
        for beam in [b for b in ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r") if b in h5]:
            if beam not in keep_beams:
                del h5[beam]
                continue
            datasets = []
            h5[f"{beam}/land_segments"].visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
            land = h5[f"{beam}/land_segments"]
            for name in datasets:
                values, attributes = land[name][rows], dict(land[name].attrs)
                del land[name]
                land.create_dataset(name, data=values)
                for key, value in attributes.items():
                    land[name].attrs[key] = value
    return path


def beam_rows(path: Path, beam: str) -> int:
    with h5py.File(path, "r") as h5:
        return h5[f"{beam}/land_segments/latitude"].shape[0]


def write_legacy_database(config, granules, ctx=None):
    """A database as the version before content identities wrote it: data fragments from the
    engine's writer, a ledger keyed on file names with only a batch timestamp and segment count."""
    import time

    import tiledb

    from canopy_explorer.plugin.core.lidar.atl08.granule import read_granule
    from canopy_explorer.plugin.core.lidar.ingest import _write_batch
    from canopy_explorer.plugin.core.lidar.atl08.schema import create_array

    ctx = ctx or tiledb.Ctx()
    if config.storage_type == "local":
        Path(config.base_uri).mkdir(parents=True, exist_ok=True)
    create_array(config.array_uri, config, ctx)
    schema = tiledb.ArraySchema(
        domain=tiledb.Domain(tiledb.Dim("granule", dtype="ascii")),
        attrs=[tiledb.Attr("batch_timestamp", dtype=np.int64), tiledb.Attr("segments", dtype=np.int64)],
        sparse=True,
        allows_duplicates=False,
    )
    tiledb.Array.create(config.ledger_uri, schema, ctx=ctx)
    with tiledb.open(config.ledger_uri, "w", ctx=ctx) as ledger:
        ledger.meta["created_ms"] = int(time.time() * 1000)
    time.sleep(0.01)
    stamp = int(time.time() * 1000)
    counts = []
    for index, path in enumerate(granules):
        columns = read_granule(path)
        _write_batch(config.array_uri, ctx, columns, stamp + index, config)
        counts.append(len(columns["latitude"]))
    with tiledb.open(config.ledger_uri, "w", ctx=ctx) as ledger:
        ledger[np.array([Path(p).name for p in granules], dtype=object)] = {
            "batch_timestamp": np.arange(stamp, stamp + len(granules), dtype=np.int64),
            "segments": np.array(counts, dtype=np.int64),
        }


def write_poisoned_fragment(config, granule, ctx=None):
    """A fragment with NaN latitudes, recorded in the ledger, as the version before row checks wrote
    it from fill values (in a fragment of its own: its write tile was computed from the NaN)."""
    import time

    import tiledb

    from canopy_explorer.plugin.core.lidar.atl08.granule import read_granule
    from canopy_explorer.plugin.core.lidar.ingest import _record

    ctx = ctx or tiledb.Ctx()
    columns = read_granule(granule)
    rows = slice(0, 10)
    stamp = int(time.time() * 1000) + 1
    with tiledb.open(config.array_uri, "w", timestamp=stamp, ctx=ctx) as array:
        array[np.full(10, np.nan), columns["longitude"][rows], columns["time"][rows]] = {
            k: v[rows] for k, v in columns.items() if k not in ("latitude", "longitude", "time")
        }
    _record(config.ledger_uri, ctx, [(Path(granule).name, stamp, 10)])
