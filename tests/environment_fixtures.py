"""Real Python environments for the self-check and installer tests.

``SYSTEM_PYTHON`` is Debian's interpreter, the one desktop QGIS and ``qgis_process`` embed: it has
what Debian's packages give (numpy, h5py, rasterio, pyproj, ...) and none of the pip-only packages
(tiledb, shapely 2, pystac-client), as on a fresh desktop. Wheels the tests need beside it (numpy 2,
a shapely for another GEOS) are installed once into ``build/test-packages`` from the package index.
"""

import json
import os
import subprocess
from pathlib import Path

from conftest import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"
QGIS_GEOS = None  # read once from QGIS


def qgis_geos() -> str:
    global QGIS_GEOS
    if QGIS_GEOS is None:
        from qgis.core import Qgis

        QGIS_GEOS = Qgis.geosVersion()
    return QGIS_GEOS


def packages_with(spec: str, dependencies: bool = False) -> Path:
    """A folder holding ``spec`` (alone, or with what it depends on), installed once with the system Python's pip."""
    name = spec.replace("=", "_").replace("<", "lt").replace(">", "gt").replace(",", "+") + ("+deps" if dependencies else "")
    folder = ROOT / "build" / "test-packages" / name
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
    """A folder where ``import canopy_explorer`` finds this checkout, for interpreters outside .venv."""
    folder = ROOT / "build" / "importable"
    link = folder / "canopy_explorer"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    return folder


def python_version_of(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                          text=True, check=True).stdout.strip()

