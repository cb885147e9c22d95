"""The engine's exception types.

Messages are written for the user who will read them in the message bar, the
task manager or the Processing log; the QGIS side shows ``str(error)`` as-is and
never matches on the text.
"""


class CanopyExplorerError(Exception):
    """Base class for every error the engine raises on purpose."""


class ConfigurationError(CanopyExplorerError):
    """A configuration file or value is missing, malformed or inconsistent."""


class QueryError(CanopyExplorerError):
    """A query was described incorrectly (variables, filters, times, area)."""


class UnknownVariableError(QueryError):
    """A variable or variable label that the ATL08 catalogue does not have."""


class FilterSyntaxError(QueryError):
    """A filter expression that does not follow the filter grammar."""


class StorageError(CanopyExplorerError):
    """The database (local folder or S3 bucket) cannot be reached or is not an ATL08 database."""


class GranuleError(CanopyExplorerError):
    """An ATL08 granule that cannot be read (corrupt, truncated, not ATL08)."""


class MissingDependencyError(CanopyExplorerError):
    """A Python package the requested operation needs is not installed."""


class Cancelled(CanopyExplorerError):
    """The user cancelled the operation; raised by progress callbacks."""


class OutputError(CanopyExplorerError):
    """An output file or folder cannot be written (bad format, read-only folder, disk full)."""
