"""Parameters the ATL08 algorithms share (ROI, VARIABLES, FILTERS, START, END) and their conversion."""

from qgis.core import QgsProcessingParameterString

from ..core.errors import QueryError
from ..core.lidar.regions import region_on_earth
from ..layers.roi_source import roi_from_layer, roi_from_rectangle


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


def region_of_interest(algorithm, parameters, context, optional: bool = False):
    """ROI as a polygon layer (exact shapes) when it names one, else as an extent in its CRS;
    ``optional``: (None, EPSG:4326), the whole database, when no ROI is given."""
    value = parameters.get("ROI")
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None, "EPSG:4326"
    layer = None
    if value is not None and not _looks_like_extent(value):
        layer = algorithm.parameterAsVectorLayer(parameters, "ROI", context)
    if layer is not None:
        return roi_from_layer(layer)
    rectangle = algorithm.parameterAsExtent(parameters, "ROI", context)
    crs = algorithm.parameterAsExtentCrs(parameters, "ROI", context)
    if rectangle.isNull() or rectangle.isEmpty():
        raise QueryError(f"the region of interest {value!r} is neither an extent nor a polygon layer")
    if not crs.isValid():
        from qgis.core import QgsCoordinateReferenceSystem

        crs = QgsCoordinateReferenceSystem("EPSG:4326")  # a bare "xmin,xmax,ymin,ymax" is in degrees
    # As the dialog does with a canvas extent: what lies beyond the Earth or the CRS's area of use (a
    # zoomed-out map's extent) is clipped off, and an extent with nothing on the Earth is refused.
    checked = region_on_earth(*roi_from_rectangle(rectangle, crs), what="the ROI extent",
                              advice="give an extent that lies on the Earth")
    return checked.roi, checked.crs


def _looks_like_extent(value) -> bool:
    from qgis.core import QgsGeometry, QgsRectangle, QgsReferencedRectangle

    if isinstance(value, (QgsRectangle, QgsReferencedRectangle, QgsGeometry)):
        return True
    if isinstance(value, str):
        import re

        return re.match(r"^\s*-?[\d.eE+-]+\s*,\s*-?[\d.eE+-]+\s*,\s*-?[\d.eE+-]+\s*,\s*-?[\d.eE+-]+\s*(\[.*\])?\s*$", value) is not None
    return False
