"""The checks the code must pass before it ships: plugins.qgis.org's upload checks (Bandit, detect-secrets)
over exactly what `make zip` ships, and the QGIS 4 / Qt6 readiness checks (flake8-qgis, scoped enums,
the Designer forms under PyQt6).

No QGIS 4 build can be installed on these machines, so QGIS 4 is checked statically and with PyQt6
from the package index, not run.
"""

import ast
import configparser
import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import package_plugin  # noqa: E402

PYTHON_SOURCES = ["plugin", "scripts", "tests", "__init__.py"]


# --------------------------------------------------------------------------- plugins.qgis.org upload checks


def test_bandit_and_detect_secrets_find_nothing_in_what_the_zip_ships(tmp_path):
    target = package_plugin.build_zip(tmp_path / "canopy_explorer.zip")  # runs both checks over the staged files
    assert target.is_file()


def test_the_zip_is_refused_when_either_check_finds_something(tmp_path):
    root = tmp_path / "checkout"
    for name in package_plugin.INCLUDED:
        source = ROOT / name
        if source.is_dir():
            shutil_copytree(source, root / name)
        elif source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(source.read_bytes())
    (root / "plugin" / "core" / "careless.py").write_text(
        "import subprocess\n\n\ndef run(command):\n    return subprocess.call(command, shell=True)\n\n\n"
        "AWS_SECRET = 'AKIAIOSFODNN7EXAMPLE'\n")
    with pytest.raises(SystemExit) as refused:
        package_plugin.build_zip(tmp_path / "refused.zip", root=root)
    message = str(refused.value)
    assert "plugins.qgis.org would refuse it" in message
    assert "bandit B602 at ./plugin/core/careless.py:5" in message
    assert "detect-secrets AWS Access Key at plugin/core/careless.py:8" in message
    assert not (tmp_path / "refused.zip").exists() and not (tmp_path / "refused.zip.part").exists()


def shutil_copytree(source, target):
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


# --------------------------------------------------------------------------- QGIS 4 / Qt6 readiness


def test_flake8_qgis_finds_nothing_in_plugin_scripts_and_tests():
    """The QGIS plugin rules and flake8-qgis's Qt6 checks; .flake8 says which rules are left out and why."""
    run = subprocess.run([sys.executable, "-m", "flake8", *PYTHON_SOURCES], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "flake8-qgis" in subprocess.run([sys.executable, "-m", "flake8", "--version"], capture_output=True, text=True).stdout


def _enum_member(value) -> bool:
    """A member of a sip-wrapped C++ enum (what QGIS 4's PyQt6 only accepts through its enum's name)."""
    return type(type(value)).__name__ == "enumtype"


def unscoped_enum_uses(paths):
    """``Class.Member`` where Member is an enum member of a QGIS or Qt class: QGIS 4 needs ``Class.Enum.Member``."""
    import qgis.core
    import qgis.gui
    from qgis.PyQt import QtCore, QtGui, QtWidgets

    modules = (qgis.core, qgis.gui, QtCore, QtGui, QtWidgets)
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            owner = next((getattr(m, node.value.id) for m in modules if hasattr(m, node.value.id)), None)
            if isinstance(owner, type) and _enum_member(getattr(owner, node.attr, None)):
                member = getattr(owner, node.attr)
                shown = path.relative_to(ROOT) if ROOT in path.parents else path
                found.append(f"{shown}:{node.lineno}: {node.value.id}.{node.attr} "
                             f"(QGIS 4: {node.value.id}.{type(member).__name__}.{node.attr} or its new home)")
    return found


def python_files():
    for name in PYTHON_SOURCES:
        path = ROOT / name
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_qgis_and_qt_enums_are_used_by_their_scoped_names():
    assert unscoped_enum_uses(python_files()) == []


def test_the_enum_check_catches_an_unscoped_name(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from qgis.core import Qgis, QgsTask\nlevel = Qgis.Warning\nflag = QgsTask.Flag.CanCancel\n")
    [finding] = unscoped_enum_uses([sample])
    assert "Qgis.Warning" in finding and "Qgis.MessageLevel.Warning" in finding


def test_every_designer_form_loads_under_pyqt6(tmp_path):
    """Each .ui file loaded by PyQt6's uic (offscreen), the QGIS widgets it names stood in for by plain Qt widgets."""
    from environment_fixtures import SYSTEM_PYTHON, packages_with

    pyqt6 = packages_with("PyQt6==6.8.1", dependencies=True)  # Qt 6.8, the LTS QGIS 4.0 builds on
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for module, (widget, base) in {"qgsmaplayercombobox": ("QgsMapLayerComboBox", "QComboBox"),
                                   "qgsfieldcombobox": ("QgsFieldComboBox", "QComboBox"),
                                   "qgsfilewidget": ("QgsFileWidget", "QWidget"),
                                   "qgsauthconfigselect": ("QgsAuthConfigSelect", "QWidget")}.items():
        (stubs / f"{module}.py").write_text(f"from PyQt6.QtWidgets import {base}\n\n\nclass {widget}({base}):\n    pass\n")
    forms = sorted((ROOT / "ui").glob("*.ui"))
    code = (
        "import sys\n"
        "from PyQt6 import uic\n"
        "from PyQt6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        f"for form in {[str(f) for f in forms]!r}:\n"
        "    widget = uic.loadUi(form)\n"
        "    print(form, type(widget).__name__, len(widget.findChildren(object)))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    environment.update(PYTHONPATH=os.pathsep.join([str(pyqt6), str(stubs)]), QT_QPA_PLATFORM="offscreen")
    run = subprocess.run([SYSTEM_PYTHON, "-c", code], env=environment, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    loaded = [line.split()[0] for line in run.stdout.splitlines()]
    assert loaded == [str(f) for f in forms] and forms


def test_metadata_declares_qt6_support_and_qgis_4():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert general["supportsQt6"] == "True"
    assert general["qgisMinimumVersion"] == "3.22" and general["qgisMaximumVersion"] == "4.99"
