"""The ATL08 variable catalogue: names, HDF5 paths, dtypes, kinds, labels, units.

The catalogue is the CSV shipped beside this module (the 90 variables of the
public ATL08 v7 database). Everything else -- the TileDB schema, the granule
reader, the query's column names, the dialog's variable list -- derives from it.
"""

import csv
import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

from ...errors import UnknownVariableError

CATALOGUE_CSV = Path(__file__).with_name("atl08_variables.csv")

SCALAR = "scalar"
PROFILE = "profile"

# Variables the database derives at ingest rather than reading from a granule.
DERIVED_VARIABLES = ("segment_id", "beam_id")


@dataclass(frozen=True)
class Variable:
    name: str
    hdf5_path: str
    dtype: str
    kind: str
    length: int
    label_name: str
    labels: Tuple[int, ...]
    units: str
    category: str
    description: str

    @property
    def is_derived(self) -> bool:
        return self.name in DERIVED_VARIABLES

    @property
    def is_orbit_info(self) -> bool:
        """Per-granule values stored under ``orbit_info/`` rather than per beam."""
        return self.hdf5_path.startswith("orbit_info/")

    @property
    def attribute_names(self) -> Tuple[str, ...]:
        """TileDB attribute names: ``name`` or ``name_1 .. name_N`` (1-based)."""
        if self.kind == SCALAR:
            return (self.name,)
        return tuple(f"{self.name}_{i}" for i in range(1, self.length + 1))

    def label_column(self, label: int) -> Tuple[str, str]:
        """(TileDB attribute, output column) for one label of a profile or sub-segment variable.

        ``canopy_h_metrics:50`` reads ``canopy_h_metrics_9`` into ``canopy_h_metrics_p50``;
        ``h_canopy_20m:50`` reads ``h_canopy_20m_3`` into ``h_canopy_20m_50m``, as the
        reference package names them.
        """
        if self.kind == SCALAR:
            raise UnknownVariableError(
                f"'{self.name}' is a scalar variable and has no labels; use '{self.name}' alone"
            )
        if not self.labels:
            raise UnknownVariableError(
                f"'{self.name}' has no named labels; use '{self.name}' for all {self.length} columns"
            )
        if label not in self.labels:
            valid = ", ".join(str(v) for v in self.labels)
            raise UnknownVariableError(
                f"'{self.name}' has no label {label}; valid {self.label_name} labels are: {valid}"
            )
        index = self.labels.index(label) + 1
        suffix = f"p{label}" if self.kind == PROFILE else f"{label}m"
        return f"{self.name}_{index}", f"{self.name}_{suffix}"


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
    )


@lru_cache(maxsize=1)
def catalogue() -> Dict[str, Variable]:
    """All ATL08 variables by name, in the CSV's order."""
    with CATALOGUE_CSV.open(newline="", encoding="utf-8") as handle:
        return {row["name"]: _parse_row(row) for row in csv.DictReader(handle)}


def suggest(name: str, candidates) -> Optional[str]:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def get_variable(name: str) -> Variable:
    """The catalogue entry for ``name``, or an error suggesting the closest name."""
    variables = catalogue()
    try:
        return variables[name]
    except KeyError:
        close = suggest(name, variables)
        hint = f": did you mean '{close}'?" if close else " (see the ATL08 variable list)"
        raise UnknownVariableError(f"unknown variable '{name}'{hint}") from None


def granule_variables() -> Tuple[Variable, ...]:
    """Variables read from a granule's beam groups (``<beam>/land_segments/...``)."""
    return tuple(v for v in catalogue().values() if not v.is_derived and not v.is_orbit_info)
