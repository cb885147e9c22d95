"""Processing: ATL08 segments in a region, time range and quality filters, as a styled point layer."""

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
    QgsProcessingOutputNumber,
)

from ..core.errors import QueryError
from ..core.lidar.query import SegmentQuery
from ..layers.segment_layer import QueryRequest, write_query_output
from ..qgis_compat import PARAMETER_ADVANCED, SOURCE_VECTOR_POINT
from .algorithm import (
    DATABASE_HELP,
    CanopyExplorerAlgorithm,
    add_database_parameters,
    database_config,
    feedback_progress,
    variables_list,
)
from .parameters import add_common_query_parameters, filters_text, region_of_interest, time_bounds


class Atl08QueryAlgorithm(CanopyExplorerAlgorithm):
    def name(self):
        return "atl08_query"

    def displayName(self):  # noqa: N802
        return "Query ATL08 segments"

    def shortHelpString(self):  # noqa: N802
        return (
            "Reads ICESat-2 ATL08 land and vegetation segments from a TileDB database into a point layer "
            "(EPSG:4326) coloured with natural breaks.\n\n"
            "CONFIG: a database configuration YAML, a database folder or an s3:// URI (default: the public ATL08 v7 database).\n"
            + DATABASE_HELP +
            "ROI: an extent, or a polygon layer whose features (exact shapes, any CRS) bound the query.\n"
            "START, END: the time range (inclusive).\n"
            "VARIABLES: comma-separated ATL08 variables; 'canopy_h_metrics:95' picks one percentile, "
            "'canopy_h_metrics' gives all 18.\n"
            "FILTERS: one condition per line, combined with 'and', e.g. 'h_canopy between 5 60', "
            "'segment_landcover in [111, 112]', '(night_flag == 1 or solar_elevation < 0) and n_te_photons >= 10'. "
            "Filters are evaluated in the database, on any variable.\n"
            "EXACT_TIMES: fill the time field with acquisition instants instead of days (reads more data).\n"
            "OUTPUT: GeoPackage (styled), FlatGeobuf, GeoJSON or CSV."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_database_parameters(self)
        self.addParameter(QgsProcessingParameterExtent("ROI", "Region of interest (extent or polygon layer)"))
        add_common_query_parameters(self)
        classes = QgsProcessingParameterNumber("CLASSES", "Natural-breaks classes", defaultValue=5, minValue=1, maxValue=12)
        classes.setFlags(classes.flags() | PARAMETER_ADVANCED)
        self.addParameter(classes)
        exact = QgsProcessingParameterBoolean("EXACT_TIMES", "Exact acquisition times (otherwise the day; reads more data)",
                                              defaultValue=False, optional=True)
        exact.setFlags(exact.flags() | PARAMETER_ADVANCED)
        self.addParameter(exact)
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "ATL08 segments", SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputNumber("SEGMENTS", "Segments written"))

    def execute(self, parameters, context, feedback):
        config = database_config(self, parameters, context)
        roi, roi_crs = region_of_interest(self, parameters, context)
        start, end = time_bounds(self, parameters, context)
        variables = variables_list(self.parameterAsString(parameters, "VARIABLES", context))
        if not variables:
            raise QueryError("no variables given: list at least one, e.g. h_canopy")
        filters = filters_text(self, parameters, context)
        spec = SegmentQuery.create(roi=roi, start=start, end=end, variables=variables, filters=filters or None, roi_crs=roi_crs,
                                   exact_times=self.parameterAsBoolean(parameters, "EXACT_TIMES", context),
                                   time_labels=("START", "END"), product=config.product)
        output_path = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        progress, check_cancel = feedback_progress(feedback)
        request = QueryRequest(config, spec, variables, filters, output_path=output_path,
                               classes=self.parameterAsInt(parameters, "CLASSES", context))
        def batch_read(frame, rows: int, estimate: int) -> None:
            feedback.setProgressText(f"{rows:,} of about {max(rows, estimate):,} segments read")

        output = write_query_output(request, progress, check_cancel, batch_read=batch_read)
        if output.rows == 0:
            raise QueryError(output.nothing_matched)
        feedback.pushInfo(f"{output.rows} segments written to {output.path}")
        if context.willLoadLayerOnCompletion(output_path):
            context.layerToLoadOnCompletionDetails(output_path).name = output.layer_name
        return {"OUTPUT": output.path, "SEGMENTS": output.rows}
