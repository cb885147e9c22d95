"""Which segments the database already holds, and from which file: so no segment is stored twice.

A segment id (track, cycle, beam, ``segment_id_beg``) names one segment of the mission; the
granules of one track and cycle cover disjoint along-track ranges. Two files whose ranges
overlap on a beam therefore hold the same segments: an edited copy of a granule, a subset
(NSIDC/Harmony, icepyx) of one already ingested, or another version of it. The ledger keeps
each stored file's ranges per beam; a file whose ranges all lie within stored ones is skipped
as a copy, and the rows of a file that overlaps stored ranges in part are dropped and counted,
so the database keeps the segments of the file it met first (in file-name order within a run).

Ranges are the first and last segment of each beam, so a segment that a later file has in a
gap of an earlier file's range (a reprocessed version that found more segments) is counted as
stored too; the report names both files.
"""

from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .granule_identity import is_identity_key, orbit_of_key, parse_ranges

ALREADY_STORED = "already stored from another file"  # the reason counted for segments dropped for that

Range = Tuple[int, int, int]  # beam number, first, last segment_id_beg


class SegmentCoverage:
    def __init__(self, decode_segment_id: Callable) -> None:
        self._decode = decode_segment_id  # the product's: ids -> (track, cycle, beam, index)
        self._ranges: Dict[Tuple[int, int, int], List[Tuple[int, int, str]]] = {}

    @classmethod
    def from_ledger(cls, entries: Iterable, decode_segment_id: Callable) -> "SegmentCoverage":
        coverage = cls(decode_segment_id)
        for entry in entries:
            if entry.segment_ranges and is_identity_key(entry.key):
                rgt, cycle = orbit_of_key(entry.key)
                coverage.add(rgt, cycle, parse_ranges(entry.segment_ranges), entry.file_name or entry.key)
        return coverage

    def add(self, rgt: int, cycle: int, ranges: Sequence[Range], owner: str) -> None:
        for beam, first, last in ranges:
            self._ranges.setdefault((rgt, cycle, beam), []).append((first, last, owner))

    def spans(self, rgt: int, cycle: int) -> List[Tuple[int, int, int, str]]:
        """(beam, first, last, file) of what is stored for one track and cycle: all a worker of a
        distributed ingest needs to check a granule of that orbit (``distributed_ingest``)."""
        return [(beam, low, high, owner) for (r, c, beam), spans in self._ranges.items() if (r, c) == (rgt, cycle)
                for low, high, owner in spans]

    def covering(self, rgt: int, cycle: int, ranges: Sequence[Range]) -> Optional[List[str]]:
        """The files whose stored ranges hold every one of ``ranges``, or None when some segment is new."""
        if not ranges:
            return None
        owners: List[str] = []
        for beam, first, last in ranges:
            holder = next((owner for low, high, owner in self._ranges.get((rgt, cycle, beam), ())
                           if low <= first and last <= high), None)
            if holder is None:
                return None
            if holder not in owners:
                owners.append(holder)
        return owners

    def stored(self, segment_id: np.ndarray) -> Tuple[np.ndarray, List[str]]:
        """Which of these segments are stored already (a mask), and the files that hold them."""
        stored = np.zeros(len(segment_id), dtype=bool)
        owners: List[str] = []
        if not len(segment_id) or not self._ranges:
            return stored, owners
        rgt, cycle, beam, segment = self._decode(segment_id)
        for (r, c, b), spans in self._ranges.items():
            on_beam = (rgt == r) & (cycle == c) & (beam == b)
            if not on_beam.any():
                continue
            for low, high, owner in spans:
                hit = on_beam & (segment >= low) & (segment <= high) & (segment_id >= 0)
                if hit.any():
                    stored |= hit
                    if owner not in owners:
                        owners.append(owner)
        return stored, owners
