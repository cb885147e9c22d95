"""Time on result layers, so QGIS's temporal controller animates them without any setup.

ATL08 segments are instants: each is shown in the animation frame that holds its acquisition time (the
``time`` field: to the nanosecond with exact times, otherwise the day). They get no duration, which
would carry a segment into the next frame (a segment of 31 December into the next year's). An NDVI
composite is the median of one calendar year, so it covers that year (``year_range``).

The layer in the project keeps these properties when the project is saved; query outputs also carry
them in their default style (``TEMPORAL_STYLE``), so the file is temporal wherever QGIS opens it.
"""

from qgis.core import Qgis, QgsDateTimeRange, QgsMapLayer
from qgis.PyQt.QtCore import QDate, QDateTime, QTime, Qt

TIME_FIELD = "time"
# What a query output's default style stores: everything, time included (QGIS 3.22 saves and loads the
# temporal properties with the style when this category is part of it, as it is by default).
TEMPORAL_STYLE = QgsMapLayer.StyleCategory.AllStyleCategories


def make_segments_temporal(layer) -> bool:
    """Segments shown by their acquisition time (an instant); False when the layer has no ``time`` field."""
    if layer.fields().indexOf(TIME_FIELD) < 0:
        return False
    properties = layer.temporalProperties()
    properties.setMode(Qgis.VectorTemporalMode.FeatureDateTimeInstantFromField)
    properties.setStartField(TIME_FIELD)
    properties.setFixedDuration(0)
    properties.setAccumulateFeatures(False)
    properties.setIsActive(True)
    return True


def year_range(year: int) -> QgsDateTimeRange:
    """The calendar year in UTC as a composite's range: 1 January 00:00:01 to 31 December 23:59:59, both included.

    Both ends inside the year, because QGIS 3.22 tests a layer's range against a frame ignoring that the
    frame's end is excluded: a range starting at 00:00:00 would also show the composite in the previous
    year's frame, which ends there. Not "to the next 1 January, excluded" either: a project stores a range's
    ends but not whether they are included, so it would reopen including the next year's first second."""
    begin = QDateTime(QDate(year, 1, 1), QTime(0, 0, 1), Qt.TimeSpec.UTC)
    end = QDateTime(QDate(year, 12, 31), QTime(23, 59, 59), Qt.TimeSpec.UTC)
    return QgsDateTimeRange(begin, end, True, True)


def make_composite_temporal(layer, year: int) -> None:
    """A yearly composite covers its calendar year."""
    properties = layer.temporalProperties()
    properties.setMode(Qgis.RasterTemporalMode.FixedTemporalRange)
    properties.setFixedTemporalRange(year_range(year))
    properties.setIsActive(True)
