"""Missing optional packages: QGIS still loads the plugin and the user gets one clear message."""

import sys

import pytest
from qgis.core import Qgis

from canopy_explorer.plugin.core.dependencies import (
    REQUIREMENTS,
    check_dependencies,
    install_command,
    missing,
    missing_message,
)

BY_MODULE = {r.module: r for r in REQUIREMENTS}


def hide_modules(monkeypatch, *names):
    # A None entry in sys.modules makes `import name` raise ImportError, as for an absent package.
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_all_requirements_installed_in_the_test_environment():
    statuses = check_dependencies()
    assert missing(statuses) == []
    assert all(s.version for s in statuses)


def test_missing_packages_are_reported_with_versions_of_the_rest(monkeypatch):
    hide_modules(monkeypatch, "tiledb", "h5py")
    statuses = {s.requirement.module: s for s in check_dependencies()}
    assert statuses["tiledb"].version is None and "ModuleNotFoundError" in statuses["tiledb"].problem
    assert statuses["h5py"].version is None
    assert statuses["numpy"].version == __import__("numpy").__version__
    assert [r.module for r in missing(statuses.values())] == ["tiledb", "h5py"]


@pytest.mark.parametrize(
    "platform, expected",
    [
        ("linux", "sudo apt install python3-h5py && python3 -m pip install --user --break-system-packages tiledb"),
        ("win32", "In the OSGeo4W Shell: python -m pip install tiledb h5py"),
        ("darwin", "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install tiledb h5py"),
    ],
)
def test_install_command_is_exact_for_each_platform(platform, expected):
    assert install_command([BY_MODULE["tiledb"], BY_MODULE["h5py"]], platform) == expected


def test_no_command_when_nothing_is_missing():
    assert install_command([]) == ""


def test_plugin_loads_and_shows_one_message_naming_the_missing_packages(monkeypatch, iface, qgis_processing):
    import canopy_explorer

    hide_modules(monkeypatch, "tiledb", "pystac_client")
    before = list(iface.messageBar().get_messages(Qgis.Warning))
    plugin = canopy_explorer.classFactory(iface)
    try:
        plugin.initGui()  # must not raise
        new = iface.messageBar().get_messages(Qgis.Warning)[len(before):]
        assert len(new) == 1
        assert "tiledb, pystac_client" in new[0]
        assert install_command([BY_MODULE["tiledb"], BY_MODULE["pystac_client"]]) in new[0]
        assert plugin.menu is not None and len(plugin.actions) == 5
    finally:
        plugin.unload()


def test_no_message_when_everything_is_installed(iface, qgis_processing):
    import canopy_explorer

    before = len(iface.messageBar().get_messages(Qgis.Warning))
    plugin = canopy_explorer.classFactory(iface)
    plugin.initGui()
    plugin.unload()
    assert len(iface.messageBar().get_messages(Qgis.Warning)) == before


def test_dependencies_dialog_lists_versions_and_the_install_command(monkeypatch, loaded_plugin):
    hide_modules(monkeypatch, "tiledb")
    loaded_plugin.show_dependencies()
    dialog = loaded_plugin._dependencies_dialog
    table = dialog.packagesTable
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows["tiledb"] == "missing"
    assert rows["numpy<2"] == __import__("numpy").__version__
    assert len(rows) == len(REQUIREMENTS)
    assert dialog.commandText.toPlainText() == install_command([BY_MODULE["tiledb"]])
    assert dialog.copyButton.isEnabled()
    dialog.copy_command()
    from qgis.PyQt.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == install_command([BY_MODULE["tiledb"]])


def test_missing_message_names_packages_and_command():
    text = missing_message([BY_MODULE["yaml"]], "linux")
    assert text.startswith("Canopy Explorer needs Python packages that are not installed: pyyaml.")
    assert "sudo apt install python3-yaml" in text


def test_the_query_dialog_is_not_opened_without_its_packages(monkeypatch, loaded_plugin, iface):
    hide_modules(monkeypatch, "tiledb")
    [action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerQuery"]
    action.trigger()
    assert loaded_plugin.query_dialog is None
    assert loaded_plugin._dependencies_dialog is not None and loaded_plugin._dependencies_dialog.isVisible()
    assert "tiledb" in iface.messageBar().get_messages(Qgis.Warning)[-1]
