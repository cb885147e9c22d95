"""Parameters the ATL08 algorithms share (VARIABLES, FILTERS, START, END) and their conversion."""

from qgis.core import QgsProcessingParameterString


def add_common_query_parameters(algorithm, variables_default: str = "h_canopy") -> None:
    algorithm.addParameter(QgsProcessingParameterString("START", "Start (ISO date or date-time, empty: database start)", optional=True))
    algorithm.addParameter(QgsProcessingParameterString("END", "End (ISO date or date-time, inclusive; empty: database end)", optional=True))
    algorithm.addParameter(QgsProcessingParameterString("VARIABLES", "Variables (comma-separated; var:label for one label)",
                                                        defaultValue=variables_default))
    algorithm.addParameter(QgsProcessingParameterString("FILTERS", "Quality filters (one condition per line)",
                                                        multiLine=True, optional=True))


def time_bounds(algorithm, parameters, context):
    """START and END as given (ISO text); empty means open-ended. The engine parses and checks them."""
    start = (algorithm.parameterAsString(parameters, "START", context) or "").strip() or None
    end = (algorithm.parameterAsString(parameters, "END", context) or "").strip() or None
    return start, end


def filters_text(algorithm, parameters, context) -> str:
    text = algorithm.parameterAsString(parameters, "FILTERS", context) or ""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())
