#!/usr/bin/env python3
"""`make demo`: the main job end to end on built-in sample data.

1. writes deterministic sample ATL08 granules under sample_data/atl08;
2. builds the sample TileDB database (configs/sample_local.yaml) from them;
3. queries it with a polygon region, canopy variables and the "good canopy
   retrievals" filters, and reports what came back.
"""

import sys
import time
from pathlib import Path

import shapely

from canopy_explorer.plugin.core.config import load_config
from canopy_explorer.plugin.core.database import Atl08Database
from canopy_explorer.plugin.core.ingest import ingest_granules
from canopy_explorer.plugin.core.presets import GOOD_CANOPY
from canopy_explorer.plugin.core.query import SegmentQuery
from canopy_explorer.plugin.core.sample_granules import SAMPLE_REGION, generate_granules

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    granule_dir = ROOT / "sample_data" / "atl08"
    print(f"1/3 writing sample ATL08 granules over lat {SAMPLE_REGION[0]}..{SAMPLE_REGION[1]}, lon {SAMPLE_REGION[2]}..{SAMPLE_REGION[3]}")
    paths = generate_granules(granule_dir)
    print(f"    {len(paths)} granules in {granule_dir}")

    config = load_config(ROOT / "configs" / "sample_local.yaml")
    print(f"2/3 building the sample database {config.array_uri}")
    started = time.perf_counter()
    report = ingest_granules(config, granule_dir, log=lambda line: print(f"    {line}"))
    print(f"    {report.summary()} in {time.perf_counter() - started:.1f} s")

    print("3/3 querying canopy heights in a polygon drawn over the sample forest, 2019-2023, good canopy retrievals")
    roi = shapely.Polygon([(9.6, 50.6), (10.3, 50.65), (10.35, 51.2), (9.9, 51.4), (9.55, 51.1)])
    spec = SegmentQuery.create(roi=roi, start="2019-01-01", end="2023-12-31", variables=["h_canopy", "canopy_h_metrics:95", "h_te_best_fit"], filters=GOOD_CANOPY)
    database = Atl08Database(config)
    estimate = database.estimate(spec)
    started = time.perf_counter()
    frame = database.query(spec)
    elapsed = time.perf_counter() - started
    print(f"    estimate {estimate.rows} segments before reading; {len(frame)} segments returned in {elapsed:.2f} s")
    print(f"    h_canopy median {frame['h_canopy'].median():.1f} m (5-95%: {frame['h_canopy'].quantile(0.05):.1f}-{frame['h_canopy'].quantile(0.95):.1f} m)")
    print(f"    RH95 median {frame['canopy_h_metrics_p95'].median():.1f} m, terrain {frame['h_te_best_fit'].min():.0f}-{frame['h_te_best_fit'].max():.0f} m")
    print(f"    {frame['time'].min():%Y-%m-%d} to {frame['time'].max():%Y-%m-%d}, beams {', '.join(sorted(frame['beam_id'].unique()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
