"""ATL08 per district and year, against pandas over every segment of the sample database."""

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from zonal_fixtures import read_table

from canopy_explorer.plugin.core.districts.canopy import CanopyStatsRequest, district_stats_atl08
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.districts.statistics import Districts
from canopy_explorer.plugin.core.errors import QueryError
from canopy_explorer.plugin.core.lidar.query import SegmentQuery

UTM = "EPSG:32632"


def utm_districts():
    """Strips of the sample region (45.0-45.3 N, 7.0-7.3 E) in UTM 32N, one with a hole, one far away."""
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)

    def project(geometry):
        geometry = shapely.segmentize(geometry, 0.005)
        return shapely.transform(geometry, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))

    west = shapely.box(7.0, 45.0, 7.1, 45.3)
    middle = shapely.box(7.1, 45.0, 7.2, 45.3).difference(shapely.box(7.12, 45.1, 7.18, 45.2))
    east = shapely.box(7.2, 45.0, 7.3, 45.15)
    far = shapely.box(8.5, 46.0, 8.6, 46.1)
    return Districts.create([10, 20, 30, 40], [project(g) for g in (west, middle, east, far)], UTM)


def expected(config, districts, filters=None):
    """{(id, year): (count, median, mean, p95)} from every segment of the region, without the engine's assignment."""
    frame = Atl08Database(config).query(SegmentQuery.create(roi=(6.9, 44.9, 7.4, 45.4), variables=["h_canopy"],
                                                            filters=filters))
    frame = frame[np.isfinite(frame["h_canopy"])]
    x, y = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(frame["longitude"].to_numpy(),
                                                                           frame["latitude"].to_numpy())
    result = {}
    for identifier, geometry in zip(districts.ids, districts.geometries):
        inside = frame[shapely.contains_xy(geometry, x, y)]
        for year, group in inside.groupby(inside["time"].dt.year):
            values = group["h_canopy"].to_numpy(dtype=float)
            result[(identifier, year)] = (len(values), np.median(values), values.mean(), np.percentile(values, 95))
    return result


@pytest.mark.parametrize("filters", [None, "h_canopy between 5 60"])
def test_segments_per_district_and_year_equal_pandas(local_database, tmp_path, filters):
    districts = utm_districts()
    truth = expected(local_database, districts, filters)
    assert {year for _, year in truth} == {2020, 2021} and len(truth) >= 5
    result = district_stats_atl08(CanopyStatsRequest.create(districts, local_database, tmp_path / "canopy.gpkg", filters=filters))
    assert result.years == (2020, 2021)
    for year in result.years:
        table = read_table(tmp_path / "canopy.gpkg", f"h_canopy_stats_{year}", "id")
        assert set(table) == {10, 20, 30, 40}
        for identifier in districts.ids:
            row = table[identifier]
            if (identifier, year) not in truth:
                assert row["segment_count"] == 0 and row["median_h_canopy"] is None
                continue
            count, median, mean, p95 = truth[(identifier, year)]
            assert row["segment_count"] == count
            assert row["median_h_canopy"] == pytest.approx(median, abs=1e-9)
            assert row["mean_h_canopy"] == pytest.approx(mean, abs=1e-9)
            assert row["p95_h_canopy"] == pytest.approx(p95, abs=1e-9)
    latest = read_table(tmp_path / "canopy.gpkg", "h_canopy_stats_latest", "id")
    assert latest[40]["year"] is None and latest[40]["segment_count"] == 0
    assert all(latest[i]["year"] == max(y for (j, y) in truth if j == i) for i in (10, 20, 30))
    assert result.layer("h_canopy_stats_latest").field == "median_h_canopy"
    assert result.layer("h_canopy_stats_change").field == "median_h_canopy_change"


def test_a_filter_that_matches_nothing_is_a_clear_error(local_database, tmp_path):
    with pytest.raises(QueryError, match="no ATL08 segment"):
        district_stats_atl08(CanopyStatsRequest.create(utm_districts(), local_database, tmp_path / "canopy.gpkg",
                                                       filters="h_canopy > 1000"))
    assert not (tmp_path / "canopy.gpkg").exists()


def test_a_whole_profile_variable_must_name_one_label(local_database, tmp_path):
    with pytest.raises(QueryError, match="pick one label"):
        district_stats_atl08(CanopyStatsRequest.create(utm_districts(), local_database, tmp_path / "canopy.gpkg",
                                                       variable="canopy_h_metrics"))
    result = district_stats_atl08(CanopyStatsRequest.create(utm_districts(), local_database, tmp_path / "canopy.gpkg",
                                                            variable="canopy_h_metrics:95"))
    assert result.layer("canopy_h_metrics_p95_stats_latest").field == "median_canopy_h_metrics_p95"


def test_the_processing_algorithm_writes_the_same_tables_styled(loaded_plugin, local_database, tmp_path):
    from qgis import processing
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer
    from canopy_explorer.plugin.qgis_compat import new_field

    districts = utm_districts()
    labels = [f"strip {identifier}" for identifier in districts.ids]
    districts = Districts.create(districts.ids, districts.geometries, districts.crs, id_field="code",
                                 attributes={"label": labels})
    layer = QgsVectorLayer(f"MultiPolygon?crs={UTM}", "strips", "memory")
    layer.dataProvider().addAttributes([new_field("code", "integer"), new_field("label", "string")])
    layer.updateFields()
    for identifier, label, geometry in zip(districts.ids, labels, districts.geometries):
        feature = QgsFeature(layer.fields())
        feature["code"] = identifier
        feature["label"] = label
        feature.setGeometry(QgsGeometry.fromWkt(geometry.wkt))
        layer.dataProvider().addFeatures([feature])
    result = processing.run("canopyexplorer:atl08_district_stats", {
        "DISTRICTS": layer, "ID_FIELD": "code", "CONFIG": local_database.local_path, "VARIABLE": "h_canopy",
        "FILTERS": "h_canopy between 5 60", "CLASSES": 3, "OUTPUT": str(tmp_path / "qgis.gpkg")})
    district_stats_atl08(CanopyStatsRequest.create(districts, local_database, tmp_path / "engine.gpkg",
                                                   filters="h_canopy between 5 60"))
    for year in (2020, 2021):
        qgis_rows = read_table(tmp_path / "qgis.gpkg", f"h_canopy_stats_{year}", "code")
        engine_rows = read_table(tmp_path / "engine.gpkg", f"h_canopy_stats_{year}", "code")
        assert {k: v["median_h_canopy"] for k, v in qgis_rows.items()} == {k: v["median_h_canopy"] for k, v in engine_rows.items()}
        assert all(qgis_rows[k]["label"] == engine_rows[k]["label"] == f"strip {k}" for k in engine_rows)
    for table in ["h_canopy_stats_2020", "h_canopy_stats_latest", "h_canopy_stats_change"]:
        rows = read_table(tmp_path / "qgis.gpkg", table, "code")
        assert sorted(rows) == [10, 20, 30, 40] and all(row["label"] == f"strip {k}" for k, row in rows.items()), table
    latest = QgsVectorLayer(f"{result['OUTPUT']}|layername=h_canopy_stats_latest", "latest", "ogr")
    assert latest.renderer().type() == "graduatedSymbol" and latest.renderer().classAttribute() == "median_h_canopy"
