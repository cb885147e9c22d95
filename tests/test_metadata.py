"""metadata.txt meets the plugins.qgis.org rules."""

import configparser
import re

from conftest import ROOT

REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository")
RECOMMENDED = ("tracker", "homepage", "tags", "icon", "changelog", "hasProcessingProvider")


def metadata():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep qgisMinimumVersion's case
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_required_and_recommended_keys_are_present_and_not_empty():
    general = metadata()
    for key in REQUIRED + RECOMMENDED:
        assert general.get(key, "").strip(), key


def test_values_follow_the_repository_rules():
    general = metadata()
    assert general["name"] == "Canopy Explorer"
    assert general["qgisMinimumVersion"] == "3.22"
    assert re.fullmatch(r"\d+\.\d+\.\d+", general["version"])
    assert general["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", general["email"])
    for key in ("tracker", "repository", "homepage"):
        assert general[key].startswith("https://"), key
    assert (ROOT / general["icon"]).is_file()
    assert general["version"] in general["changelog"]
    assert len(general["description"]) < 300  # one sentence; the details go in "about"


def test_license_is_gpl2_or_later_like_qgis():
    text = (ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2" in text
