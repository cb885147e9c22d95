"""What every Canopy Explorer algorithm shares: naming, icon, and engine errors as Processing errors."""

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterString,
)

from ..core.callbacks import reporting_to
from ..core.errors import Cancelled, CanopyExplorerError
from ..core.proj_context import keep_proj_context
from ..database_source import PUBLIC_CONFIG, DatabaseSource
from ..environment import environment_report
from ..qgis_compat import PARAMETER_ADVANCED
from ..resources import icon

# The parameters naming the database an algorithm reads (or atl08_ingest writes), the same in every algorithm.
CONFIG_DESCRIPTION = "Database (configuration YAML, folder or s3:// URI)"
ENDPOINT_DESCRIPTION = "S3 endpoint URL (empty: AWS, or a local database)"
AUTHCFG_DESCRIPTION = "Authentication configuration for a private bucket (Basic: user = access key id, password = secret key)"
DATABASE_HELP = (
    "ENDPOINT (advanced): the S3 server's URL when an s3:// CONFIG is on a server other than AWS.\n"
    "AUTHCFG (advanced): the id of a QGIS authentication configuration (Basic: user name = access key id, "
    "password = secret key) for a private bucket; the keys are read from QGIS's authentication database "
    "and never logged.\n"
)


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
            raise QgsProcessingException(self.explained(error, parameters, context)) from error
        except OSError as error:  # a safety net: the engine names its own files, but a full or read-only disk can surface anywhere
            where = f" ({error.filename})" if error.filename else ""
            raise QgsProcessingException(f"cannot read or write a file{where}: {error.strerror or error}") from error
        finally:
            keep_proj_context()  # Processing runs algorithms on pooled threads: see core/proj_context.py

    def execute(self, parameters, context, feedback):
        raise NotImplementedError

    def explained(self, error, parameters, context) -> str:
        """The engine's message, and for an algorithm on a database what to check in CONFIG, ENDPOINT or AUTHCFG
        when the S3 server refused the request or did not answer."""
        message = str(error)
        if self.parameterDefinition("AUTHCFG") is None:
            return message
        advice = database_source(self, parameters, context).advice(message, endpoint_name="ENDPOINT", authcfg_name="AUTHCFG")
        return f"{message}\n{advice}" if advice else message


def add_database_parameters(algorithm, default_config: str = PUBLIC_CONFIG) -> None:
    """CONFIG (a YAML file, database folder or s3:// URI), and the advanced ENDPOINT and AUTHCFG for an
    s3:// database on another server or in a private bucket."""
    algorithm.addParameter(QgsProcessingParameterString("CONFIG", CONFIG_DESCRIPTION, defaultValue=default_config))
    endpoint = QgsProcessingParameterString("ENDPOINT", ENDPOINT_DESCRIPTION, optional=True)
    authcfg = QgsProcessingParameterAuthConfig("AUTHCFG", AUTHCFG_DESCRIPTION, optional=True)
    for parameter in (endpoint, authcfg):
        parameter.setFlags(parameter.flags() | PARAMETER_ADVANCED)
        algorithm.addParameter(parameter)


def database_config(algorithm, parameters, context, default_config: str = PUBLIC_CONFIG, writing: bool = False):
    """CONFIG, ENDPOINT and AUTHCFG as an engine configuration; errors name the parameters. The keys of
    AUTHCFG are read from QGIS's authentication database here, and go nowhere but into the configuration.
    ``writing``: the database atl08_ingest writes (a configuration file is taken as written)."""
    database = database_source(algorithm, parameters, context, default_config)
    return database.config(endpoint_name="ENDPOINT", authcfg_name="AUTHCFG", writing=writing)


def database_source(algorithm, parameters, context, default_config: str = PUBLIC_CONFIG) -> DatabaseSource:
    """CONFIG, ENDPOINT and AUTHCFG as given (the id only: nothing is read from the authentication database here)."""
    source = (algorithm.parameterAsString(parameters, "CONFIG", context) or "").strip() or default_config
    endpoint = algorithm.parameterAsString(parameters, "ENDPOINT", context) or ""
    authcfg = algorithm.parameterAsString(parameters, "AUTHCFG", context) or ""
    return DatabaseSource(source, endpoint, authcfg)


def feedback_progress(feedback):
    """(progress, check_cancel) reporting to a Processing feedback, which is None when an algorithm runs
    from Python without one."""
    if feedback is None:
        return reporting_to(lambda: False, lambda percent: None)
    return reporting_to(feedback.isCanceled, feedback.setProgress)


def variables_list(text: str):
    return tuple(v.strip() for v in (text or "").replace("\n", ",").split(",") if v.strip())
