"""NDVI composites from QGIS: the Processing algorithm and the background task, styled raster layers."""


import numpy as np
import pytest
from qgis.core import QgsApplication, QgsFeature, QgsGeometry, QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt

from stac_fixtures import *  # noqa: F401,F403
from task_waits import wait_for_tasks, wait_until
from stac_fixtures import BOUNDARY, BOUNDARY_CRS, COLLECTION, make_source, read_composite

from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest, composite_years


def boundary_layer():
    layer = QgsVectorLayer(f"Polygon?crs={BOUNDARY_CRS}", "city", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(BOUNDARY.wkt))
    layer.dataProvider().addFeatures([feature])
    return layer


def run_algorithm(parameters, feedback=None):
    from qgis import processing

    return processing.run("canopyexplorer:ndvi_composite", parameters, feedback=feedback or QgsProcessingFeedback())


def test_the_algorithm_writes_the_same_composite_as_the_engine_with_its_style(loaded_plugin, stac_server, tmp_path):
    result = run_algorithm({"ROI": boundary_layer(), "YEARS": "2022", "STAC_URL": stac_server.url, "COLLECTION": COLLECTION,
                            "MAX_CLOUD": 50, "CLASSES": 4, "OUTPUT_FOLDER": str(tmp_path / "qgis")})
    [path] = result["COMPOSITES"]
    assert path.endswith("ndvi_composite_2022.tif")
    [report] = composite_years(CompositeRequest.create(make_source(stac_server.url), BOUNDARY, BOUNDARY_CRS, [2022], 50,
                                                       tmp_path / "engine"))
    median, count, _, _ = read_composite(path)
    expected_median, expected_count, _, _ = read_composite(report.path)
    np.testing.assert_array_equal(median, expected_median)
    np.testing.assert_array_equal(count, expected_count)
    layer = QgsRasterLayer(path, "composite")  # opened fresh: the .qml beside it is its default style
    renderer = layer.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert len(items) == 4
    assert items[-1].value == pytest.approx(np.nanmax(median), abs=1e-6)


def test_no_scenes_is_a_clear_processing_error_and_writes_nothing(loaded_plugin, stac_server, tmp_path):
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm({"ROI": boundary_layer(), "YEARS": "2018", "STAC_URL": stac_server.url, "COLLECTION": COLLECTION,
                       "MAX_CLOUD": 50, "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert f"has no {COLLECTION} scenes over this region in 2018" in str(raised.value)
    assert "threshold" not in str(raised.value)  # no scene at all: raising the cloud threshold would not help
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_task_reports_outputs_and_a_cancel_leaves_no_file(loaded_plugin, stac_server, tmp_path):
    from canopy_explorer.plugin.layers.ndvi_layer import load_composite_layer
    from canopy_explorer.plugin.tasks.ndvi_task import NdviCompositeTask

    source = make_source(stac_server.url)
    task = NdviCompositeTask(CompositeRequest.create(source, BOUNDARY, BOUNDARY_CRS, "2022", 50, str(tmp_path / "task")))
    outputs = []
    task.completed.connect(outputs.extend)
    QgsApplication.taskManager().addTask(task)
    wait_until(lambda: outputs, timeout=120)
    layer = load_composite_layer(outputs[0])
    assert layer.isValid() and layer.name() == "NDVI median 2022" and layer.bandCount() == 2

    cancelled = NdviCompositeTask(CompositeRequest.create(source, BOUNDARY, BOUNDARY_CRS, "2022", 50, str(tmp_path / "cancelled")))
    ends = []
    cancelled.taskTerminated.connect(lambda: ends.append("terminated"))
    cancelled.taskCompleted.connect(lambda: ends.append("completed"))
    cancelled.progressChanged.connect(lambda _: cancelled.cancel(), Qt.ConnectionType.DirectConnection)
    QgsApplication.taskManager().addTask(cancelled)
    wait_until(lambda: ends, timeout=120)
    assert ends == ["terminated"]
    assert [p for p in (tmp_path / "cancelled").rglob("*") if p.is_file()] == []


def test_the_dialog_builds_composites_for_the_chosen_region_and_loads_them_styled(loaded_plugin, stac_server, tmp_path):
    from qgis.core import QgsProject
    from qgis.PyQt.QtTest import QTest

    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    dialog = ExplorerDialog(loaded_plugin.iface)
    panel = dialog.show_panel(dialog.ndvi)
    layer = boundary_layer()
    QgsProject.instance().addMapLayer(layer)
    dialog.region.roiLayerCombo.setLayer(layer)
    dialog.region.use_layer()
    panel.yearsEdit.setText("2022")
    panel.stacCatalogueCombo.setCurrentIndex(panel.stacCatalogueCombo.findText("Another STAC API (URL below)"))
    panel.stacUrlEdit.setText(stac_server.url)
    panel.collectionEdit.setText(COLLECTION)
    panel.maxCloudSpin.setValue(50)
    panel.ndviFolderWidget.setFilePath(str(tmp_path))
    QTest.mouseClick(panel.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog, timeout=120)
    [composite] = [l for l in QgsProject.instance().mapLayers().values() if l.name() == "NDVI median 2022"]
    assert composite.renderer().type() == "singlebandpseudocolor"
    assert (tmp_path / "ndvi_composite_2022.tif").exists()
    QgsProject.instance().removeAllMapLayers()
    dialog.clear_canvas_items()
    dialog.deleteLater()
