"""Install what the self-check found missing, without upgrading or shadowing what QGIS's Python has.

The rule, for the plugin's own folder and for ``make test``'s virtualenv alike:

1. Every distribution QGIS's Python already has is pinned to the version it has (a pip
   constraints file), so pip can only add packages, never upgrade numpy, pandas, requests...
   A package the self-check found unusable (too old, broken, shapely for another GEOS) is
   left out of the pins and installed again.
2. pip resolves the missing packages against that environment (``install --dry-run
   --report``), which gives the exact list it would add; only that list is then installed
   (``--no-deps``), into a staging folder that is moved into place when complete, so a
   cancelled or failed run leaves the packages folder as it was.
3. On Linux, packages that link a library QGIS loads too come from the distribution
   (h5py, rasterio, pyproj: apt) or from a shapely wheel whose bundled GEOS has QGIS's
   GEOS version, built from source where no such wheel exists (``requirements`` says why).

The plugin puts its folder first on ``sys.path``; by rule 1 it only ever holds what QGIS's
Python lacks or has in an unusable version.
"""

import json
import os
import shlex
import shutil
import signal
# B404: runs fixed programs with argument lists, never a shell
import subprocess  # nosec B404
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..callbacks import CheckCancel, Log, Progress
from ..errors import Cancelled, MissingDependencyError
from .interpreter import clean_environment, find_python, pip_command
from .requirements import BY_MODULE, Requirement
from .self_check import BROKEN, GEOS_MISMATCH, NUMPY_ABI, TOO_OLD, EnvironmentReport, version_tuple

# QGIS's GEOS (major, minor) -> the newest shapely release whose wheels bundle that GEOS, and the newest
# Python it has wheels for. Read from the wheels' bundled libgeos-*.so.<version> (shapely 2.0.6/2.0.7:
# GEOS 3.11.4; 2.1.0-2.1.2: GEOS 3.13.1). Checked in qgis_process: shapely 2.0.7 runs the polygon
# query, grid change and district statistics on Debian 12 (GEOS 3.11.1), where 2.2.0 (GEOS 3.14) fails.
SHAPELY_WHEELS = {
    (3, 11): ("2.0.7", (3, 13)),
    (3, 13): ("2.1.2", (3, 14)),
}

# Installed without their declared dependencies, which are listed here instead, because they declare
# floors above what Debian 12's Python has although they run on it (make test runs the whole suite on
# exactly that combination). Asking pip for the declared floors would put a second copy in front of
# Debian's: tiledb's wheels declare numpy>=1.25 (they are built against numpy 2, whose C API also serves
# numpy 1.x at run time; Debian 12 has numpy 1.24.2, which its h5py and rasterio are built for);
# pystac-client declares requests>=2.28.2 (Debian 12 has 2.28.1, a patch release apart).
WITHOUT_DEPENDENCIES = {
    "tiledb": ("packaging",),
    "pystac_client": ("requests", "pystac>=1.10", "python-dateutil"),
}



def packages_folder(profile: Path, version: Tuple[int, int] = sys.version_info[:2]) -> Path:
    """The folder the plugin installs into, in the QGIS profile, one per Python version (a QGIS upgrade
    that brings another Python starts a new folder instead of loading extension modules built for the old one)."""
    return Path(profile) / "canopy_explorer" / f"python{version[0]}.{version[1]}"


def manual_command(plugins_dir: Path, plugin_name: str, python: str, target: Path, qgis_geos: str,
                   platform: str = sys.platform) -> str:
    """The shell-safe one-liner that installs what the dialog's button would install."""
    module = f"{plugin_name}.plugin.core.environment"
    arguments = [python, "-m", module, "install", "--qgis-geos", qgis_geos, "--target", str(target)]
    if platform.startswith("win"):
        quoted = " ".join(f'"{a}"' if " " in a else a for a in arguments)
        return f'set "PYTHONPATH={plugins_dir}" && {quoted}'
    return f"PYTHONPATH={shlex.quote(str(plugins_dir))} " + " ".join(shlex.quote(a) for a in arguments)


def shapely_choice(qgis_geos: str, platform: str = sys.platform,
                   python_version: Tuple[int, int] = sys.version_info[:2]) -> Tuple[str, bool, str]:
    """(requirement, build from source?, why) for a shapely that works inside this QGIS."""
    default = BY_MODULE["shapely"].pip_spec
    if not platform.startswith("linux") or not qgis_geos:
        return default, False, "shapely from a wheel (symbols are resolved per library on this platform)"
    geos = version_tuple(qgis_geos)[:2]
    release, newest_python = SHAPELY_WHEELS.get(geos, (None, None))
    geos_text = ".".join(map(str, geos))
    if release and tuple(python_version) <= newest_python:
        return f"shapely=={release}", False, f"shapely {release}: its wheels bundle GEOS {geos_text}, the GEOS QGIS loads"
    return default, True, (f"shapely built from source against this system's GEOS {geos_text} (no shapely wheel bundles "
                           f"GEOS {geos_text} for Python {python_version[0]}.{python_version[1]})")


@dataclass(frozen=True)
class InstallPlan:
    pip: Tuple[str, ...] = ()  # requirements pip resolves against what is installed
    without_dependencies: Tuple[str, ...] = ()  # installed with --no-deps (WITHOUT_DEPENDENCIES)
    from_source: Tuple[str, ...] = ()  # distributions built from source (shapely, see shapely_choice)
    system: Tuple[str, ...] = ()  # distribution packages (apt) for packages that link GDAL, HDF5 or PROJ
    replaces: Tuple[str, ...] = ()  # present but unusable: not pinned, installed again in front
    notes: Tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.pip or self.without_dependencies or self.system)

    def describe(self) -> str:
        lines = []
        if self.system:
            lines.append("from the distribution (they link the GDAL, HDF5 or PROJ QGIS uses): " + " ".join(self.system))
        wanted = list(self.without_dependencies) + list(self.pip)
        if wanted:
            lines.append("with pip, into the plugin's folder: " + ", ".join(wanted))
        return "\n".join(lines + list(self.notes))


@dataclass(frozen=True)
class InstallResult:
    installed: Tuple[Tuple[str, str], ...] = ()  # (distribution, version) added with pip
    system: Tuple[str, ...] = ()  # distribution packages installed
    target: str = ""
    replaced: Tuple[str, ...] = ()  # packages installed again in front of an unusable copy: QGIS must restart

    def summary(self) -> str:
        """The packages the plugin asked for by name; the ones they pulled in are counted, not listed."""
        wanted = {normalise(r.name) for r in BY_MODULE.values()}
        named = [f"{name} {version}" for name, version in self.installed if normalise(name) in wanted] + list(self.system)
        others = len([name for name, _ in self.installed if normalise(name) not in wanted])
        if not named and not others:
            return "Nothing needed installing."
        text = "Installed " + ", ".join(named or [f"{others} package(s)"])
        if named and others:
            text += f" (and {others} package(s) they need)"
        return text + (f" into {self.target}." if self.target and self.installed else ".")


def plan_install(report: EnvironmentReport, platform: str = sys.platform,
                 python_version: Tuple[int, int] = sys.version_info[:2], extra: Sequence[str] = ()) -> InstallPlan:
    """What fixes the report's installable problems (``extra``: more requirements, such as the test tools)."""
    pip: List[str] = []
    without: List[str] = []
    from_source: List[str] = []
    system: List[str] = []
    replaces: List[str] = []
    notes: List[str] = []
    linux = platform.startswith("linux")
    for problem in report.problems:
        if not problem.installer_fixes:
            continue
        requirement: Optional[Requirement] = BY_MODULE.get(problem.module)
        if requirement is None:
            continue
        if problem.kind in (TOO_OLD, BROKEN, GEOS_MISMATCH, NUMPY_ABI):
            replaces.append(requirement.name)
        if linux and requirement.debian_package and (requirement.from_distribution_on_linux or requirement.module == "numpy"):
            system.append(requirement.debian_package)
        elif requirement.module == "shapely":
            spec, source, why = shapely_choice(report.qgis_geos, platform, python_version)
            pip.append(spec)
            notes.append(why)
            if source:
                from_source.append("shapely")
        elif requirement.module in WITHOUT_DEPENDENCIES:
            without.append(requirement.pip_spec)
            pip += [d for d in WITHOUT_DEPENDENCIES[requirement.module] if d not in pip]
        else:
            pip.append(requirement.pip_spec)
    pip += [r for r in extra if r not in pip]
    return InstallPlan(tuple(pip), tuple(without), tuple(from_source), tuple(system), tuple(replaces), tuple(notes))


# ---------------------------------------------------------------------------------------------- running


def present_distributions(python: str, path: Sequence[str] = ()) -> Dict[str, str]:
    """{normalised name: version} of every distribution ``python`` sees (``path`` first, as the plugin puts its folder)."""
    code = ("import importlib.metadata as m, json\n"
            "seen = {}\n"
            "for d in m.distributions():\n"
            "    name = (d.metadata['Name'] or '').strip()\n"
            "    if name and name.lower() not in seen: seen[name.lower()] = d.version\n"
            "print(json.dumps(seen))")
    # B603: the interpreter find_python() checked, running the fixed code above
    answer = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120,  # nosec B603
                            env=clean_environment(path))
    if answer.returncode != 0:
        raise MissingDependencyError(f"cannot list the packages of {python}: {answer.stderr.strip()[-500:]}")
    return {normalise(name): version for name, version in json.loads(answer.stdout).items()}


def normalise(name: str) -> str:
    """PEP 503 names: 'PyYAML' and 'pyyaml', 'pystac_client' and 'pystac-client' are one distribution."""
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def constraint_lines(present: Dict[str, str], replaces: Iterable[str]) -> List[str]:
    """``name==version`` for everything present, except the unusable copies being replaced."""
    skip = {normalise(n) for n in replaces}
    lines = []
    for name, version in sorted(present.items()):
        if name in skip or not version_tuple(version):
            continue  # a version pip cannot parse (some distribution builds) cannot be pinned
        lines.append(f"{name}=={version}")
    return lines


def system_install_command(packages: Sequence[str]) -> List[str]:
    if not shutil.which("apt-get"):
        raise MissingDependencyError("install these packages from your distribution (they must link the same GDAL, HDF5 "
                                     f"and PROJ as QGIS, so not with pip): {', '.join(packages)}")
    command = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if os.geteuid() == 0:
        return command
    if shutil.which("pkexec"):
        return ["pkexec", *command]  # asks for an administrator's password in a window
    raise MissingDependencyError(f"run this in a terminal, then restart QGIS: sudo apt install {' '.join(packages)}")


def run_logged(command: Sequence[str], log: Log, check_cancel: CheckCancel, env: Optional[dict] = None,
               on_line: Callable[[str], None] = lambda line: None) -> None:
    """Run ``command``, passing each output line to ``log``; a cancel stops it (and its children) at once."""
    options = {}
    if os.name == "nt":
        options["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0) | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True
    log("$ " + " ".join(command))
    # B603: pip or apt-get with the installer's argument list (requirement specifiers, paths), never a shell
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # nosec B603
                               text=True, errors="replace", env=env, **options)
    lines: Queue = Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] and None, daemon=True)
    reader.start()
    tail: List[str] = []
    try:
        while True:
            try:
                line = lines.get(timeout=0.2).rstrip()
            except Empty:
                check_cancel()
                if process.poll() is not None and not reader.is_alive() and lines.empty():
                    break
                continue
            if line:
                log(line)
                on_line(line)
                if any(sign in line for sign in ("ERROR", "error:", "depends on", "(constraint)", "E: ")):
                    tail = (tail + [line.strip()])[-6:]
    except Cancelled:
        _stop(process)
        raise
    finally:
        reader.join(5)
        process.stdout.close()
    if process.wait() != 0:
        what = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command[:4]))
        raise MissingDependencyError(f"{what} failed (exit {process.returncode}): " + ("; ".join(tail) or "see the log"))


def _stop(process: subprocess.Popen) -> None:
    try:
        if os.name == "nt":
            process.terminate()
        else:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()


@dataclass
class _Phases:
    """Progress from pip's output: resolution up to 40 %, installation up to 95 %."""

    progress: Progress
    expected: int = 1
    seen: Dict[str, int] = field(default_factory=dict)

    def line(self, phase: str, start: float, end: float) -> Callable[[str], None]:
        def on_line(text: str) -> None:
            if text.startswith(("Collecting", "Processing", "Downloading", "Using cached", "Building wheel")):
                self.seen[phase] = self.seen.get(phase, 0) + 1
                done = min(1.0, self.seen[phase] / max(self.expected, 1))
                self.progress(start + (end - start) * done)
        return on_line


def install(plan: InstallPlan, target: Optional[Path], *, python: Optional[str] = None, log: Log = print,
            progress: Progress = lambda fraction: None, check_cancel: CheckCancel = lambda: None,
            extra_constraints: Sequence[str] = (), allow_source: Sequence[str] = ()) -> InstallResult:
    """Carry out ``plan``: distribution packages, then pip into ``target`` (or, with None, into ``python``'s
    own environment: make setup's virtualenv). ``extra_constraints``: more pins (the repository's tested
    versions); ``allow_source``: distributions that may be built from an sdist (test tools)."""
    system_done: Tuple[str, ...] = ()
    if plan.system:
        check_cancel()
        log("Installing from the distribution: " + " ".join(plan.system))
        run_logged(system_install_command(plan.system), log, check_cancel)
        system_done = plan.system
    progress(0.1)
    if not (plan.pip or plan.without_dependencies):
        progress(1.0)
        return InstallResult(system=system_done)
    python = python or find_python()
    with tempfile.TemporaryDirectory(prefix="canopy-explorer-pip-") as scratch:
        scratch = Path(scratch)
        pip = pip_command(python, (Path(target).parent if target else scratch) / "pip", log=log)
        search_path = [str(target)] if target else []
        present = present_distributions(python, search_path)
        constraints = scratch / "constraints.txt"
        pinned = constraint_lines(present, plan.replaces)
        pinned_names = {line.split("==")[0] for line in pinned}
        pinned += [c for c in extra_constraints if normalise(c.split("=")[0].split("<")[0].split(">")[0]) not in pinned_names]
        constraints.write_text("\n".join(pinned) + "\n", encoding="utf-8")
        binaries = ["--only-binary", ":all:"]
        for name in list(plan.from_source) + list(allow_source):
            binaries += ["--no-binary", name]
        phases = _Phases(progress, expected=max(len(plan.pip), 1))
        resolved: List[Tuple[str, str]] = []
        if plan.pip:
            report = scratch / "report.json"
            run_logged(pip + ["install", "--dry-run", "--disable-pip-version-check", "--progress-bar", "off", "--report",
                              str(report), "--constraint", str(constraints), *binaries, *plan.pip],
                       log, check_cancel, env=clean_environment(search_path), on_line=phases.line("resolve", 0.1, 0.4))
            chosen = json.loads(report.read_text(encoding="utf-8")).get("install", [])
            resolved = [(item["metadata"]["name"], item["metadata"]["version"]) for item in chosen]
            # A wheel pip found in a local folder (its find-links, or a path given as a requirement) is found there again.
            for item in chosen:
                url = item.get("download_info", {}).get("url", "")
                if url.startswith("file://"):
                    binaries += ["--find-links", str(Path(urllib.parse.unquote(url[len("file://"):])).parent)]
        wanted = [f"{name}=={version}" for name, version in resolved] + list(plan.without_dependencies)
        if not wanted:
            progress(1.0)
            return InstallResult(system=system_done, target=str(target or ""))
        phases.expected = len(wanted)
        staging = None
        destination: List[str] = []
        if target is not None:
            Path(target).mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=Path(target).parent))
            destination = ["--target", str(staging)]
        try:
            run_logged(pip + ["install", "--no-deps", "--upgrade", "--disable-pip-version-check", "--progress-bar", "off",
                              "--no-warn-script-location", *destination, "--constraint", str(constraints), *binaries, *wanted],
                       log, check_cancel, env=clean_environment(), on_line=phases.line("install", 0.4, 0.95))
            check_cancel()
            if staging is not None:
                _move_into(staging, Path(target))
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
    installed = tuple(resolved) + tuple((spec.split(">")[0].split("<")[0].split("=")[0], "") for spec in plan.without_dependencies)
    versions = present_distributions(python, search_path)
    installed = tuple((name, versions.get(normalise(name), version)) for name, version in installed)
    progress(1.0)
    return InstallResult(installed, system_done, str(target or ""), plan.replaces)


def _move_into(staging: Path, target: Path) -> None:
    """Move each installed package into ``target``, replacing older copies (and their metadata) of the same projects."""
    new_projects = {normalise(p.name.split("-")[0]) for p in staging.glob("*.dist-info")}
    for old in target.glob("*.dist-info"):
        if normalise(old.name.split("-")[0]) in new_projects:
            for line in (old / "RECORD").read_text(encoding="utf-8").splitlines() if (old / "RECORD").is_file() else ():
                top = line.split(",")[0].split("/")[0]
                if top and not top.endswith(".dist-info") and top != "..":
                    _remove(target / top)
            _remove(old)
    for entry in staging.iterdir():
        if entry.name == "bin":
            continue  # console scripts: they name the staging folder's interpreter path and are not used by the plugin
        _remove(target / entry.name)
        entry.rename(target / entry.name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
