"""The plugin's installer: only what QGIS's Python lacks, chosen to work inside QGIS, and nothing half-done.

The installs run for real, from the package index, for Debian's Python (the interpreter desktop QGIS
and qgis_process embed), into a folder as the plugin's would be in a QGIS profile.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from canopy_explorer.plugin.core.environment.installer import (
    InstallPlan,
    constraint_lines,
    install,
    manual_command,
    plan_install,
    shapely_choice,
)
from canopy_explorer.plugin.core.environment.self_check import (
    GEOS_MISMATCH,
    MISSING,
    TOO_OLD,
    EnvironmentReport,
    Problem,
)
from canopy_explorer.plugin.core.errors import Cancelled
from conftest import ROOT
from environment_fixtures import SYSTEM_PYTHON, expected_shapely, importable_checkout, qgis_geos, run_self_check

DEBIAN_12_GEOS = "3.11.1-CAPI-1.17.1"


def report_with(*problems, geos=DEBIAN_12_GEOS):
    return EnvironmentReport((), tuple(Problem(module, kind, "", "", True) for module, kind in problems), geos)


@pytest.mark.parametrize("geos, python, expected", [
    ("3.11.1-CAPI-1.17.1", (3, 11), ("shapely==2.0.7", False)),  # Debian 12: wheels bundle GEOS 3.11.4
    ("3.13.1-CAPI-1.19.2", (3, 13), ("shapely==2.1.2", False)),  # Debian 13: wheels bundle GEOS 3.13.1
    ("3.12.1-CAPI-1.18.1", (3, 12), ("shapely>=2.0,<2.3", True)),  # Ubuntu 24.04: no wheel has GEOS 3.12
    ("3.11.1-CAPI-1.17.1", (3, 14), ("shapely>=2.0,<2.3", True)),  # no 2.0.x wheel for Python 3.14
])
def test_shapely_is_the_wheel_with_qgis_geos_or_is_built_against_it(geos, python, expected):
    spec, source, why = shapely_choice(geos, "linux", python)
    assert (spec, source) == expected
    assert "GEOS " + ".".join(geos.split(".")[:2]) in why


def test_shapely_is_any_wheel_where_symbols_are_per_library():
    assert shapely_choice(DEBIAN_12_GEOS, "win32", (3, 12))[:2] == ("shapely>=2.0,<2.3", False)
    assert shapely_choice(DEBIAN_12_GEOS, "darwin", (3, 12))[:2] == ("shapely>=2.0,<2.3", False)


def test_on_linux_packages_linking_gdal_hdf5_or_proj_come_from_the_distribution():
    report = report_with(("h5py", MISSING), ("rasterio", MISSING), ("pyproj", MISSING), ("pandas", MISSING))
    plan = plan_install(report, platform="linux")
    assert plan.system == ("python3-h5py", "python3-rasterio", "python3-pyproj")
    assert plan.pip == ("pandas>=1.3",)
    windows = plan_install(report, platform="win32", python_version=(3, 12))
    assert windows.system == () and windows.pip == ("h5py>=3.0", "rasterio>=1.2", "pyproj>=3.0", "pandas>=1.3")


def test_tiledb_and_pystac_client_keep_debians_numpy_and_requests():
    plan = plan_install(report_with(("tiledb", MISSING), ("pystac_client", MISSING)), platform="linux")
    assert plan.without_dependencies == ("tiledb>=0.34,<0.37", "pystac-client>=0.7,<0.10")
    assert set(plan.pip) == {"packaging", "requests", "pystac>=1.10", "python-dateutil"}


def test_an_unusable_copy_is_replaced_and_not_pinned():
    plan = plan_install(report_with(("shapely", GEOS_MISMATCH), ("pandas", TOO_OLD)), platform="linux")
    assert plan.replaces == ("shapely", "pandas") and plan.pip == ("shapely==2.0.7", "pandas>=1.3")
    lines = constraint_lines({"numpy": "1.24.2", "shapely": "2.2.0", "pandas": "1.1.0", "requests": "2.28.1"}, plan.replaces)
    assert lines == ["numpy==1.24.2", "requests==2.28.1"]


def test_the_terminal_command_survives_any_path(tmp_path):
    target = tmp_path / "it's a \"profile\" $HOME" / "python3.11"
    command = manual_command(Path("/opt/my plugins"), "canopy_explorer", "/usr/bin/python3", target, DEBIAN_12_GEOS)
    words = shlex.split(command)
    assert words[0] == "PYTHONPATH=/opt/my plugins" and words[words.index("--target") + 1] == str(target)
    assert words[1:5] == ["/usr/bin/python3", "-m", "canopy_explorer.plugin.core.environment", "install"]


@pytest.fixture(scope="module")
def installed_for_debian(tmp_path_factory):
    """The terminal command the dialog shows, run for Debian's Python into a folder with an awkward name."""
    target = tmp_path_factory.mktemp("profile") / "a user's QGIS profile" / "canopy_explorer" / "python3.11"
    command = manual_command(importable_checkout(), "canopy_explorer", SYSTEM_PYTHON, target, qgis_geos())
    answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=900)
    return target, command, answer


@pytest.mark.slow
def test_debians_python_gets_exactly_the_missing_packages_and_then_passes_the_self_check(installed_for_debian):
    target, command, answer = installed_for_debian
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    seen = run_self_check([target], geos=qgis_geos())
    assert seen["problems"] == [], seen["message"]
    for name in ("tiledb", "shapely", "pystac-client"):
        assert seen["locations"][name] == str(target), name
    assert seen["versions"]["shapely"] == expected_shapely()  # its wheel bundles QGIS's GEOS (2.0.7: 3.11, QGIS 3.22)
    for name in ("numpy", "h5py", "rasterio", "pyproj", "pandas", "PyYAML", "psycopg"):
        assert seen["locations"][name].startswith("/usr/lib/python3/"), name  # Debian's, never shadowed
    projects = {re.split(r"-\d", p.name)[0].lower().replace("_", "-") for p in target.glob("*.dist-info")}
    assert {"tiledb", "shapely", "pystac-client"} <= projects
    assert not projects & {"numpy", "requests", "urllib3", "packaging", "python-dateutil", "pandas", "h5py", "pyproj"}
    assert not list(target.parent.glob(".staging-*"))


@pytest.mark.slow
def test_running_the_installer_again_installs_nothing(installed_for_debian):
    target, command, answer = installed_for_debian
    before = sorted(p.name for p in target.iterdir())
    again = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to install." in again.stdout, again.stdout[-2000:]
    assert sorted(p.name for p in target.iterdir()) == before


@pytest.mark.slow
def test_a_cancelled_install_leaves_the_folder_as_it_was(tmp_path):
    target = tmp_path / "python3.11"
    target.mkdir()
    (target / "already_there.txt").write_text("kept")
    plan = InstallPlan(pip=("packaging", "requests"), without_dependencies=("tiledb>=0.34,<0.37",))
    lines = []

    def check_cancel():
        if any(line.startswith("$ ") and "--target" in line for line in lines):
            raise Cancelled("cancelled by the user")

    with pytest.raises(Cancelled):
        install(plan, target, python=SYSTEM_PYTHON, log=lines.append, check_cancel=check_cancel)
    assert sorted(p.name for p in target.iterdir()) == ["already_there.txt"]
    assert not list(tmp_path.glob(".staging-*"))


@pytest.mark.slow
def test_requirements_txt_installed_the_way_qpip_does_gives_a_working_environment(tmp_path):
    """QPIP installs the requirements.txt lines it finds unmet with `pip install --target --upgrade`."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.markers import default_environment

    environment = default_environment()  # the test runs on the same Python version as Debian's
    present = subprocess.run([SYSTEM_PYTHON, "-c", "import importlib.metadata as m, json; print(json.dumps("
                              "{d.metadata['Name'].lower(): d.version for d in m.distributions()}))"],
                             capture_output=True, text=True, check=True).stdout
    import json

    versions = json.loads(present)
    unmet = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        have = versions.get(requirement.name.lower())
        if have is None or not requirement.specifier.contains(have):
            unmet.append(str(requirement).split(";")[0])
    assert metadata.version("packaging")  # QPIP parses with packaging too
    target = tmp_path / "dependencies" / "3.11"
    subprocess.run([SYSTEM_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *unmet,
                    "--target", str(target), "--upgrade"], check=True, timeout=900)
    seen = run_self_check([target], geos=qgis_geos())
    assert seen["problems"] == [], seen["message"]


def test_requirements_txt_has_every_requirement_with_the_installers_bounds():
    text = (ROOT / "requirements.txt").read_text()
    from canopy_explorer.plugin.core.environment.requirements import REQUIREMENTS

    for requirement in REQUIREMENTS:
        if requirement.name == "shapely":
            continue  # chosen per platform and GEOS (markers)
        assert re.search(rf"^{re.escape(requirement.name)}", text, re.M), requirement.name
        if requirement.below:
            assert f"<{requirement.below}" in text, requirement.name
