"""Processing: ATL08 statistics per district and year (count, median, mean, 95th percentile)."""

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.districts.canopy import CanopyStatsRequest
from ..core.errors import QueryError
from ..layers.district_layer import districts_from_features, write_atl08_district_stats
from ..qgis_compat import SKIP_GEOMETRY_CHECKS, SOURCE_VECTOR_POLYGON
from .algorithm import DATABASE_HELP, CanopyExplorerAlgorithm, add_database_parameters, database_config, feedback_progress
from .parameters import filters_text, time_bounds


class Atl08DistrictStatsAlgorithm(CanopyExplorerAlgorithm):
    group_name = "District statistics"

    def name(self):
        return "atl08_district_stats"

    def displayName(self):  # noqa: N802
        return "District ATL08 statistics"

    def shortHelpString(self):  # noqa: N802
        return (
            "Per district and year: the number of ATL08 segments inside the district after the quality FILTERS, "
            "and the median, mean and 95th percentile of VARIABLE (default h_canopy), in tables "
            "<variable>_stats_<year>, a latest table (newest year with data) and a change table, in the same layout "
            "as the NDVI district statistics, each styled with natural breaks. Every table keeps ID_FIELD under its "
            "own name and type and the districts' other fields; a field named like a column the tables add "
            "(geom, year, segment_count, median_/mean_/p95_<variable>, change-table fields) is refused with an "
            "error naming it.\n\n"
            "CONFIG, START, END and FILTERS follow 'Query ATL08 segments'.\n"
            + DATABASE_HELP
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("DISTRICTS", "Districts", [SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterField("ID_FIELD", "District id field", parentLayerParameterName="DISTRICTS"))
        add_database_parameters(self)
        self.addParameter(QgsProcessingParameterString("VARIABLE", "Variable", defaultValue="h_canopy"))
        self.addParameter(QgsProcessingParameterString("START", "Start (ISO date, empty: database start)", optional=True))
        self.addParameter(QgsProcessingParameterString("END", "End (ISO date, inclusive; empty: database end)", optional=True))
        self.addParameter(QgsProcessingParameterString("FILTERS", "Quality filters (one condition per line)", multiLine=True, optional=True))
        self.addParameter(QgsProcessingParameterNumber("CLASSES", "Natural-breaks classes", defaultValue=5, minValue=2, maxValue=12))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Statistics GeoPackage", "GeoPackage (*.gpkg)"))
        self.addOutput(QgsProcessingOutputMultipleLayers("LAYERS", "Statistics layers"))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "DISTRICTS", context)
        if source is None:
            raise QueryError("no districts layer given")
        features = source.getFeatures(QgsFeatureRequest(), SKIP_GEOMETRY_CHECKS)
        districts = districts_from_features(features, source.sourceCrs(), self.parameterAsString(parameters, "ID_FIELD", context))
        start, end = time_bounds(self, parameters, context)
        request = CanopyStatsRequest.create(
            districts, database_config(self, parameters, context), self.parameterAsFileOutput(parameters, "OUTPUT", context),
            variable=self.parameterAsString(parameters, "VARIABLE", context).strip() or "h_canopy",
            filters=filters_text(self, parameters, context), start=start, end=end,
            classes=self.parameterAsInt(parameters, "CLASSES", context),
        )
        progress, check_cancel = feedback_progress(feedback)
        result = write_atl08_district_stats(request, progress, check_cancel, log=feedback.pushInfo)
        feedback.pushInfo(result.summary())
        uris = []
        for table in result.layers:
            uri = f"{result.output}|layername={table.name}"
            uris.append(uri)
            context.addLayerToLoadOnCompletion(uri, QgsProcessingContext.LayerDetails(table.name, context.project(), "LAYERS"))
        return {"OUTPUT": str(result.output), "LAYERS": uris}
