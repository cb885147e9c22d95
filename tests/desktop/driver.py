"""Runs inside desktop QGIS (``qgis --code launch.py``) and uses Canopy Explorer as a user would.

It reads its plan from the JSON file named by CANOPY_DESKTOP_PLAN, then, on the running
application: installs the plugin from the zip with QGIS's own "Install from ZIP" code, presses
"Install missing packages" in the load-time warning, and drives the dialog's widgets for every
workflow. It records what it did and saw (regions, output files, layers, the message log, the
message bar, dialogs that popped up) in the results JSON, saves screenshots, and quits QGIS.
tests/test_desktop_qgis.py checks the results against numbers it computes itself.

Nothing here decides whether the plugin works: it records, the test judges.
"""

import json
import os
import time
import traceback
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QDate, QTimer
from qgis.PyQt.QtWidgets import QApplication, QMessageBox, QPushButton
from qgis.utils import iface

from canvas_events import RIGHT, click, drag  # tests/ is on sys.path (launch.py)

PLAN = json.loads(Path(os.environ["CANOPY_DESKTOP_PLAN"]).read_text())

RESULTS = {"steps": {}, "log": [], "dialogs": [], "message_bar": []}
SHOTS = Path(PLAN["screenshots"])
OUT = Path(PLAN["output"])
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def record_log(message, tag, level):
    RESULTS["log"].append({"tag": tag, "level": int(level), "text": message})


QgsApplication.messageLog().messageReceived.connect(record_log)


def answer_dialogs():
    """Message boxes the workflows raise are answered as the plan says (default: the default button)."""
    widget = QApplication.activeModalWidget()
    if isinstance(widget, QMessageBox):
        text = widget.text()
        RESULTS["dialogs"].append(text)
        for needle, button in PLAN.get("answers", {}).items():
            if needle in text:
                widget.button(getattr(QMessageBox.StandardButton, button)).click()
                return
        widget.done(0) if widget.defaultButton() is None else widget.defaultButton().click()


watcher = QTimer()
watcher.timeout.connect(answer_dialogs)
watcher.start(250)


def pump(seconds=0.05):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.01)


def wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        pump(0.05)


def shot(widget, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pump(0.3)
    widget.grab().save(str(SHOTS / name))


def step(name):
    """Run the decorated function now; its return value, or its error, goes into the results."""
    def run(function):
        started = time.monotonic()
        try:
            RESULTS["steps"][name] = {"ok": True, "result": function()}
        except Exception as error:  # recorded for the test to report
            RESULTS["steps"][name] = {"ok": False, "error": f"{type(error).__name__}: {error}",
                                      "traceback": traceback.format_exc()}
        RESULTS["steps"][name]["seconds"] = round(time.monotonic() - started, 2)
        RESULTS["message_bar"] = [f"{item.title()}: {item.text()}" for item in iface.messageBar().items()]
        save()
        return function
    return run


def save():
    Path(PLAN["results"]).write_text(json.dumps(RESULTS, indent=1, default=str))


def plugin():
    import qgis.utils

    return qgis.utils.plugins.get("canopy_explorer")


def dialog():
    return plugin().dialog


def wait_for_dialog_tasks(timeout=300):
    wait(lambda: not dialog().tasks and QgsApplication.taskManager().countActiveTasks() == 0, timeout, "the dialog's tasks")
    pump(0.2)


def set_canvas(crs, extent_wgs84):
    canvas = iface.mapCanvas()
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem(crs))
    pump(0.2)
    transform = QgsCoordinateTransform(WGS84, QgsCoordinateReferenceSystem(crs), QgsProject.instance())
    canvas.setExtent(transform.transformBoundingBox(QgsRectangle(*extent_wgs84)))
    canvas.refresh()
    pump(0.5)
    return canvas


def pixel(canvas, lon, lat):
    crs = canvas.mapSettings().destinationCrs()
    point = QgsCoordinateTransform(WGS84, crs, QgsProject.instance()).transform(QgsPointXY(lon, lat))
    position = canvas.getCoordinateTransform().transform(point)
    return int(round(position.x())), int(round(position.y()))


def roi_record():
    roi, crs = dialog().region.roi
    if isinstance(roi, tuple):
        return {"bbox": list(roi), "crs": crs}
    return {"wkt": roi.wkt, "crs": crs}


def run_query(name, output_format="GPKG"):
    """Run the query into a file of ``output_format`` (a key of segment_files.FORMATS), or a temporary layer ("")."""
    d = dialog()
    panel = d.show_panel(d.query)
    index = panel.outputFormatCombo.findData(output_format) if output_format else 0
    if index < 0:
        raise ValueError(f"the output format list has no {output_format!r}")
    panel.outputFormatCombo.setCurrentIndex(index)
    path = OUT / (name + {"GPKG": ".gpkg", "FlatGeobuf": ".fgb", "GeoJSON": ".geojson", "": ""}[output_format])
    if output_format:
        panel.outputFileWidget.setFilePath(str(path))
    layers_before = set(QgsProject.instance().mapLayers())
    panel.runButton.click()
    wait_for_dialog_tasks()
    new = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - layers_before]
    return {"roi": roi_record(), "output": str(path) if output_format else None, "status": panel.statusLabel.text(),
            "layers": [{"name": layer.name(), "features": layer.featureCount(), "source": layer.source(),
                        "segment_ids": [f["segment_id"] for f in layer.getFeatures()]} for layer in new]}


# ---------------------------------------------------------------------------------------------- the session


def main():
    iface.mainWindow().resize(1500, 950)
    pump(1.0)

    @step("install_plugin_from_zip")
    def _():
        import pyplugin_installer

        pyplugin_installer.instance().installFromZipFile(PLAN["zip"])
        wait(lambda: plugin() is not None, 60, "the plugin to load")
        return {"plugins": sorted(__import__("qgis.utils").utils.active_plugins)}

    @step("load_time_warning")
    def _():
        for item in iface.messageBar().items():
            if "Canopy Explorer cannot run yet" in item.text():
                buttons = {b.objectName(): b.text() for b in item.findChildren(QPushButton)}
                shot(iface.mainWindow(), "load_time_warning.png")
                return {"text": item.text(), "buttons": buttons}
        return None

    @step("install_missing_packages")
    def _():
        item = next(i for i in iface.messageBar().items() if "Canopy Explorer cannot run yet" in i.text())
        item.findChild(QPushButton, "CanopyExplorerInstallPackages").click()
        deps = plugin()._dependencies_dialog
        wait(lambda: deps.task is not None, 10, "the install task to start")
        wait(lambda: deps.task is None, 900, "the install task to finish")
        shot(deps, "dependencies_dialog.png")
        from canopy_explorer.plugin.environment import environment_report, packages_folder

        report = environment_report()
        summary = deps.summaryLabel.text()
        deps.close()
        return {"summary": summary, "message_bar": [item.text() for item in iface.messageBar().items()], "ok": report.ok, "message": report.message(), "folder": str(packages_folder()),
                "log_tail": deps.logText.toPlainText()[-3000:],
                "versions": {s.requirement.name: s.version for s in report.statuses},
                "locations": {s.requirement.name: s.location for s in report.statuses}}

    @step("open_query_dialog")
    def _():
        [action] = [a for a in plugin().actions if a.objectName() == "CanopyExplorerQuery"]
        action.trigger()
        d = dialog()
        wait(lambda: d is not None and d.isVisible(), 30, "the dialog")
        d.show_panel(d.query)
        d.database.databaseCombo.setCurrentIndex(d.database.databaseCombo.count() - 1)  # "Other"
        d.database.databaseEdit.setText(PLAN["database"])
        d.database.testConnectionButton.click()
        wait_for_dialog_tasks()
        d.variables.set_variables(PLAN["variables"])
        d.time_range.startEdit.setDate(QDate.fromString(PLAN["start"], "yyyy-MM-dd"))
        d.time_range.endEdit.setDate(QDate.fromString(PLAN["end"], "yyyy-MM-dd"))
        d.filters.filtersEdit.setPlainText(PLAN["filters"])
        return {"connection": d.database.connectionLabel.text(), "filters": d.filters.filterStatusLabel.text()}

    @step("layout")
    def _():
        """What the dialog asks of the screen on each panel, with this desktop's fonts and style."""
        from qgis.PyQt.QtWidgets import QTabBar

        d = dialog()
        opened = {"width": d.width(), "height": d.height()}
        panels = {}
        for panel in d.panels:
            d.show_panel(panel)
            pump(0.3)
            hint, minimum = d.sizeHint(), d.minimumSizeHint()
            panels[panel.title] = {
                "hint": [hint.width(), hint.height()], "minimum": [minimum.width(), minimum.height()],
                "frame": [d.frameGeometry().width() - d.width(), d.frameGeometry().height() - d.height()],
                "tab_bars": [{"tabs": [bar.tabText(i) for i in range(bar.count())], "needs": bar.sizeHint().width(),
                              "has": bar.width()} for bar in d.findChildren(QTabBar) if bar.isVisible()],
            }
        d.show_panel(d.query)
        return {"opened": opened, "panels": panels}

    @step("rectangle_region")
    def _():
        canvas = set_canvas("EPSG:4326", PLAN["view_wgs84"])
        west, south, east, north = PLAN["rectangle_wgs84"]
        dialog().region.drawRectangleButton.click()
        pump(0.3)
        drag(canvas, pixel(canvas, west, north), pixel(canvas, east, south))
        wait(lambda: dialog().isVisible(), 10, "the dialog to come back")
        return run_query("rectangle", output_format="")  # a temporary layer

    @step("polygon_region")
    def _():
        canvas = set_canvas("EPSG:4326", PLAN["view_wgs84"])
        dialog().region.drawPolygonButton.click()
        pump(0.3)
        for lon, lat in PLAN["polygon_wgs84"]:
            click(canvas, *pixel(canvas, lon, lat))
        click(canvas, *pixel(canvas, *PLAN["polygon_wgs84"][-1]), RIGHT)
        wait(lambda: dialog().isVisible(), 10, "the dialog to come back")
        result = run_query("polygon")
        d = dialog()
        d.query.queryTabs.setCurrentWidget(d.query.variablesTab)
        shot(d, "query_dialog.png")
        d.query.queryTabs.setCurrentWidget(d.query.filtersTab)
        shot(d, "query_filters.png")
        d.query.queryTabs.setCurrentWidget(d.query.variablesTab)
        return result

    @step("canvas_extent_utm")
    def _():
        set_canvas("EPSG:32632", PLAN["extent_view_wgs84"])
        dialog().region.canvasExtentButton.click()
        return run_query("canvas_extent", output_format="FlatGeobuf")

    @step("layer_region")
    def _():
        layer = QgsVectorLayer(PLAN["roi_layer"], "forest stands", "ogr")
        QgsProject.instance().addMapLayer(layer)
        d = dialog()
        d.region.roiLayerCombo.setLayer(layer)
        d.region.selectedOnlyCheck.setChecked(False)
        d.region.layerRoiButton.click()
        return run_query("layer")

    @step("nearest_shots")
    def _():
        canvas = set_canvas("EPSG:4326", PLAN["view_wgs84"])
        d = dialog()
        panel = d.show_panel(d.nearest)
        panel.nearestCountSpin.setValue(PLAN["nearest"]["count"])
        panel.nearestRadiusSpin.setValue(PLAN["nearest"]["radius_m"])
        layers_before = set(QgsProject.instance().mapLayers())
        panel.runButton.click()
        pump(0.3)
        click(canvas, *pixel(canvas, *PLAN["nearest"]["point"]))
        wait(lambda: d.isVisible(), 10, "the dialog to come back")
        pump(0.5)
        wait_for_dialog_tasks()
        [layer] = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - layers_before]
        shot(d, "nearest_panel.png")
        iface.setActiveLayer(layer)
        target = OUT / "nearest.geojson"
        task = plugin().export_active_layer(str(target))
        wait(lambda: not plugin().export_tasks, 120, "the export")
        return {"layer": layer.name(), "features": layer.featureCount(), "picked": PLAN["nearest"]["point"],
                "status": panel.statusLabel.text(), "query_status": d.query.statusLabel.text(),
                "rows": [(f["segment_id"], f["distance_m"]) for f in layer.getFeatures()],
                "export": str(target), "export_task": task is not None}

    @step("ndvi_composites")
    def _():
        d = dialog()
        panel = d.show_panel(d.ndvi)
        boundary = QgsVectorLayer(PLAN["ndvi_boundary"], "city", "ogr")
        QgsProject.instance().addMapLayer(boundary)
        d.region.roiLayerCombo.setLayer(boundary)
        d.region.layerRoiButton.click()
        panel.stacCatalogueCombo.setCurrentIndex(panel.stacCatalogueCombo.findText("Another STAC API (URL below)"))
        panel.stacUrlEdit.setText(PLAN["stac_url"])
        panel.collectionEdit.setText(PLAN["collection"])
        panel.yearsEdit.setText(PLAN["ndvi_years"])
        panel.maxCloudSpin.setValue(PLAN["max_cloud"])
        panel.ndviFolderWidget.setFilePath(str(OUT / "ndvi"))
        layers_before = set(QgsProject.instance().mapLayers())
        panel.runButton.click()
        wait_for_dialog_tasks(600)
        new = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - layers_before]
        shot(d, "ndvi_panel.png")
        return {"status": panel.statusLabel.text(), "query_status": d.query.statusLabel.text(),
                "rasters": [layer.source() for layer in new if isinstance(layer, QgsRasterLayer)]}

    def district_statistics(name, connection):
        d = dialog()
        districts = QgsVectorLayer(PLAN["districts"], "districts", "ogr")
        QgsProject.instance().addMapLayer(districts)
        panel = d.show_panel(d.districts)
        panel.districtsLayerCombo.setLayer(districts)
        panel.idFieldCombo.setField(PLAN["district_id_field"])
        panel.refresh()  # the connection saved since the panel was shown
        panel.postgresCombo.setCurrentIndex(max(panel.postgresCombo.findData(connection), 0))
        output = OUT / f"{name}.gpkg"
        panel.statsOutputWidget.setFilePath(str(output))
        layers_before = set(QgsProject.instance().mapLayers())
        panel.runButton.click()
        wait_for_dialog_tasks(600)
        new = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - layers_before]
        return {"status": panel.statusLabel.text(), "output": str(output), "connection": panel.postgresCombo.currentData(),
                "composites": panel.chosen_composites(), "layers": sorted(layer.name() for layer in new)}

    @step("district_statistics_embedded")
    def _():
        result = district_statistics("districts_embedded", "")
        shot(dialog(), "district_panel.png")
        return result

    @step("district_statistics_postgis")
    def _():
        from qgis.core import QgsDataSourceUri, QgsProviderRegistry

        from qgis.core import QgsAuthMethodConfig

        # As a user sets it up: the credentials in QGIS's authentication database, the connection naming them.
        server = PLAN["postgres"]
        manager = QgsApplication.authManager()
        assert manager.setMasterPassword(server["master_password"], True), "cannot set the master password"
        credentials = QgsAuthMethodConfig("Basic")
        credentials.setName("canopy desktop test")
        credentials.setConfig("username", server["user"])
        credentials.setConfig("password", server["password"])
        assert manager.storeAuthenticationConfig(credentials), "cannot store the authentication configuration"
        uri = QgsDataSourceUri()
        uri.setConnection(server["host"], str(server["port"]), server["dbname"], "", "", QgsDataSourceUri.SslMode.SslPrefer,
                          credentials.id())
        metadata = QgsProviderRegistry.instance().providerMetadata("postgres")
        metadata.saveConnection(metadata.createConnection(uri.uri(False), {}), server["name"])
        return district_statistics("districts_postgis", server["name"])

    @step("grid_change")
    def _():
        d = dialog()
        panel = d.show_panel(d.grid_change)
        panel.gridWholeCheck.setChecked(True)
        (p1s, p1e), (p2s, p2e) = PLAN["periods"]
        for edit, value in ((panel.period1.startEdit, p1s), (panel.period1.endEdit, p1e),
                            (panel.period2.startEdit, p2s), (panel.period2.endEdit, p2e)):
            edit.setDate(QDate.fromString(value, "yyyy-MM-dd"))
        panel.cellSizeSpin.setValue(PLAN["cell_size_km"])
        panel.minShotsSpin.setValue(1)
        output = OUT / "grid_change.gpkg"
        panel.gridOutputWidget.setFilePath(str(output))
        layers_before = set(QgsProject.instance().mapLayers())
        panel.runButton.click()
        wait_for_dialog_tasks(600)
        new = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - layers_before]
        shot(d, "grid_change_panel.png")
        return {"status": panel.statusLabel.text(), "output": str(output), "layers": [layer.name() for layer in new]}

    @step("sample_database")
    def _():
        """A plugin installed from its zip has no sample data: choosing it offers to build it (answered Yes)."""
        d = dialog()
        d.show_panel(d.query)
        from qgis.PyQt.QtCore import Qt
        from qgis.PyQt.QtTest import QTest

        combo, label = d.database.databaseCombo, d.database.connectionLabel
        combo.setCurrentIndex(2)  # "Other"; the arrow key moves to "Sample database" as a user's choice does
        combo.setFocus()
        QTest.keyClick(combo, Qt.Key.Key_Up)  # the question pops up; the watcher answers Yes
        wait(lambda: "ready" in label.text() or "variables" in label.text() or "Cannot" in label.text(), 300,
             "the sample database build")
        wait_for_dialog_tasks(300)
        from canopy_explorer.plugin.database_source import sample_config

        set_canvas("EPSG:4326", PLAN["sample_view_wgs84"])
        d.region.canvasExtentButton.click()
        query = run_query("sample", output_format="")
        return {"connection": label.text(), "database": sample_config().base_uri, "query": query}

    @step("map_screenshot")
    def _():
        """The canopy-height points over the forest stands, in UTM, with the drawn region outlined."""
        dialog().hide()
        root = QgsProject.instance().layerTreeRoot()
        for node in root.findLayers():
            name = node.layer().name()
            node.setItemVisibilityChecked(name.startswith("ATL08 h_canopy") or name == "forest stands")
            node.setExpanded(name.startswith("ATL08 h_canopy"))
        iface.messageBar().clearWidgets()
        set_canvas("EPSG:32632", PLAN["view_wgs84"])
        pump(3.0)
        shot(iface.mainWindow(), "desktop_map.png")
        return True

    RESULTS["done"] = True
    save()

    def quit_qgis():
        QgsProject.instance().setDirty(False)  # the watcher still answers a "save the project?" question
        RESULTS["exit"] = {"active_tasks": QgsApplication.taskManager().countActiveTasks()}
        save()
        iface.actionExit().trigger()
        QTimer.singleShot(20000, exit_blocked)

    def exit_blocked():
        """QGIS is still running 20 s after File > Exit: say what is on screen, then leave anyway (status 4)."""
        RESULTS["exit"]["blocked"] = [f"{type(w).__name__} {w.windowTitle()!r}" for w in QApplication.topLevelWidgets()
                                      if w.isVisible()]
        save()
        QgsApplication.exit(4)

    QTimer.singleShot(0, quit_qgis)


def start():
    try:
        main()
    except Exception:  # never leave QGIS running if the driver itself breaks
        RESULTS["driver_error"] = traceback.format_exc()
        save()
        QgsApplication.exit(3)


def schedule():
    QTimer.singleShot(500, start)
