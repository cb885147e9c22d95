"""What identifies a granule file in a database's ledger, for any lidar product: a key read from
the file's content (``<product>-<track>-<cycle>-<first segment>-<last segment>-<digest>``, built by
the product's ``identify_granule``), the track and cycle it covers and its segment ranges per beam.
See ``atl08/granule_identity.py`` for how ATL08 reads it."""

import re
from dataclasses import dataclass
from typing import Optional, Tuple

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*-\d+-\d+-\d+-\d+-[0-9a-f]{32}$")


@dataclass(frozen=True)
class GranuleIdentity:
    key: str
    rgt: int
    cycle: int
    first_segment: int
    last_segment: int
    segments: int  # rows in the file, all beams
    product_id: str  # the product's granule id, "" when the file has none
    year: Optional[int]  # of the first valid acquisition time
    extent: Optional[Tuple[float, float, float, float, int, int]]  # lat_min, lat_max, lon_min, lon_max, first day, last day
    ranges: Tuple[Tuple[int, int, int], ...] = ()  # (beam number, first, last valid segment_id_beg) per beam
    version: str = ""  # the product release the file states ("006", "007"), "" when it does not
    # variables of the database the file cannot supply (absent from a subset or an earlier release),
    # as (name, why: "" when absent, or how its layout differs); they are stored as fill
    missing: Tuple[Tuple[str, str], ...] = ()


def ranges_text(ranges) -> str:
    """``"0:748689-750388,1:748690-750389"``: how the ledger stores a granule's segment ranges."""
    return ",".join(f"{beam}:{first}-{last}" for beam, first, last in ranges)


def parse_ranges(text: str) -> Tuple[Tuple[int, int, int], ...]:
    ranges = []
    for part in filter(None, (text or "").split(",")):
        beam, span = part.split(":")
        first, last = span.split("-")
        ranges.append((int(beam), int(first), int(last)))
    return tuple(ranges)


def identity_key(product: str, track: int, cycle: int, first: int, last: int, digest: str) -> str:
    return f"{product}-{track:04d}-{cycle:03d}-{first}-{last}-{digest}"


def orbit_of_key(key: str) -> Tuple[int, int]:
    """(track, cycle) from an identity key."""
    _, rgt, cycle = key.split("-")[:3]
    return int(rgt), int(cycle)


def is_identity_key(text: str) -> bool:
    """Whether a ledger key is a content identity (the previous version keyed on file names)."""
    return bool(KEY_PATTERN.match(text))
