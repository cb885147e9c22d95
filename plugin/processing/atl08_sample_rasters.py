"""Processing: the values of chosen rasters (or of each segment's yearly NDVI composite) added to ATL08 points."""

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterVectorDestination,
)

from ..core.errors import ConfigurationError
from ..core.sentinel2.sample_at_points import sample_rasters_at_points
from ..layers.sampled_layer import sample_request
from ..qgis_compat import SOURCE_RASTER, SOURCE_VECTOR_POINT
from .algorithm import CanopyExplorerAlgorithm, feedback_progress

MODES = ("The chosen raster layers (one field each, named after the layer)",
         "The NDVI composite of each segment's year (one field, ndvi)")


class Atl08SampleRastersAlgorithm(CanopyExplorerAlgorithm):
    def name(self):
        return "atl08_sample_rasters"

    def displayName(self):  # noqa: N802
        return "Sample rasters at segments"

    def shortHelpString(self):  # noqa: N802
        return (
            "Adds to each ATL08 segment (a point layer, such as the output of 'Query ATL08 segments') the value of "
            "the pixel it falls in, for each chosen raster, so that canopy height can be plotted against NDVI or "
            "any other raster. Points are transformed into each raster's CRS; a point outside a raster, on a nodata "
            "pixel or on NaN gets NULL.\n\n"
            "INPUT: the point layer (selected features only when asked).\n"
            "MODE: 0, one field per raster of RASTERS, named after the layer, read from BAND; 1, one field ndvi "
            "with the value of the NDVI composite of the segment's acquisition year (the UTC year of its time "
            "field): RASTERS are then the composites, the year in each file name (ndvi_composite_2021.tif); a "
            "segment of a year without a composite gets NULL.\n"
            "OUTPUT: a copy of the point layer with the new fields (GeoPackage, FlatGeobuf, GeoJSON or CSV)."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("INPUT", "ATL08 segments", [SOURCE_VECTOR_POINT]))
        self.addParameter(QgsProcessingParameterEnum("MODE", "Values of", options=list(MODES), defaultValue=0))
        self.addParameter(QgsProcessingParameterMultipleLayers("RASTERS", "Rasters (or NDVI composites)", SOURCE_RASTER))
        self.addParameter(QgsProcessingParameterNumber("BAND", "Band of the chosen rasters", defaultValue=1, minValue=1))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Segments with raster values", SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputNumber("SEGMENTS", "Segments written"))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise ConfigurationError("no point layer given in INPUT")
        # a file OGR reads as it is, or (a memory layer, selected features only) a GeoPackage copy Processing makes
        points = self.parameterAsCompatibleSourceLayerPathAndLayerName(parameters, "INPUT", context, ["gpkg", "fgb", "geojson"],
                                                                        "gpkg", feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output or output.startswith("memory:"):
            raise ConfigurationError("OUTPUT must be a file (GeoPackage, FlatGeobuf, GeoJSON or CSV), not a memory layer")
        request = sample_request((points[0], points[1] or None), output, self.parameterAsLayerList(parameters, "RASTERS", context),
                                 by_year=self.parameterAsEnum(parameters, "MODE", context) == 1,
                                 band=self.parameterAsInt(parameters, "BAND", context))
        progress, check_cancel = feedback_progress(feedback)
        result = sample_rasters_at_points(request, progress, check_cancel, log=feedback.pushInfo if feedback else None)
        if context.willLoadLayerOnCompletion(output):
            context.layerToLoadOnCompletionDetails(output).name = f"{source.sourceName()} with {', '.join(result.fields)}"
        return {"OUTPUT": str(Path(result.path)), "SEGMENTS": result.rows}
