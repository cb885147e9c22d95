"""The ATL08 variable catalogue: names, HDF5 paths, dtypes, kinds, labels, units.

The catalogue is the CSV shipped beside this module (the 90 variables of the
public ATL08 v7 database). Everything else -- the TileDB schema, the granule
reader, the query's column names, the dialog's variable list -- derives from it.
"""

import csv
from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

from ..variables import Variable, find_variable

CATALOGUE_CSV = Path(__file__).with_name("atl08_variables.csv")

# Variables the database derives at ingest rather than reading from a granule.
DERIVED_VARIABLES = ("segment_id", "beam_id")


def _parse_row(row: Dict[str, str]) -> Variable:
    labels = tuple(int(v) for v in row["labels"].split()) if row["labels"] else ()
    return Variable(
        name=row["name"],
        hdf5_path=row["hdf5_path"],
        dtype=row["dtype"],
        kind=row["kind"],
        length=int(row["length"]),
        label_name=row["label_name"],
        labels=labels,
        units=row["units"],
        category=row["category"],
        description=row["description"],
        is_derived=row["name"] in DERIVED_VARIABLES,
    )


@lru_cache(maxsize=1)
def catalogue() -> Dict[str, Variable]:
    """All ATL08 variables by name, in the CSV's order."""
    with CATALOGUE_CSV.open(newline="", encoding="utf-8") as handle:
        return {row["name"]: _parse_row(row) for row in csv.DictReader(handle)}


def get_variable(name: str) -> Variable:
    """The catalogue entry for ``name``, or an error suggesting the closest name."""
    return find_variable(catalogue(), name, "ATL08")


def granule_variables() -> Tuple[Variable, ...]:
    """Variables read from a granule's beam groups (``<beam>/land_segments/...``)."""
    return tuple(v for v in catalogue().values() if not v.is_derived and not v.is_orbit_info)
