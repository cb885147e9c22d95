"""Real Python environments for the self-check and installer tests.

``SYSTEM_PYTHON`` is the distribution's interpreter, the one desktop QGIS and ``qgis_process`` embed
and the test venv is built on (Python 3.11 on Debian 12, 3.13 on Debian 13): it has what Debian's
packages give (numpy, h5py, rasterio, pyproj, ...) and none of the pip-only packages (tiledb,
shapely 2, pystac-client), as on a fresh desktop. Wheels the tests need beside it (numpy 2, a shapely
for another GEOS) are installed once into ``build/test-packages/python3.X`` from the package index.

What the installer should choose for this QGIS (the shapely whose wheel bundles QGIS's GEOS: 2.0.7 on
QGIS 3.22 / Debian 12, 2.1.2 on QGIS 3.40 / Debian 13) is asked from its own rules
(``installer.shapely_choice``), not written into the tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def _system_python() -> str:
    """The interpreter the test venv sits on (``make setup`` builds it on /usr/bin/python3)."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(candidate) if candidate.exists() else "/usr/bin/python3"


SYSTEM_PYTHON = _system_python()
SYSTEM_PYTHON_VERSION = tuple(sys.version_info[:2])  # the venv's Python is the system's
QGIS_GEOS = None  # read once from QGIS


def qgis_geos() -> str:
    global QGIS_GEOS
    if QGIS_GEOS is None:
        from qgis.core import Qgis

        QGIS_GEOS = Qgis.geosVersion()
    return QGIS_GEOS


def geos_major_minor(version: str) -> str:
    """'3.11.1-CAPI-1.17.1' -> '3.11'."""
    return ".".join(version.split(".")[:2])


def expected_shapely() -> str:
    """The shapely version the plugin's installer installs for this QGIS and Python (a wheel with QGIS's GEOS)."""
    from canopy_explorer.plugin.core.environment.installer import shapely_choice

    spec, from_source, why = shapely_choice(qgis_geos(), "linux", SYSTEM_PYTHON_VERSION)
    assert spec.startswith("shapely==") and not from_source, f"no shapely wheel for this QGIS: {why}"
    return spec.split("==", 1)[1]


def shapely_for_another_geos() -> tuple:
    """(spec, GEOS major.minor) of a shapely wheel built for another GEOS than this QGIS's: the user's mistake
    the self-check must catch (shapely 2.1.2, GEOS 3.13, under QGIS 3.22; shapely 2.0.7, GEOS 3.11, under 3.40)."""
    from canopy_explorer.plugin.core.environment.installer import SHAPELY_WHEELS

    own = tuple(int(part) for part in geos_major_minor(qgis_geos()).split("."))
    for geos, (release, newest_python) in sorted(SHAPELY_WHEELS.items(), reverse=True):
        if geos != own and SYSTEM_PYTHON_VERSION <= tuple(newest_python):
            return f"shapely=={release}", ".".join(map(str, geos))
    raise AssertionError(f"no shapely wheel for another GEOS than {qgis_geos()} on Python {SYSTEM_PYTHON_VERSION}")


def packages_with(spec: str, dependencies: bool = False) -> Path:
    """A folder holding ``spec`` (alone, or with what it depends on), installed once with the system Python's pip
    (one folder per Python version: the checkout's build/ is shared by the host and the QGIS 3.40 root)."""
    name = spec.replace("=", "_").replace("<", "lt").replace(">", "gt").replace(",", "+") + ("+deps" if dependencies else "")
    folder = ROOT / "build" / "test-packages" / "python{}.{}".format(*SYSTEM_PYTHON_VERSION) / name
    if not (folder / ".complete").exists():
        subprocess.run([SYSTEM_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *([] if dependencies else ["--no-deps"]), "--only-binary", ":all:", "--target", str(folder),
                        "--upgrade", spec], check=True)
        (folder / ".complete").touch()
    return folder


def run_self_check(path=(), python: str = SYSTEM_PYTHON, geos: str = "", platform: str = "linux") -> dict:
    """The self-check as ``python`` sees it with ``path`` first on sys.path, as JSON."""
    code = (
        "import json, sys\n"
        f"sys.path[:0] = {[str(p) for p in path]!r}\n"
        "from canopy_explorer.plugin.core.environment.self_check import check_environment\n"
        f"report = check_environment({geos!r}, platform={platform!r})\n"
        "print(json.dumps({'problems': [p.__dict__ for p in report.problems], 'message': report.message(),\n"
        "                  'versions': {s.requirement.name: s.version for s in report.statuses},\n"
        "                  'locations': {s.requirement.name: s.location for s in report.statuses}}))\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environment["PYTHONPATH"] = str(importable_checkout())
    answer = subprocess.run([python, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert answer.returncode == 0, answer.stderr[-3000:]
    return json.loads(answer.stdout.strip().splitlines()[-1])


def importable_checkout() -> Path:
    """A folder where ``import canopy_explorer`` finds this checkout, for interpreters outside the venv.

    The link is relative, so that it holds wherever the checkout is mounted (the QGIS 3.40 root mounts it
    at /work/canopy)."""
    folder = ROOT / "build" / "importable"
    link = folder / "canopy_explorer"
    if not link.exists() or link.resolve() != ROOT.resolve():
        folder.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(ROOT, folder))
    return folder


def python_version_of(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                          text=True, check=True).stdout.strip()

