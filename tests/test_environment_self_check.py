"""The load-time self-check: every problem that stops the plugin is named with its fix.

Checked in real interpreters: Debian's Python as desktop QGIS embeds it, with real wheels put in
front of its packages (a numpy 2, a shapely built for another GEOS), not with mocked imports.
"""

import sys

import pytest

from canopy_explorer.plugin.core.environment.requirements import REQUIREMENTS, Requirement
from canopy_explorer.plugin.core.environment.self_check import (
    BROKEN,
    GEOS_MISMATCH,
    MISSING,
    NUMPY_ABI,
    TOO_OLD,
    check_environment,
    version_tuple,
)
from environment_fixtures import packages_with, qgis_geos, run_self_check


def kinds(report):
    return {problem.module: problem.kind for problem in report.problems}


def test_the_test_environment_passes_the_check_it_gives_users():
    report = check_environment(qgis_geos(), platform="linux")
    assert report.ok, report.message()
    assert {s.requirement.name for s in report.statuses} == {r.name for r in REQUIREMENTS}


def test_a_missing_package_is_named_and_left_to_the_installer(monkeypatch):
    monkeypatch.setitem(sys.modules, "pystac_client", None)  # what `import` does for an absent package
    report = check_environment(qgis_geos())
    assert kinds(report) == {"pystac_client": MISSING}
    assert report.installable
    assert report.message().startswith("Canopy Explorer cannot run yet: missing Python packages: pystac-client.")
    assert "Install missing packages" in report.message()


def test_a_package_that_fails_to_import_reports_its_own_error(tmp_path, monkeypatch):
    package = tmp_path / "canopy_broken_lib"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('libgdal.so.32: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    requirement = Requirement("canopy_broken_lib", "canopy-broken-lib", "a test package")
    report = check_environment(requirements=[requirement])
    [problem] = report.problems
    assert problem.kind == BROKEN
    assert "fails to import" in problem.text and "libgdal.so.32: cannot open shared object file" in problem.text


def test_a_version_below_the_minimum_is_too_old():
    requirement = Requirement("numpy", "numpy", "arrays", minimum="99.0")
    [problem] = check_environment(requirements=[requirement]).problems
    assert problem.kind == TOO_OLD and "99.0 or newer" in problem.text and problem.installer_fixes


def test_shapely_built_for_another_geos_than_qgis_is_a_problem_on_linux_only():
    import shapely

    built_for = ".".join(map(str, shapely.geos_version[:2]))
    other = "3.13.1-CAPI-1.19.2" if built_for != "3.13" else "3.11.1-CAPI-1.17.1"
    on_linux = check_environment(other, platform="linux")
    assert kinds(on_linux) == {"shapely": GEOS_MISMATCH}
    text = on_linux.problems[0].text
    assert f"built for GEOS {built_for}" in text and f"QGIS uses GEOS {'.'.join(other.split('.')[:2])}" in text
    assert check_environment(other, platform="win32").ok  # Windows resolves GEOS per DLL
    assert check_environment(f"{built_for}.9-CAPI-1.0", platform="linux").ok  # the same major.minor is the same C API


@pytest.mark.slow
def test_the_pypi_shapely_wheel_in_front_of_debians_python_is_caught_before_it_crashes_qgis():
    """The user's case: `pip install shapely` gives a wheel built for GEOS 3.14; QGIS 3.22 loads GEOS 3.11."""
    seen = run_self_check([packages_with("shapely==2.1.2")], geos="3.11.1-CAPI-1.17.1")
    [problem] = [p for p in seen["problems"] if p["module"] == "shapely"]
    assert problem["kind"] == GEOS_MISMATCH and "built for GEOS 3.13" in problem["text"]
    assert problem["installer_fixes"]


@pytest.mark.slow
def test_numpy_2_in_front_of_debians_compiled_packages_is_named_with_the_command_that_removes_it():
    from importlib import metadata

    if int(metadata.version("numpy").split(".")[0]) >= 2:  # the venv sees the system's numpy
        pytest.skip(f"the system's numpy is {metadata.version('numpy')} (Debian 13): its h5py and rasterio are built for "
                    "numpy 2, and no numpy 1.x has wheels for this Python, so the mistake cannot happen here")
    folder = packages_with("numpy==2.3.5")
    seen = run_self_check([folder], geos=qgis_geos())
    [problem] = [p for p in seen["problems"] if p["kind"] == NUMPY_ABI]
    assert "numpy 2.3.5" in problem["text"] and str(folder) in problem["text"]
    assert "h5py" in problem["text"] and "rasterio" in problem["text"]
    assert "pip uninstall" in problem["fix"] and "numpy" in problem["fix"] and not problem["installer_fixes"]
    assert not any(p["module"] in ("h5py", "rasterio") and p["kind"] == MISSING for p in seen["problems"])


@pytest.mark.parametrize("text, expected", [("3.11.1-CAPI-1.17.1", (3, 11, 1)), ("1.26.4", (1, 26, 4)),
                                            ("2.0.7.post1", (2, 0, 7)), ("0.36.1rc1", (0, 36, 1)), ("", ())])
def test_versions_compare_by_their_numbers(text, expected):
    assert version_tuple(text) == expected
