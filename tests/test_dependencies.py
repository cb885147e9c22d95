"""The self-check and the installer in QGIS: one warning with the fix at load, the "Check dependencies"
dialog with its install task, and Processing refusing to run (instead of crashing) when something is wrong."""

import sys

import pytest
from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import QPushButton

from canopy_explorer.plugin.core.environment.installer import InstallPlan
from canopy_explorer.plugin.core.environment.requirements import REQUIREMENTS
from canopy_explorer.plugin.environment import environment_report, packages_folder
from task_waits import wait_until as wait_for


def hide_modules(monkeypatch, *names):
    # A None entry in sys.modules makes `import name` raise ModuleNotFoundError, as for an absent package.
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def fresh_report():
    """The plugin keeps the report it computed at load; tests that change the environment recompute it,
    before and after (so later tests see the real environment again)."""
    environment_report(refresh=True)
    yield
    environment_report(refresh=True)


@pytest.fixture
def missing_tiledb_and_pystac(monkeypatch, fresh_report):
    hide_modules(monkeypatch, "tiledb", "pystac_client")
    yield environment_report(refresh=True)
    monkeypatch.undo()


def new_warnings(iface, before):
    return iface.messageBar().get_messages(Qgis.MessageLevel.Warning)[before:]


def test_the_real_environment_passes_and_no_warning_is_shown(iface, qgis_processing, fresh_report):
    import canopy_explorer

    before = len(iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    plugin = canopy_explorer.classFactory(iface)
    plugin.initGui()
    plugin.unload()
    assert environment_report().ok
    assert new_warnings(iface, before) == []


def test_the_plugin_loads_with_packages_missing_and_shows_one_warning_with_an_install_button(
        iface, qgis_processing, missing_tiledb_and_pystac):
    import canopy_explorer

    before = len(iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    plugin = canopy_explorer.classFactory(iface)
    try:
        plugin.initGui()  # must not raise
        [warning] = new_warnings(iface, before)
        assert warning.startswith(":Canopy Explorer cannot run yet: missing Python packages: tiledb, "  # no title
                                  "pystac-client.")
        buttons = {b.objectName(): b for b in iface.messageBar().widgets[-1].findChildren(QPushButton)}
        assert set(buttons) == {"CanopyExplorerInstallPackages", "CanopyExplorerDependencyDetails"}
        assert plugin.menu is not None and len(plugin.actions) == 6
        buttons["CanopyExplorerDependencyDetails"].click()  # opens the dialog, installs nothing
        dialog = plugin._dependencies_dialog
        assert dialog.isVisible() and dialog.task is None
    finally:
        plugin.unload()


def test_the_dialog_names_each_problem_and_shows_the_plan_and_the_terminal_command(loaded_plugin, missing_tiledb_and_pystac):
    dialog = loaded_plugin.show_dependencies()
    table = dialog.packagesTable
    rows = {table.item(r, 0).text(): (table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount())}
    assert len(rows) == len(REQUIREMENTS)
    assert rows["tiledb"] == ("missing", "tiledb is not installed")
    assert rows["numpy"][0] == __import__("numpy").__version__
    assert "tiledb>=0.34,<0.37" in dialog.planText.toPlainText()
    assert dialog.installButton.isEnabled()
    command = dialog.commandText.toPlainText()
    assert "-m canopy_explorer.plugin.core.environment install" in command
    assert f"--target {packages_folder()}" in command and f"--qgis-geos {Qgis.geosVersion()}" in command
    dialog.copy_command()
    assert QGuiApplication.clipboard().text() == command


def test_the_query_dialog_is_not_opened_while_packages_are_missing(loaded_plugin, iface, missing_tiledb_and_pystac):
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerQuery"]
    action.trigger()
    assert loaded_plugin.dialog is None
    assert loaded_plugin._dependencies_dialog is not None and loaded_plugin._dependencies_dialog.isVisible()
    assert "tiledb" in iface.messageBar().get_messages(Qgis.MessageLevel.Warning)[-1]


def test_processing_refuses_to_run_with_the_self_check_message(loaded_plugin, missing_tiledb_and_pystac, tmp_path):
    from qgis import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as raised:
        processing.run("canopyexplorer:atl08_query", {"ROI": "0,1,0,1 [EPSG:4326]", "OUTPUT": str(tmp_path / "q.gpkg")})
    assert "missing Python packages: tiledb, pystac-client" in str(raised.value)


def a_wheel(folder, name="canopy_probe", version="1.0"):
    """A minimal pure-Python wheel built in the test, so an install through the dialog needs no download."""
    import zipfile

    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def dialog_installing_into(loaded_plugin, tmp_path, monkeypatch, fresh_report):
    """The dialog with its packages folder in tmp_path (not the test machine's QGIS profile)."""
    import canopy_explorer.plugin.gui.dependencies_dialog as module

    folder = tmp_path / "profile" / "canopy_explorer" / "python3.11"
    monkeypatch.setattr(module, "packages_folder", lambda: folder)
    monkeypatch.setattr(module, "use_packages_folder", lambda: monkeypatch.syspath_prepend(str(folder)))
    dialog = loaded_plugin.show_dependencies()
    return dialog, folder


def test_install_runs_in_a_task_with_the_pip_log_and_progress(dialog_installing_into, tmp_path):
    dialog, folder = dialog_installing_into
    dialog.plan = InstallPlan(pip=(str(a_wheel(tmp_path)),))
    task = dialog.install_missing()
    assert task is not None and not dialog.installButton.isEnabled() and dialog.cancelButton.isVisible()
    wait_for(lambda: dialog.task is None, timeout=300)
    assert (folder / "canopy_probe" / "__init__.py").is_file()
    assert "Successfully installed canopy_probe-1.0" in dialog.logText.toPlainText()
    assert dialog.report.ok  # the real environment: the probe was the only thing to install
    assert dialog.summaryLabel.text().startswith(f"Installed 1 package(s) into {folder}.")
    assert not dialog.progressBar.isVisible()


def test_a_failed_install_says_why_and_changes_nothing(dialog_installing_into):
    dialog, folder = dialog_installing_into
    dialog.plan = InstallPlan(pip=("canopy-explorer-no-such-package-anywhere==1.0",))
    dialog.install_missing()
    wait_for(lambda: dialog.task is None, timeout=300)
    text = dialog.summaryLabel.text()
    assert text.startswith("Installing failed: ") and "canopy-explorer-no-such-package-anywhere" in text
    assert "Nothing was changed" in text
    assert not folder.exists() or not any(folder.iterdir())


def test_cancelling_the_install_task_leaves_nothing(dialog_installing_into, tmp_path):
    dialog, folder = dialog_installing_into
    dialog.plan = InstallPlan(pip=(str(a_wheel(tmp_path)),))
    task = dialog.install_missing()
    dialog.cancel_install()
    wait_for(lambda: dialog.task is None, timeout=300)
    assert task.isCanceled()
    assert dialog.summaryLabel.text() == "Installation cancelled: nothing was changed."
    assert not folder.exists() or not any(folder.iterdir())
    assert QgsApplication.taskManager().countActiveTasks() == 0
