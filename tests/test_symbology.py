"""Graduated renderers record how their classes were made through the current QGIS API, not a deprecated one."""

import warnings
from types import SimpleNamespace

import numpy as np

from canopy_explorer.plugin.layers.grid_layer import baseline_renderer, change_renderer
from canopy_explorer.plugin.layers.symbology import graduated_renderer


def _deprecations(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        renderer = build()
    return renderer, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def test_segment_and_district_renderers_say_natural_breaks_without_a_deprecation_warning(qgis_app):
    for geometry in ("point", "polygon"):
        renderer, deprecations = _deprecations(lambda: graduated_renderer("h_canopy", "h_canopy", 2.0, [8.0, 15.0, 30.0], geometry=geometry))
        assert deprecations == []  # setMode() warned on every query (QGIS 3.22 and 3.40 alike)
        assert renderer.classificationMethod().id() == "Jenks" and len(renderer.ranges()) == 3


def test_grid_renderers_say_equal_intervals_without_a_deprecation_warning(qgis_app):
    result = SimpleNamespace(columns={"median_p1": np.array([3.0, 12.0, 35.0]), "change": np.array([-4.0, 0.5, 6.0])},
                             catalogue_variable="h_canopy")
    for build in (lambda: baseline_renderer(result), lambda: change_renderer(result, 5.0)):
        renderer, deprecations = _deprecations(build)
        assert deprecations == []
        assert renderer.classificationMethod().id() == "EqualInterval"
