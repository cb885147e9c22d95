"""Processing: the N ATL08 segments nearest to a point, by geodesic distance."""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterPoint,
    QgsProcessingParameterVectorDestination,
)

from ..core.errors import QueryError
from ..core.lidar.query import NearestRequest
from ..layers.segment_layer import write_nearest_output
from ..qgis_compat import NUMBER_DOUBLE, SOURCE_VECTOR_POINT
from .algorithm import (
    DATABASE_HELP,
    CanopyExplorerAlgorithm,
    add_database_parameters,
    database_config,
    feedback_progress,
    variables_list,
)
from .parameters import add_common_query_parameters, filters_text, time_bounds

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


class Atl08NearestAlgorithm(CanopyExplorerAlgorithm):
    def name(self):
        return "atl08_nearest"

    def displayName(self):  # noqa: N802
        return "Nearest ATL08 segments to a point"

    def shortHelpString(self):  # noqa: N802
        return (
            "Finds the NUM_SHOTS ATL08 segments nearest to POINT within RADIUS_M metres (geodesic distance on "
            "the WGS84 ellipsoid), after the quality FILTERS and time range, sorted by distance, with a "
            "'distance_m' field. CONFIG, VARIABLES and FILTERS follow the same rules as 'Query ATL08 segments'.\n\n"
            + DATABASE_HELP
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        add_database_parameters(self)
        self.addParameter(QgsProcessingParameterPoint("POINT", "Point"))
        self.addParameter(QgsProcessingParameterNumber("NUM_SHOTS", "Number of segments", defaultValue=50, minValue=1,
                                                       maxValue=1_000_000))
        self.addParameter(QgsProcessingParameterNumber("RADIUS_M", "Search radius (metres)", NUMBER_DOUBLE,
                                                       defaultValue=1000.0, minValue=0.001, maxValue=20_000_000.0))
        add_common_query_parameters(self)
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Nearest ATL08 segments", SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputNumber("SEGMENTS", "Segments written"))

    def execute(self, parameters, context, feedback):
        config = database_config(self, parameters, context)
        point = self.parameterAsPoint(parameters, "POINT", context, WGS84)  # reprojected from the point's CRS
        start, end = time_bounds(self, parameters, context)
        request = NearestRequest.create(
            (point.x(), point.y()), self.parameterAsInt(parameters, "NUM_SHOTS", context),
            self.parameterAsDouble(parameters, "RADIUS_M", context),
            variables_list(self.parameterAsString(parameters, "VARIABLES", context)),
            filters_text(self, parameters, context), start, end, time_labels=("START", "END"), product=config.product,
        )
        output_path = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        _, check_cancel = feedback_progress(feedback)
        output = write_nearest_output(config, request, output_path, check_cancel=check_cancel)
        if output.rows == 0:
            raise QueryError(output.nothing_matched)
        feedback.pushInfo(f"{output.rows} segments written to {output.path}")
        if context.willLoadLayerOnCompletion(output_path):
            context.layerToLoadOnCompletionDetails(output_path).name = output.layer_name
        return {"OUTPUT": output.path, "SEGMENTS": output.rows}
