"""`make zip` and `make deploy`: the plugin as plugins.qgis.org and QGIS expect it."""

import subprocess
import sys
import zipfile

from conftest import ROOT


def build(tmp_path):
    target = tmp_path / "canopy_explorer.zip"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "zip", str(target)], check=True)
    return target


def test_zip_has_one_top_folder_with_metadata_license_and_code(tmp_path):
    with zipfile.ZipFile(build(tmp_path)) as archive:
        names = archive.namelist()
    assert {n.split("/")[0] for n in names} == {"canopy_explorer"}
    for required in ("metadata.txt", "LICENSE", "__init__.py", "plugin/main.py", "ui/dependencies_dialog.ui", "requirements.txt"):
        assert f"canopy_explorer/{required}" in names
    assert "canopy_explorer/plugin/core/lidar/atl08/atl08_variables.csv" in names


def test_zip_has_no_tests_caches_or_binaries(tmp_path):
    with zipfile.ZipFile(build(tmp_path)) as archive:
        names = archive.namelist()
    assert not [n for n in names if "/tests/" in n or "__pycache__" in n]
    assert not [n for n in names if n.endswith((".pyc", ".so", ".dll", ".exe", ".h5", ".tif"))]
    assert not [n for n in names if ".venv" in n or "sample_data" in n.split("/")[:-1]]  # folders; samples/database.py is code


def test_zip_ships_the_sample_database_builder_but_not_the_demo_and_test_samples(tmp_path):
    with zipfile.ZipFile(build(tmp_path)) as archive:
        samples = sorted(n.rsplit("/", 1)[-1] for n in archive.namelist() if "/plugin/core/samples/" in n)
    assert samples == ["__init__.py", "database.py", "granules.py"]


def test_deploy_installs_a_loadable_copy(tmp_path):
    plugins = tmp_path / "plugins"
    for _ in range(2):  # re-deploying replaces the previous copy
        subprocess.run([sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "deploy", str(plugins)], check=True)
    assert sorted(p.name for p in plugins.iterdir()) == ["canopy_explorer"]
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import canopy_explorer, inspect; "
        "assert callable(canopy_explorer.classFactory); print(canopy_explorer.__file__)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(plugins)], capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith(str(plugins))
