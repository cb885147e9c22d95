"""A lidar product's variables, as its catalogue describes them: name, path in the granule, dtype,
kind (one value per segment, or a profile of several), labels, units, category and description.
Each product reads its own catalogue (``atl08/atl08_variables.csv``); the engine only uses these."""

import difflib
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from ..errors import UnknownVariableError

SCALAR = "scalar"
PROFILE = "profile"


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
    is_derived: bool = False  # computed at ingest (segment ids, beam names), not read from a granule

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


def suggest(name: str, candidates) -> Optional[str]:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def find_variable(variables: Mapping[str, Variable], name: str, product_title: str) -> Variable:
    """The catalogue entry for ``name``, or an error suggesting the closest name."""
    try:
        return variables[name]
    except KeyError:
        close = suggest(name, variables)
        hint = f": did you mean '{close}'?" if close else f" (see the {product_title} variable list)"
        raise UnknownVariableError(f"unknown variable '{name}'{hint}") from None
