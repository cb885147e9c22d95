"""Query results as an xarray Dataset, like the reference package's ``return_type="xarray"``.

Dimension ``segment_id``; whole profile variables become 2-D variables on a
``percentile`` coordinate, whole 20 m variables on ``along_track_offset_m``;
units and descriptions from the catalogue are attributes. Saves to NetCDF.
"""

from collections import defaultdict
from typing import Sequence

import numpy as np

from ..errors import MissingDependencyError
from .products import DEFAULT_PRODUCT, product
from .query import Column


def to_xarray(frame, columns: Sequence[Column], product_name: str = DEFAULT_PRODUCT):
    try:
        import xarray as xr
    except ImportError:
        raise MissingDependencyError("xarray output needs the xarray package (pip install xarray)") from None
    variables = product(product_name).catalogue()
    # Time as naive UTC so NetCDF can encode it; beam ids as fixed-width text.
    time = frame["time"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    coords = {
        "segment_id": frame["segment_id"].to_numpy(),
        "latitude": ("segment_id", frame["latitude"].to_numpy()),
        "longitude": ("segment_id", frame["longitude"].to_numpy()),
        "time": ("segment_id", time),
        "beam_id": ("segment_id", frame["beam_id"].to_numpy().astype("S4")),
    }
    grouped = defaultdict(list)
    for column in columns:
        grouped[column.variable].append(column)
    data_vars = {}
    for name, group in grouped.items():
        variable = variables[name]
        attrs = {"units": variable.units, "description": variable.description}
        if variable.kind != "scalar" and variable.labels and len(group) == variable.length:
            dim = variable.label_name
            coords[dim] = np.array(variable.labels, dtype=np.int32)
            values = np.column_stack([frame[c.name].to_numpy() for c in group])
            data_vars[name] = (("segment_id", dim), values, attrs)
        else:
            for column in group:
                data_vars[column.name] = ("segment_id", frame[column.name].to_numpy(), attrs)
    dataset = xr.Dataset(data_vars=data_vars, coords=coords)
    dataset["time"].attrs["timezone"] = "UTC"
    return dataset
