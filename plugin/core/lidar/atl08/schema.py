"""The TileDB array layout of the public ATL08 v7 database, and its metadata.

One sparse array, duplicates allowed, Hilbert cell order, capacity 100000;
dimensions ``latitude`` and ``longitude`` (float64) and ``time`` (int64 whole
days since 1970-01-01, domain 17532..24105); one attribute per scalar variable,
``name_1..name_N`` for profile and sub-segment variables; ``segment_id``,
``beam_id``, ``timestamp_ns`` and ``delta_time``.
"""

from typing import Dict, List

import numpy as np

from ..config import DatabaseConfig
from .catalogue import catalogue

TIME_DOMAIN = (17532, 24105)  # 2018-01-01 .. 2035-12-31 in days since 1970-01-01
BEAM_NUMBERS = {"gt1l": 0, "gt1r": 1, "gt2l": 2, "gt2r": 3, "gt3l": 4, "gt3r": 5}
EXTRA_ATTRIBUTES = {"timestamp_ns": "int64"}


def encode_segment_id(rgt, cycle, beam_number, segment_id_beg):
    """``rgt<<43 | cycle<<35 | beam<<32 | segment_id_beg``, unique per segment across the mission."""
    rgt = np.asarray(rgt, dtype=np.int64)
    cycle = np.asarray(cycle, dtype=np.int64)
    beam = np.asarray(beam_number, dtype=np.int64)
    seg = np.asarray(segment_id_beg, dtype=np.int64)
    return (rgt << 43) | (cycle << 35) | (beam << 32) | seg


BEAM_NAMES = np.array(list(BEAM_NUMBERS), dtype=object)  # by beam number 0-5


def beam_names(segment_id: np.ndarray) -> np.ndarray:
    """Beam names from the beam number in bits 32-34 of the public layout's segment_id."""
    return BEAM_NAMES.take((np.asarray(segment_id, dtype=np.int64) >> 32) & 0x7, mode="clip")


def decode_segment_id(segment_id):
    segment_id = np.asarray(segment_id, dtype=np.int64)
    return (
        segment_id >> 43,
        (segment_id >> 35) & 0xFF,
        (segment_id >> 32) & 0x7,
        segment_id & 0xFFFFFFFF,
    )


def attribute_dtypes() -> Dict[str, np.dtype]:
    """Every attribute of the public layout with its dtype (``beam_id`` is a string)."""
    dtypes: Dict[str, np.dtype] = {}
    for variable in catalogue().values():
        if variable.name == "beam_id":
            continue
        for name in variable.attribute_names:
            dtypes[name] = np.dtype(variable.dtype)
    for name, dtype in EXTRA_ATTRIBUTES.items():
        dtypes[name] = np.dtype(dtype)
    return dtypes


def _filters(config: DatabaseConfig, kind: str):
    import tiledb

    if not config.use_filters:
        return tiledb.FilterList([])
    if kind == "spatial":
        return tiledb.FilterList([tiledb.ZstdFilter(level=config.spatial_zstd_level)])
    if kind == "time":
        return tiledb.FilterList([tiledb.DoubleDeltaFilter(), tiledb.ZstdFilter(level=config.timestamp_zstd_level)])
    if kind == "float":
        return tiledb.FilterList([tiledb.ByteShuffleFilter(), tiledb.ZstdFilter(level=config.attribute_zstd_level)])
    return tiledb.FilterList([tiledb.ZstdFilter(level=config.attribute_zstd_level)])


def build_schema(config: DatabaseConfig):
    import tiledb

    dims = [
        tiledb.Dim("latitude", domain=(-90.0, 90.0), tile=config.tile_degrees[0], dtype=np.float64, filters=_filters(config, "spatial")),
        tiledb.Dim("longitude", domain=(-180.0, 180.0), tile=config.tile_degrees[1], dtype=np.float64, filters=_filters(config, "spatial")),
        tiledb.Dim("time", domain=TIME_DOMAIN, tile=365, dtype=np.int64, filters=_filters(config, "time")),
    ]
    attrs: List = []
    for name, dtype in attribute_dtypes().items():
        if name in ("timestamp_ns", "segment_id"):
            kind = "time"
        elif dtype.kind == "f":
            kind = "float"
        else:
            kind = "int"
        attrs.append(tiledb.Attr(name, dtype=dtype, filters=_filters(config, kind)))
    attrs.append(tiledb.Attr("beam_id", dtype=str, var=True, filters=_filters(config, "int")))
    return tiledb.ArraySchema(
        domain=tiledb.Domain(*dims),
        attrs=attrs,
        sparse=True,
        allows_duplicates=True,
        cell_order=config.cell_order,
        tile_order="row-major",
        capacity=config.capacity,
    )


def variable_metadata() -> Dict[str, object]:
    """Array metadata: ``{var}.units``, ``.description``, ``.dtype``, lengths and label keys
    (the reference package needs ``.profile_length``/``.subsegment_length`` to read profiles)."""
    meta: Dict[str, object] = {}
    for variable in catalogue().values():
        meta[f"{variable.name}.units"] = variable.units
        meta[f"{variable.name}.description"] = variable.description
        meta[f"{variable.name}.dtype"] = variable.dtype
        if variable.kind == "profile":
            meta[f"{variable.name}.profile_length"] = variable.length
            meta[f"{variable.name}.profile_labels"] = ",".join(str(v) for v in variable.labels)
            meta[f"{variable.name}.profile_label_name"] = variable.label_name
        elif variable.kind == "subsegment":
            meta[f"{variable.name}.subsegment_length"] = variable.length
        if variable.kind == "subsegment" and variable.labels:
            meta[f"{variable.name}.subsegment_labels"] = ",".join(str(v) for v in variable.labels)
            meta[f"{variable.name}.subsegment_label_name"] = variable.label_name
    return meta


def create_array(uri: str, config: DatabaseConfig, ctx) -> None:
    import tiledb

    tiledb.Array.create(uri, build_schema(config), ctx=ctx)
    with tiledb.open(uri, mode="w", ctx=ctx) as array:
        for key, value in variable_metadata().items():
            array.meta[key] = value
