"""The Python interpreter QGIS embeds, and a pip to run with it.

Inside QGIS ``sys.executable`` is often the QGIS program itself (``/usr/bin/qgis``,
``qgis-bin.exe``), so running ``sys.executable -m pip`` would start another QGIS. The
interpreter is found beside the standard library instead and checked to be the same
version. Debian's QGIS does not depend on ``python3-pip``; where pip is missing or too
old for ``--report`` (22.2), a pip wheel is fetched from the package index and run from
the wheel file, as ``get-pip`` does, without installing it anywhere.
"""

import json
import os
import shutil
# B404: runs fixed programs with argument lists, never a shell
import subprocess  # nosec B404
import sys
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import MissingDependencyError

PIP_WITH_REPORT = (22, 2)  # the first pip with ``install --dry-run --report``
DEFAULT_INDEX = "https://pypi.org/simple"


IDENTITY = "import sys; print(repr((tuple(sys.version_info[:3]), sys.prefix, sys.base_prefix)))"


def _candidates() -> List[Path]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    names = []
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)):
        names += [Path(prefix, "bin", f"python{version}"), Path(prefix, "bin", "python3"),  # Linux, macOS, venvs
                  Path(prefix, "python.exe"), Path(prefix, "python3.exe")]  # Windows (OSGeo4W, standalone)
    names += [Path(p) for p in (sys.executable, getattr(sys, "_base_executable", "")) if p]
    names += [Path(found) for found in (shutil.which(f"python{version}"), shutil.which("python3")) if found]
    return list(dict.fromkeys(names))


def find_python() -> str:
    """The interpreter that is this process's Python: same version, prefix and base prefix.

    Matching the version alone is not enough: inside desktop QGIS ``sys.executable`` can be whatever
    ``python3`` comes first on PATH (seen: a pyenv shim), whose packages are not QGIS's."""
    wanted = repr((tuple(sys.version_info[:3]), sys.prefix, sys.base_prefix))
    for candidate in _candidates():
        if not candidate.is_file() or "qgis" in candidate.name.lower():
            continue
        try:
            # B603: a Python interpreter beside QGIS's, asked for its version
            answer = subprocess.run([str(candidate), "-c", IDENTITY], capture_output=True, text=True, timeout=30,  # nosec B603
                                    env=clean_environment())
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answer.returncode == 0 and answer.stdout.strip() == wanted:
            return str(candidate)
    raise MissingDependencyError(f"cannot find the Python interpreter QGIS uses (Python {sys.version.split()[0]} in "
                                 f"{sys.prefix}); install the packages with that Python's pip by hand")


def clean_environment(extra_path: Sequence[str] = ()) -> dict:
    """The environment for a child Python: QGIS's own PYTHONHOME/PYTHONPATH removed, ``extra_path`` on PYTHONPATH.

    The pip settings (``PIP_*``, proxies, certificates) stay: they are how this machine reaches its index."""
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
    if extra_path:
        environment["PYTHONPATH"] = os.pathsep.join(str(p) for p in extra_path)
    return environment


def pip_version(python: str) -> Optional[tuple]:
    try:
        answer = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60,  # nosec B603
                                env=clean_environment())
    except (OSError, subprocess.TimeoutExpired):
        return None
    if answer.returncode != 0 or not answer.stdout.startswith("pip "):
        return None
    return tuple(int(p) for p in answer.stdout.split()[1].split(".")[:2] if p.isdigit())


def pip_command(python: str, workdir: Path, force_bootstrap: bool = False, log=print) -> List[str]:
    """``[python, -m, pip]``, or ``[python, <pip wheel>/pip]`` when this Python has no pip new enough."""
    version = None if force_bootstrap else pip_version(python)
    if version is not None and version >= PIP_WITH_REPORT:
        return [python, "-m", "pip"]
    wheel = bootstrap_pip(Path(workdir), log)
    return [python, str(wheel / "pip")]


def bootstrap_pip(workdir: Path, log=print) -> Path:
    """Fetch the newest pip wheel from the index into ``workdir`` (reused when already there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    existing = sorted(workdir.glob("pip-*-py3-none-any.whl"))
    if existing:
        return existing[-1]
    index = os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX).rstrip("/")
    log(f"This Python has no pip {'.'.join(map(str, PIP_WITH_REPORT))} or newer: fetching pip from {index}")
    request = urllib.request.Request(f"{index}/pip/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        # B310: the package index, https by default
        with urllib.request.urlopen(request, timeout=60) as answer:  # nosec B310
            files = json.load(answer)["files"]
        wheels = [f for f in files if f["filename"].endswith("-py3-none-any.whl") and not f.get("yanked")]
        latest = max(wheels, key=lambda f: _release(f["filename"]))
        target = workdir / latest["filename"]
        partial = target.with_name(target.name + ".partial")
        with urllib.request.urlopen(latest["url"], timeout=120) as answer, open(partial, "wb") as out:  # nosec B310
            shutil.copyfileobj(answer, out)
    except (OSError, ValueError, KeyError) as error:
        raise MissingDependencyError(f"cannot fetch pip from {index} ({error}); install pip for this Python "
                                     "(Debian/Ubuntu: sudo apt install python3-pip)") from error
    partial.replace(target)
    return target


def _release(filename: str) -> tuple:
    version = filename.split("-")[1]
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))
