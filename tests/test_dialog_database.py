"""The ATL08 database box the query, nearest-shots and grid-change panels share: the connection test, a
private bucket's keys from QGIS's authentication manager, and the sample database built on demand."""

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle, QgsSettings
from qgis.PyQt.QtCore import QDate, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QMessageBox

from dialog_fixtures import *  # noqa: F401,F403
from dialog_fixtures import answer_questions, choose_sample_database, engine_rows, result_layers
from task_waits import wait_for_tasks
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.database_source import SAMPLE_CONFIG
from canopy_explorer.plugin.gui.settings import PREFIX


def test_test_connection_reports_variables_and_sets_the_time_span(dialog, local_database):
    QTest.mouseClick(dialog.database.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    start, end = Atl08Database(local_database).time_span()
    assert "variables, segments from" in dialog.database.connectionLabel.text()
    assert dialog.time_range.startEdit.date().toString("yyyy-MM-dd") == str(start)
    assert dialog.time_range.endEdit.date().toString("yyyy-MM-dd") == str(end)


def test_a_database_typed_in_is_opened_at_once_and_its_queries_use_it(dialog, local_database):
    from canopy_explorer.plugin.core.lidar import open_databases

    dialog.database.databaseEdit.setText(local_database.local_path)
    dialog.database.databaseEdit.editingFinished.emit()  # as when the user leaves the field
    wait_for_tasks(dialog)
    assert "variables, segments from" in dialog.database.connectionLabel.text()
    assert open_databases.is_open(dialog.database.config())  # opened by the connection test, before any query
    opened = open_databases.shared_database(dialog.database.config())
    dialog.region.use_canvas_extent()
    dialog.query.run_query()
    wait_for_tasks(dialog)
    assert len(result_layers()) == 1
    assert open_databases.shared_database(dialog.database.config()) is opened  # the query used the open one


def test_an_unreachable_database_is_reported_in_the_dialog(dialog, tmp_path):
    dialog.database.databaseEdit.setText(str(tmp_path / "missing"))
    QTest.mouseClick(dialog.database.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert "does not exist" in dialog.database.connectionLabel.text()


def test_choosing_another_database_clears_the_connection_and_query_errors(dialog, local_database, tmp_path):
    dialog.region.use_canvas_extent()
    dialog.database.databaseEdit.setText(str(tmp_path / "missing"))
    QTest.mouseClick(dialog.database.testConnectionButton, Qt.MouseButton.LeftButton)
    dialog.query.run_query()
    wait_for_tasks(dialog)
    assert "does not exist" in dialog.database.connectionLabel.text() and "does not exist" in dialog.query.statusLabel.text()

    dialog.database.databaseEdit.setText(local_database.local_path)
    assert dialog.database.connectionLabel.text() == "" and dialog.query.statusLabel.text() == ""

    dialog.database.databaseCombo.setCurrentIndex(0)  # and a choice in the list does the same
    dialog.database.databaseCombo.setCurrentIndex(dialog.database.databaseCombo.count() - 1)
    QTest.mouseClick(dialog.database.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert "variables, segments from" in dialog.database.connectionLabel.text()


def test_a_connection_answer_for_a_database_no_longer_chosen_is_not_shown(dialog, local_database, tmp_path):
    dialog.database.databaseEdit.setText(str(tmp_path / "missing"))
    dialog.database.test_connection()
    dialog.database.databaseEdit.setText(local_database.local_path)  # before the answer arrives
    wait_for_tasks(dialog)
    assert dialog.database.connectionLabel.text() == ""


def test_a_private_bucket_is_read_with_credentials_from_the_auth_manager(dialog, s3_database, s3_server):
    from qgis.core import QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    manager.setMasterPassword("test master password", True)
    auth = QgsAuthMethodConfig("Basic")
    auth.setName("atl08 bucket")
    auth.setConfig("username", "testing")
    auth.setConfig("password", "testing")
    assert manager.storeAuthenticationConfig(auth)[0]
    dialog.database.databaseEdit.setText(f"s3://{s3_database.s3_bucket}")
    dialog.database.endpointEdit.setText(s3_server)
    dialog.database.authConfigSelect.setConfigId(auth.id())
    config = dialog.database.config()
    assert config.s3_settings["aws_access_key_id"] == "testing" and not config.anonymous
    QTest.mouseClick(dialog.database.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert "variables, segments from" in dialog.database.connectionLabel.text()
    dialog.query.save_settings()
    stored = {key: QgsSettings().value(PREFIX + key) for key in ("database", "endpoint", "auth_config")}
    assert stored["auth_config"] == auth.id()
    assert "testing" not in " ".join(str(v) for v in QgsSettings().allKeys() + [QgsSettings().value(k) for k in QgsSettings().allKeys()])


# --------------------------------------------------------------------------- the sample database from an installed plugin


def test_choosing_the_missing_sample_database_offers_to_build_it_then_uses_it(dialog, installed_without_sample_data, monkeypatch):
    from canopy_explorer.plugin.core.lidar.config import local_config

    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Yes)
    choose_sample_database(dialog)
    assert len(asked) == 1 and str(installed_without_sample_data) in asked[0]
    wait_for_tasks(dialog, timeout=180)  # the build, then the connection test it leads to
    assert (installed_without_sample_data / "array_uri").is_dir()
    assert "variables, segments from 2019" in dialog.database.connectionLabel.text()

    demo_box = (9.6, 50.6, 10.3, 51.3)
    dialog.region.set_roi((demo_box, "EPSG:4326"), QgsGeometry.fromRect(QgsRectangle(*demo_box)), QgsCoordinateReferenceSystem("EPSG:4326"), "test")
    dialog.query.run_query()
    wait_for_tasks(dialog)
    [layer] = result_layers()
    span = [edit.date().toString("yyyy-MM-dd") for edit in (dialog.time_range.startEdit, dialog.time_range.endEdit)]
    assert span[0].startswith("2019") and span[1].startswith("2023")  # set by the connection test
    expected = engine_rows(local_config(installed_without_sample_data), demo_box, start=span[0], end=span[1])
    assert 0 < layer.featureCount() == len(expected)
    assert len(asked) == 1  # built once, not offered again


def test_running_a_query_on_the_missing_sample_database_offers_to_build_it_first(dialog, installed_without_sample_data, monkeypatch):
    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Yes)
    dialog.database.databaseCombo.setCurrentIndex(dialog.database.databaseCombo.findData(SAMPLE_CONFIG))  # restored from settings: no question yet
    assert asked == []
    demo_box = (9.6, 50.6, 10.3, 51.3)
    dialog.region.set_roi((demo_box, "EPSG:4326"), QgsGeometry.fromRect(QgsRectangle(*demo_box)), QgsCoordinateReferenceSystem("EPSG:4326"), "test")
    dialog.time_range.startEdit.setDate(QDate(2019, 1, 1))
    assert dialog.query.run_query() is None  # not yet: the database is being built
    wait_for_tasks(dialog, timeout=180)
    assert len(asked) == 1 and len(result_layers()) == 1  # then the query ran on it


def test_declining_to_build_the_sample_database_builds_nothing_and_says_how_to_get_it(dialog, installed_without_sample_data, monkeypatch):
    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.No)
    choose_sample_database(dialog)
    QTest.mouseClick(dialog.database.testConnectionButton, Qt.MouseButton.LeftButton)
    wait_for_tasks(dialog)
    assert len(asked) == 2 and not dialog.tasks
    assert "The sample database is not built" in dialog.database.connectionLabel.text() and "make demo" in dialog.database.connectionLabel.text()
    assert not installed_without_sample_data.parent.parent.exists()
