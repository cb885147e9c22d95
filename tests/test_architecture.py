"""The layering docs/ARCHITECTURE.md describes, held against the code's imports.

The engine (plugin/core) never imports QGIS, so it runs from plain Python and in worker processes;
imports run downwards only (gui and processing -> tasks -> layers -> core), so one operation has one
implementation that the dialog and Processing reach the same way.
"""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PLUGIN = ROOT / "plugin"
SHARED_CORE = {"callbacks", "errors", "map_classes", "natural_breaks", "polygons", "segment_files", "proj_context", "environment", "values"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("canopy_explorer",) + (parts[:-1] if parts[-1] == "__init__" else parts))


def imports_of(path: Path, root: Path = ROOT):
    """Every module ``path`` imports (absolute names), at any depth of the file."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # "from . import x" names a module


def plugin_modules(root: Path = ROOT):
    return sorted(p for p in (root / "plugin").rglob("*.py") if "__pycache__" not in p.parts)


def area(module: str) -> str:
    """The part of the plugin a module belongs to: core.<domain>, core (shared), gui, processing, ..."""
    parts = module.split(".")
    if parts[:2] != ["canopy_explorer", "plugin"] or len(parts) < 3:
        return ""
    if parts[2] == "core":
        if len(parts) > 3 and parts[3] not in SHARED_CORE:
            return f"core.{parts[3]}"
        return "core"
    return parts[2]


# What each part may import from the plugin (beyond itself).
ALLOWED = {
    "core": {"core"},
    "core.lidar": {"core"},
    "core.sentinel2": {"core", "core.lidar"},
    "core.districts": {"core", "core.lidar"},
    "core.grid": {"core", "core.lidar"},
    "core.samples": {"core", "core.lidar", "core.sentinel2"},
    "layers": {"core", "core.lidar", "core.sentinel2", "core.districts", "core.grid", "core.samples", "qgis_compat",
               "resources"},
    "tasks": {"core", "core.lidar", "core.sentinel2", "core.districts", "core.grid", "core.samples", "layers",
              "qgis_compat", "resources", "environment"},
}


def test_the_engine_never_imports_qgis():
    found = [(module_name(path), name) for path in plugin_modules() if area(module_name(path)).startswith("core")
             for name in imports_of(path) if name.split(".")[0] in ("qgis", "PyQt5", "PyQt6", "sip")]
    assert found == []


def test_the_engine_imports_in_a_python_without_qgis():
    """Not only the import lines: every engine module loads in a Python where importing qgis fails."""
    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['qgis'] = None\n"  # import qgis -> ImportError
        "import canopy_explorer.plugin.core as core\n"
        "names = [m.name for m in pkgutil.walk_packages(core.__path__, core.__name__ + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[-1]) > 30


def layering_violations(root: Path = ROOT):
    wrong = []
    for path in plugin_modules(root):
        here = area(module_name(path, root))
        for name in imports_of(path, root):
            there = area(name)
            if not there or there == here:
                continue
            if here in ALLOWED and there not in ALLOWED[here]:
                wrong.append(f"{module_name(path, root)} imports {name} ({here} -> {there})")
            if here == "processing" and there in ("gui", "tasks"):
                wrong.append(f"{module_name(path, root)} imports {name} (Processing runs without the dialog and its tasks)")
            if here == "gui" and there == "processing":
                wrong.append(f"{module_name(path, root)} imports {name} (the dialog and Processing share the engine, not each other)")
    return wrong


def test_imports_run_downwards_only():
    assert layering_violations() == []


def test_a_wrong_way_import_is_found(tmp_path):
    """The check can fail: a plugin tree whose engine imports the QGIS side, and whose lidar engine
    imports a domain built on it, is reported (relative imports resolved at any depth)."""
    files = {
        "plugin/core/lidar/query.py": "from ...layers.segment_layer import write_query_output\n",
        "plugin/core/lidar/filters.py": "def f():\n    from ..grid import change\n",
        "plugin/processing/atl08_query.py": "from ..tasks.query_task import QueryTask\n",
        "plugin/core/grid/change.py": "from ..lidar.query import SegmentQuery\n",  # allowed
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    wrong = layering_violations(tmp_path)
    assert sorted({line.split(" imports ")[0] for line in wrong}) == [
        "canopy_explorer.plugin.core.lidar.filters", "canopy_explorer.plugin.core.lidar.query",
        "canopy_explorer.plugin.processing.atl08_query"]
