"""Grid change in QGIS: the Processing algorithm, its styles and the dialog's tab (bad input: test_bad_input_matrix.py)."""

import sqlite3

import numpy as np
import pytest
from qgis.core import QgsProcessingFeedback, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QDate, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QMessageBox

from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.grid.change import FIELDS, GridChangeRequest, grid_change
from dialog_fixtures import use_database
from grid_fixtures import PERIODS, write_planted_database
from task_waits import wait_for_tasks


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    config, _ = write_planted_database(tmp_path_factory.mktemp("planted_qgis") / "db")
    return config


def run(parameters):
    from qgis import processing

    return processing.run("canopyexplorer:atl08_grid_change", parameters, feedback=QgsProcessingFeedback())


def parameters(database, output, **changes):
    values = {
        "CONFIG": database.local_path,
        "VARIABLE": "h_canopy",
        "PERIOD1_START": PERIODS[0][0], "PERIOD1_END": PERIODS[0][1],
        "PERIOD2_START": PERIODS[1][0], "PERIOD2_END": PERIODS[1][1],
        "CELL_SIZE_KM": 50,
        "MIN_SHOTS": 100,
        "FILTERS": "h_canopy >= 0",
        "OUTPUT": str(output),
    }
    values.update(changes)
    return values


def test_algorithm_writes_styled_hexagons_with_the_engine_statistics(loaded_plugin, planted, tmp_path):
    result = run(parameters(planted, tmp_path / "change.gpkg"))
    expected = grid_change(GridChangeRequest.create(Atl08Database(planted), periods=PERIODS, cell_size_km=50, min_shots=100,
                                                    filters="h_canopy >= 0"))
    assert result["CELLS"] == len(expected) > 10
    layer = QgsVectorLayer(f"{result['OUTPUT']}|layername=grid_change", "change", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:8857"
    assert [f.name() for f in layer.fields()][1:] == ["cell_id", *FIELDS]
    values = {f["cell_id"]: f["change"] for f in layer.getFeatures()}
    np.testing.assert_allclose([values[int(c)] for c in expected.cell], expected.columns["change"])
    # the change map is the default style: diverging, symmetric at the 95th percentile of |change|
    renderer = layer.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "change"
    ranges = renderer.ranges()
    limit = np.percentile(np.abs(expected.columns["change"]), 95)
    inner = [r.lowerValue() for r in ranges[1:]]
    assert inner[len(inner) // 2] == pytest.approx(0, abs=1e-9)
    assert ranges[1].lowerValue() == pytest.approx(-limit + 2 * limit / 10) and ranges[-1].lowerValue() == pytest.approx(limit - 2 * limit / 10)
    with sqlite3.connect(result["OUTPUT"]) as connection:
        styles = dict(connection.execute("SELECT styleName, useAsDefault FROM layer_styles WHERE f_table_name = 'grid_change'"))
    assert styles == {"Baseline (period 1 median)": 0, "Change (period 2 - period 1)": 1}


def test_the_baseline_style_uses_fixed_classes_from_2_to_40_m(loaded_plugin, planted):
    from canopy_explorer.plugin.layers.grid_layer import baseline_renderer

    result = grid_change(GridChangeRequest.create(Atl08Database(planted), periods=PERIODS, cell_size_km=50, min_shots=100))
    renderer = baseline_renderer(result)
    edges = [r.upperValue() for r in renderer.ranges()[:-1]]
    np.testing.assert_allclose(edges, np.linspace(2, 40, 9)[1:-1])
    assert renderer.classAttribute() == "median_p1" and "m" in renderer.ranges()[0].label()


def test_geotiff_output_has_square_cells_and_a_change_style(loaded_plugin, planted, tmp_path):
    result = run(parameters(planted, tmp_path / "change.tif"))
    layer = QgsRasterLayer(result["OUTPUT"], "change")
    assert layer.isValid() and layer.bandCount() == len(FIELDS)
    assert layer.rasterUnitsPerPixelX() == pytest.approx(50_000)
    assert (tmp_path / "change.qml").exists() and layer.renderer().type() == "singlebandpseudocolor"
    assert layer.renderer().band() == FIELDS.index("change") + 1


def test_the_dialog_maps_the_change_and_adds_both_layers(loaded_plugin, planted, tmp_path):
    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    project = QgsProject.instance()
    dialog = ExplorerDialog(loaded_plugin.iface)
    use_database(dialog, planted.local_path)
    dialog.variables.set_variables(["h_canopy"])
    panel = dialog.show_panel(dialog.grid_change)
    for edit, text in zip((panel.period1.startEdit, panel.period1.endEdit, panel.period2.startEdit, panel.period2.endEdit),
                          (*PERIODS[0], *PERIODS[1])):
        edit.setDate(QDate.fromString(text, "yyyy-MM-dd"))
    panel.cellSizeSpin.setValue(50)
    panel.gridWholeCheck.setChecked(True)
    panel.gridOutputWidget.setFilePath(str(tmp_path / "dialog_change"))
    QTest.mouseClick(panel.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog, timeout=120)
    names = sorted(layer.name() for layer in project.mapLayers().values())
    assert names == ["h_canopy change 2022-2023 vs 2019-2020", "h_canopy median 2019-2020"]
    renderers = {layer.name(): layer.renderer().classAttribute() for layer in project.mapLayers().values()}
    assert renderers["h_canopy median 2019-2020"] == "median_p1"
    assert (tmp_path / "dialog_change.gpkg").exists() and "cells with at least 100" in panel.statusLabel.text()
    project.removeAllMapLayers()
    dialog.deleteLater()


def test_the_dialog_needs_a_region_or_whole_database(loaded_plugin, planted, tmp_path):
    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    dialog = ExplorerDialog(loaded_plugin.iface)
    panel = dialog.grid_change
    assert dialog.region.roi is None
    panel.gridWholeCheck.setChecked(False)
    panel.gridOutputWidget.setFilePath(str(tmp_path / "x.gpkg"))
    assert panel.map_grid_change() is None
    assert "region of interest" in panel.statusLabel.text() and not list(tmp_path.iterdir())
    dialog.deleteLater()


def test_a_too_large_query_offers_the_grid_instead(loaded_plugin, planted, monkeypatch):
    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Open)
    dialog = ExplorerDialog(loaded_plugin.iface)
    use_database(dialog, planted.local_path)
    dialog.variables.set_variables(["h_canopy"])
    dialog.filters.filtersEdit.setPlainText("")
    dialog.time_range.startEdit.setDate(QDate(2019, 1, 1))
    dialog.time_range.endEdit.setDate(QDate(2023, 12, 31))
    dialog.region.roi = ((8.0, 50.0, 12.0, 52.0), "EPSG:4326")
    dialog.query.maxRowsSpin.setValue(1000)
    dialog.query.run_query()
    wait_for_tasks(dialog)
    assert dialog.current_panel() is dialog.grid_change and "grid" in dialog.grid_change.statusLabel.text()
    assert "Query not run" in dialog.query.statusLabel.text()
    assert not [layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("ATL08")]
    dialog.deleteLater()
