"""Which optional Python packages are installed, and how to install the missing ones.

QGIS must load the plugin even when packages are missing, so nothing at module
level in the plugin imports them; this module probes them one by one and writes
the install command for the user's platform.
"""

import importlib
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Iterable, List, Optional, Sequence


@dataclass(frozen=True)
class Requirement:
    module: str  # the import name
    distribution: str  # the name pip installs
    purpose: str
    debian_package: Optional[str] = None  # the distribution package, where one exists


REQUIREMENTS = (
    Requirement("numpy", "numpy<2", "arrays for every operation", "python3-numpy"),
    Requirement("pandas", "pandas", "query results as tables", "python3-pandas"),
    Requirement("tiledb", "tiledb", "the ATL08 TileDB database (local and S3)"),
    Requirement("h5py", "h5py", "reading ATL08 HDF5 granules", "python3-h5py"),
    Requirement("shapely", "shapely>=2", "regions of interest and polygon filters"),
    Requirement("pyproj", "pyproj", "reprojection and geodesic distances", "python3-pyproj"),
    Requirement("yaml", "pyyaml", "database configuration files", "python3-yaml"),
    Requirement("rasterio", "rasterio", "Sentinel-2 NDVI composites", "python3-rasterio"),
    Requirement("pystac_client", "pystac-client", "searching STAC catalogues"),
    Requirement("psycopg", "psycopg", "zonal statistics in PostGIS", "python3-psycopg"),
)


@dataclass(frozen=True)
class DependencyStatus:
    requirement: Requirement
    version: Optional[str]  # None when the package cannot be imported
    problem: str = ""

    @property
    def installed(self) -> bool:
        return self.version is not None


def _distribution_name(requirement: Requirement) -> str:
    return requirement.distribution.split("<")[0].split(">")[0].split("=")[0]


def probe(requirement: Requirement) -> DependencyStatus:
    """Import the module (a package can be present on disk yet fail to import)."""
    try:
        module = importlib.import_module(requirement.module)
    except Exception as error:  # ImportError, but also broken binary builds raising anything
        return DependencyStatus(requirement, None, f"{type(error).__name__}: {error}")
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = metadata.version(_distribution_name(requirement))
        except metadata.PackageNotFoundError:
            version = "installed"
    return DependencyStatus(requirement, str(version))


def check_dependencies(requirements: Sequence[Requirement] = REQUIREMENTS) -> List[DependencyStatus]:
    return [probe(r) for r in requirements]


def missing(statuses: Iterable[DependencyStatus]) -> List[Requirement]:
    return [s.requirement for s in statuses if not s.installed]


def install_command(requirements: Sequence[Requirement], platform: str = sys.platform) -> str:
    """The exact command that installs ``requirements`` for QGIS's Python on ``platform``."""
    if not requirements:
        return ""
    pip_names = " ".join(f'"{r.distribution}"' if "<" in r.distribution or ">" in r.distribution else r.distribution for r in requirements)
    if platform.startswith("win"):
        return f"In the OSGeo4W Shell: python -m pip install {pip_names}"
    if platform == "darwin":
        return f"/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install {pip_names}"
    # Linux: packages that link GDAL, HDF5 or PROJ must come from the distribution, so they
    # share the libraries QGIS itself loads; the rest come from PyPI.
    debian = [r.debian_package for r in requirements if r.debian_package]
    pip_only = [r for r in requirements if not r.debian_package]
    commands = []
    if debian:
        commands.append("sudo apt install " + " ".join(debian))
    if pip_only:
        names = " ".join(r.distribution for r in pip_only)
        commands.append(f"python3 -m pip install --user --break-system-packages {names}")
    return " && ".join(commands)


def missing_message(requirements: Sequence[Requirement], platform: str = sys.platform) -> str:
    """One sentence naming what is missing and the command that installs it."""
    names = ", ".join(r.module if r.module != "yaml" else "pyyaml" for r in requirements)
    return (
        f"Canopy Explorer needs Python packages that are not installed: {names}. "
        f"Install them with: {install_command(requirements, platform)} "
        f"(then restart QGIS)."
    )
