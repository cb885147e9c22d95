"""The load-time self-check: which packages import, and what stops the plugin from running safely.

Each problem says what is wrong and what fixes it, in the words the message bar and the
"Check dependencies" dialog show. Three problems are worse than a missing package because
the user cannot see them from a list of names:

- a shapely built for another GEOS than QGIS's (on Linux its calls reach QGIS's GEOS and
  fail with "WKB output dimension must be 2 or 3", or crash QGIS: see ``requirements``);
- a numpy that the distribution's compiled packages cannot use (numpy 2 from pip in front
  of Debian's h5py or rasterio, built for numpy 1.x);
- a package that is there but fails to import: its own error is reported, not "missing".
"""

import importlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence, Tuple

from ..errors import MissingDependencyError
from .interpreter import find_python
from .requirements import GEOS, REQUIREMENTS, Requirement

MISSING = "missing"  # not installed: the installer fixes it
BROKEN = "broken"  # installed but fails to import
TOO_OLD = "too old"  # older than the plugin's minimum: the installer puts a newer one first on the path
GEOS_MISMATCH = "GEOS mismatch"  # shapely built for another GEOS than QGIS's (Linux)
NUMPY_ABI = "numpy ABI"  # numpy 2 in front of packages compiled for numpy 1.x

# What an extension module compiled for numpy 1.x says when numpy 2 is imported (and vice versa).
NUMPY_ABI_SIGNS = ("compiled using numpy 1.x", "_array_api not found", "numpy.core.multiarray failed to import",
                   "numpy.dtype size changed", "module compiled against abi version", "numpy.core._multiarray_umath")


@dataclass(frozen=True)
class PackageStatus:
    requirement: Requirement
    version: Optional[str]  # None when the package cannot be imported
    location: str = ""  # the folder it was imported from
    error: str = ""  # the import error, when it fails
    absent: bool = False  # the package itself is not installed (not: it fails to import)

    @property
    def installed(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class Problem:
    module: str
    kind: str
    text: str  # what is wrong, in plain words
    fix: str  # what to do about it
    installer_fixes: bool  # "Install missing packages" fixes it (else ``fix`` says what the user must do)


@dataclass(frozen=True)
class EnvironmentReport:
    statuses: Tuple[PackageStatus, ...]
    problems: Tuple[Problem, ...]
    qgis_geos: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def installable(self) -> bool:
        """Whether the plugin's installer can fix at least one problem."""
        return any(problem.installer_fixes for problem in self.problems)

    def status(self, module: str) -> Optional[PackageStatus]:
        return next((s for s in self.statuses if s.requirement.module == module), None)

    def message(self) -> str:
        """One paragraph for the message bar: every problem, then what to do."""
        if self.ok:
            return "All the Python packages Canopy Explorer needs are installed and work with this QGIS."
        missing = [p.module for p in self.problems if p.kind == MISSING]
        parts = []
        if missing:
            parts.append(f"missing Python packages: {', '.join(distribution_name(m) for m in missing)}")
        parts += [p.text for p in self.problems if p.kind != MISSING]
        text = "Canopy Explorer cannot run yet: " + "; ".join(parts) + "."
        if self.installable:
            text += " Click 'Install missing packages' (or Plugins > Canopy Explorer > Check dependencies…) to fix this."
        manual = [p.fix for p in self.problems if not p.installer_fixes]
        if manual:
            text += " " + " ".join(manual)
        return text


def distribution_name(module: str) -> str:
    found = next((r for r in REQUIREMENTS if r.module == module), None)
    return found.name if found else module


def version_tuple(text: str) -> Tuple[int, ...]:
    """(3, 11, 1) from '3.11.1-CAPI-1.17.1', '1.26.4', '2.0.7.post1' or '0.36.1rc1' (numbers before any letter)."""
    numbers = []
    for part in str(text).split("-")[0].split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(numbers)


def probe(requirement: Requirement) -> PackageStatus:
    """Import the module (a package can be present on disk yet fail to import) and say where it came from."""
    try:
        module = importlib.import_module(requirement.module)
    except Exception as error:  # ImportError, but a broken binary build can raise anything
        absent = isinstance(error, ModuleNotFoundError) and error.name == requirement.module
        return PackageStatus(requirement, None, error=f"{type(error).__name__}: {error}", absent=absent)
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            version = "unknown version"
    location = str(Path(getattr(module, "__file__", "") or "").parent.parent) if getattr(module, "__file__", None) else ""
    return PackageStatus(requirement, version, location=location)


def shapely_geos() -> Optional[Tuple[int, ...]]:
    """The GEOS version shapely was compiled against (not the one its calls reach at run time)."""
    shapely = sys.modules.get("shapely")
    version = getattr(shapely, "geos_version", None)
    return tuple(version) if version else None


def pip_uninstall_command(name: str, location: str) -> str:
    """The command that removes a pip-installed package from ``location`` for this Python."""
    try:
        python = find_python()
    except MissingDependencyError:
        python = "python3"
    sudo = "" if not location or os.access(location, os.W_OK) else "sudo "
    flag = " --break-system-packages" if externally_managed() else ""
    return f"{sudo}{python} -m pip uninstall{flag} {name}"


def externally_managed() -> bool:
    """PEP 668: the distribution manages this Python (Debian 12+, Ubuntu 23.04+); pip then needs to be told."""
    return Path(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED").is_file()


def check_environment(qgis_geos: str = "", platform: str = sys.platform, packages_folder: str = "",
                      requirements: Sequence[Requirement] = REQUIREMENTS) -> EnvironmentReport:
    """Probe every requirement and name each problem with its fix.

    ``qgis_geos`` is ``Qgis.geosVersion()`` (empty outside QGIS: no GEOS check);
    ``packages_folder`` is where the plugin's installer puts packages (what it installed
    there is its to replace)."""
    statuses = tuple(probe(r) for r in requirements)
    problems = []
    numpy_status = next((s for s in statuses if s.requirement.module == "numpy"), None)
    numpy_broken_by_abi = []
    for status in statuses:
        requirement = status.requirement
        if not status.installed:
            if any(sign in status.error.lower() for sign in NUMPY_ABI_SIGNS):
                numpy_broken_by_abi.append(requirement.name)
            elif status.absent:
                problems.append(Problem(requirement.module, MISSING, f"{requirement.name} is not installed",
                                        f"Install {requirement.name}.", installer_fixes=True))
            else:
                problems.append(Problem(requirement.module, BROKEN, f"{requirement.name} is installed but fails to import "
                                        f"({status.error})", f"Reinstall {requirement.name}.", installer_fixes=True))
            continue
        have = version_tuple(status.version)
        if requirement.minimum and have and have < version_tuple(requirement.minimum):
            problems.append(Problem(requirement.module, TOO_OLD,
                                    f"{requirement.name} {status.version} ({status.location}) is too old: Canopy Explorer "
                                    f"needs {requirement.minimum} or newer", f"Install a newer {requirement.name}.",
                                    installer_fixes=True))
        elif requirement.native == GEOS and qgis_geos and platform.startswith("linux"):
            built_for = shapely_geos()
            wanted = version_tuple(qgis_geos)[:2]
            if built_for and built_for[:2] != wanted:
                problems.append(Problem(
                    requirement.module, GEOS_MISMATCH,
                    f"shapely {status.version} ({status.location}) was built for GEOS "
                    f"{'.'.join(map(str, built_for[:2]))} but QGIS uses GEOS {'.'.join(map(str, wanted))}: inside QGIS its "
                    "calls reach QGIS's GEOS and fail or crash QGIS",
                    f"Install a shapely built for GEOS {'.'.join(map(str, wanted))}.", installer_fixes=True))
    if numpy_broken_by_abi and numpy_status is not None and numpy_status.installed:
        location = numpy_status.location
        ours = bool(packages_folder) and location.startswith(str(packages_folder))
        problems.append(Problem(
            "numpy", NUMPY_ABI,
            f"numpy {numpy_status.version} ({location}) cannot be used by {', '.join(numpy_broken_by_abi)}, which were "
            "compiled for another numpy major version",
            "Install missing packages replaces it." if ours else
            f"Remove that numpy so the distribution's is used: {pip_uninstall_command('numpy', location)} "
            "(then restart QGIS).",
            installer_fixes=ours))
    return EnvironmentReport(statuses, tuple(problems), qgis_geos)
