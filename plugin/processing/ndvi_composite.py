"""Processing: yearly median NDVI composites from Sentinel-2 L2A scenes found through a STAC API."""

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.errors import QueryError
from ..core.sentinel2.composites import CompositeRequest
from ..core.sentinel2.stac_search import default_stac_source
from ..layers.ndvi_layer import write_ndvi_composites
from ..layers.roi_source import roi_from_features
from ..qgis_compat import NUMBER_DOUBLE, PARAMETER_ADVANCED, SKIP_GEOMETRY_CHECKS, SOURCE_VECTOR_POLYGON
from ..stac_catalogue import StacCatalogue
from .algorithm import CanopyExplorerAlgorithm, feedback_progress

DEFAULTS = default_stac_source()


class NdviCompositeAlgorithm(CanopyExplorerAlgorithm):
    group_name = "Sentinel-2 NDVI"

    def name(self):
        return "ndvi_composite"

    def displayName(self):  # noqa: N802
        return "NDVI yearly median composites (Sentinel-2, STAC)"

    def shortHelpString(self):  # noqa: N802
        return (
            "Builds one GeoTIFF per year, ndvi_composite_<year>.tif (band 1: median NDVI of the valid observations, "
            "band 2: number of valid observations), from Sentinel-2 L2A scenes found through a STAC API.\n\n"
            "ROI: the boundary (polygon layer, any CRS); the composite is on a 10 m grid in the boundary's CRS "
            "(UTM when the boundary is in degrees), clipped to it.\n"
            "YEARS: e.g. '2019, 2024'.\n"
            "STAC_URL, COLLECTION: the catalogue (default Element 84 Earth Search, sentinel-2-c1-l2a).\n"
            "STAC_CONNECTION (advanced, QGIS 3.40 and newer): the name of a STAC connection saved in QGIS's Data Source "
            "Manager, used instead of STAC_URL with its authentication (sent to the STAC API only, not to the scenes' "
            "asset hosts).\n"
            "MAX_CLOUD: scenes with more cloud cover (%) are not used.\n"
            "COVER_WHOLE: use only scenes covering the whole boundary instead of mosaicking "
            "every scene that intersects it.\n\n"
            "Reflectance = DN x scale + offset from each asset's raster:bands (the -0.1 offset since processing "
            "baseline 04.00 is applied explicitly); clouds, shadows, snow and no-data are masked with SCL. "
            "Scenes that cannot be read are reported and left out."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("ROI", "Boundary", [SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterString("YEARS", "Years (comma-separated)", defaultValue="2019, 2024"))
        self.addParameter(QgsProcessingParameterString("STAC_URL", "STAC API", defaultValue=DEFAULTS.url))
        self.addParameter(QgsProcessingParameterString("COLLECTION", "Collection", defaultValue=DEFAULTS.collection))
        self.addParameter(QgsProcessingParameterNumber("MAX_CLOUD", "Maximum cloud cover (%)", NUMBER_DOUBLE,
                                                       defaultValue=20.0, minValue=0.0, maxValue=100.0))
        connection = QgsProcessingParameterString("STAC_CONNECTION", "Saved STAC connection (instead of the STAC API)",
                                                  optional=True)
        cover = QgsProcessingParameterBoolean("COVER_WHOLE", "Only scenes covering the whole boundary", defaultValue=False)
        classes = QgsProcessingParameterNumber("CLASSES", "Natural-breaks classes for the style", defaultValue=5, minValue=2, maxValue=10)
        for advanced in (connection, cover, classes):
            advanced.setFlags(advanced.flags() | PARAMETER_ADVANCED)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputMultipleLayers("COMPOSITES", "NDVI composites"))

    def execute(self, parameters, context, feedback):
        source_features = self.parameterAsSource(parameters, "ROI", context)
        if source_features is None:
            raise QueryError("no boundary layer given")
        features = source_features.getFeatures(QgsFeatureRequest(), SKIP_GEOMETRY_CHECKS)
        boundary, boundary_crs = roi_from_features(features, source_features.sourceCrs(), "the boundary layer has no polygon features")
        catalogue = StacCatalogue(connection=self.parameterAsString(parameters, "STAC_CONNECTION", context) or "",
                                  url=self.parameterAsString(parameters, "STAC_URL", context) or "")
        stac = catalogue.source(self.parameterAsString(parameters, "COLLECTION", context) or "", connection_name="STAC_CONNECTION")
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        request = CompositeRequest.create(
            stac, boundary, boundary_crs, self.parameterAsString(parameters, "YEARS", context),
            self.parameterAsDouble(parameters, "MAX_CLOUD", context), folder,
            cover_whole=self.parameterAsBoolean(parameters, "COVER_WHOLE", context),
            classes=self.parameterAsInt(parameters, "CLASSES", context),
        )
        progress, check_cancel = feedback_progress(feedback)
        outputs = write_ndvi_composites(request, progress, check_cancel, log=feedback.pushInfo)
        paths = []
        for output in outputs:
            feedback.pushInfo(output.report.summary())
            for scene, reason in output.report.scenes_failed:
                feedback.reportError(f"scene {scene} left out: {reason}")
            path = str(output.report.path)
            paths.append(path)
            context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(output.layer_name, context.project(), "COMPOSITES"))
        return {"OUTPUT_FOLDER": folder, "COMPOSITES": paths}
