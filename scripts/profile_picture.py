#!/usr/bin/env python3
"""The README's elevation profile picture: one ATL08 track of the sample database, drawn as the plugin draws it.

Queries the sample database (``configs/sample_local.yaml``; built from the sample granules in a temporary
folder when ``make demo`` has not built it) over a strip of the sample forest for terrain, canopy height
and two canopy percentiles, picks the track with the most segments there and writes its profile
(terrain, canopy top, the p25-p95 band) with the plugin's own drawing code.

    python scripts/profile_picture.py [--output docs/img/elevation_profile.png]
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = ("h_te_best_fit", "h_canopy", "canopy_h_metrics:25", "canopy_h_metrics:95")
STRIP = (9.6, 50.8, 10.3, 50.95)  # lon/lat bounds: about 17 km of each track across the sample forest
TRACK_KM = 12.0  # the first 12 km of the track: a readable width for 100 m segments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img" / "elevation_profile.png")
    arguments = parser.parse_args(argv)
    from canopy_explorer.plugin.core.lidar.atl08.profiles import Band, Profile, Track, along_track_profile, tracks_of
    from canopy_explorer.plugin.core.lidar.database import Atl08Database
    from canopy_explorer.plugin.core.lidar.query import SegmentQuery
    from canopy_explorer.plugin.core.samples.database import build_sample_database, sample_database_config, sample_database_exists
    from canopy_explorer.plugin.gui.profile_plot import save_profile_png

    with tempfile.TemporaryDirectory(prefix="canopy-profile-") as folder:
        config = sample_database_config(ROOT / "configs" / "sample_local.yaml", folder)
        if not sample_database_exists(config):
            print(f"building the sample database in {folder} (make demo keeps one in sample_data/)", flush=True)
            build_sample_database(config)
        spec = SegmentQuery.create(roi=STRIP, variables=list(VARIABLES), filters="h_te_best_fit > -1000")
        frame = Atl08Database(config).query(spec)
    segments = {name: frame[name].to_numpy() for name in frame.columns}
    track = tracks_of(segments)[0]
    profile = along_track_profile(segments, track)
    first_km = profile.distance_km <= TRACK_KM
    band = profile.band
    profile = Profile(Track(track.rgt, track.cycle, track.beam, int(first_km.sum())), profile.segment_id[first_km],
                      profile.distance_km[first_km], profile.terrain[first_km], profile.canopy_top[first_km],
                      Band(band.low_percentile, band.high_percentile, band.low[first_km], band.high[first_km]))
    title = f"Sample database, {profile.track.label}"
    save_profile_png(profile, arguments.output, title=title)
    print(f"{arguments.output}: {len(profile)} segments of {track.label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
