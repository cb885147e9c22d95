"""Grid change on the QGIS side: run the engine, store the styles, open the layers.

Styled like the seed's figure: the baseline (period 1 median) with a sequential ramp on
fixed 2-40 m classes, the change with a diverging ramp symmetric at the 95th percentile
of the absolute change (the outer classes reaching the largest absolute change on both sides). A GeoPackage keeps both styles in ``layer_styles`` (the change
map is the default); a GeoTIFF gets a ``.qml`` for the change band beside it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from qgis.core import (
    QgsClassificationEqualInterval,
    QgsColorBrewerColorRamp,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererRange,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from ..core.errors import OutputError
from ..core.grid.change import (FIELDS, LAYER_NAME, GridChange, GridChangeRequest, grid_change, write_cells_geopackage,
                                write_cells_raster)
from ..qgis_compat import SHADER_LINEAR
from .symbology import save_raster_default_style, units_for

BASELINE_RANGE = (2.0, 40.0)  # metres, fixed as in the seed's figure
BASELINE_CLASSES = 8
CHANGE_CLASSES = 10
CHANGE_PERCENTILE = 95
BASELINE_STYLE, CHANGE_STYLE = "Baseline (period 1 median)", "Change (period 2 - period 1)"


@dataclass
class GridChangeOutput:
    result: GridChange
    path: str
    change_limit: float  # the diverging ramp runs from -limit to +limit

    @property
    def raster(self) -> bool:
        return self.path.lower().endswith((".tif", ".tiff"))

    def layer_name(self, kind: str) -> str:
        (a, b), (c, d) = self.result.periods
        if kind == "baseline":
            return f"{self.result.variable} median {a[:4]}-{b[:4]}"
        return f"{self.result.variable} change {c[:4]}-{d[:4]} vs {a[:4]}-{b[:4]}"


def change_limit(change: np.ndarray) -> float:
    finite = np.abs(change[np.isfinite(change)])
    limit = float(np.percentile(finite, CHANGE_PERCENTILE)) if len(finite) else 0.0
    return limit if limit > 0 else 1.0


def _classes(lower: float, upper: float, count: int, minimum: float, maximum: float):
    """``count`` equal classes from lower to upper; the outer ones reach the data's extremes."""
    edges = list(np.linspace(lower, upper, count + 1))
    edges[0], edges[-1] = min(edges[0], minimum), max(edges[-1], maximum)
    return list(zip(edges[:-1], edges[1:]))


def _label(a: float, b: float, units: str) -> str:
    digits = 1 if max(abs(a), abs(b)) >= 1 else 2
    return f"{a:.{digits}f} – {b:.{digits}f}" + (f" {units}" if units else "")


def _graduated(field: str, classes, ramp, units: str) -> QgsGraduatedSymbolRenderer:
    ranges = []
    for index, (lower, upper) in enumerate(classes):
        symbol = QgsFillSymbol.createSimple({"outline_style": "no"})  # cells touch: outlines would hide small ones
        symbol.setColor(ramp.color(index / (len(classes) - 1) if len(classes) > 1 else 1.0))
        ranges.append(QgsRendererRange(lower, upper, symbol, _label(lower, upper, units)))
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    renderer.setSourceColorRamp(ramp.clone())
    renderer.setClassificationMethod(QgsClassificationEqualInterval())  # not the deprecated setMode()
    return renderer


def baseline_renderer(result: GridChange) -> QgsGraduatedSymbolRenderer:
    values = result.columns["median_p1"]
    classes = _classes(*BASELINE_RANGE, BASELINE_CLASSES, float(np.nanmin(values, initial=BASELINE_RANGE[0])),
                       float(np.nanmax(values, initial=BASELINE_RANGE[1])))
    return _graduated("median_p1", classes, QgsColorBrewerColorRamp("YlGnBu", 9), units_for(result.catalogue_variable))


def change_renderer(result: GridChange, limit: float) -> QgsGraduatedSymbolRenderer:
    values = result.columns["change"]
    # the outer classes reach the largest |change| on both sides, so the classes stay symmetric around 0
    reach = float(np.nanmax(np.abs(values), initial=limit))
    classes = _classes(-limit, limit, CHANGE_CLASSES, -reach, reach)
    return _graduated("change", classes, QgsColorBrewerColorRamp("BrBG", 11), units_for(result.catalogue_variable))


def _raster_renderer(provider, band: int, low: float, high: float, ramp, steps: int) -> QgsSingleBandPseudoColorRenderer:
    """Colours interpolated along ``ramp`` from ``low`` to ``high`` in ``steps`` labelled stops."""
    items = []
    for i in range(steps + 1):
        value = low + (high - low) * i / steps
        items.append(QgsColorRampShader.ColorRampItem(value, ramp.color(i / steps), f"{value:.2f}"))
    shader_function = QgsColorRampShader(low, high, ramp.clone(), SHADER_LINEAR)
    shader_function.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    return renderer


def change_raster_renderer(provider, limit: float) -> QgsSingleBandPseudoColorRenderer:
    return _raster_renderer(provider, FIELDS.index("change") + 1, -limit, limit, QgsColorBrewerColorRamp("BrBG", 11), CHANGE_CLASSES)


def baseline_raster_renderer(provider) -> QgsSingleBandPseudoColorRenderer:
    return _raster_renderer(provider, FIELDS.index("median_p1") + 1, *BASELINE_RANGE, QgsColorBrewerColorRamp("YlGnBu", 9), BASELINE_CLASSES)


def _store_vector_styles(result: GridChange, limit: float):
    def store(temporary: Path) -> None:
        layer = QgsVectorLayer(f"{temporary}|layername={LAYER_NAME}", "style", "ogr")
        if not layer.isValid():
            raise OutputError(f"the written file {temporary.name} cannot be opened to store its styles")
        for name, renderer, default in ((BASELINE_STYLE, baseline_renderer(result), False),
                                        (CHANGE_STYLE, change_renderer(result, limit), True)):
            layer.setRenderer(renderer)
            error = layer.saveStyleToDatabase(name, f"{name}: {'baseline median on fixed 2-40 m classes' if name == BASELINE_STYLE else 'change, diverging and symmetric around 0'}", default, "")
            if error:
                raise OutputError(f"cannot store the layer style in {temporary.name}: {error}")
        del layer

    return store


def write_grid_change(request: GridChangeRequest, progress: Optional[Callable[[float], None]] = None,
                      check_cancel: Optional[Callable[[], None]] = None, log: Optional[Callable[[str], None]] = None) -> GridChangeOutput:
    """Hexagons in a GeoPackage (``.gpkg``) or square cells in a GeoTIFF (``.tif``), styled: the request's output."""
    if request.output is None:
        raise OutputError("no output file for the grid: choose a GeoPackage (.gpkg) or a GeoTIFF (.tif)")
    result = grid_change(request, progress=progress, check_cancel=check_cancel, log=log)
    if not len(result):
        reasons = "".join(f"; period {index} ({start} to {end}): {reason}"
                          for index, ((start, end), reason) in enumerate(zip(result.periods, result.empty_reasons), start=1) if reason)
        raise OutputError(f"no cell has at least {request.min_shots} segments with a value in both periods: nothing was written "
                          f"({result.cells_seen[0]} and {result.cells_seen[1]} cells had segments){reasons}")
    limit = change_limit(result.columns["change"])
    if check_cancel:
        check_cancel()
    if request.raster:
        path = write_cells_raster(result, request.output)
        save_raster_default_style(path, lambda provider: change_raster_renderer(provider, limit), "the raster")
    else:
        path = write_cells_geopackage(result, request.output, before_publish=_store_vector_styles(result, limit))
    return GridChangeOutput(result, str(path), limit)


def load_grid_layers(output: GridChangeOutput):
    """The baseline and change layers (main thread)."""
    if output.raster:
        baseline = QgsRasterLayer(output.path, output.layer_name("baseline"))
        change = QgsRasterLayer(output.path, output.layer_name("change"))
        if not (baseline.isValid() and change.isValid()):
            raise OutputError(f"QGIS cannot open {output.path}")
        baseline.setRenderer(baseline_raster_renderer(baseline.dataProvider()))
        change.setRenderer(change_raster_renderer(change.dataProvider(), output.change_limit))
        return baseline, change
    uri = f"{output.path}|layername={LAYER_NAME}"
    baseline = QgsVectorLayer(uri, output.layer_name("baseline"), "ogr")
    change = QgsVectorLayer(uri, output.layer_name("change"), "ogr")
    if not (baseline.isValid() and change.isValid()):
        raise OutputError(f"QGIS cannot open {output.path}")
    baseline.setRenderer(baseline_renderer(output.result))
    change.setRenderer(change_renderer(output.result, output.change_limit))
    return baseline, change
