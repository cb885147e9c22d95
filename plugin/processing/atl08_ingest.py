"""Processing: build or extend an ATL08 database from granules."""

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.errors import ConfigurationError
from ..core.lidar.ingest import ingest_granules
from ..core.lidar.ingest_lock import DEFAULT_WAIT_S
from ..database_source import SAMPLE_CONFIG
from ..qgis_compat import FILE_FOLDER, NUMBER_DOUBLE, PARAMETER_ADVANCED
from .algorithm import DATABASE_HELP, CanopyExplorerAlgorithm, add_database_parameters, database_config, feedback_progress


class Atl08IngestAlgorithm(CanopyExplorerAlgorithm):
    def name(self):
        return "atl08_ingest"

    def displayName(self):  # noqa: N802
        return "Build ATL08 database from granules"

    def shortHelpString(self):  # noqa: N802
        return (
            "Ingests ICESat-2 ATL08 v7 HDF5 granules into a TileDB database in the public database's layout "
            "(local folder or S3 bucket).\n\n"
            "INPUT: a folder searched recursively for .h5 files, or several files separated by ';'.\n"
            "CONFIG: a database configuration YAML (see configs/sample_local.yaml), an existing database folder, or an "
            "s3:// URI: a bucket (and prefix) to write the database into.\n"
            + DATABASE_HELP +
            "REFERENCE_FILTERS: drop the segments icesat2db (the Python package the public database was built with) "
            "drops: no canopy height, urban, water; "
            "by default bare-ground segments are kept.\n\n"
            "LOCK_WAIT: how long to wait (seconds) while another ingest writes the same database.\n\n"
            "SCHEDULER: a Dask scheduler address (tcp://host:8786) to ingest on a cluster whose workers see the granules "
            "at the same paths; empty to ingest here.\n\n"
            "Granules are known by their content, not their file names: granules already in the database, and copies "
            "of a granule under another name or in another folder, are skipped and named, so re-running is safe and "
            "an interrupted run resumes. Corrupt, inconsistent or non-ATL08 files are reported by name and skipped; "
            "segments with fill or out-of-range coordinates, times or ids, or outside the configuration's time_range "
            "and spatial_range, are dropped and counted per granule. One ingest at a time writes a database: a second "
            "one waits for it, on local disk and S3 alike."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("INPUT", "ATL08 granule folder, or granule files separated by ';'",
                                                     behavior=FILE_FOLDER))
        add_database_parameters(self, SAMPLE_CONFIG)
        self.addParameter(QgsProcessingParameterBoolean("REFERENCE_FILTERS", "Drop the segments icesat2db's ingest drops (no canopy, urban, water)",
                                                        defaultValue=False))
        wait = QgsProcessingParameterNumber("LOCK_WAIT", "Wait for another ingest into the same database (seconds)",
                                            NUMBER_DOUBLE, defaultValue=DEFAULT_WAIT_S, minValue=0)
        wait.setFlags(wait.flags() | PARAMETER_ADVANCED)
        self.addParameter(wait)
        scheduler = QgsProcessingParameterString("SCHEDULER", "Dask scheduler address (empty: ingest here)", defaultValue="",
                                                 optional=True)
        scheduler.setFlags(scheduler.flags() | PARAMETER_ADVANCED)
        self.addParameter(scheduler)
        self.addOutput(QgsProcessingOutputString("DATABASE", "Database URI"))
        self.addOutput(QgsProcessingOutputNumber("GRANULES_WRITTEN", "Granules written"))
        self.addOutput(QgsProcessingOutputNumber("GRANULES_SKIPPED", "Granules skipped (unreadable)"))
        self.addOutput(QgsProcessingOutputNumber("GRANULES_DUPLICATE", "Files skipped as copies of a granule in the database or the input"))
        self.addOutput(QgsProcessingOutputNumber("SEGMENTS", "Segments written"))
        self.addOutput(QgsProcessingOutputNumber("SEGMENTS_DROPPED", "Segments dropped (fill or out-of-range values, outside the configured ranges)"))

    def execute(self, parameters, context, feedback):
        inputs = [p for p in self.parameterAsString(parameters, "INPUT", context).split(";") if p.strip()]
        if not inputs:
            raise ConfigurationError("no ATL08 granules given: choose a folder or .h5 files")
        if not (self.parameterAsString(parameters, "CONFIG", context) or "").strip():
            raise ConfigurationError("no database configuration given")
        config = database_config(self, parameters, context, default_config=SAMPLE_CONFIG, writing=True)
        progress, _ = feedback_progress(feedback)
        report = ingest_granules(
            config, inputs, progress=progress, executor="thread",  # processes would re-launch QGIS itself
            reference_filters=self.parameterAsBoolean(parameters, "REFERENCE_FILTERS", context),
            log=feedback.pushInfo, lock_wait_s=self.parameterAsDouble(parameters, "LOCK_WAIT", context),
            scheduler=(self.parameterAsString(parameters, "SCHEDULER", context) or "").strip() or None,
        )
        for name, reason in report.skipped:
            feedback.reportError(f"skipped {name}: {reason}")
        feedback.pushInfo(report.summary())
        return {
            "DATABASE": report.database_uri,
            "GRANULES_WRITTEN": len(report.written),
            "GRANULES_SKIPPED": len(report.skipped),
            "GRANULES_DUPLICATE": len(report.duplicates),
            "SEGMENTS": report.segments,
            "SEGMENTS_DROPPED": report.segments_dropped,
        }
