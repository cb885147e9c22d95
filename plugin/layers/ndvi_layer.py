"""NDVI composites as files and raster layers: the one implementation behind the dialog and Processing.

``write_ndvi_composites`` runs in a task or an algorithm: it builds the composites
with the engine, computes natural breaks on a pixel sample (QGIS 3.22 raster
shaders have no Jenks mode) and stores the style next to each GeoTIFF as a
``.qml``, which QGIS loads as the layer's default style wherever the file is opened.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from qgis.core import QgsColorRampShader, QgsRasterLayer, QgsRasterShader, QgsSingleBandPseudoColorRenderer
from qgis.PyQt.QtGui import QColor

from ..core.errors import OutputError
from ..core.natural_breaks import raster_breaks
from ..core.sentinel2.composites import CompositeReport, CompositeRequest, composite_years
from ..qgis_compat import SHADER_DISCRETE
from .symbology import save_raster_default_style
from .temporal import make_composite_temporal

# A brown-to-green NDVI ramp (bare soil and water low, dense vegetation high).
NDVI_COLOURS = ("#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#d9ef8b", "#a6d96a", "#66bd63", "#1a9850", "#006837")


@dataclass
class CompositeOutput:
    report: CompositeReport
    minimum: Optional[float]
    breaks: List[float]

    @property
    def layer_name(self) -> str:
        return f"NDVI median {self.report.year}"


def ndvi_renderer(provider, breaks: List[float], minimum: float) -> QgsSingleBandPseudoColorRenderer:
    """A discrete colour-ramp shader with one class per natural break, coloured along the NDVI ramp."""
    items = []
    lower = minimum
    for index, upper in enumerate(breaks):
        position = index / (len(breaks) - 1) if len(breaks) > 1 else 1.0
        colour = QColor(NDVI_COLOURS[round(position * (len(NDVI_COLOURS) - 1))])
        items.append(QgsColorRampShader.ColorRampItem(upper, colour, f"{lower:.2f} – {upper:.2f}"))
        lower = upper
    ramp = QgsColorRampShader(minimum, breaks[-1] if breaks else 1.0)
    ramp.setColorRampType(SHADER_DISCRETE)
    ramp.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(breaks[-1] if breaks else 1.0)
    return renderer


def save_composite_style(path: Path, minimum: Optional[float], breaks: List[float]) -> None:
    """Write ``<name>.qml`` beside the composite (atomically), QGIS's default style for the file."""
    if not breaks:
        return
    save_raster_default_style(path, lambda provider: ndvi_renderer(provider, breaks, min(minimum, breaks[0])), "the composite")


def write_ndvi_composites(
    request: CompositeRequest, progress: Optional[Callable[[float], None]] = None,
    check_cancel: Optional[Callable[[], None]] = None, log: Optional[Callable[[str], None]] = None,
) -> List[CompositeOutput]:
    reports = composite_years(request, progress=progress, check_cancel=check_cancel, log=log)
    outputs = []
    for report in reports:
        minimum, breaks = raster_breaks(report.path, request.classes)
        save_composite_style(report.path, minimum, breaks)
        outputs.append(CompositeOutput(report, minimum, breaks))
    return outputs


def load_composite_layer(output: CompositeOutput) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(output.report.path), output.layer_name)
    if not layer.isValid():
        raise OutputError(f"QGIS cannot open the composite {output.report.path}")
    make_composite_temporal(layer, output.report.year)
    return layer
