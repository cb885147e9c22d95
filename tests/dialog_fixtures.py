"""The Canopy Explorer dialog as the tests drive it: the plugin's own dialog (opened by its menu action) on a
canvas of known size, reading the local sample database; and helpers that compute expected rows apart from
the dialog. Test modules take the fixtures with ``from dialog_fixtures import *``."""

from pathlib import Path

import pytest
from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsProject, QgsRectangle
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QDate
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QMessageBox

from task_waits import wait_until
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.database_source import SAMPLE_CONFIG
from canopy_explorer.plugin.gui.settings import ExplorerSettings

VARIABLES = ["h_canopy", "canopy_h_metrics:95"]
FILTER = "h_canopy between 5 60"
SAMPLE_EXTENT = QgsRectangle(7.0, 45.0, 7.3, 45.3)


@pytest.fixture
def canvas(iface):
    """The interface's canvas, shown at a known size over the sample granules, in EPSG:4326."""
    canvas = iface.mapCanvas()
    window = canvas.window()  # pytest-qgis's canvas lives, hidden, in its own main window
    window.resize(600, 600)
    window.show()
    canvas.resize(600, 600)
    canvas.show()
    QTest.qWaitForWindowExposed(window)
    # the extent must be set after the resize has landed, or the old scale stretches it
    wait_until(lambda: canvas.viewport().width() > 500)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(SAMPLE_EXTENT)
    canvas.refresh()
    assert canvas.extent().width() < 0.5
    yield canvas
    window.hide()


@pytest.fixture
def dialog(loaded_plugin, canvas, local_database, tmp_path):
    """The dialog the "ATL08 query…" action opens, set to the local database, two variables, 2020-2021 and
    one filter row (h_canopy between 5 60)."""
    ExplorerSettings.clear()
    QgsProject.instance().removeAllMapLayers()
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerQuery"]
    action.trigger()
    dialog = loaded_plugin.dialog
    use_database(dialog, local_database.local_path)
    dialog.variables.set_variables(VARIABLES)
    dialog.time_range.startEdit.setDate(QDate(2020, 1, 1))
    dialog.time_range.endEdit.setDate(QDate(2021, 12, 31))
    dialog.filters.add_filter_row("h_canopy", "between", "5 60")
    yield dialog
    dialog.close()
    QgsProject.instance().removeAllMapLayers()
    ExplorerSettings.clear()


def use_database(dialog, source: str) -> None:
    """Choose "Other" in the database list, and ``source`` (a folder, configuration file or s3:// URI)."""
    dialog.database.databaseCombo.setCurrentIndex(dialog.database.databaseCombo.count() - 1)
    dialog.database.databaseEdit.setText(source)


def engine_rows(database, roi, roi_crs="EPSG:4326", variables=VARIABLES, start="2020-01-01", end="2021-12-31"):
    spec = SegmentQuery.create(roi=roi, start=start, end=end, variables=variables, filters=FILTER, roi_crs=roi_crs)
    return Atl08Database(database).query(spec)


def result_layers():
    return [layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("ATL08")]


def warnings_shown(iface):
    return iface.messageBar().get_messages(Qgis.MessageLevel.Warning)


class EmptyProjectInterface:
    """The interface of a QGIS with a new, empty project: its canvas has no layers, so no extent (and maybe no CRS)."""

    def __init__(self, iface, crs):
        self._iface = iface
        self.canvas = QgsMapCanvas()
        self.canvas.setDestinationCrs(crs)

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def mainWindow(self):  # noqa: N802
        return self._iface.mainWindow()

    def messageBar(self):  # noqa: N802
        return self._iface.messageBar()


# --------------------------------------------------------------------------- the sample database from an installed plugin


@pytest.fixture
def installed_without_sample_data(monkeypatch, tmp_path):
    """The plugin as installed from its zip: configs/sample_local.yaml names no database, and the user's
    data folder (QgsApplication.qgisSettingsDirPath()) is a temporary one. The user's sample folder is returned."""
    from canopy_explorer.plugin import database_source

    root = Path(__file__).resolve().parent.parent
    bundled = tmp_path / "plugins" / "canopy_explorer" / "configs" / "sample_local.yaml"
    bundled.parent.mkdir(parents=True)
    bundled.write_text((root / "configs" / "sample_local.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    user = tmp_path / "profile" / "canopy_explorer" / "sample_data" / "atl08_db"
    monkeypatch.setattr(database_source, "BUNDLED_SAMPLE_CONFIG", str(bundled))
    monkeypatch.setattr(database_source, "user_sample_folder", lambda: user)
    return user


def answer_questions(monkeypatch, answer):
    asked = []

    def question(*args, **kwargs):
        asked.append(args[2])
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def choose_sample_database(dialog):
    combo = dialog.database.databaseCombo
    index = combo.findData(SAMPLE_CONFIG)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)  # as when the user picks it in the list


__all__ = ["canvas", "dialog", "installed_without_sample_data"]
