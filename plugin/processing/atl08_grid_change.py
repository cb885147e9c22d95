"""Processing: baseline and change of an ATL08 variable on an equal-area hexagon grid, at any extent."""

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.grid.change import (DEFAULT_BATCH_ROWS, DEFAULT_CELL_SIZE_KM, DEFAULT_MIN_SHOTS, DEFAULT_PERIODS, LAYER_NAME,
                                GridChangeRequest)
from ..core.grid.equal_area_grid import EQUAL_EARTH
from ..layers.grid_layer import write_grid_change
from ..qgis_compat import NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED
from .algorithm import DATABASE_HELP, CanopyExplorerAlgorithm, add_database_parameters, database_config, feedback_progress
from .parameters import filters_text, region_of_interest


class Atl08GridChangeAlgorithm(CanopyExplorerAlgorithm):
    def name(self):
        return "atl08_grid_change"

    def displayName(self):  # noqa: N802
        return "ATL08 change on an equal-area hexagon grid"

    def shortHelpString(self):  # noqa: N802
        return (
            "Maps an ATL08 variable over large areas without loading points: segments of two periods are streamed from "
            "the database in batches and assigned to hexagons of CELL_SIZE_KM (vertex to vertex) on an equal-area grid "
            "(Equal Earth, EPSG:8857). Per cell and period: count, median (within 0.025 m) and mean; cells where both "
            "periods have at least MIN_SHOTS segments are written with change = median of period 2 minus period 1.\n\n"
            "CONFIG, FILTERS follow 'Query ATL08 segments'. ROI: an extent or polygon layer; empty means the whole database.\n"
            + DATABASE_HELP +
            "VARIABLE: one column, e.g. h_canopy or canopy_h_metrics:95.\n"
            "OUTPUT: a GeoPackage of hexagons (styled: baseline with a 2-40 m sequential ramp, change with a diverging ramp "
            "symmetric at the 95th percentile of the absolute change), or a GeoTIFF (.tif) of square cells of the same size, "
            "one band per field.\n"
            "Hexagons cut by the antimeridian are clipped at the map edge: each side is its own cell.\n"
            "SCHEDULER (advanced): a Dask scheduler address (tcp://host:8786) whose workers read the database, each its own "
            "part of the region, and send back per-cell statistics, merged here; the result is the same as computed here. "
            "The workers need this plugin and its Python packages installed, and reach the database themselves (a local "
            "database must be on a disk they share). Empty: compute here."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        (p1_start, p1_end), (p2_start, p2_end) = DEFAULT_PERIODS
        add_database_parameters(self)
        self.addParameter(QgsProcessingParameterExtent("ROI", "Region of interest (extent or polygon layer; empty: everywhere)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString("VARIABLE", "Variable (one column)", defaultValue="h_canopy"))
        for key, label, default in (("PERIOD1_START", "Period 1 start", p1_start), ("PERIOD1_END", "Period 1 end (inclusive)", p1_end),
                                    ("PERIOD2_START", "Period 2 start", p2_start), ("PERIOD2_END", "Period 2 end (inclusive)", p2_end)):
            self.addParameter(QgsProcessingParameterString(key, f"{label} (ISO date or date-time)", defaultValue=default))
        self.addParameter(QgsProcessingParameterNumber("CELL_SIZE_KM", "Cell size (km, hexagon vertex to vertex)",
                                                       NUMBER_DOUBLE, DEFAULT_CELL_SIZE_KM, minValue=0.001))
        self.addParameter(QgsProcessingParameterNumber("MIN_SHOTS", "Minimum segments per cell in each period",
                                                       NUMBER_INTEGER, DEFAULT_MIN_SHOTS, minValue=1))
        self.addParameter(QgsProcessingParameterString("FILTERS", "Quality filters (one condition per line)", multiLine=True, optional=True))
        grid_crs = QgsProcessingParameterCrs("GRID_CRS", "Grid CRS (projected, metres; equal-area keeps cells comparable)",
                                             defaultValue=EQUAL_EARTH, optional=True)  # 3.22 rejects a missing value despite the default
        batch = QgsProcessingParameterNumber("BATCH_ROWS", "Segments per batch (bounds memory)",
                                             NUMBER_INTEGER, DEFAULT_BATCH_ROWS, minValue=1000)
        scheduler = QgsProcessingParameterString("SCHEDULER", "Dask scheduler address (empty: compute here)", defaultValue="",
                                                 optional=True)
        for parameter in (grid_crs, batch, scheduler):
            parameter.setFlags(parameter.flags() | PARAMETER_ADVANCED)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Grid change", "GeoPackage (*.gpkg);;GeoTIFF (*.tif)"))
        self.addOutput(QgsProcessingOutputNumber("CELLS", "Cells written"))

    def execute(self, parameters, context, feedback):
        roi, roi_crs = region_of_interest(self, parameters, context, optional=True)
        text = {key: self.parameterAsString(parameters, key, context).strip()
                for key in ("PERIOD1_START", "PERIOD1_END", "PERIOD2_START", "PERIOD2_END")}
        crs = self.parameterAsCrs(parameters, "GRID_CRS", context)
        request = GridChangeRequest.create(
            database_config(self, parameters, context), self.parameterAsFileOutput(parameters, "OUTPUT", context),
            roi=roi, roi_crs=roi_crs, variable=self.parameterAsString(parameters, "VARIABLE", context).strip() or "h_canopy",
            periods=((text["PERIOD1_START"], text["PERIOD1_END"]), (text["PERIOD2_START"], text["PERIOD2_END"])),
            cell_size_km=self.parameterAsDouble(parameters, "CELL_SIZE_KM", context),
            min_shots=self.parameterAsInt(parameters, "MIN_SHOTS", context), filters=filters_text(self, parameters, context),
            grid_crs=(crs.authid() or crs.toWkt()) if crs.isValid() else EQUAL_EARTH,
            batch_rows=self.parameterAsInt(parameters, "BATCH_ROWS", context),
            period_labels=(("PERIOD1_START", "PERIOD1_END"), ("PERIOD2_START", "PERIOD2_END")),
            scheduler=self.parameterAsString(parameters, "SCHEDULER", context), scheduler_label="SCHEDULER",
        )
        progress, check_cancel = feedback_progress(feedback)
        output = write_grid_change(request, progress, check_cancel, log=feedback.pushInfo)
        result = output.result
        feedback.pushInfo(f"{result.segments[0]:,} and {result.segments[1]:,} segments in {result.batches} batches; "
                          f"{result.cells_seen[0]:,} and {result.cells_seen[1]:,} cells with segments; "
                          f"{len(result):,} cells with at least {result.min_shots} in both periods written to {output.path}")
        uri = output.path if output.raster else f"{output.path}|layername={LAYER_NAME}"
        context.addLayerToLoadOnCompletion(uri, QgsProcessingContext.LayerDetails(output.layer_name("change"), context.project(), "OUTPUT"))
        return {"OUTPUT": output.path, "CELLS": len(result)}
