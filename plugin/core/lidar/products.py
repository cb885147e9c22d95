"""The lidar products the engine can store and query, by the name configurations give them.

The engine (ingest, queries, filters, outputs) is product-neutral: what it must know of a product,
it asks the product's ``LidarProduct``, built in the product's package (``atl08/__init__.py``) and
registered here by one line in ``PRODUCT_PACKAGES``. A database's configuration names its product
(``product: atl08``, the default); a query names the product whose variables it asks for.
"""

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Tuple

from ..errors import ConfigurationError
from .variables import Variable, find_variable

DEFAULT_PRODUCT = "atl08"
# name -> the package (relative to this one) whose ``PRODUCT`` describes it
PRODUCT_PACKAGES: Dict[str, str] = {
    "atl08": ".atl08",
}


@dataclass(frozen=True)
class LidarProduct:
    """What the engine asks of one product. Functions, so a product's package keeps its own code."""

    name: str  # as configurations name it
    title: str  # as messages name it ("ATL08": "no ATL08 database at ...")
    catalogue: Callable[[], Mapping[str, Variable]]  # every variable by name
    required_attributes: Tuple[str, ...]  # attributes an array must have to be this product's database
    create_array: Callable  # (uri, DatabaseConfig, ctx): the empty array and its metadata
    decode_segment_id: Callable  # ids -> (track, cycle, beam, index) arrays: what coverage and identity compare
    beam_names: Callable  # ids -> the beams' names (the beam_id column), decoded rather than read
    identify_granule: Callable  # path -> GranuleIdentity (content key, track, cycle, ranges, extent)
    read_granule: Callable  # (path, reference_filters=...) -> columns by attribute name
    granule_date: Callable  # path -> date from the file name, or None
    segment_bounds: Callable  # DatabaseConfig -> the bounds check_segments holds rows to (picklable)
    check_segments: Callable  # (columns, bounds) -> (kept columns, rows dropped per reason)
    describe_drops: Callable  # (rows dropped per reason, rows) -> one line for the report

    def variable(self, name: str) -> Variable:
        """The catalogue entry for ``name``, or an error suggesting the closest name."""
        return find_variable(self.catalogue(), name, self.title)


def product(name: str = DEFAULT_PRODUCT) -> LidarProduct:
    """The registered product called ``name``."""
    package = PRODUCT_PACKAGES.get(name)
    if package is None:
        raise ConfigurationError(f"unknown lidar product {name!r}: this version knows {', '.join(sorted(PRODUCT_PACKAGES))}")
    return importlib.import_module(package, __package__).PRODUCT
