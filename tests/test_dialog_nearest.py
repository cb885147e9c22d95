"""The nearest-shots panel: a click on the map loads the segments nearest to it, read with the database,
variables, time range and filters the ATL08 query shows, and the panel says which."""

import re

from qgis.PyQt.QtCore import QDate

from canvas_events import click, map_point
from dialog_fixtures import *  # noqa: F401,F403
from dialog_fixtures import result_layers
from task_waits import wait_for_tasks


def test_clicking_the_map_loads_the_nearest_shots_with_distances(dialog, canvas, loaded_plugin):
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerNearest"]
    dialog.nearest.nearestCountSpin.setValue(12)
    dialog.nearest.nearestRadiusSpin.setValue(3000)
    action.trigger()
    assert not dialog.isVisible()
    click(canvas, 300, 300)
    assert dialog.isVisible()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    distances = [f["distance_m"] for f in layer.getFeatures()]
    assert len(distances) == 12 and distances == sorted(distances) and distances[-1] <= 3000
    clicked = map_point(canvas, 300, 300)
    assert dialog.nearest.nearest_marker.center() == clicked
    assert dialog.current_panel() is dialog.nearest
    assert dialog.nearest.statusLabel.text().startswith("Loaded 12 segments") and dialog.query.statusLabel.text() == ""


def test_the_layer_is_named_after_the_segments_found_not_the_number_asked_for(dialog, canvas, loaded_plugin):
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerNearest"]
    dialog.nearest.nearestCountSpin.setValue(500)
    dialog.nearest.nearestRadiusSpin.setValue(3000)  # holds fewer than 500
    action.trigger()
    click(canvas, 300, 300)
    wait_for_tasks(dialog)
    [layer] = result_layers()
    found = layer.featureCount()
    assert 0 < found < 500
    assert re.fullmatch(rf"ATL08: the {found} segments? nearest to \d+\.\d{{5}} [NS], \d+\.\d{{5}} [EW]", layer.name()), layer.name()


def test_the_panel_says_what_it_reads_from_the_atl08_query_and_links_to_it(dialog):
    dialog.show_panel(dialog.nearest)
    text = dialog.nearest.usesLabel.text()
    assert "variables (h_canopy, canopy_h_metrics:95)" in text and "time range (2020-01-01 to 2021-12-31)" in text
    assert "1 quality filter condition" in text
    dialog.variables.set_variables([])
    dialog.time_range.startEdit.setDate(QDate(2019, 6, 1))
    dialog.filters.filtersEdit.setPlainText("night_flag == 1")
    text = dialog.nearest.usesLabel.text()
    assert "variables (h_canopy, as none is ticked)" in text and "time range (2019-06-01 to 2021-12-31)" in text
    assert "2 quality filter conditions" in text
    dialog.nearest.usesLabel.linkActivated.emit("atl08_query")  # a click on "ATL08 query"
    assert dialog.current_panel() is dialog.query


def test_the_time_range_of_the_atl08_query_limits_the_nearest_shots(dialog, canvas):
    dialog.time_range.startEdit.setDate(QDate(2030, 1, 1))
    dialog.time_range.endEdit.setDate(QDate(2030, 12, 31))
    dialog.nearest.nearest_shots(map_point(canvas, 300, 300), canvas.mapSettings().destinationCrs())
    wait_for_tasks(dialog)
    assert result_layers() == [] and "No segments matched" in dialog.nearest.statusLabel.text()
