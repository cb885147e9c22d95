"""Graduated natural-breaks symbology for segment layers, built from breaks computed in the engine,
and the ``.qml`` default styles written beside raster outputs.

Built from plain objects (no QgsStyle lookups), so it can run inside a task.
"""

import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from qgis.core import (
    QgsClassificationJenks,
    QgsColorBrewerColorRamp,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsMarkerSymbol,
    QgsRendererRange,
)
from qgis.PyQt.QtGui import QColor

from ..core.errors import OutputError, UnknownVariableError
from ..core.lidar.atl08.catalogue import get_variable
from ..core.segment_files import temporary_sibling


def gradient(colours: Sequence[str]) -> QgsGradientColorRamp:
    step = 1.0 / (len(colours) - 1)
    stops = [QgsGradientStop(i * step, QColor(c)) for i, c in enumerate(colours[1:-1], start=1)]
    return QgsGradientColorRamp(QColor(colours[0]), QColor(colours[-1]), False, stops)


UNIT_SYMBOLS = {"meters": "m", "metres": "m", "kilometers": "km", "degrees": "°", "degrees_east": "°", "radians": "rad", "seconds": "s", "percent": "%"}
TERRAIN = ("#2b83ba", "#1a9641", "#a6d96a", "#ffffbf", "#d7a35c", "#8c510a", "#f5f5f5")
VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")


def colour_ramp_for(variable: Optional[str]):
    """Greens for canopy variables, terrain colours for terrain, viridis for the rest."""
    category = _category(variable)
    if category == "Canopy":
        return QgsColorBrewerColorRamp("Greens", 9)
    if category == "Terrain":
        return gradient(TERRAIN)
    return gradient(VIRIDIS)


def _category(variable: Optional[str]) -> str:
    try:
        return get_variable(variable).category if variable else ""
    except UnknownVariableError:
        return ""


def units_for(variable: Optional[str]) -> str:
    try:
        units = get_variable(variable).units if variable else ""
    except UnknownVariableError:
        return ""
    if units in ("", "adimensional", "counts"):
        return ""
    return UNIT_SYMBOLS.get(units, units)


def _format(value: float, units: str) -> str:
    digits = 0 if abs(value) >= 100 else (1 if abs(value) >= 1 else 3)
    return f"{value:.{digits}f}" + (f" {units}" if units else "")


def graduated_renderer(field: str, variable: Optional[str], minimum: float, breaks: Sequence[float], ramp=None,
                       geometry: str = "point") -> QgsGraduatedSymbolRenderer:
    """Classes [minimum, b1], (b1, b2], ... coloured along the variable's ramp (or ``ramp``), labelled with units;
    ``geometry`` "point" (segments) or "polygon" (districts)."""
    ramp = ramp or colour_ramp_for(variable)
    units = units_for(variable)
    ranges = []
    lower = minimum
    count = len(breaks)
    for index, upper in enumerate(breaks):
        if geometry == "polygon":
            symbol = QgsFillSymbol.createSimple({"outline_color": "#555555", "outline_width": "0.2"})
        else:
            symbol = QgsMarkerSymbol.createSimple({"name": "circle", "size": "1.8", "outline_style": "no"})
        symbol.setColor(ramp.color(index / (count - 1) if count > 1 else 1.0))
        label = f"{_format(lower, units)} – {_format(upper, units)}"
        ranges.append(QgsRendererRange(lower, upper, symbol, label))
        lower = upper
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    renderer.setSourceColorRamp(ramp.clone())
    # records how the classes were made; setMode() is deprecated (a DeprecationWarning on every query in 3.40)
    renderer.setClassificationMethod(QgsClassificationJenks())
    return renderer


def save_raster_default_style(path: Path, renderer_for: Callable, what: str) -> None:
    """Write ``<name>.qml`` beside the raster ``path`` (atomically): QGIS's default style for the file.

    ``renderer_for(provider)`` builds the renderer for the opened raster; ``what`` names the
    raster in errors ("the composite", "the raster")."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(path), "style")
    if not layer.isValid():
        raise OutputError(f"{what} {path.name} cannot be opened to store its style")
    layer.setRenderer(renderer_for(layer.dataProvider()))
    target = path.with_suffix(".qml")
    temporary = temporary_sibling(target)
    message, ok = layer.saveNamedStyle(str(temporary))
    if not ok:
        raise OutputError(f"cannot write the style {target.name}: {message}")
    os.replace(temporary, target)
