"""The "Sample rasters" panel: the rasters ticked in the project, or the NDVI composites by year, added to a point
layer's copy, which is loaded into the project."""

import pytest
from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest

from dialog_fixtures import *  # noqa: F401,F403
from sampling_fixtures import composite_value, in_pixel, pixel_values, read_points, write_composite, write_points, write_utm_raster
from task_waits import wait_for_tasks


def ticked_only(panel, names):
    for row in range(panel.sampleRastersList.count()):
        item = panel.sampleRastersList.item(row)
        wanted = any(item.text().startswith(name) for name in names)
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)


@pytest.mark.parametrize("by_year", [False, True], ids=["chosen rasters", "composites by year"])
def test_the_panel_adds_the_ticked_rasters_to_a_copy_of_the_points_and_loads_it(dialog, tmp_path, by_year):
    project = QgsProject.instance()
    places = [in_pixel(0.5, 0.5), in_pixel(3.5, 4.5)]
    points = QgsVectorLayer(f"{write_points(tmp_path / 'segments.gpkg', places)}|layername=segments", "segments", "ogr")
    raster = QgsRasterLayer(str(write_utm_raster(tmp_path / "cover.tif")), "cover")
    composites = [QgsRasterLayer(str(write_composite(tmp_path, year)), f"ndvi {year}") for year in (2020, 2021)]
    project.addMapLayers([points, raster, *composites])
    panel = dialog.show_panel(dialog.sample_rasters)
    panel.pointsLayerCombo.setLayer(points)
    if by_year:
        ticked_only(panel, ["cover"])  # a raster that is not a composite, ticked before switching
        panel.compositeByYearRadio.setChecked(True)  # lists the rasters whose file name holds a year, all ticked
        assert panel.sampleRastersList.count() == 2 and len(panel.chosen_rasters()) == 2
        assert not panel.bandSpin.isEnabled()
    else:
        assert panel.sampleRastersList.count() == 3
        ticked_only(panel, ["cover"])
    panel.sampleOutputWidget.setFilePath(str(tmp_path / "sampled.gpkg"))
    QTest.mouseClick(panel.runButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog, timeout=60)
    field = "ndvi" if by_year else "cover"
    [loaded] = [layer for layer in project.mapLayers().values() if layer.name() == f"segments with {field}"]
    assert loaded.isValid() and loaded.featureCount() == len(places)
    rows = read_points(tmp_path / "sampled.gpkg")
    values = pixel_values()
    expected = [pytest.approx(composite_value(2021))] * 2 if by_year else [float(values[0, 0]), float(values[3, 4])]
    assert [rows[1000][field], rows[1001][field]] == expected
    assert "2 segments written" in panel.statusLabel.text()
    project.removeAllMapLayers()
