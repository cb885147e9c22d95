"""What every Canopy Explorer algorithm shares: naming, icon, and engine errors as Processing errors."""

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException

from ..core.callbacks import reporting_to
from ..core.errors import Cancelled, CanopyExplorerError
from ..core.proj_context import keep_proj_context
from ..database_source import PUBLIC_CONFIG, DatabaseSource
from ..environment import environment_report
from ..resources import icon



class CanopyExplorerAlgorithm(QgsProcessingAlgorithm):
    """Subclasses implement ``execute(parameters, context, feedback)``; engine errors become clear Processing errors."""

    group_name = "ICESat-2 ATL08"

    def group(self):
        return self.group_name

    def groupId(self):  # noqa: N802
        return self.group_name.lower().replace(" ", "_").replace("-", "")

    def icon(self):
        return icon("canopy_explorer.svg")

    def createInstance(self):  # noqa: N802
        return type(self)()

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        report = environment_report()
        if not report.ok:  # a missing package fails later; a shapely for another GEOS would crash the host
            raise QgsProcessingException(report.message())
        try:
            return self.execute(parameters, context, feedback)
        except Cancelled:
            feedback.reportError("Cancelled: nothing was written.")
            return {}
        except CanopyExplorerError as error:
            raise QgsProcessingException(str(error)) from error
        except OSError as error:  # a safety net: the engine names its own files, but a full or read-only disk can surface anywhere
            where = f" ({error.filename})" if error.filename else ""
            raise QgsProcessingException(f"cannot read or write a file{where}: {error.strerror or error}") from error
        finally:
            keep_proj_context()  # Processing runs algorithms on pooled threads: see core/proj_context.py

    def execute(self, parameters, context, feedback):
        raise NotImplementedError


def database_config(algorithm, parameters, context):
    """The CONFIG parameter (YAML file, database folder or s3:// URI) as an engine configuration."""
    source = algorithm.parameterAsString(parameters, "CONFIG", context) or PUBLIC_CONFIG
    return DatabaseSource(source).config()


def feedback_progress(feedback):
    """(progress, check_cancel) reporting to a Processing feedback, which is None when an algorithm runs
    from Python without one."""
    if feedback is None:
        return reporting_to(lambda: False, lambda percent: None)
    return reporting_to(feedback.isCanceled, feedback.setProgress)


def variables_list(text: str):
    return tuple(v.strip() for v in (text or "").replace("\n", ",").split(",") if v.strip())
