"""What the dialog remembers: one typed settings value, under the keys users already have, never a secret."""

import dataclasses

import pytest
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest

from dialog_fixtures import *  # noqa: F401,F403
from canopy_explorer.plugin.core.sentinel2.stac_search import default_stac_source
from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog
from canopy_explorer.plugin.gui.settings import PREFIX, ExplorerSettings

CHANGED = ExplorerSettings(
    database_choice=2, database="/data/atl08.yaml", endpoint="https://s3.example.org", auth_config="abc1234",
    variables=("h_te_best_fit", "canopy_h_metrics:95"), filters="night_flag == 1", output_format=1,
    output_path="/tmp/out.gpkg", max_rows=5000, exact_times=True, classes=7, ndvi_years="2020, 2021",
    stac_connection="Field survey catalogue", stac_url="http://127.0.0.1:9000", stac_collection="s2-test", ndvi_folder="/tmp/ndvi", max_cloud=35.5,
)


@pytest.fixture
def clean_settings():
    ExplorerSettings.clear()
    yield
    ExplorerSettings.clear()


def test_nothing_stored_gives_the_defaults(clean_settings):
    loaded = ExplorerSettings.load()
    assert loaded == ExplorerSettings()
    assert loaded.variables == ("h_canopy",) and loaded.classes == 5 and loaded.max_rows == 2_000_000
    assert loaded.stac_url == default_stac_source().url and loaded.stac_collection == default_stac_source().collection


def test_every_field_is_saved_and_loaded_back_with_its_type(clean_settings):
    assert all(getattr(CHANGED, f.name) != getattr(ExplorerSettings(), f.name) for f in dataclasses.fields(ExplorerSettings))
    CHANGED.save()
    assert ExplorerSettings.load() == CHANGED


def test_the_keys_are_the_ones_earlier_releases_wrote(clean_settings):
    """Values as QgsSettings hands them back from its .ini file: all strings, the variables comma-joined."""
    stored = QgsSettings()
    for key, text in {"database_choice": "2", "database": "/data/atl08.yaml", "auth_config": "abc1234",
                      "variables": "h_te_best_fit,canopy_h_metrics:95", "filters": "night_flag == 1", "output_format": "1",
                      "max_rows": "5000", "exact_times": "true", "classes": "7", "max_cloud": "35.5"}.items():
        stored.setValue(PREFIX + key, text)
    loaded = ExplorerSettings.load()
    assert (loaded.database_choice, loaded.database, loaded.auth_config) == (2, "/data/atl08.yaml", "abc1234")
    assert loaded.variables == ("h_te_best_fit", "canopy_h_metrics:95") and loaded.filters == "night_flag == 1"
    assert (loaded.output_format, loaded.max_rows, loaded.exact_times, loaded.classes, loaded.max_cloud) == (1, 5000, True, 7, 35.5)


def test_an_unreadable_value_falls_back_to_its_default_and_no_variables_stay_none(clean_settings):
    QgsSettings().setValue(PREFIX + "max_rows", "lots")
    QgsSettings().setValue(PREFIX + "variables", "")
    loaded = ExplorerSettings.load()
    assert loaded.max_rows == 2_000_000 and loaded.variables == ()


def test_a_new_dialog_shows_the_stored_settings_in_every_panel(loaded_plugin, iface, clean_settings):
    CHANGED.save()
    dialog = ExplorerDialog(iface)
    try:
        assert dialog.database.databaseCombo.currentIndex() == 2 and dialog.database.databaseEdit.text() == "/data/atl08.yaml"
        assert dialog.database.endpointEdit.text() == "https://s3.example.org"
        assert dialog.variables.selected_variables() == ["h_te_best_fit", "canopy_h_metrics:95"]
        assert dialog.filters.filtersEdit.toPlainText() == "night_flag == 1"
        query = dialog.query
        assert (query.outputFormatCombo.currentIndex(), query.outputFileWidget.filePath()) == (1, "/tmp/out.gpkg")
        assert (query.maxRowsSpin.value(), query.exactTimesCheck.isChecked(), query.classesSpin.value()) == (5000, True, 7)
        ndvi = dialog.ndvi
        assert (ndvi.yearsEdit.text(), ndvi.stacUrlEdit.text(), ndvi.collectionEdit.text()) == ("2020, 2021", "http://127.0.0.1:9000", "s2-test")
        assert (ndvi.ndviFolderWidget.filePath(), ndvi.maxCloudSpin.value(), ndvi.classesSpin.value()) == ("/tmp/ndvi", 35.5, 7)
        assert dialog.nearest.classesSpin.value() == dialog.districts.classesSpin.value() == 7
    finally:
        dialog.clear_canvas_items()
        dialog.deleteLater()


def test_presets_fill_the_filters_and_settings_are_remembered(dialog, loaded_plugin, iface):
    dialog.filters.presetCombo.setCurrentText("Good canopy retrievals")
    QTest.mouseClick(dialog.filters.applyPresetButton, Qt.MouseButton.LeftButton)
    assert "segment_landcover in [111" in dialog.filters.filtersEdit.toPlainText()
    dialog.variables.set_variables(["h_canopy", "canopy_h_metrics:50"])
    dialog.query.save_settings()
    again = ExplorerDialog(iface)
    assert again.variables.selected_variables() == ["h_canopy", "canopy_h_metrics:50"]
    assert "n_te_photons >= 10" in again.filters.filtersEdit.toPlainText()
    assert again.database.databaseEdit.text() == dialog.database.databaseEdit.text()
    again.clear_canvas_items()
    again.deleteLater()


def test_running_a_workflow_remembers_its_own_fields_and_leaves_the_others(dialog, tmp_path):
    """The NDVI panel's run stores the NDVI fields; the query's output settings stay as they were stored."""
    ExplorerSettings(max_rows=1234).save()
    dialog.query.maxRowsSpin.setValue(999_000)  # changed but not run: not remembered
    dialog.ndvi.yearsEdit.setText("2021")
    dialog.ndvi.ndviFolderWidget.setFilePath(str(tmp_path))
    dialog.region.use_canvas_extent()
    dialog.ndvi.save_settings()
    stored = ExplorerSettings.load()
    assert stored.ndvi_years == "2021" and stored.ndvi_folder == str(tmp_path)
    assert stored.max_rows == 1234
