"""Shared fixtures: the plugin loaded through classFactory(iface), and small ATL08 granules."""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def iface(qgis_iface):
    """pytest-qgis's interface, completed with the Plugins menu QGIS has and the mock lacks."""
    if not hasattr(qgis_iface, "pluginMenu"):
        plugins_menu = qgis_iface.mainWindow().menuBar().addMenu("&Plugins")
        qgis_iface.pluginMenu = lambda: plugins_menu
    return qgis_iface


@pytest.fixture
def loaded_plugin(iface, qgis_processing):
    """The plugin as QGIS loads it: classFactory(iface), then initGui(); unloaded afterwards."""
    import canopy_explorer

    plugin = canopy_explorer.classFactory(iface)
    plugin.initGui()
    yield plugin
    plugin.unload()


@pytest.fixture(scope="session")
def sample_granules(tmp_path_factory):
    """A few small granules over a 0.3 x 0.3 degree box, shared by read-only tests."""
    import datetime as dt

    from canopy_explorer.plugin.core.sample_granules import generate_granules

    folder = tmp_path_factory.mktemp("granules")
    paths = generate_granules(
        folder, region=(45.0, 45.3, 7.0, 7.3), start=dt.date(2020, 1, 1), end=dt.date(2021, 12, 31), n_tracks=4, seed=7
    )
    return paths
