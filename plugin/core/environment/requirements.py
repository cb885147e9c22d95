"""The Python packages Canopy Explorer needs, and which of them must share a native library with QGIS.

On Linux, QGIS's executables (the desktop application and ``qgis_process``) load GEOS, GDAL,
HDF5 and PROJ into the global symbol namespace before Python starts. A package from a pip
wheel that bundles its own copy of one of those libraries then calls QGIS's copy instead
(the dynamic linker resolves global symbols first), with the struct layouts and options of
another version: errors such as "WKB output dimension must be 2 or 3", HDF5's
header/library mismatch abort, or a segmentation fault. So on Linux:

- h5py (HDF5), rasterio (GDAL) and pyproj (PROJ) come from the distribution, built
  against the very libraries QGIS loads;
- shapely (GEOS) comes from a wheel whose bundled GEOS has QGIS's major.minor version
  (its calls reach QGIS's GEOS through the same C API), or is built from source against
  the system GEOS where no such wheel exists (see ``installer.shapely_choice``).

Windows and macOS resolve symbols per library (DLLs, two-level namespaces), so wheels are
safe there; their QGIS installers also ship most of these packages already.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

# Native libraries QGIS itself loads, by the package that links them.
GEOS, GDAL, HDF5, PROJ = "GEOS", "GDAL", "HDF5", "PROJ"


@dataclass(frozen=True)
class Requirement:
    module: str  # the import name
    name: str  # the distribution name pip installs and importlib.metadata knows
    purpose: str
    minimum: str = ""  # the lowest version the plugin works with
    below: str = ""  # the first version the plugin is not tested with (the installer stays under it)
    native: str = ""  # a library QGIS loads too (GEOS, GDAL, HDF5, PROJ), see the module docstring
    debian_package: str = ""  # the Debian/Ubuntu package, where one exists

    @property
    def pip_spec(self) -> str:
        """The bounded requirement the installer asks pip for (``tiledb>=0.34,<0.37``)."""
        bounds = [f">={self.minimum}" if self.minimum else "", f"<{self.below}" if self.below else ""]
        return self.name + ",".join(b for b in bounds if b)

    @property
    def from_distribution_on_linux(self) -> bool:
        """h5py, rasterio and pyproj: a pip wheel would bring a second GDAL, HDF5 or PROJ."""
        return self.native in (GDAL, HDF5, PROJ)


REQUIREMENTS: Tuple[Requirement, ...] = (
    Requirement("numpy", "numpy", "arrays for every operation", minimum="1.21", debian_package="python3-numpy"),
    Requirement("pandas", "pandas", "query results as tables", minimum="1.3", debian_package="python3-pandas"),
    # 0.34: its arrays became Python objects whose ``ctx`` a query is created with (database.py lends
    # each array with its query's context); 0.33's cannot be given another
    Requirement("tiledb", "tiledb", "the ATL08 TileDB database (local and S3)", minimum="0.34", below="0.37"),
    Requirement("h5py", "h5py", "reading ATL08 HDF5 granules", minimum="3.0", native=HDF5, debian_package="python3-h5py"),
    Requirement("shapely", "shapely", "regions of interest and polygon filters", minimum="2.0", below="2.3", native=GEOS),
    Requirement("pyproj", "pyproj", "reprojection and geodesic distances", minimum="3.0", native=PROJ,
                debian_package="python3-pyproj"),
    Requirement("yaml", "PyYAML", "database configuration files", minimum="5.1", debian_package="python3-yaml"),
    Requirement("rasterio", "rasterio", "Sentinel-2 NDVI composites", minimum="1.2", native=GDAL,
                debian_package="python3-rasterio"),
    Requirement("pystac_client", "pystac-client", "searching STAC catalogues", minimum="0.7", below="0.10"),
    Requirement("psycopg", "psycopg", "zonal statistics in PostGIS", minimum="3.1", below="4", debian_package="python3-psycopg"),
)

BY_MODULE = {requirement.module: requirement for requirement in REQUIREMENTS}


def requirement(module: str) -> Optional[Requirement]:
    return BY_MODULE.get(module)
