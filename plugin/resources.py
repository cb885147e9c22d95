"""Where the plugin's files are, and its metadata, for the QGIS side."""

import configparser
from functools import lru_cache
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
ICONS = PLUGIN_ROOT / "resources" / "icons"
UI_DIR = PLUGIN_ROOT / "ui"


def icon(name: str):
    from qgis.PyQt.QtGui import QIcon

    return QIcon(str(ICONS / name))


def ui_path(name: str) -> str:
    return str(UI_DIR / name)


@lru_cache(maxsize=1)
def plugin_metadata() -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PLUGIN_ROOT / "metadata.txt", encoding="utf-8")
    return dict(parser["general"])
