"""Raster values at segment points, from QGIS layers: the point layer's file, the chosen rasters as fields, the
result opened as a layer. The one implementation behind the dialog and Processing; the sampling is the engine's
(``core.sentinel2.sample_at_points``)."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from qgis.core import QgsProviderRegistry, QgsRasterLayer, QgsVectorLayer

from ..core.districts.statistics import rasters_by_year
from ..core.errors import ConfigurationError
from ..core.segment_files import format_for_path
from ..core.sentinel2.sample_at_points import SampledPoints, SampledRaster, SampleRequest
from .segment_layer import layer_name_in, layer_uri


def point_layer_file(layer: QgsVectorLayer) -> Tuple[str, Optional[str]]:
    """(file, layer name in it) of a point layer stored in a file OGR reads (GeoPackage, FlatGeobuf, GeoJSON, CSV)."""
    if layer is None:
        raise ConfigurationError("no point layer chosen: pick the ATL08 segments to add raster values to")
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or ""
    if layer.providerType() not in ("ogr", "delimitedtext") or not path or not Path(path).is_file():
        raise ConfigurationError(f"the layer '{layer.name()}' is not stored in a file: save it (Export > Save Features As) "
                                 "and choose the saved layer")
    return path, (parts.get("layerName") or None)


def raster_file(layer) -> str:
    if not isinstance(layer, QgsRasterLayer):
        raise ConfigurationError(f"'{layer.name()}' is not a raster layer")
    path = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path") or layer.source()
    if layer.providerType() != "gdal" or not Path(path).is_file():
        raise ConfigurationError(f"the raster '{layer.name()}' is not a file GDAL reads: save it as a GeoTIFF first")
    return path


def sampled_rasters(layers: Sequence, band: int = 1) -> List[SampledRaster]:
    """One field per raster layer, named after the layer, from ``band``."""
    return [SampledRaster(layer.name(), Path(raster_file(layer)), band) for layer in layers]


def composites_by_year(layers: Sequence) -> Dict[int, Path]:
    """The chosen NDVI composites by the year in their file names (``ndvi_composite_2021.tif``)."""
    return rasters_by_year([raster_file(layer) for layer in layers]) if layers else {}


def sample_request(points: Tuple[str, Optional[str]], output: str, raster_layers: Sequence, by_year: bool,
                   band: int = 1) -> SampleRequest:
    """The request for the point file and layer name ``points`` (``point_layer_file``) and the chosen raster layers:
    each raster as a field, or (``by_year``) the composites as ``ndvi``."""
    points, layer_name = points
    if not raster_layers:
        raise ConfigurationError("no raster chosen: tick at least one" + (" NDVI composite" if by_year else " raster layer"))
    if by_year:
        return SampleRequest.create(points, output, composites=composites_by_year(raster_layers), layer=layer_name)
    return SampleRequest.create(points, output, rasters=sampled_rasters(raster_layers, band), layer=layer_name)


def load_sampled_layer(result: SampledPoints, name: str, style_from: Optional[QgsVectorLayer] = None) -> QgsVectorLayer:
    """The written file as a layer (main thread), drawn as ``style_from`` is."""
    output_format = format_for_path(result.path)
    uri, provider = layer_uri(str(result.path), output_format, layer_name_in(result.path, output_format))
    layer = QgsVectorLayer(uri, name, provider)
    if not layer.isValid():
        raise ConfigurationError(f"QGIS cannot open the result file {result.path}")
    if style_from is not None and style_from.renderer() is not None:
        layer.setRenderer(style_from.renderer().clone())
    return layer
