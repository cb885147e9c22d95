"""QGIS and Qt names that differ between the releases the plugin supports: 3.22, 3.40 LTR, and QGIS 4 (Qt6).

QGIS 4 (PyQt6) takes only scoped enums (``Qgis.MessageLevel.Warning``, never ``Qgis.Warning``; the
plugin writes them so everywhere, which 3.22 accepts too) and drops the homes QGIS 3 deprecated when
it moved enums into ``Qgis`` (``QgsWkbTypes.GeometryType`` became ``Qgis.GeometryType`` in 3.30,
``QgsProcessing.SourceType`` became ``Qgis.ProcessingSourceType`` in 3.36, ...), which 3.22 does not
have yet. Every such name the plugin uses comes from here: the new home where this QGIS has it, the
old one otherwise. Field types likewise: QGIS 3.38 takes ``QMetaType.Type`` where older releases
take ``QVariant.Type``, and 3.40 names a float32 field "Float32" where 3.22 says "Real".
"""

from functools import reduce

import qgis.core
import qgis.gui
from qgis.PyQt.QtCore import QMetaType, QVariant

_MODULES = (qgis.core, qgis.gui)


def name(new: str, old: str):
    """The value at dotted path ``new`` (under qgis.core or qgis.gui) when this QGIS has it, else at ``old``."""
    for path in (new, old):
        head, *rest = path.split(".")
        for module in _MODULES:
            start = getattr(module, head, None)
            if start is None:
                continue
            try:
                return reduce(getattr, rest, start)
            except AttributeError:
                break
    raise AttributeError(f"this QGIS has neither {new} nor {old}")


# Geometry and layer types
POLYGON_GEOMETRY = name("Qgis.GeometryType.Polygon", "QgsWkbTypes.GeometryType.PolygonGeometry")
POLYGON_LAYERS = name("Qgis.LayerFilter.PolygonLayer", "QgsMapLayerProxyModel.Filter.PolygonLayer")
POINT_LAYERS = name("Qgis.LayerFilter.PointLayer", "QgsMapLayerProxyModel.Filter.PointLayer")

# Processing
SOURCE_VECTOR_POLYGON = name("Qgis.ProcessingSourceType.VectorPolygon", "QgsProcessing.SourceType.TypeVectorPolygon")
SOURCE_VECTOR_POINT = name("Qgis.ProcessingSourceType.VectorPoint", "QgsProcessing.SourceType.TypeVectorPoint")
SOURCE_RASTER = name("Qgis.ProcessingSourceType.Raster", "QgsProcessing.SourceType.TypeRaster")
NUMBER_DOUBLE = name("Qgis.ProcessingNumberParameterType.Double", "QgsProcessingParameterNumber.Type.Double")
NUMBER_INTEGER = name("Qgis.ProcessingNumberParameterType.Integer", "QgsProcessingParameterNumber.Type.Integer")
FILE_FOLDER = name("Qgis.ProcessingFileParameterBehavior.Folder", "QgsProcessingParameterFile.Behavior.Folder")
PARAMETER_ADVANCED = name("Qgis.ProcessingParameterFlag.Advanced", "QgsProcessingParameterDefinition.Flag.FlagAdvanced")
SKIP_GEOMETRY_CHECKS = name("Qgis.ProcessingFeatureSourceFlag.SkipGeometryValidityChecks",
                            "QgsProcessingFeatureSource.Flag.FlagSkipGeometryValidityChecks")

# Raster colour ramps
SHADER_LINEAR = name("Qgis.ShaderInterpolationMethod.Linear", "QgsColorRampShader.Type.Interpolated")
SHADER_DISCRETE = name("Qgis.ShaderInterpolationMethod.Discrete", "QgsColorRampShader.Type.Discrete")

# Print layouts (the demo)
LAYOUT_MILLIMETERS = name("Qgis.LayoutUnit.Millimeters", "QgsUnitTypes.LayoutUnit.LayoutMillimeters")
DISTANCE_KILOMETERS = name("Qgis.DistanceUnit.Kilometers", "QgsUnitTypes.DistanceUnit.DistanceKilometers")
LEGEND_TITLE = name("Qgis.LegendComponent.Title", "QgsLegendStyle.Style.Title")
LEGEND_SUBGROUP = name("Qgis.LegendComponent.Subgroup", "QgsLegendStyle.Style.Subgroup")
LEGEND_SYMBOL_LABEL = name("Qgis.LegendComponent.SymbolLabel", "QgsLegendStyle.Style.SymbolLabel")

# Layer types (the layer tree's context menu takes one)
VECTOR_LAYER_TYPE = name("Qgis.LayerType.Vector", "QgsMapLayerType.VectorLayer")

# Elevation profiles: QGIS 3.26 added the Elevation Profile tool and the layers' elevation properties it reads.
HAS_ELEVATION_PROFILES = hasattr(qgis.core, "QgsVectorLayerElevationProperties") and hasattr(qgis.core, "QgsProfileRequest")

# Saved STAC connections: QGIS 3.40 added a STAC data provider, whose connections (Data Source Manager, Browser)
# live in the settings tree under connections/stac/<name>/ (url, authcfg, username, password, http-header). 3.40
# has no Python binding for QgsStacConnection, so they are read where that class reads them; a QGIS without the
# node (before 3.40; the tree itself came in 3.30) has no saved STAC connections.
def _stac_connections_node():
    tree = getattr(qgis.core, "QgsSettingsTree", None)
    connections = tree.node("connections") if tree is not None else None
    return connections.childNode("stac") if connections is not None else None


HAS_STAC_CONNECTIONS = _stac_connections_node() is not None


def stac_connection_names() -> list:
    """The names of the STAC connections saved in QGIS, sorted as the Data Source Manager lists them; none
    where this QGIS has no STAC connections."""
    node = _stac_connections_node()
    return sorted(node.items(), key=str.lower) if node is not None else []


def stac_connection_values(connection_name: str) -> dict:
    """A saved STAC connection's settings ("url", "authcfg", "username", "password", "http-header"), as QGIS
    stores them; empty when there is no such connection."""
    node = _stac_connections_node()
    if node is None or connection_name not in node.items():
        return {}
    values = {}
    for key in ("url", "authcfg", "username", "password", "http-header"):
        setting = node.childSetting(key)
        if setting is not None:
            values[key] = setting.valueAsVariant(connection_name)
    return values


def save_stac_connection(connection_name: str, url: str, authcfg: str = "", headers=None) -> None:
    """Save a STAC connection as the Data Source Manager does (for tests and scripts that set QGIS up)."""
    node = _stac_connections_node()
    if node is None:
        raise RuntimeError("this QGIS has no STAC connections (they came with QGIS 3.40)")
    node.childSetting("url").setVariantValue(url, connection_name)
    node.childSetting("authcfg").setVariantValue(authcfg, connection_name)
    node.childSetting("http-header").setVariantValue(dict(headers or {}), connection_name)


def remove_stac_connection(connection_name: str) -> None:
    node = _stac_connections_node()
    if node is not None:
        node.deleteItem(connection_name)


# QAction moved from QtWidgets to QtGui in Qt6
try:
    from qgis.PyQt.QtGui import QAction  # noqa: F401
except ImportError:
    from qgis.PyQt.QtWidgets import QAction  # noqa: F401

# Field types, by kind: the values QgsField takes in this QGIS, and the kind of a field, whatever its type name.
_KINDS = {
    "integer": QMetaType.Type.Int, "integer64": QMetaType.Type.LongLong, "real": QMetaType.Type.Double,
    "string": QMetaType.Type.QString, "datetime": QMetaType.Type.QDateTime, "date": QMetaType.Type.QDate,
    "boolean": QMetaType.Type.Bool,
}
_QVARIANT = {"integer": "Int", "integer64": "LongLong", "real": "Double", "string": "String", "datetime": "DateTime",
             "date": "Date", "boolean": "Bool"}
_TAKES_QMETATYPE = qgis.core.Qgis.versionInt() >= 33800


def field_type(kind: str):
    """What ``QgsField(name, ...)`` takes for ``kind`` ("integer", "integer64", "real", "string", "datetime", ...)."""
    return _KINDS[kind] if _TAKES_QMETATYPE else getattr(QVariant, _QVARIANT[kind])


def new_field(field_name: str, kind: str):
    return qgis.core.QgsField(field_name, field_type(kind))


def field_kind(field) -> str:
    """"integer", "integer64", "real", "string", ... for a QgsField, from its type rather than its display name
    (3.40 calls float32 and int16 fields "Float32" and "Int16", 3.22 "Real" and "Integer")."""
    value = int(field.type())
    for kind, metatype in _KINDS.items():
        if value == int(metatype):
            return kind
    return field.typeName().lower()


# Print layout text: QgsTextFormat from 3.24 (labels) and 3.30 (legend styles); setFont() is deprecated after.
def _text_format(font, colour=None):
    text = qgis.core.QgsTextFormat()
    text.setFont(font)
    text.setSize(font.pointSizeF())  # points, QgsTextFormat's default unit
    if colour is not None:
        text.setColor(colour)
    return text


def set_label_font(label, font, colour) -> None:
    """A QgsLayoutItemLabel's font and colour."""
    if hasattr(label, "setTextFormat"):
        label.setTextFormat(_text_format(font, colour))
    else:
        label.setFont(font)
        label.setFontColor(colour)


def set_legend_font(legend, component, font) -> None:
    """The font of one part of a QgsLayoutItemLegend (title, group, item labels)."""
    style = legend.rstyle(component)
    if hasattr(style, "setTextFormat"):
        style.setTextFormat(_text_format(font))
    else:
        style.setFont(font)
