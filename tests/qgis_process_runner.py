"""Run Canopy Explorer algorithms in the real C++ host, ``qgis_process.bin run``, as a user's command line does.

    profile = QgisProcessProfile(tmp_path / "qgis")      # plugin linked and enabled in a private profile
    run = profile.run("atl08_query", {"CONFIG": ..., "ROI": "7.05,7.25,45.05,45.25 [EPSG:4326]", ...})
    run.check()                                          # fails with the exit status (or signal) and output tails
    run.results["SEGMENTS"], run.log

Why a C++ host: ``qgis_process.bin`` and desktop QGIS load QGIS's GEOS, GDAL and PROJ into the
global symbol namespace before Python starts, so a Python package built against other versions
(a shapely wheel with another GEOS) fails or crashes there, while a test process that imports
``qgis.core`` from Python never sees it.

The environment is a user's: the plugin folder on ``QGIS_PLUGINPATH`` (a ``canopy_explorer``
symlink to the checkout), a throw-away profile (``QGIS_CUSTOM_CONFIG_PATH``), the test run's venv's
site-packages on ``PYTHONPATH`` (``.venv``, or ``VENV``: the packages a user installs next to QGIS's Python),
no display (``QT_QPA_PLATFORM=offscreen``), and Qt's per-user files (``XDG_CONFIG_HOME``,
``XDG_RUNTIME_DIR``) inside the profile folder so that nothing is written to the home folder.
Debian 12's ``/usr/bin/qgis_process`` wrapper passes ``--noversioncheck``, which 3.22 rejects:
``qgis_process.bin`` is called directly.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = "canopyexplorer"
PLUGIN_NAME = "canopy_explorer"
TAIL = 3000


def qgis_process_binary() -> str:
    return shutil.which("qgis_process.bin", path="/usr/bin") or shutil.which("qgis_process.bin") or "qgis_process"


def running_venv() -> Path:
    """The venv the tests run in (``make setup``'s: ``.venv``, or the one ``VENV`` names, as in the QGIS 3.40 root)."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return Path(os.environ.get("VENV") or ROOT / ".venv")


@lru_cache(maxsize=None)
def venv_site_packages(venv: Optional[Path] = None) -> str:
    """The venv's site-packages folder, as its own interpreter names it (never a hard-coded Python version)."""
    venv = Path(venv) if venv is not None else running_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"no virtualenv at {venv}: run `make setup`")
    found = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, timeout=60, check=True)
    return found.stdout.strip()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"CRASHED: qgis_process was killed by {name} (exit status {returncode})"
    return f"exit status {returncode}"


def _tail(text: str, size: int = TAIL) -> str:
    text = text or ""
    return text if len(text) <= size else "…" + text[-size:]


def as_arguments(parameters: Mapping[str, object]) -> List[str]:
    """``KEY=value`` arguments; a list or tuple becomes the key repeated (multiple-layer parameters)."""
    arguments = []
    for key, value in parameters.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "true" if item else "false"
            arguments.append(f"{key}={'' if item is None else item}")
    return arguments


@dataclass
class ProcessRun:
    """One ``qgis_process.bin`` invocation: what was asked and what came back."""

    command: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    document: Optional[dict] = field(default=None)

    @property
    def crashed(self) -> bool:
        return self.returncode < 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.document is not None

    @property
    def results(self) -> Dict[str, object]:
        return (self.document or {}).get("results", {})

    @property
    def log(self) -> str:
        """Every line the algorithm reported (info, warnings and errors), one per line."""
        log = (self.document or {}).get("log", {})
        return "\n".join(line for lines in log.values() for line in (lines if isinstance(lines, list) else [lines]))

    def describe(self) -> str:
        """What happened, for assertion messages: the exit (a crash by name), the log and results, output tails."""
        if self.document is not None:  # the JSON's tail is the provider's list of formats: show what matters instead
            stdout = f"log:\n{self.log}\nresults: {json.dumps(self.results, default=str)}"
        else:
            stdout = self.stdout
        return (f"{' '.join(self.command[:3])} … → {describe_exit(self.returncode)} after {self.seconds:.1f} s\n"
                f"--- stdout (tail) ---\n{_tail(stdout)}\n--- stderr (tail) ---\n{_tail(self.stderr)}")

    def check(self) -> "ProcessRun":
        """Fail the calling test unless the algorithm ran to completion; a crash is named as such."""
        import pytest

        if self.crashed:
            pytest.fail(self.describe(), pytrace=False)
        if not self.ok:
            pytest.fail(f"the algorithm failed: {self.describe()}", pytrace=False)
        return self


def _json_document(stdout: str) -> Optional[dict]:
    """``--json`` prints one JSON object; anything a library printed before it is skipped."""
    decoder = json.JSONDecoder()
    for line in re.finditer(r"^\{", stdout, re.MULTILINE):
        try:
            return decoder.raw_decode(stdout, line.start())[0]
        except json.JSONDecodeError:
            continue
    return None


_STORE_AUTHENTICATION = """
import json, sys
from qgis.core import QgsApplication, QgsAuthMethodConfig
request = json.load(sys.stdin)
app = QgsApplication([], False)
app.initQgis()
manager = QgsApplication.authManager()
if not manager.setMasterPassword(request["master"], True):
    sys.exit("the master password differs from the one this authentication database was created with")
auth = QgsAuthMethodConfig("Basic")
auth.setName(request["name"])
auth.setConfig("username", request["username"])
auth.setConfig("password", request["password"])
ok, stored = manager.storeAuthenticationConfig(auth)
if not ok:
    sys.exit("QGIS could not store the authentication configuration")
print(json.dumps({"id": stored.id()}))
app.exitQgis()
"""


class QgisProcessProfile:
    """A private QGIS profile with the plugin enabled, and ``qgis_process.bin`` runs in it.

    ``extra_env``: variables set for every run; a value of None removes the variable. Runs read nothing
    from the terminal (standard input is /dev/null), so a prompt, such as QGIS's master password
    prompt, ends instead of waiting forever."""

    def __init__(self, folder: Path, extra_env: Optional[Mapping[str, Optional[str]]] = None, timeout_s: float = 300.0):
        self.folder = Path(folder)
        self.plugins = self.folder / "plugins"
        self.config = self.folder / "config"
        self.timeout_s = timeout_s
        self.extra_env = dict(extra_env or {})
        self.plugins.mkdir(parents=True, exist_ok=True)
        self.config.mkdir(parents=True, exist_ok=True)
        link = self.plugins / PLUGIN_NAME
        if not link.exists():
            link.symlink_to(ROOT)
        enabled = self.command(["plugins", "enable", PLUGIN_NAME])
        if "Enabled" not in enabled.stdout and "already enabled" not in enabled.stderr:
            raise RuntimeError(f"qgis_process could not enable the plugin: {enabled.describe()}")

    @property
    def settings_file(self) -> Path:
        """The profile's QGIS3.ini, which qgis_process reads its settings (saved connections, ...) from."""
        return self.config / "profiles" / "default" / "QGIS" / "QGIS3.ini"

    @property
    def settings_folder(self) -> Path:
        """The profile's own folder (QgsApplication.qgisSettingsDirPath()): QGIS3.ini's parent, and the home of
        the authentication database ``qgis-auth.db``."""
        return self.config / "profiles" / "default"

    def store_basic_authentication(self, name: str, username: str, password: str, master_password: str) -> str:
        """A Basic authentication configuration stored in the profile's authentication database, as a user
        creates one in QGIS (Settings > Options > Authentication), the master password set on first use;
        its id. PyQGIS in this profile's environment does it, so the database is the one qgis_process opens;
        the secrets travel on standard input, never in the command line."""
        request = json.dumps({"name": name, "username": username, "password": password, "master": master_password})
        done = subprocess.run([sys.executable, "-c", _STORE_AUTHENTICATION], input=request, env=self.env(), capture_output=True,
                              text=True, timeout=120, cwd=str(self.folder))
        answer = _json_document(done.stdout)
        if done.returncode != 0 or not answer or not answer.get("id"):
            raise RuntimeError(f"could not store an authentication configuration in {self.settings_folder} "
                               f"({describe_exit(done.returncode)}):\n{_tail(done.stdout)}\n{_tail(done.stderr)}")
        database = self.settings_folder / "qgis-auth.db"  # the id is stored in clear, the configuration encrypted
        if not database.is_file() or answer["id"].encode() not in database.read_bytes():
            raise RuntimeError(f"PyQGIS stored the configuration {answer['id']} elsewhere than in the profile's {database}")
        return answer["id"]

    def env(self) -> Dict[str, str]:
        runtime = self.folder / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = dict(os.environ)
        env.update(
            QGIS_PLUGINPATH=str(self.plugins), QGIS_CUSTOM_CONFIG_PATH=str(self.config), QT_QPA_PLATFORM="offscreen",
            PYTHONPATH=venv_site_packages(), XDG_CONFIG_HOME=str(self.folder / "xdg-config"), XDG_RUNTIME_DIR=str(runtime),
        )
        env.pop("PYTHONHOME", None)
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def command(self, arguments: List[str], timeout_s: Optional[float] = None) -> ProcessRun:
        import time

        command = [qgis_process_binary()] + list(arguments)
        started = time.monotonic()
        try:
            done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=timeout_s or self.timeout_s,
                                  cwd=str(self.folder), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            out = error.stdout.decode("utf-8", "replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
            err = error.stderr.decode("utf-8", "replace") if isinstance(error.stderr, bytes) else (error.stderr or "")
            raise AssertionError(f"qgis_process did not finish within {error.timeout:.0f} s: {' '.join(command)}\n"
                                 f"--- stdout (tail) ---\n{_tail(out)}\n--- stderr (tail) ---\n{_tail(err)}") from None
        return ProcessRun(command, done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def run(self, algorithm: str, parameters: Mapping[str, object], timeout_s: Optional[float] = None) -> ProcessRun:
        """``qgis_process.bin run canopyexplorer:<algorithm> --json -- KEY=value ...``; the JSON answer parsed."""
        name = algorithm if ":" in algorithm else f"{PROVIDER}:{algorithm}"
        run = self.command(["run", name, "--json", "--"] + as_arguments(parameters), timeout_s)
        if run.returncode == 0:
            run.document = _json_document(run.stdout)
        return run
