"""Processing: per-district NDVI statistics per year, a latest table and a change table (PostGIS or embedded)."""

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterField,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterProviderConnection,
    QgsRasterLayer,
)

from ..core.districts.statistics import DistrictStatsRequest
from ..core.errors import QueryError
from ..layers.district_layer import districts_from_features, postgres_connection, write_district_stats
from ..qgis_compat import SKIP_GEOMETRY_CHECKS, SOURCE_RASTER, SOURCE_VECTOR_POLYGON
from .algorithm import CanopyExplorerAlgorithm, feedback_progress


class ZonalStatsAlgorithm(CanopyExplorerAlgorithm):
    group_name = "District statistics"

    def name(self):
        return "zonal_stats"

    def displayName(self):  # noqa: N802
        return "District NDVI statistics (PostGIS or embedded)"

    def shortHelpString(self):  # noqa: N802
        return (
            "Per district and year: pixel count, minimum, maximum, mean, standard deviation, median and 10th and "
            "90th percentiles of NDVI (pixels whose centre is inside the district, as PostGIS ST_Clip; percentiles "
            "as numpy's default, linear between the two nearest ranks, which is PostgreSQL's percentile_cont), "
            "in tables ndvi_stats_<year>; "
            "ndvi_stats_latest keeps, for each district, its newest year with data (older years never overwrite "
            "newer ones); ndvi_stats_change holds latest minus earliest.\n\n"
            "DISTRICTS and ID_FIELD: the polygons and their identifier. Every table keeps ID_FIELD under its own "
            "name and type, and the districts' other fields (integer, real, text, date; a GeoPackage's fid is left "
            "out). A field named like a column the tables add (geom, year, pixel_count, min_ndvi, max_ndvi, "
            "mean_ndvi, stddev_ndvi, median_ndvi, p10_ndvi, p90_ndvi, or a change-table field: first_year, last_year, first_mean_ndvi, "
            "last_mean_ndvi, <statistic>_change; ignoring case) is refused with an error naming it: rename it "
            "(Refactor fields).\n"
            "RASTERS: NDVI composites; the year is the 4-digit year in each file name (ndvi_composite_2019.tif).\n"
            "DATABASE: a saved PostgreSQL connection (PostGIS) to compute the statistics in the database "
            "(tables in its public schema); empty computes them here (embedded), with the same results.\n"
            "OUTPUT: a GeoPackage with every table, each with its natural-breaks default style; re-running "
            "updates it (the latest table is upserted).\n"
            "GEOJSON: optionally, the latest table as GeoJSON in EPSG:4326."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("DISTRICTS", "Districts", [SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterField("ID_FIELD", "District id field", parentLayerParameterName="DISTRICTS"))
        self.addParameter(QgsProcessingParameterMultipleLayers("RASTERS", "NDVI composites", SOURCE_RASTER))
        self.addParameter(QgsProcessingParameterProviderConnection("DATABASE", "PostgreSQL connection (empty: embedded)",
                                                                   "postgres", optional=True))
        self.addParameter(QgsProcessingParameterNumber("CLASSES", "Natural-breaks classes", defaultValue=5, minValue=2, maxValue=12))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Statistics GeoPackage", "GeoPackage (*.gpkg)"))
        self.addParameter(QgsProcessingParameterFileDestination("GEOJSON", "Latest statistics as GeoJSON", "GeoJSON (*.geojson)",
                                                                optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputMultipleLayers("LAYERS", "Statistics layers"))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "DISTRICTS", context)
        if source is None:
            raise QueryError("no districts layer given")
        id_field = self.parameterAsString(parameters, "ID_FIELD", context)
        # the engine repairs invalid districts and reports each one, rather than Processing refusing them
        features = source.getFeatures(QgsFeatureRequest(), SKIP_GEOMETRY_CHECKS)
        districts = districts_from_features(features, source.sourceCrs(), id_field)
        layers = self.parameterAsLayerList(parameters, "RASTERS", context)
        # QGIS 3.22 lets a vector layer object through a raster list parameter
        not_rasters = [layer.name() for layer in layers if not isinstance(layer, QgsRasterLayer)]
        if not_rasters:
            raise QueryError(f"{', '.join(repr(n) for n in not_rasters)} is not a raster: choose NDVI composites (GeoTIFF)")
        rasters = [layer.source() for layer in layers]
        request = DistrictStatsRequest.create(
            districts, rasters, self.parameterAsFileOutput(parameters, "OUTPUT", context),
            connection=postgres_connection(self.parameterAsConnectionName(parameters, "DATABASE", context) or ""),
            classes=self.parameterAsInt(parameters, "CLASSES", context),
            geojson=self.parameterAsFileOutput(parameters, "GEOJSON", context) or None,
        )
        progress, check_cancel = feedback_progress(feedback)
        result = write_district_stats(request, progress, check_cancel, log=feedback.pushInfo)
        for district, reason in result.repairs:
            feedback.reportError(f"district {district}: {reason}")
        feedback.pushInfo(result.summary())
        outputs = {"OUTPUT": str(result.output), "LAYERS": []}
        if result.geojson is not None:
            outputs["GEOJSON"] = str(result.geojson)
        for table in result.layers:
            uri = f"{result.output}|layername={table.name}"
            outputs["LAYERS"].append(uri)
            context.addLayerToLoadOnCompletion(uri, QgsProcessingContext.LayerDetails(table.name, context.project(), "LAYERS"))
        return outputs
