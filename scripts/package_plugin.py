#!/usr/bin/env python3
"""Build the plugin zip for plugins.qgis.org, or install the plugin into a QGIS profile.

    .venv/bin/python scripts/package_plugin.py zip dist/canopy_explorer.zip
    .venv/bin/python scripts/package_plugin.py deploy ~/.local/share/QGIS/QGIS3/profiles/default/python/plugins

Since 2026 plugins.qgis.org refuses a version in which Bandit or detect-secrets finds anything, so
the zip is built only when both pass over exactly the files it would hold (each accepted Bandit
finding is justified where it is, with ``# nosec <id>`` and the reason on the line above).
"""

import argparse
import json
import shutil
import subprocess  # nosec B404
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "canopy_explorer"
# What a user's QGIS needs; tests, benchmarks, scripts and docs stay in the repository.
INCLUDED = ("metadata.txt", "LICENSE", "README.md", "requirements.txt", "__init__.py", "plugin", "ui", "resources", "configs")
EXCLUDED_DIRS = {"__pycache__", "tests", ".pytest_cache"}
# Sample data of `make demo` and the tests only; the plugin's own *Sample database* needs the granule
# generator and the database builder (plugin/core/samples/granules.py, database.py), which stay.
EXCLUDED_FILES = {"plugin/core/samples/scenes.py", "plugin/core/samples/stac_server.py", "plugin/core/samples/basemap.py",
                  "plugin/core/samples/districts.py", "plugin/core/samples/postgis_server.py"}
# Compiled or binary payloads are not accepted by plugins.qgis.org.
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".exe", ".h5", ".tif", ".tiff", ".gpkg", ".zip"}


def plugin_files(root: Path = ROOT):
    for name in INCLUDED:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(root)
                if (child.is_file() and not EXCLUDED_DIRS.intersection(relative.parts) and child.suffix not in EXCLUDED_SUFFIXES
                        and relative.as_posix() not in EXCLUDED_FILES):
                    yield child


def upload_checks(folder: Path) -> List[str]:
    """What Bandit and detect-secrets find in ``folder``, one line each (nothing: the upload would pass)."""
    findings = []
    # B603: this Python running the two checkers on a folder of ours
    bandit = subprocess.run([sys.executable, "-m", "bandit", "-r", "-q", "-f", "json", "."], cwd=folder,  # nosec B603
                            capture_output=True, text=True)
    if bandit.returncode not in (0, 1) or not bandit.stdout.strip():
        raise RuntimeError(f"bandit could not run: {bandit.stderr.strip()[-2000:]}")
    for issue in json.loads(bandit.stdout)["results"]:
        findings.append(f"bandit {issue['test_id']} at {issue['filename']}:{issue['line_number']}: {issue['issue_text']}")
    secrets = subprocess.run([sys.executable, "-m", "detect_secrets", "scan", "--all-files", "."], cwd=folder,  # nosec B603
                             capture_output=True, text=True)
    if secrets.returncode != 0:
        raise RuntimeError(f"detect-secrets could not run: {secrets.stderr.strip()[-2000:]}")
    for filename, hits in json.loads(secrets.stdout)["results"].items():
        findings += [f"detect-secrets {hit['type']} at {filename}:{hit['line_number']}" for hit in hits]
    return findings


def build_zip(target: Path, root: Path = ROOT) -> Path:
    """The zip of the plugin files under ``root``, after the upload checks pass over exactly those files."""
    target = Path(target).resolve()
    with tempfile.TemporaryDirectory(prefix="canopy-zip-") as staging:
        folder = Path(staging) / PLUGIN_NAME
        for path in plugin_files(root):
            copy = folder / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        findings = upload_checks(folder)
        if findings:
            raise SystemExit("not building the zip: plugins.qgis.org would refuse it:\n  " + "\n  ".join(findings))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{PLUGIN_NAME}/{path.relative_to(folder).as_posix()}")
        tmp.replace(target)
    return target


def deploy(plugins_dir: Path) -> Path:
    plugins_dir = Path(plugins_dir).expanduser().resolve()
    plugins_dir.mkdir(parents=True, exist_ok=True)
    destination = plugins_dir / PLUGIN_NAME
    staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_NAME}-", dir=plugins_dir))
    for path in plugin_files():
        copy = staging / path.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    if destination.is_symlink() or destination.is_file():
        destination.unlink()
    elif destination.exists():
        shutil.rmtree(destination)
    staging.rename(destination)
    return destination


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("zip", "deploy"))
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    if args.command == "zip":
        print(f"built {build_zip(args.target)}")
    else:
        print(f"installed into {deploy(args.target)}; enable 'Canopy Explorer' in Plugins > Manage and Install Plugins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
