"""Time on result layers: QGIS's temporal controller animates ATL08 segments by acquisition time and NDVI
composites by their year, without any setup, and the project keeps it when saved and reopened."""

import numpy as np
import pandas as pd
import pytest
from qgis.core import (Qgis, QgsDateTimeRange, QgsFeatureRequest, QgsProject, QgsRasterLayer, QgsVectorLayer,
                       QgsVectorLayerTemporalContext)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime, Qt

from canopy_explorer.plugin.core.lidar.atl08.schema import BEAM_NUMBERS, encode_segment_id
from canopy_explorer.plugin.layers.segment_layer import QueryOutput, load_query_layer, write_styled_segments
from canopy_explorer.plugin.layers.temporal import year_range

# acquisition times of six segments: two in 2019, three in 2020 (one in the year's first second), one in 2021
TIMES = ["2019-03-02T10:15:00", "2019-11-30T23:59:00", "2020-01-01T00:00:00", "2020-06-15T04:30:00", "2020-12-31T12:00:00",
         "2021-07-04T08:00:00"]


def segments_file(tmp_path):
    count = len(TIMES)
    frame = pd.DataFrame({
        "latitude": np.linspace(45.0, 45.005, count), "longitude": np.full(count, 7.0),
        "time": pd.DatetimeIndex(TIMES).tz_localize("UTC"),
        "segment_id": encode_segment_id(100, 3, BEAM_NUMBERS["gt1l"], np.arange(count)),
        "beam_id": ["gt1l"] * count,
        "h_canopy": np.arange(count, dtype=np.float32) + 10, "h_te_best_fit": np.full(count, 300.0, dtype=np.float32),
    })
    output = write_styled_segments([frame], str(tmp_path / "segments.gpkg"), "segments", {}, "h_canopy", "h_canopy")
    return output


def utc(year, month, day):
    return QDateTime(QDate(year, month, day), QTime(0, 0), Qt.TimeSpec.UTC)


def one_year(year):
    """A year as an animation frame gives it: from its 1 January, up to the next one excluded."""
    return QgsDateTimeRange(utc(year, 1, 1), utc(year + 1, 1, 1), True, False)


def features_in(layer, time_range: QgsDateTimeRange):
    """The segments the temporal controller shows for ``time_range``: the layer's own temporal filter."""
    context = QgsVectorLayerTemporalContext()
    context.setLayer(layer)
    expression = layer.temporalProperties().createFilterString(context, time_range)
    # the time as written (QGIS 3.22 reads GeoPackage times without a zone, 3.40 as UTC)
    return sorted(f["time"].toString("yyyy-MM-ddTHH:mm:ss") for f in layer.getFeatures(QgsFeatureRequest().setFilterExpression(expression)))


def test_query_layers_are_temporal_on_their_acquisition_time(tmp_path):
    layer = load_query_layer(segments_file(tmp_path))
    properties = layer.temporalProperties()
    assert properties.isActive()
    assert properties.mode() == Qgis.VectorTemporalMode.FeatureDateTimeInstantFromField
    assert properties.startField() == "time"
    assert properties.fixedDuration() == 0 and not properties.accumulateFeatures()


def test_one_year_shows_only_that_years_segments(tmp_path):
    layer = load_query_layer(segments_file(tmp_path))
    assert features_in(layer, one_year(2020)) == ["2020-01-01T00:00:00", "2020-06-15T04:30:00", "2020-12-31T12:00:00"]
    assert features_in(layer, one_year(2019)) == ["2019-03-02T10:15:00", "2019-11-30T23:59:00"]
    assert features_in(layer, one_year(2022)) == []


def test_the_files_default_style_carries_the_time(tmp_path):
    """QGIS 3.22 resets a layer's time after loading the default style when it opens a file, so the layer a query
    adds is made temporal by the plugin; the file's default style also holds the time, for whoever reloads it."""
    output = segments_file(tmp_path)
    layer = QgsVectorLayer(f"{output.path}|layername=segments", "opened by hand", "ogr")
    _, loaded = layer.loadDefaultStyle()
    assert loaded
    assert layer.temporalProperties().isActive()
    assert layer.temporalProperties().startField() == "time"


def test_a_saved_project_reopens_with_temporal_layers(tmp_path):
    project = QgsProject()
    project.addMapLayer(load_query_layer(segments_file(tmp_path)))
    project.addMapLayer(composite_layer(tmp_path, 2021))
    assert project.write(str(tmp_path / "project.qgz"))
    reopened = QgsProject()
    assert reopened.read(str(tmp_path / "project.qgz"))
    by_name = {layer.name(): layer for layer in reopened.mapLayers().values()}
    segments = by_name["segments"].temporalProperties()
    assert segments.isActive() and segments.startField() == "time"
    composite = by_name["NDVI median 2021"].temporalProperties()
    assert composite.isActive() and composite.fixedTemporalRange() == year_range(2021)
    reopened.clear()  # the layers go while QGIS runs, not when Python collects the projects at exit
    project.clear()


# ---------------------------------------------------------------------------------------------- NDVI composites

def composite_layer(tmp_path, year):
    from canopy_explorer.plugin.core.sentinel2.composites import CompositeReport
    from canopy_explorer.plugin.layers.ndvi_layer import CompositeOutput, load_composite_layer, save_composite_style

    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / f"ndvi_composite_{year}.tif"
    values = np.linspace(-0.2, 0.9, 16, dtype=np.float32).reshape(4, 4)
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs="EPSG:32632",
                       transform=from_origin(400000, 5000000, 10, 10), nodata=float("nan")) as raster:
        raster.write(values, 1)
    save_composite_style(path, -0.2, [0.0, 0.3, 0.6, 0.9])
    report = CompositeReport(path, year, (), (), (4, 4), "EPSG:32632", (10, 0, 400000, 0, -10, 5000000), 16)
    return load_composite_layer(CompositeOutput(report, -0.2, [0.0, 0.3, 0.6, 0.9]))


def test_ndvi_composites_cover_their_calendar_year(tmp_path):
    layer = composite_layer(tmp_path, 2022)
    properties = layer.temporalProperties()
    assert properties.isActive()
    assert properties.mode() == Qgis.RasterTemporalMode.FixedTemporalRange
    assert properties.fixedTemporalRange().begin() == QDateTime(QDate(2022, 1, 1), QTime(0, 0, 1), Qt.TimeSpec.UTC)
    assert properties.fixedTemporalRange().end() == QDateTime(QDate(2022, 12, 31), QTime(23, 59, 59), Qt.TimeSpec.UTC)
    # the animation's frames: [begin, end)
    assert properties.isVisibleInTemporalRange(QgsDateTimeRange(utc(2022, 1, 1), utc(2023, 1, 1), True, False))
    assert properties.isVisibleInTemporalRange(QgsDateTimeRange(utc(2022, 1, 1), utc(2022, 1, 2), True, False))
    assert properties.isVisibleInTemporalRange(QgsDateTimeRange(utc(2022, 6, 1), utc(2022, 7, 1), True, False))
    assert properties.isVisibleInTemporalRange(QgsDateTimeRange(utc(2022, 12, 31), utc(2023, 1, 1), True, False))
    assert not properties.isVisibleInTemporalRange(QgsDateTimeRange(utc(2023, 1, 1), utc(2024, 1, 1), True, False))
    assert not properties.isVisibleInTemporalRange(QgsDateTimeRange(utc(2021, 1, 1), utc(2022, 1, 1), True, False))
