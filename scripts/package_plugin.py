#!/usr/bin/env python3
"""Build the plugin zip for plugins.qgis.org, or install the plugin into a QGIS profile.

    python3 scripts/package_plugin.py zip dist/canopy_explorer.zip
    python3 scripts/package_plugin.py deploy ~/.local/share/QGIS/QGIS3/profiles/default/python/plugins
"""

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "canopy_explorer"
# What a user's QGIS needs; tests, benchmarks, scripts and docs stay in the repository.
INCLUDED = ("metadata.txt", "LICENSE", "README.md", "requirements.txt", "__init__.py", "plugin", "ui", "resources", "configs")
EXCLUDED_DIRS = {"__pycache__", "tests", ".pytest_cache"}
# Compiled or binary payloads are not accepted by plugins.qgis.org.
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".exe", ".h5", ".tif", ".tiff", ".gpkg", ".zip"}


def plugin_files():
    for name in INCLUDED:
        path = ROOT / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(ROOT)
                if child.is_file() and not EXCLUDED_DIRS.intersection(relative.parts) and child.suffix not in EXCLUDED_SUFFIXES:
                    yield child


def build_zip(target: Path) -> Path:
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            archive.write(path, f"{PLUGIN_NAME}/{path.relative_to(ROOT).as_posix()}")
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
