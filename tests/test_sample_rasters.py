"""Sample rasters at segments: raster values added to ATL08 points, by the engine and by the Processing algorithm."""

import math

import pandas as pd
import pytest

from sampling_fixtures import (COLUMNS, NAN_PIXEL, NODATA_PIXEL, ROWS, composite_value, in_pixel, pixel_values, read_points,
                               write_composite, write_points, write_utm_raster)

from canopy_explorer.plugin.core.errors import ConfigurationError
from canopy_explorer.plugin.core.sentinel2.sample_at_points import SampleRequest, sample_rasters_at_points

# (row, column) inside the raster: pixel centres, points near pixel corners, the last row and column
INSIDE = [(0.5, 0.5), (3.5, 4.5), (7.5, 11.5), (0.02, 5.97), (6.98, 0.03), (4.01, 10.99)]
OUTSIDE = [(-0.5, 3.5), (3.5, -0.5), (ROWS + 0.5, 2.5), (2.5, COLUMNS + 0.5), (400.0, 400.0)]


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    return write_utm_raster(tmp_path_factory.mktemp("rasters") / "canopy cover.tif")


def segment_ids(places):
    return list(range(1000, 1000 + len(places)))


def test_each_point_gets_the_value_of_the_pixel_it_falls_in(raster, tmp_path):
    places = [in_pixel(r, c) for r, c in INSIDE]
    points = write_points(tmp_path / "segments.gpkg", places)
    result = sample_rasters_at_points(SampleRequest.create(points, tmp_path / "sampled.gpkg",
                                                           rasters=[("cover", raster), ("cover_band2", raster, 2)]))
    rows = read_points(result.path)
    values = pixel_values()
    for segment_id, (row, column) in zip(segment_ids(places), INSIDE):
        expected = float(values[int(row), int(column)])
        assert rows[segment_id]["cover"] == expected, (row, column)
        assert rows[segment_id]["cover_band2"] == -expected, (row, column)
    assert result.rows == len(places) and result.fields == ("cover", "cover_band2")
    assert result.valued == {"cover": len(places), "cover_band2": len(places)}


def test_nodata_and_nan_pixels_give_null(raster, tmp_path):
    places = [in_pixel(NODATA_PIXEL[0] + 0.5, NODATA_PIXEL[1] + 0.5), in_pixel(NAN_PIXEL[0] + 0.5, NAN_PIXEL[1] + 0.5),
              in_pixel(1.5, 1.5)]
    points = write_points(tmp_path / "segments.gpkg", places)
    rows = read_points(sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("cover", raster)])).path)
    assert [rows[i]["cover"] for i in segment_ids(places)] == [None, None, 101.0]


def test_points_outside_the_raster_give_null(raster, tmp_path):
    places = [in_pixel(r, c) for r, c in OUTSIDE] + [in_pixel(0.5, 0.5)]
    points = write_points(tmp_path / "segments.gpkg", places)
    result = sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("cover", raster)]))
    rows = read_points(result.path)
    assert [rows[i]["cover"] for i in segment_ids(places)] == [None] * len(OUTSIDE) + [0.0]
    assert result.valued == {"cover": 1}


def test_a_segment_gets_the_ndvi_composite_of_its_year(tmp_path):
    composites = {year: write_composite(tmp_path, year) for year in (2020, 2021)}
    places = [in_pixel(3.5, 3.5)] * 4
    times = ["2020-12-31T23:59:59", "2021-01-01T00:00:01", "2019-07-01T12:00:00", "2021-08-15T03:00:00"]
    points = write_points(tmp_path / "segments.gpkg", places, times)
    log = []
    result = sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.gpkg", composites=composites), log=log.append)
    rows = read_points(result.path)
    found = [rows[i]["ndvi"] for i in segment_ids(places)]
    assert found == [pytest.approx(composite_value(2020)), pytest.approx(composite_value(2021)), None,
                     pytest.approx(composite_value(2021))]
    assert result.fields == ("ndvi",)
    assert any("2019" in line and "no composite" in line for line in log)


def test_the_copy_keeps_every_field_and_point_and_can_be_another_format(raster, tmp_path):
    places = [in_pixel(r, c) for r, c in INSIDE]
    points = write_points(tmp_path / "segments.gpkg", places)
    source = read_points(points)
    for name in ("out.geojson", "out.fgb"):
        rows = read_points(sample_rasters_at_points(SampleRequest.create(points, tmp_path / name, rasters=[("cover", raster)])).path)
        assert set(rows) == set(source), name
        for segment_id, row in rows.items():
            assert row["h_canopy"] == source[segment_id]["h_canopy"], name
            assert str(row["time"])[:19].replace("/", "-").replace(" ", "T") == \
                str(source[segment_id]["time"])[:19].replace("/", "-").replace(" ", "T"), name
            if row["xy"] is not None:
                assert row["xy"] == pytest.approx(source[segment_id]["xy"], abs=1e-7), name  # GeoJSON: 7 decimals
            assert not math.isnan(row["cover"])
    written = sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.csv", rasters=[("cover", raster)]))
    table = pd.read_csv(written.path)
    assert list(table.columns) == ["latitude", "longitude", "time", "segment_id", "h_canopy", "cover"]
    assert sorted(table["segment_id"]) == sorted(source) and table["cover"].notna().all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.fgb", "out.geojson", "segments.gpkg"]


def test_bad_requests_are_refused_with_the_name_of_what_is_wrong(raster, tmp_path):
    points = write_points(tmp_path / "segments.gpkg", [in_pixel(1.5, 1.5)])
    with pytest.raises(ConfigurationError, match="already has a field 'h_canopy'"):
        sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("H_CANOPY", raster)]))
    with pytest.raises(ConfigurationError, match="has 2 band"):
        sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("cover", raster, 3)]))
    with pytest.raises(ConfigurationError, match="either rasters"):
        SampleRequest.create(points, tmp_path / "out.gpkg")
    with pytest.raises(ConfigurationError, match="no_such.tif"):
        SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("x", tmp_path / "no_such.tif")])
    with pytest.raises(ConfigurationError, match="two rasters would write the field 'Cover'"):
        SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("cover", raster), ("Cover", raster)])
    with pytest.raises(ConfigurationError, match="the point layer itself"):
        SampleRequest.create(points, points, rasters=[("cover", raster)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segments.gpkg"]  # nothing half-written


def test_the_processing_algorithm_adds_raster_values_and_composites_by_year(loaded_plugin, raster, tmp_path):
    from qgis import processing
    from qgis.core import QgsProcessingFeedback, QgsRasterLayer, QgsVectorLayer

    places = [in_pixel(r, c) for r, c in INSIDE] + [in_pixel(*OUTSIDE[-1])]  # far outside every raster
    points = write_points(tmp_path / "segments.gpkg", places)
    layer = QgsVectorLayer(f"{points}|layername=segments", "segments", "ogr")
    assert layer.isValid()
    result = processing.run("canopyexplorer:atl08_sample_rasters", {
        "INPUT": layer, "MODE": 0, "RASTERS": [QgsRasterLayer(str(raster), "canopy cover")], "BAND": 1,
        "OUTPUT": str(tmp_path / "sampled.gpkg")}, feedback=QgsProcessingFeedback())
    rows = read_points(result["OUTPUT"])
    values = pixel_values()
    expected = [float(values[int(r), int(c)]) for r, c in INSIDE] + [None]
    assert [rows[i]["canopy cover"] for i in segment_ids(places)] == expected
    assert result["SEGMENTS"] == len(places)

    composites = [QgsRasterLayer(str(write_composite(tmp_path, year)), f"NDVI {year}") for year in (2020, 2021)]
    result = processing.run("canopyexplorer:atl08_sample_rasters", {
        "INPUT": layer, "MODE": 1, "RASTERS": composites, "OUTPUT": str(tmp_path / "with_ndvi.gpkg")},
        feedback=QgsProcessingFeedback())
    rows = read_points(result["OUTPUT"])
    assert [rows[i]["ndvi"] for i in segment_ids(places)] == [pytest.approx(composite_value(2021))] * len(INSIDE) + [None]


def test_the_processing_algorithm_takes_a_layer_that_is_not_a_file(loaded_plugin, tmp_path):
    from qgis import processing
    from qgis.core import QgsFeatureRequest, QgsProcessingFeedback, QgsRasterLayer, QgsVectorLayer

    places = [in_pixel(1.5, 1.5), in_pixel(2.5, 2.5)]
    points = write_points(tmp_path / "segments.gpkg", places, ["2020-05-01T10:00:00", "2021-05-01T10:00:00"])
    in_memory = QgsVectorLayer(f"{points}|layername=segments", "segments", "ogr").materialize(QgsFeatureRequest())
    assert in_memory.providerType() == "memory"
    composites = [QgsRasterLayer(str(write_composite(tmp_path, year)), f"NDVI {year}") for year in (2020, 2021)]
    result = processing.run("canopyexplorer:atl08_sample_rasters", {
        "INPUT": in_memory, "MODE": 1, "RASTERS": composites, "OUTPUT": str(tmp_path / "with_ndvi.gpkg")},
        feedback=QgsProcessingFeedback())
    rows = read_points(result["OUTPUT"])
    assert [rows[i]["ndvi"] for i in segment_ids(places)] == [pytest.approx(composite_value(2020)),
                                                              pytest.approx(composite_value(2021))]


def test_a_cancel_leaves_no_output_and_no_temporary_file(raster, tmp_path):
    from canopy_explorer.plugin.core.errors import Cancelled

    points = write_points(tmp_path / "segments.gpkg", [in_pixel(1.5, 1.5)])
    (tmp_path / "out.gpkg").write_bytes(b"an earlier output")

    def cancel_after_the_first_raster(fraction):
        if fraction > 0:
            raise Cancelled("cancelled by the user")

    request = SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("cover", raster), ("cover_2", raster, 2)])
    with pytest.raises(Cancelled):
        sample_rasters_at_points(request, progress=cancel_after_the_first_raster)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg", "segments.gpkg"]
    assert (tmp_path / "out.gpkg").read_bytes() == b"an earlier output"


@pytest.mark.parametrize("suffix", [".geojson", ".fgb", ".csv"])
def test_points_in_any_format_the_query_writes_get_their_own_values(raster, tmp_path, suffix):
    # GeoJSON and FlatGeobuf number features from 0, CSV has no geometry column: each value must still reach its point
    places = [in_pixel(r, c) for r, c in INSIDE]
    points = write_points(tmp_path / f"segments{suffix}", places)
    rows = read_points(sample_rasters_at_points(SampleRequest.create(points, tmp_path / "out.gpkg", rasters=[("cover", raster)])).path)
    values = pixel_values()
    assert [rows[i]["cover"] for i in segment_ids(places)] == [float(values[int(r), int(c)]) for r, c in INSIDE]
