"""District statistics from QGIS: the zonal_stats algorithm, embedded and through a saved PostGIS connection."""

import json

import pytest
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsVectorLayer,
)

from postgis_fixtures import *  # noqa: F401,F403
from task_waits import wait_for_tasks
from zonal_fixtures import CRS, YEARS, district_shapes, expected_stats, read_table, write_composites

from canopy_explorer.plugin.qgis_compat import new_field


def districts_layer():
    layer = QgsVectorLayer(f"MultiPolygon?crs={CRS}", "districts", "memory")
    layer.dataProvider().addAttributes([new_field("district code", "string")])
    layer.updateFields()
    features = []
    for district_id, geometry in district_shapes():
        feature = QgsFeature(layer.fields())
        feature["district code"] = district_id
        feature.setGeometry(QgsGeometry.fromWkt(geometry.wkt))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def run_zonal(parameters):
    from qgis import processing

    return processing.run("canopyexplorer:zonal_stats", parameters, feedback=QgsProcessingFeedback())


@pytest.fixture
def composites(tmp_path):
    return write_composites(tmp_path / "composites")


def parameters(composites, output, **changes):
    values = {"DISTRICTS": districts_layer(), "ID_FIELD": "district code",
              "RASTERS": [QgsRasterLayer(str(path), path.stem) for path in composites.values()],
              "DATABASE": "", "CLASSES": 5, "OUTPUT": str(output)}
    values.update(changes)
    return values


def test_embedded_statistics_match_numpy_and_every_table_is_styled(loaded_plugin, composites, tmp_path):
    result = run_zonal(parameters(composites, tmp_path / "stats.gpkg", GEOJSON=str(tmp_path / "latest.geojson")))
    names = sorted(uri.split("layername=")[1] for uri in result["LAYERS"])
    assert names == sorted([f"ndvi_stats_{y}" for y in YEARS] + ["ndvi_stats_latest", "ndvi_stats_change"])
    shapes = dict(district_shapes())
    for year in YEARS:
        rows = read_table(result["OUTPUT"], f"ndvi_stats_{year}")
        for district_id, geometry in shapes.items():
            count, low, high, mean, _ = expected_stats(composites[year], geometry)
            assert rows[district_id]["pixel_count"] == count
            if count:
                assert rows[district_id]["mean_ndvi"] == pytest.approx(mean, abs=1e-6)
                assert rows[district_id]["min_ndvi"] == pytest.approx(low, abs=1e-6)
    for uri in result["LAYERS"]:
        layer = QgsVectorLayer(uri, "reopened", "ogr")  # the default style comes from layer_styles
        assert layer.renderer().type() == "graduatedSymbol", uri
        assert len(layer.renderer().ranges()) == 5, uri
    latest = json.loads((tmp_path / "latest.geojson").read_text())
    assert len(latest["features"]) == len(shapes)
    x, y = latest["features"][0]["geometry"]["coordinates"][0][0][0][:2]
    assert 9 < x < 10 and 51 < y < 52  # EPSG:4326 longitude, latitude


def test_a_saved_postgis_connection_gives_the_same_statistics(loaded_plugin, composites, tmp_path, postgis_server):
    from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsDataSourceUri, QgsProviderRegistry, QgsSettings

    manager = QgsApplication.authManager()
    manager.setMasterPassword("test master password", True)
    auth = QgsAuthMethodConfig("Basic")
    auth.setName("zonal test server")
    auth.setConfig("username", postgis_server.user)
    auth.setConfig("password", postgis_server.password)
    assert manager.storeAuthenticationConfig(auth)[0]
    uri = QgsDataSourceUri()
    uri.setConnection(postgis_server.host, str(postgis_server.port), postgis_server.dbname, "", "", QgsDataSourceUri.SslMode.SslDisable, auth.id())
    metadata = QgsProviderRegistry.instance().providerMetadata("postgres")
    metadata.saveConnection(metadata.createConnection(uri.uri(False), {}), "zonal test")
    stored = " ".join(str(QgsSettings().value(key)) for key in QgsSettings().allKeys())
    assert postgis_server.password not in stored  # the password lives in the auth database only

    embedded = run_zonal(parameters(composites, tmp_path / "embedded.gpkg"))
    in_database = run_zonal(parameters(composites, tmp_path / "postgis.gpkg", DATABASE="zonal test"))
    for year in YEARS:
        a = read_table(embedded["OUTPUT"], f"ndvi_stats_{year}")
        b = read_table(in_database["OUTPUT"], f"ndvi_stats_{year}")
        assert set(a) == set(b)
        for district_id in a:
            assert a[district_id]["pixel_count"] == b[district_id]["pixel_count"]
            for field in ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi"):
                if a[district_id][field] is None:
                    assert b[district_id][field] is None
                else:
                    assert a[district_id][field] == pytest.approx(b[district_id][field], abs=1e-6)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"DATABASE": "no such connection"}, "no saved PostgreSQL connection named 'no such connection'"),
        ({"RASTERS": []}, "composite"),
    ],
)
def test_bad_input_is_a_clear_processing_error(loaded_plugin, composites, tmp_path, changes, message):
    output = tmp_path / "out" / "stats.gpkg"
    output.parent.mkdir()
    with pytest.raises(QgsProcessingException) as raised:
        run_zonal(parameters(composites, output, **changes))
    assert message in str(raised.value)
    assert list(output.parent.iterdir()) == []


def test_the_dialog_computes_statistics_for_the_ticked_composites_and_loads_styled_tables(loaded_plugin, composites, tmp_path):
    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    project = QgsProject.instance()
    districts = districts_layer()
    rasters = [QgsRasterLayer(str(path), path.stem) for path in composites.values()]
    project.addMapLayers([districts, *rasters])
    dialog = ExplorerDialog(loaded_plugin.iface)
    panel = dialog.show_panel(dialog.districts)  # lists the project's composites
    panel.districtsLayerCombo.setLayer(districts)
    panel.idFieldCombo.setField("district code")
    assert panel.rastersList.count() == len(YEARS)
    panel.rastersList.item(0).setCheckState(Qt.CheckState.Unchecked)  # leave the first year out
    panel.statsOutputWidget.setFilePath(str(tmp_path / "dialog_stats.gpkg"))
    panel.geojsonCheck.setChecked(True)
    QTest.mouseClick(panel.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog, timeout=60)
    loaded = {layer.name(): layer for layer in project.mapLayers().values() if layer.name().startswith("ndvi_stats")}
    skipped = min(YEARS)
    assert set(loaded) == {f"ndvi_stats_{y}" for y in YEARS if y != skipped} | {"ndvi_stats_latest", "ndvi_stats_change"}
    assert all(layer.renderer().type() == "graduatedSymbol" for layer in loaded.values())
    assert (tmp_path / "dialog_stats_latest.geojson").exists()
    project.removeAllMapLayers()
    dialog.clear_canvas_items()
    dialog.deleteLater()


def test_the_algorithm_keeps_the_id_field_and_the_other_attributes_in_every_table(loaded_plugin, composites, tmp_path):
    from osgeo import ogr

    layer = QgsVectorLayer(f"MultiPolygon?crs={CRS}", "districts", "memory")
    layer.dataProvider().addAttributes([new_field("district_code", "string"), new_field("population", "integer"),
                                        new_field("area_km2", "real"), new_field("name", "string")])
    layer.updateFields()
    features = []
    for number, (district_id, geometry) in enumerate(district_shapes()):
        feature = QgsFeature(layer.fields())
        feature.setAttributes([f"K{number:02d}", 100 * number, geometry.area / 1e6, district_id])
        feature.setGeometry(QgsGeometry.fromWkt(geometry.wkt))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = run_zonal(parameters(composites, tmp_path / "stats.gpkg", DISTRICTS=layer, ID_FIELD="district_code"))
    shapes = district_shapes()
    for table in [f"ndvi_stats_{y}" for y in YEARS] + ["ndvi_stats_latest", "ndvi_stats_change"]:
        dataset = ogr.Open(result["OUTPUT"])
        definition = dataset.GetLayerByName(table).GetLayerDefn()
        fields = [(definition.GetFieldDefn(i).GetName(), ogr.GetFieldTypeName(definition.GetFieldDefn(i).GetType()))
                  for i in range(definition.GetFieldCount())]
        dataset = None
        assert fields[:4] == [("district_code", "String"), ("population", "Integer64"), ("area_km2", "Real"),
                              ("name", "String")], table
        rows = read_table(result["OUTPUT"], table, "district_code")
        for number, (district_id, geometry) in enumerate(shapes):
            row = rows[f"K{number:02d}"]
            assert (row["population"], row["name"]) == (100 * number, district_id)
            assert row["area_km2"] == pytest.approx(geometry.area / 1e6)


def test_the_algorithm_refuses_a_field_named_like_a_statistics_column(loaded_plugin, composites, tmp_path):
    layer = districts_layer()
    layer.dataProvider().addAttributes([new_field("mean_ndvi", "real")])
    layer.updateFields()
    with pytest.raises(QgsProcessingException) as raised:
        run_zonal(parameters(composites, tmp_path / "stats.gpkg", DISTRICTS=layer))
    assert "districts field 'mean_ndvi' has the name of a column of the statistics tables (a statistic)" in str(raised.value)
