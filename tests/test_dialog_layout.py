"""The dialog's layout: a list of the six workflows and one panel at a time, each with its own run button
and status line, the shared database and region boxes above the panels that read them, and a size that
fits a 1366 x 768 screen without tab bars that scroll."""

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import QCoreApplication, QSize, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QPushButton, QTabBar

from dialog_fixtures import *  # noqa: F401,F403
from canopy_explorer.plugin.gui.components.database_box import DatabaseBox
from canopy_explorer.plugin.gui.components.region_box import RegionBox

# 1366 x 768 less what the desktop takes: a window frame (2 x 8 px), a title bar (30 px) and a panel or
# task bar (40 px).
SCREEN_LEFT = QSize(1366 - 16, 768 - 30 - 40 - 8)
TITLES = ["ATL08 query", "Nearest shots", "Grid change", "NDVI composites", "District statistics", "Sample rasters"]


def show(dialog, panel):
    dialog.show_panel(panel)
    QCoreApplication.processEvents()
    return panel


def test_the_workflow_list_names_the_six_panels_and_shows_one_at_a_time(dialog):
    assert [dialog.workflowList.item(row).text() for row in range(dialog.workflowList.count())] == TITLES
    assert [panel.title for panel in dialog.panels] == TITLES
    for row, panel in enumerate(dialog.panels):
        dialog.workflowList.setCurrentRow(row)  # as a click in the list does
        QCoreApplication.processEvents()
        assert dialog.current_panel() is panel and panel.isVisible()
        assert [p for p in dialog.panels if p.isVisible()] == [panel]


@pytest.mark.parametrize("row", range(len(TITLES)), ids=TITLES)
def test_every_panel_fits_a_1366_by_768_screen(dialog, row):
    panel = show(dialog, dialog.panels[row])
    for hint in (dialog.sizeHint(), dialog.minimumSizeHint()):
        assert hint.width() <= SCREEN_LEFT.width() and hint.height() <= SCREEN_LEFT.height(), (panel.title, hint)


@pytest.mark.parametrize("row", range(len(TITLES)), ids=TITLES)
def test_no_tab_bar_needs_scroll_buttons(dialog, row):
    panel = show(dialog, dialog.panels[row])
    dialog.resize(dialog.sizeHint())
    QCoreApplication.processEvents()
    for bar in [bar for bar in dialog.findChildren(QTabBar) if bar.isVisible()]:
        assert bar.count() <= 5, panel.title
        assert bar.sizeHint().width() <= bar.parentWidget().width(), (panel.title, [bar.tabText(i) for i in range(bar.count())])


def test_each_panel_has_its_own_run_button_and_status_line(dialog):
    run_buttons = {panel.runButton.text() for panel in dialog.panels}
    assert run_buttons == {"Run query", "Click a point on the map…", "Map the change on a grid", "Build NDVI composites",
                           "Compute district statistics", "Sample the rasters"}
    for panel in dialog.panels:
        assert panel.isAncestorOf(panel.runButton) and panel.isAncestorOf(panel.statusLabel)
        show(dialog, panel)
        shown = [b for b in dialog.findChildren(QPushButton) if b.isVisible() and b.text() in run_buttons]
        assert shown == [panel.runButton], panel.title


def test_the_shared_boxes_stand_above_the_panels_that_read_them_and_exist_once(dialog):
    assert dialog.findChildren(DatabaseBox) == [dialog.database] and dialog.findChildren(RegionBox) == [dialog.region]
    shown = {}
    for panel in dialog.panels:
        show(dialog, panel)
        shown[panel.title] = (dialog.database.isVisible(), dialog.region.isVisible())
    assert shown == {"ATL08 query": (True, True), "Nearest shots": (True, False), "Grid change": (True, True),
                     "NDVI composites": (False, True), "District statistics": (False, False),
                     "Sample rasters": (False, False)}


def test_enter_runs_the_workflow_on_screen(dialog):
    show(dialog, dialog.ndvi)
    QTest.keyClick(dialog, Qt.Key.Key_Return)
    assert "No region yet" in dialog.ndvi.statusLabel.text()
    assert dialog.query.statusLabel.text() == "" and not dialog.tasks


def test_a_workflow_error_stays_on_its_own_panel(dialog):
    show(dialog, dialog.query)
    QTest.mouseClick(dialog.query.runButton, Qt.MouseButton.LeftButton)
    assert "No region of interest yet" in dialog.query.statusLabel.text()
    show(dialog, dialog.ndvi)
    assert dialog.ndvi.statusLabel.text() == ""  # the ATL08 query's error is not shown on the NDVI panel
    QTest.mouseClick(dialog.ndvi.runButton, Qt.MouseButton.LeftButton)
    assert "No region yet" in dialog.ndvi.statusLabel.text()
    for panel in (dialog.nearest, dialog.grid_change, dialog.districts):
        assert panel.statusLabel.text() == ""


def test_a_region_error_is_reported_on_the_panel_the_user_is_on(dialog, canvas):
    show(dialog, dialog.ndvi)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem())
    canvas.setExtent(QgsRectangle(7.0, 45.0, 7.3, 45.3))
    assert dialog.region.use_canvas_extent() is False
    assert "color:#b00020" in dialog.ndvi.statusLabel.text() and "no coordinate reference system" in dialog.ndvi.statusLabel.text()
    assert dialog.query.statusLabel.text() == ""


def test_choosing_a_region_clears_the_region_errors_of_every_panel_that_reads_it(dialog):
    for panel in (dialog.query, dialog.grid_change, dialog.ndvi):
        show(dialog, panel)
        QTest.mouseClick(panel.runButton, Qt.MouseButton.LeftButton)
        assert "color:#b00020" in panel.statusLabel.text(), panel.title
    assert dialog.region.use_canvas_extent()
    assert [panel.statusLabel.text() for panel in (dialog.query, dialog.grid_change, dialog.ndvi)] == ["", "", ""]
