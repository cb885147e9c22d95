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
    """pytest-qgis's interface, completed with what QGIS has and the mock lacks: the Plugins menu, and
    message-bar widgets (``pushWidget``: recorded as "title:text" like pushMessage, the widget kept in
    ``bar.widgets`` so tests can press its buttons)."""
    if not hasattr(qgis_iface, "pluginMenu"):
        plugins_menu = qgis_iface.mainWindow().menuBar().addMenu("&Plugins")
        qgis_iface.pluginMenu = lambda: plugins_menu
    if not hasattr(qgis_iface, "addCustomActionForLayerType"):
        # the layer tree's context-menu actions: ``custom_layer_actions`` maps each action to the layers it is offered for
        qgis_iface.custom_layer_actions = {}
        qgis_iface.addCustomActionForLayerType = lambda action, menu, layer_type, all_layers: qgis_iface.custom_layer_actions.setdefault(action, [])
        qgis_iface.addCustomActionForLayer = lambda action, layer: qgis_iface.custom_layer_actions[action].append(layer)
        qgis_iface.removeCustomActionForLayerType = lambda action: qgis_iface.custom_layer_actions.pop(action, None) is not None
    bar = qgis_iface.messageBar()
    if not hasattr(bar, "pushWidget"):
        bar.widgets = []

        def push_widget(widget, level, duration=0):
            bar.messages[level].append(f"{widget.title()}:{widget.text()}")
            bar.widgets.append(widget)

        bar.pushWidget = push_widget
        bar.popWidget = lambda widget: bar.widgets.remove(widget) if widget in bar.widgets else None
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

    from canopy_explorer.plugin.core.samples.granules import generate_granules

    folder = tmp_path_factory.mktemp("granules")
    paths = generate_granules(
        folder, region=(45.0, 45.3, 7.0, 7.3), start=dt.date(2020, 1, 1), end=dt.date(2021, 12, 31), n_tracks=4, seed=7
    )
    return paths


@pytest.fixture(scope="session")
def local_database(sample_granules, tmp_path_factory):
    """A database built by the engine from the sample granules, on local disk."""
    from canopy_explorer.plugin.core.lidar.config import local_config
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    config = local_config(tmp_path_factory.mktemp("db") / "atl08")
    ingest_granules(config, sample_granules, workers=1)
    return config


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A loopback S3 server (moto) in its own process, stopped at the end of the session."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path_factory.mktemp("s3") / "moto.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield endpoint
    process.terminate()
    process.wait(10)
    log.close()


def s3_config(endpoint, bucket, create=True):
    import boto3

    from canopy_explorer.plugin.core.lidar.config import DatabaseConfig

    if create:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
    return DatabaseConfig(
        storage_type="s3",
        s3_bucket=bucket,
        url=endpoint,
        s3_region="us-east-1",
        s3_settings={"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "connect_timeout_ms": "3000", "connect_max_tries": "2"},
        source="test",
    ).with_changes()


@pytest.fixture(scope="session")
def s3_database(s3_server, sample_granules):
    """The same sample granules ingested into a bucket on the loopback S3 server."""
    from canopy_explorer.plugin.core.lidar.ingest import ingest_granules

    config = s3_config(s3_server, "atl08-sample")
    ingest_granules(config, sample_granules, workers=1)
    return config


@pytest.fixture(params=["local", "s3"])
def database_config(request):
    """Both storage back ends, for tests that must hold on each."""
    return request.getfixturevalue("local_database" if request.param == "local" else "s3_database")


_EXIT_STATUS = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the process with pytest's status once everything is reported.

    With QGIS 3.22, Debian's psycopg (libpq) and the QGIS postgres provider loaded in
    one process, the C++ static destructors can corrupt the heap at interpreter exit
    ("corrupted size vs. prev_size"), after every test has passed and been reported;
    skipping those destructors keeps the exit status honest.
    """
    import sys

    if "status" in _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])
