"""Canopy Explorer: a QGIS plugin for ICESat-2 ATL08, Sentinel-2 NDVI and district statistics."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS (``iface`` is None under qgis_process) to create the plugin."""
    from .plugin.environment import use_packages_folder

    use_packages_folder()  # before anything imports the packages the plugin's installer may have put there
    from .plugin.main import CanopyExplorerPlugin

    return CanopyExplorerPlugin(iface)
