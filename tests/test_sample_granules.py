"""Synthetic ATL08 granules match the real product's layout and carry realistic values."""

import csv
import datetime as dt
import re

import h5py
import numpy as np
import pytest

from conftest import ROOT
from canopy_explorer.plugin.core.samples.granules import generate_granules

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
FILL = np.float32(3.4028235e38)
FOREST = list(range(111, 117)) + list(range(121, 127))
with open(ROOT / "plugin/core/lidar/atl08/atl08_variables.csv", newline="") as _handle:
    CATALOGUE = list(csv.DictReader(_handle))
NAME = re.compile(r"ATL08_(\d{14})_(\d{4})(\d{2})(\d{2})_007_01\.h5")


def land(h5, beam):
    return h5[f"{beam}/land_segments"]


def test_file_names_follow_the_nsidc_pattern_and_orbit_info(sample_granules):
    assert len(sample_granules) == 4
    for path in sample_granules:
        match = NAME.fullmatch(path.name)
        assert match, path.name
        with h5py.File(path, "r") as h5:
            assert h5["orbit_info/rgt"][0] == int(match.group(2))
            assert h5["orbit_info/cycle_number"][0] == int(match.group(3))
            assert h5["orbit_info/sc_orient"][0] in (0, 1)
            assert h5.attrs["short_name"] == "ATL08"


def test_every_catalogue_variable_has_the_csv_path_dtype_and_shape(sample_granules):
    with h5py.File(sample_granules[0], "r") as h5:
        for beam in BEAMS:
            n = land(h5, beam)["latitude"].shape[0]
            assert n > 100
            assert land(h5, beam)["latitude"].dtype == np.float32
            assert land(h5, beam)["longitude"].dtype == np.float32
            for row in CATALOGUE:
                if row["name"] in ("segment_id", "beam_id"):
                    continue  # derived by the database, not stored in granules
                if row["hdf5_path"].startswith("orbit_info/"):
                    dataset = h5[row["hdf5_path"]]
                    assert dataset.dtype == np.dtype(row["dtype"])
                    continue
                dataset = h5[f"{beam}/{row['hdf5_path']}"]
                assert dataset.dtype == np.dtype(row["dtype"]), row["name"]
                expected = (n,) if row["kind"] == "scalar" else (n, int(row["length"]))
                assert dataset.shape == expected, row["name"]


def test_no_canopy_retrieval_carries_the_fill_value(sample_granules):
    water_fills = canopy_fills = canopy_values = 0
    for path in sample_granules:
        with h5py.File(path, "r") as h5:
            for beam in BEAMS:
                ls = land(h5, beam)
                h = ls["canopy/h_canopy"][:]
                cover = ls["segment_landcover"][:]
                profile = ls["canopy/canopy_h_metrics"][:]
                sub = ls["canopy/h_canopy_20m"][:]
                n_ca = ls["canopy/n_ca_photons"][:]
                fill = h == FILL
                # Water and built-up ground never have a canopy height.
                assert (fill[np.isin(cover, [50, 80])]).all()
                water_fills += int(np.isin(cover, [80]).sum())
                # Profiles and 20 m values are filled wherever the segment has no canopy.
                assert (profile[fill] == FILL).all()
                assert (sub[fill] == FILL).all()
                assert (n_ca[fill] == 0).all()
                canopy_fills += int(fill.sum())
                canopy_values += int((~fill).sum())
                # Some forest segments still lack a retrieval (random gaps), as in real files.
                assert fill[np.isin(cover, FOREST)].any()
                assert ls["canopy/h_canopy"].attrs["_FillValue"] == FILL
    assert water_fills > 0 and canopy_fills > 0 and canopy_values > 0


def test_canopy_values_are_plausible_and_profiles_monotonic(sample_granules):
    with h5py.File(sample_granules[1], "r") as h5:
        for beam in BEAMS:
            ls = land(h5, beam)
            h = ls["canopy/h_canopy"][:]
            valid = h != FILL
            cover = ls["segment_landcover"][:]
            assert (h[valid] >= 0).all() and (h[valid] <= 60).all()
            forest_heights = h[valid & np.isin(cover, FOREST)]
            assert 15 < np.median(forest_heights) < 40
            profile = ls["canopy/canopy_h_metrics"][:][valid]
            assert (np.diff(profile, axis=1) >= 0).all()
            assert (profile[:, -1] <= h[valid] + 1e-4).all()
            terrain = ls["terrain/h_te_best_fit"][:]
            assert 0 < np.median(terrain[terrain != FILL]) < 1000


def test_geometry_follows_icesat2_beam_layout(sample_granules):
    radius = 6371008.8

    def distance(lat1, lon1, lat2, lon2):
        lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
        a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        return 2 * radius * np.arcsin(np.sqrt(a))

    with h5py.File(sample_granules[0], "r") as h5:
        coords = {b: (land(h5, b)["latitude"][:].astype(float), land(h5, b)["longitude"][:].astype(float)) for b in BEAMS}
        lat, lon = coords["gt2l"]
        steps = distance(lat[:-1], lon[:-1], lat[1:], lon[1:])
        assert np.median(steps) == pytest.approx(100, abs=1)  # 100 m segments (gaps are longer)
        # Nearest point of the paired beam is ~90 m away, the next pair ~3.3 km.
        for a, b, expected in (("gt2l", "gt2r", 90), ("gt1r", "gt2l", 3300 - 90), ("gt2r", "gt3l", 3300 - 90)):
            la, lo = coords[a]
            lb, lob = coords[b]
            i = len(la) // 2
            assert distance(la[i], lo[i], lb, lob).min() == pytest.approx(expected, rel=0.05)
        # Near-polar: the track runs mostly north-south.
        assert abs(lat[-1] - lat[0]) > 3 * abs(lon[-1] - lon[0]) * np.cos(np.radians(45))
        dtime = land(h5, "gt2l")["delta_time"][:]
        assert (np.diff(dtime) > 0).all()
        seg = land(h5, "gt2l")["segment_id_beg"][:]
        assert (np.diff(seg) > 0).all()
        assert (land(h5, "gt2l")["segment_id_end"][:] - seg == 4).all()


def test_strong_beams_follow_spacecraft_orientation(sample_granules):
    for path in sample_granules:
        with h5py.File(path, "r") as h5:
            orient = h5["orbit_info/sc_orient"][0]
            strong_side = "l" if orient == 0 else "r"
            for pair in (1, 2, 3):
                strong = land(h5, f"gt{pair}{strong_side}")["n_seg_ph"][:].mean()
                weak = land(h5, f"gt{pair}{'r' if strong_side == 'l' else 'l'}")["n_seg_ph"][:].mean()
                assert strong > 1.5 * weak
                assert h5[f"gt{pair}{strong_side}"].attrs["atlas_beam_type"] == "strong"


def test_night_flag_matches_solar_elevation_and_dates_fall_in_range(sample_granules):
    seen_night = seen_day = False
    for path in sample_granules:
        with h5py.File(path, "r") as h5:
            ls = land(h5, "gt1l")
            night = ls["night_flag"][:]
            assert ((ls["solar_elevation"][:] < 0) == (night == 1)).all()
            seen_night |= bool(night.any())
            seen_day |= bool((night == 0).any())
            when = dt.datetime(2018, 1, 1) + dt.timedelta(seconds=float(ls["delta_time"][0]))
            assert dt.datetime(2020, 1, 1) <= when <= dt.datetime(2022, 1, 1)
            assert when.strftime("%Y%m%d%H") == NAME.fullmatch(path.name).group(1)[:10]
    assert seen_night or seen_day


def test_same_seed_gives_the_same_granules(tmp_path):
    kwargs = dict(region=(10.0, 10.1, 20.0, 20.1), start=dt.date(2021, 1, 1), end=dt.date(2021, 6, 30), n_tracks=2, seed=3)
    first = generate_granules(tmp_path / "a", **kwargs)
    second = generate_granules(tmp_path / "b", **kwargs)
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        with h5py.File(a, "r") as ha, h5py.File(b, "r") as hb:
            for path in ("gt1l/land_segments/canopy/h_canopy", "gt3r/land_segments/latitude", "gt2r/land_segments/segment_landcover"):
                np.testing.assert_array_equal(ha[path][:], hb[path][:])
    other = generate_granules(tmp_path / "c", **{**kwargs, "seed": 4})
    assert [p.name for p in other] != [p.name for p in first]


def test_invalid_region_or_dates_are_refused(tmp_path):
    with pytest.raises(ValueError, match="invalid sample region"):
        generate_granules(tmp_path, region=(10.0, 9.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="before start"):
        generate_granules(tmp_path, start=dt.date(2022, 1, 1), end=dt.date(2021, 1, 1))
