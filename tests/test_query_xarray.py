"""xarray output: segment_id dimension, label coordinates, units, NetCDF round trip."""

import numpy as np
import xarray as xr

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.lidar.xarray_output import to_xarray


def test_profiles_get_label_coordinates_and_units(local_database, tmp_path):
    spec = SegmentQuery.create(roi=(7.0, 45.0, 7.2, 45.2), variables=["h_canopy", "canopy_h_metrics", "h_canopy_20m", "h_te_best_fit_20m:50"])
    frame = Atl08Database(local_database).query(spec)
    dataset = to_xarray(frame, spec.columns)
    assert dataset["canopy_h_metrics"].dims == ("segment_id", "percentile")
    assert list(dataset["percentile"].values) == [10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95]
    assert dataset["h_canopy_20m"].dims == ("segment_id", "along_track_offset_m")
    assert "h_te_best_fit_20m_50m" in dataset
    assert dataset["h_canopy"].attrs["units"] == "meters"
    np.testing.assert_array_equal(dataset["canopy_h_metrics"].sel(percentile=95).values, frame["canopy_h_metrics_p95"].values)
    path = tmp_path / "atl08.nc"
    dataset.to_netcdf(path)
    with xr.open_dataset(path) as reopened:
        assert reopened.sizes["segment_id"] == len(frame)
        np.testing.assert_array_equal(reopened["segment_id"].values, frame["segment_id"].values)
