"""The plugin object QGIS creates: menu, toolbar, Processing provider, dependency check."""

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsProject
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QMenu, QPushButton

from .environment import environment_report
from .processing.provider import CanopyExplorerProvider
from .qgis_compat import VECTOR_LAYER_TYPE, QAction
from .resources import icon, plugin_metadata
from .tasks.running import RunningTasks

MENU_TITLE = "Canopy Explorer"
LOG_TAG = "Canopy Explorer"


class CanopyExplorerPlugin:
    def __init__(self, iface):
        self.iface = iface  # None under qgis_process: only initProcessing() is called then
        self.provider = None
        self.menu = None
        self.toolbar = None
        self.actions = []
        self._dependencies_dialog = None
        self._dependency_warning = None  # the load-time warning, dismissed once the installer has fixed everything
        self.dialog = None  # the Canopy Explorer dialog, made when first opened
        self.export_tasks = RunningTasks()
        self.profile_action = None  # "Elevation profile…" in the context menu of ATL08 result layers
        self.profile_dialog = None

    # ------------------------------------------------------------------ Processing

    def initProcessing(self):  # noqa: N802 (QGIS's name)
        environment_report()  # on the main thread, before any algorithm runs in a worker thread
        if self.provider is None:
            self.provider = CanopyExplorerProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # ------------------------------------------------------------------ GUI

    def initGui(self):  # noqa: N802 (QGIS's name)
        self.initProcessing()
        main_window = self.iface.mainWindow()
        self.menu = QMenu(MENU_TITLE, main_window)
        self.menu.setObjectName("CanopyExplorerMenu")
        self.menu.setIcon(icon("canopy_explorer.svg"))
        self.iface.pluginMenu().addMenu(self.menu)
        self.toolbar = self.iface.addToolBar(MENU_TITLE)
        self.toolbar.setObjectName("CanopyExplorerToolbar")

        self.add_action("canopy_explorer.svg", "ATL08 query…", self.show_dialog, "CanopyExplorerQuery")
        self.add_action("nearest.svg", "Nearest ATL08 shots", self.pick_nearest_shots, "CanopyExplorerNearest")
        self.add_action("export.svg", "Export ATL08 layer…", self.export_active_layer, "CanopyExplorerExport", toolbar=False)
        self.add_action("profile.svg", "Elevation profile of an ATL08 track…", lambda: self.show_profile(), "CanopyExplorerProfile",
                        toolbar=False)
        self.add_layer_context_action()
        self.add_action("dependencies.svg", "Check dependencies…", lambda: self.show_dependencies(), "CanopyExplorerDependencies")
        self.add_action("help.svg", "Help", self.open_help, "CanopyExplorerHelp")
        self.warn_if_dependencies_missing()

    def add_action(self, icon_name, text, callback, object_name, toolbar=True):
        action = QAction(icon(icon_name), text, self.iface.mainWindow())
        action.setObjectName(object_name)
        action.triggered.connect(callback)
        self.menu.addAction(action)
        if toolbar:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def add_layer_context_action(self):
        """"Elevation profile…" in the layer tree's context menu of every layer of ATL08 segments with terrain heights,
        those already in the project and those added later (a query's result, a reopened project)."""
        self.profile_action = QAction(icon("profile.svg"), "Elevation profile…", self.iface.mainWindow())
        self.profile_action.setObjectName("CanopyExplorerLayerProfile")
        self.profile_action.triggered.connect(lambda: self.show_profile())
        self.iface.addCustomActionForLayerType(self.profile_action, "", VECTOR_LAYER_TYPE, False)
        project = QgsProject.instance()
        self._offer_profile(project.mapLayers().values())
        project.layersAdded.connect(self._offer_profile)

    def _offer_profile(self, layers):
        from .layers.profile_layer import is_segment_layer

        for layer in layers:
            if is_segment_layer(layer):
                self.iface.addCustomActionForLayer(self.profile_action, layer)

    def _remove_layer_context_action(self):
        if self.profile_action is None:
            return
        try:
            QgsProject.instance().layersAdded.disconnect(self._offer_profile)
        except TypeError:
            pass
        self.iface.removeCustomActionForLayerType(self.profile_action)
        self.profile_action.deleteLater()
        self.profile_action = None

    def unload(self):
        from .core.lidar.open_databases import close_all

        close_all()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.iface is None:
            return
        for action in self.actions:
            if self.menu is not None:
                self.menu.removeAction(action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.setParent(None)
            action.deleteLater()
        self.actions = []
        if self.menu is not None:
            self.iface.pluginMenu().removeAction(self.menu.menuAction())
            self.menu.setParent(None)
            self.menu.deleteLater()
            self.menu = None
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        self._remove_layer_context_action()
        if self.profile_dialog is not None:
            self.profile_dialog.close()
            self.profile_dialog.deleteLater()
            self.profile_dialog = None
        if self.dialog is not None:
            self.dialog.clear_canvas_items()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        if self._dependencies_dialog is not None:
            self._dependencies_dialog.cancel_install()
            self._dependencies_dialog.close()
            self._dependencies_dialog.deleteLater()
            self._dependencies_dialog = None

    # ------------------------------------------------------------------ actions

    def warn_if_dependencies_missing(self) -> bool:
        """One message-bar warning naming every problem the self-check found, with its fix; True when there is one."""
        report = environment_report()
        if report.ok:
            return False
        text = report.message()
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.MessageLevel.Warning)
        item = QgsMessageBar.createMessage(text)  # no title: the text starts with the plugin's name
        if report.installable:
            install = QPushButton("Install missing packages", item)
            install.setObjectName("CanopyExplorerInstallPackages")
            install.clicked.connect(lambda: self.show_dependencies(install=True))
            item.layout().addWidget(install)
        details = QPushButton("Details…", item)
        details.setObjectName("CanopyExplorerDependencyDetails")
        details.clicked.connect(lambda: self.show_dependencies())
        item.layout().addWidget(details)
        self.iface.messageBar().pushWidget(item, Qgis.MessageLevel.Warning, 0)
        self._dependency_warning = item
        return True

    def _dismiss_dependency_warning(self):
        if self._dependency_warning is not None:
            self.iface.messageBar().popWidget(self._dependency_warning)
            self._dependency_warning = None

    def _dialog(self):
        from .gui.explorer_dialog import ExplorerDialog

        if self.dialog is None:
            self.dialog = ExplorerDialog(self.iface)
        return self.dialog

    def show_dialog(self):
        if self.warn_if_dependencies_missing():
            self.show_dependencies()
            return
        dialog = self._dialog()
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def pick_nearest_shots(self):
        if self.warn_if_dependencies_missing():
            self.show_dependencies()
            return
        self._dialog().pick_nearest_point()

    def export_active_layer(self, target: str = ""):
        """Save the active result layer as GeoPackage, FlatGeobuf, GeoJSON or CSV, with its style."""
        from qgis.core import QgsVectorLayer
        from qgis.PyQt.QtWidgets import QFileDialog

        from .core.errors import CanopyExplorerError
        from .core.segment_files import FORMATS
        from .tasks.export_task import ExportTask

        layer = self.iface.activeLayer()
        if not isinstance(layer, QgsVectorLayer):
            self.iface.messageBar().pushMessage(MENU_TITLE, "Select an ATL08 result layer to export first.", level=Qgis.MessageLevel.Warning, duration=6)
            return None
        if not target:
            filters = ";;".join(f"{name} (*{extension})" for name, (_, extension) in FORMATS.items())
            target, _ = QFileDialog.getSaveFileName(self.iface.mainWindow(), f"Export {layer.name()}", "", filters)
            if not target:
                return None
        try:
            task = ExportTask(layer, target)
        except CanopyExplorerError as error:
            self.iface.messageBar().pushMessage(MENU_TITLE, str(error), level=Qgis.MessageLevel.Warning, duration=8)
            return None
        task.completed.connect(lambda path: self.iface.messageBar().pushMessage(MENU_TITLE, f"Exported to {path}", level=Qgis.MessageLevel.Success, duration=6))
        task.failed.connect(lambda message: self.iface.messageBar().pushMessage(MENU_TITLE, message, level=Qgis.MessageLevel.Critical, duration=0))
        return self.export_tasks.start(task)

    def show_profile(self, layer=None):
        """The elevation profile of ``layer`` (by default the active layer): its selected segment's track, or the
        track with the most segments."""
        from .core.errors import CanopyExplorerError
        from .gui.messages import push_message
        from .gui.profile_dialog import ProfileDialog
        from .layers.profile_layer import is_segment_layer

        layer = layer or self.iface.activeLayer()
        if layer is None or not is_segment_layer(layer):
            push_message(self.iface.messageBar(), "Select a layer of ATL08 segments queried with h_te_best_fit (the terrain "
                         "height) to draw its elevation profile.", Qgis.MessageLevel.Warning)
            return None
        try:
            dialog = ProfileDialog(layer, self.iface.mainWindow())
        except ImportError as error:
            push_message(self.iface.messageBar(), f"The elevation profile needs matplotlib, which this Python lacks ({error}).",
                         Qgis.MessageLevel.Critical, duration=0)
            return None
        except CanopyExplorerError as error:
            push_message(self.iface.messageBar(), str(error), Qgis.MessageLevel.Warning)
            return None
        if self.profile_dialog is not None:
            self.profile_dialog.close()
            self.profile_dialog.deleteLater()
        self.profile_dialog = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    def show_dependencies(self, install: bool = False):
        """The "Check dependencies" dialog; ``install``: also start installing what is missing (the user clicked for it)."""
        from .gui.dependencies_dialog import DependenciesDialog

        if self._dependencies_dialog is None:
            self._dependencies_dialog = DependenciesDialog(self.iface.mainWindow())
            self._dependencies_dialog.ready.connect(self._dismiss_dependency_warning)
        self._dependencies_dialog.refresh()
        self._dependencies_dialog.show()
        self._dependencies_dialog.raise_()
        if install:
            self._dependencies_dialog.install_missing()
        return self._dependencies_dialog

    @staticmethod
    def help_url() -> QUrl:
        return QUrl(plugin_metadata()["homepage"])

    def open_help(self):
        QDesktopServices.openUrl(self.help_url())
