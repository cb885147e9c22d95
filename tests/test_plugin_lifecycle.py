"""Loading and unloading the plugin in QGIS: menu, toolbar, actions, Processing provider."""

import os
import shutil
import subprocess

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QObject, QUrl, pyqtSlot
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QMenu, QToolBar

from conftest import ROOT

PROVIDER_ID = "canopyexplorer"


def flush_deletes():
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


def plugin_menu(iface):
    return [a.menu() for a in iface.pluginMenu().actions() if a.menu() and a.menu().title() == "Canopy Explorer"]


def test_loading_adds_menu_toolbar_actions_and_provider(loaded_plugin, iface):
    menus = plugin_menu(iface)
    assert len(menus) == 1
    texts = [a.text() for a in menus[0].actions()]
    assert texts == ["ATL08 query…", "Nearest ATL08 shots", "Export ATL08 layer…", "Elevation profile of an ATL08 track…",
                     "Check dependencies…", "Help"]
    toolbar = iface.mainWindow().findChild(QToolBar, "CanopyExplorerToolbar")
    assert toolbar is not None and toolbar.windowTitle() == "Canopy Explorer"
    assert [a.text() for a in toolbar.actions()] == [t for t in texts if t not in ("Export ATL08 layer…", "Elevation profile of an ATL08 track…")]
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None


def test_unload_removes_every_action_menu_toolbar_and_the_provider(iface, qgis_processing):
    import canopy_explorer

    plugin = canopy_explorer.classFactory(iface)
    plugin.initGui()
    actions = list(plugin.actions)
    plugin.unload()
    flush_deletes()
    assert plugin_menu(iface) == []
    assert iface.mainWindow().findChild(QToolBar, "CanopyExplorerToolbar") is None
    assert iface.mainWindow().findChild(QMenu, "CanopyExplorerMenu") is None
    for name in ("CanopyExplorerQuery", "CanopyExplorerNearest", "CanopyExplorerExport", "CanopyExplorerProfile",
                 "CanopyExplorerLayerProfile", "CanopyExplorerDependencies", "CanopyExplorerHelp"):
        assert iface.mainWindow().findChild(QObject, name) is None
    assert plugin.actions == [] and len(actions) == 6
    assert plugin.profile_action is None and iface.custom_layer_actions == {}
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is None


def test_loading_twice_after_unload_gives_one_menu(iface, qgis_processing):
    import canopy_explorer

    for _ in range(2):
        plugin = canopy_explorer.classFactory(iface)
        plugin.initGui()
        assert len(plugin_menu(iface)) == 1
        plugin.unload()
        flush_deletes()
    assert plugin_menu(iface) == []


def test_loads_without_iface_for_qgis_process(qgis_processing):
    import canopy_explorer

    plugin = canopy_explorer.classFactory(None)
    plugin.initProcessing()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is None


def test_help_opens_the_documentation(loaded_plugin):
    opened = []

    class Recorder(QObject):
        @pyqtSlot(QUrl)
        def record(self, url):
            opened.append(url.toString())

    recorder = Recorder()
    QDesktopServices.setUrlHandler("https", recorder, "record")
    try:
        [help_action] = [a for a in loaded_plugin.actions if a.objectName() == "CanopyExplorerHelp"]
        help_action.trigger()
    finally:
        QDesktopServices.unsetUrlHandler("https")
    assert opened == ["https://github.com/canopy-explorer/canopy-explorer#readme"]


def qgis_process():
    """Debian 12's qgis_process wrapper passes --noversioncheck, which qgis_process rejects."""
    return shutil.which("qgis_process.bin", path="/usr/bin") or "qgis_process"


def test_qgis_process_lists_the_provider(tmp_path):
    """qgis_process loads the plugin with iface None and sees the provider."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "canopy_explorer").symlink_to(ROOT)
    env = dict(os.environ, QGIS_PLUGINPATH=str(plugins), QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"), QT_QPA_PLATFORM="offscreen")
    subprocess.run([qgis_process(), "plugins", "enable", "canopy_explorer"], env=env, capture_output=True, text=True, timeout=120)
    listing = subprocess.run([qgis_process(), "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "Canopy Explorer" in listing.stdout, listing.stdout[-2000:] + listing.stderr[-2000:]
