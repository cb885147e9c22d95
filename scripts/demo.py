#!/usr/bin/env python3
"""`make demo`: the main job end to end on built-in sample data.

Writes deterministic sample ATL08 granules under sample_data/atl08 and reports
what was written.
"""

import sys
from pathlib import Path

import h5py

from canopy_explorer.plugin.core.sample_granules import BEAMS, SAMPLE_REGION, generate_granules

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    granule_dir = ROOT / "sample_data" / "atl08"
    print(f"1/1 writing sample ATL08 granules over lat {SAMPLE_REGION[0]}..{SAMPLE_REGION[1]}, lon {SAMPLE_REGION[2]}..{SAMPLE_REGION[3]}")
    paths = generate_granules(granule_dir)
    segments = 0
    for path in paths:
        with h5py.File(path, "r") as h5:
            counts = [h5[f"{beam}/land_segments/latitude"].shape[0] for beam in BEAMS]
        segments += sum(counts)
        print(f"    {path.name}: {sum(counts)} land segments")
    print(f"demo: {len(paths)} granules, {segments} land segments in {granule_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
