"""The NDVI panel's STAC catalogue: the built-in Earth Search, the STAC connections saved in QGIS's Data Source
Manager (QGIS 3.40 and newer) with their authentication, or another STAC API by URL; and the Processing
algorithm's STAC_CONNECTION. A private catalogue is the loopback STAC server requiring an Authorization header."""

import base64
import uuid

import pytest
from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsProcessingException, QgsProcessingFeedback, QgsSettings

from stac_fixtures import *  # noqa: F401,F403
from stac_fixtures import BOUNDARY, COLLECTION, make_source
from task_waits import wait_for_tasks

from canopy_explorer.plugin.core.errors import StorageError
from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer
from canopy_explorer.plugin.core.sentinel2.stac_search import default_stac_source, search_scenes
from canopy_explorer.plugin.gui.settings import PREFIX, ExplorerSettings
from canopy_explorer.plugin.qgis_compat import HAS_STAC_CONNECTIONS, remove_stac_connection, save_stac_connection

MASTER_PASSWORD = "test master password"  # the one every test of the session sets (test_database_source, ...)
DEFAULT_ROW, OTHER_ROW = "Earth Search (default)", "Another STAC API (URL below)"
needs_stac_connections = pytest.mark.skipif(not HAS_STAC_CONNECTIONS, reason="saved STAC connections came with QGIS 3.40")


@pytest.fixture
def credentials():
    """A user name and password never seen elsewhere, and the Authorization header they make."""
    username, password = f"reader-{uuid.uuid4().hex[:8]}", f"pw/{uuid.uuid4().hex}"
    return username, password, "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def private_server(stac_catalogue, tmp_path, credentials):
    """The catalogue behind an API that answers 401 without the right Authorization header (assets stay open)."""
    with SampleStacServer(stac_catalogue, log=tmp_path / "private" / "requests.jsonl",
                          require_authorization=credentials[2]) as server:
        yield server


@pytest.fixture
def basic_authcfg(credentials):
    manager = QgsApplication.authManager()
    assert manager.setMasterPassword(MASTER_PASSWORD, True), "the master password of this session's auth database differs"
    config = QgsAuthMethodConfig("Basic")
    config.setName("private STAC catalogue")
    config.setConfig("username", credentials[0])
    config.setConfig("password", credentials[1])
    assert manager.storeAuthenticationConfig(config)[0]
    yield config.id()
    manager.removeAuthenticationConfig(config.id())


@pytest.fixture
def saved_connection(private_server, basic_authcfg):
    """A STAC connection saved in QGIS as the Data Source Manager saves it: the private server, Basic authentication."""
    name = f"Private catalogue {uuid.uuid4().hex[:6]}"
    save_stac_connection(name, private_server.url, basic_authcfg)
    yield name
    remove_stac_connection(name)


@pytest.fixture
def ndvi_panel(loaded_plugin):
    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    dialog = ExplorerDialog(loaded_plugin.iface)
    yield dialog, dialog.show_panel(dialog.ndvi)
    dialog.clear_canvas_items()
    dialog.deleteLater()


def rows(panel):
    combo = panel.stacCatalogueCombo
    return [combo.itemText(row) for row in range(combo.count())]


def choose(panel, text):
    combo = panel.stacCatalogueCombo
    combo.setCurrentIndex(combo.findText(text))


def city_layer():
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:32632", "city", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(BOUNDARY.wkt))
    layer.dataProvider().addFeatures([feature])
    return layer


# --------------------------------------------------------------------------- the engine


def test_the_search_sends_the_sources_headers_and_a_private_api_refuses_a_search_without_them(private_server, credentials):
    source = make_source(private_server.url, retries=0)
    with pytest.raises(StorageError, match=r"refused the search \(HTTP 401\)"):
        search_scenes(source, boundary_wgs84(), 2022, 50)
    found = search_scenes(source.with_changes(headers={"Authorization": credentials[2]}), boundary_wgs84(), 2022, 50)
    assert [scene.id for scene in found] == ["G_2022"]
    assert {entry["auth"] for entry in private_server.requests(kind="api") if entry["status"] == 200} == {"Basic"}


def test_the_headers_never_show_in_the_sources_text(credentials):
    source = default_stac_source(headers={"Authorization": credentials[2]})
    assert credentials[2] not in repr(source) and credentials[1] not in str(source)


# --------------------------------------------------------------------------- the panel, any QGIS


def test_the_panel_offers_earth_search_then_saved_connections_then_another_url(ndvi_panel):
    from canopy_explorer.plugin.stac_catalogue import saved_connections

    _, panel = ndvi_panel
    assert rows(panel) == [DEFAULT_ROW, *saved_connections(), OTHER_ROW]
    if not HAS_STAC_CONNECTIONS:  # QGIS 3.22: as before, the default or a URL
        assert rows(panel) == [DEFAULT_ROW, OTHER_ROW]
    choose(panel, DEFAULT_ROW)
    assert panel.stacUrlEdit.text() == default_stac_source().url and not panel.stacUrlEdit.isEnabled()
    assert panel.catalogue().source().url == default_stac_source().url
    choose(panel, OTHER_ROW)
    assert panel.stacUrlEdit.isEnabled()
    panel.stacUrlEdit.setText("http://127.0.0.1:9/stac")
    assert panel.catalogue().source(COLLECTION).url == "http://127.0.0.1:9/stac"


def test_a_stac_connection_argument_on_a_qgis_without_it_or_unknown_is_a_clear_error(loaded_plugin, tmp_path):
    from qgis import processing

    with pytest.raises(QgsProcessingException) as raised:
        processing.run("canopyexplorer:ndvi_composite", {
            "ROI": city_layer(), "YEARS": "2022", "STAC_CONNECTION": "Nowhere", "COLLECTION": COLLECTION, "MAX_CLOUD": 50,
            "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=QgsProcessingFeedback())
    message = str(raised.value)
    assert "STAC_CONNECTION (Nowhere)" in message
    assert ("Data Source Manager" in message) if HAS_STAC_CONNECTIONS else ("QGIS 3.40" in message)


# --------------------------------------------------------------------------- saved connections, QGIS 3.40 and newer


@needs_stac_connections
def test_a_saved_connection_appears_and_its_composite_reaches_the_private_api_with_its_authentication(
        ndvi_panel, saved_connection, private_server, credentials, tmp_path):
    from qgis.core import QgsProject

    from canopy_explorer.plugin.gui.explorer_dialog import ExplorerDialog

    dialog, panel = ndvi_panel
    panel.refresh()  # the connection was saved after the dialog opened, as from the Data Source Manager
    assert saved_connection in rows(panel)
    choose(panel, saved_connection)
    assert panel.stacUrlEdit.text() == private_server.url and not panel.stacUrlEdit.isEnabled()

    layer = city_layer()
    QgsProject.instance().addMapLayer(layer)
    dialog.region.roiLayerCombo.setLayer(layer)
    dialog.region.use_layer()
    panel.yearsEdit.setText("2022")
    panel.collectionEdit.setText(COLLECTION)
    panel.maxCloudSpin.setValue(50)
    panel.ndviFolderWidget.setFilePath(str(tmp_path))
    try:
        task = panel.build_ndvi_composites()
        assert task is not None, panel.statusLabel.text()
        wait_for_tasks(dialog, timeout=120)
        assert (tmp_path / "ndvi_composite_2022.tif").exists(), panel.statusLabel.text()
    finally:
        QgsProject.instance().removeAllMapLayers()
    searches = private_server.requests(kind="api", path="/search")
    assert searches and all(entry["status"] == 200 and entry["auth"] == "Basic" for entry in searches)

    # what the dialog remembers is the connection's name, nothing of its credentials
    settings = ExplorerSettings()
    panel.store_settings(settings)
    assert settings.stac_connection == saved_connection
    stored = QgsSettings()
    settings.save()
    values = [str(stored.value(key)) for key in stored.allKeys() if key.startswith(PREFIX)]
    assert not any(credentials[1] in value or credentials[2] in value for value in values)
    reopened = ExplorerDialog(dialog.iface)
    try:
        assert reopened.ndvi.stacCatalogueCombo.currentText() == saved_connection  # chosen again next time
    finally:
        reopened.clear_canvas_items()
        reopened.deleteLater()
        ExplorerSettings.clear()


@needs_stac_connections
def test_the_algorithm_builds_a_composite_from_a_saved_connection_by_name(loaded_plugin, saved_connection, private_server, tmp_path):
    from qgis import processing

    result = processing.run("canopyexplorer:ndvi_composite", {
        "ROI": city_layer(), "YEARS": "2022", "STAC_CONNECTION": saved_connection, "COLLECTION": COLLECTION,
        "MAX_CLOUD": 50, "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=QgsProcessingFeedback())
    [path] = result["COMPOSITES"]
    assert path.endswith("ndvi_composite_2022.tif")
    assert {entry["auth"] for entry in private_server.requests(kind="api", path="/search")} == {"Basic"}


@needs_stac_connections
def test_a_connection_whose_authentication_configuration_is_gone_is_named(private_server, loaded_plugin):
    from canopy_explorer.plugin.core.errors import ConfigurationError
    from canopy_explorer.plugin.stac_catalogue import StacCatalogue

    name = f"Stale catalogue {uuid.uuid4().hex[:6]}"
    save_stac_connection(name, private_server.url, "gone123")
    try:
        with pytest.raises(ConfigurationError, match=f"{name} uses the authentication configuration gone123"):
            StacCatalogue(connection=name).source(COLLECTION)
    finally:
        remove_stac_connection(name)
