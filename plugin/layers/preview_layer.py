"""Points on the map while a large query is still being read: a temporary layer that each batch
adds to, replaced by the finished, styled layer when the query completes.

The task thread thins each batch and builds its features (``preview_batch``); the main thread only
adds them (``PreviewLayer.add``). Adding features to a layer happens on the main thread and costs
about 17 microseconds each (250,000 took 4.3 s on a busy 2-core machine): a whole batch would
freeze QGIS, so a preview shows at most ``POINTS_PER_BATCH`` points of each batch, evenly spread
along the batch, which is enough to see where the segments are and how they colour.
"""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from qgis.core import QgsFeature, QgsFields, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal, pyqtSlot

from ..core.natural_breaks import BreaksSample
from ..qgis_compat import new_field
from .symbology import graduated_renderer

POINTS_PER_BATCH = 25_000


@dataclass
class PreviewBatch:
    """One batch's preview, built in the task thread."""

    features: List[QgsFeature]
    rows: int  # segments read so far (all of them, not only those previewed)
    estimated_rows: int
    minimum: Optional[float] = None  # the first batch's natural breaks colour the preview
    breaks: Optional[List[float]] = None


def preview_fields(colour_by: Optional[str]) -> QgsFields:
    fields = QgsFields()
    if colour_by:
        fields.append(new_field(colour_by, "real"))
    return fields


def preview_batch(frame, rows: int, estimated_rows: int, colour_by: Optional[str], classes: int,
                  first: bool) -> PreviewBatch:
    """Up to POINTS_PER_BATCH of the batch's segments as features (in the task thread)."""
    step = max(1, int(np.ceil(len(frame) / POINTS_PER_BATCH)))
    longitude = frame["longitude"].to_numpy()[::step].tolist()
    latitude = frame["latitude"].to_numpy()[::step].tolist()
    fields = preview_fields(colour_by)
    values = frame[colour_by].to_numpy(dtype=np.float64)[::step] if colour_by else None
    features = []
    for index, (x, y) in enumerate(zip(longitude, latitude)):
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        if values is not None:
            value = values[index]
            feature.setAttributes([float(value) if np.isfinite(value) else None])
        features.append(feature)
    batch = PreviewBatch(features, rows, estimated_rows)
    if first and colour_by:
        sample = BreaksSample()
        sample.add(frame[colour_by].to_numpy())
        batch.minimum, batch.breaks = sample.minimum, sample.breaks(classes)
    return batch


class PreviewLayer(QObject):
    """The layer a query's preview batches go into; connect the task's end to ``end()``, which removes it.

    Created on the main thread, so a task's signal connected to ``add`` is queued there. ``shown(batch)``
    follows each batch added. QGIS may process events while a layer is added to the project or changed
    (QGIS 3.22 did, in about one cancelled query in ten on a busy machine), so the query's end can arrive in
    the middle of ``add``: removing the layer there deleted it under ``QgsProject.addMapLayers``, which then
    crashed QGIS. ``end()`` during ``add`` only marks the end, and ``add`` removes the layer once QGIS has
    returned. The object deletes itself once its layer has gone."""

    shown = pyqtSignal(object)

    def __init__(self, name: str, colour_by: Optional[str], colour_variable: Optional[str], parent=None):
        super().__init__(parent)
        self.name = name
        self.colour_by = colour_by
        self.colour_variable = colour_variable
        self.layer_id = ""  # the preview layer's id in the project, once it has one
        self._ended = False  # a batch queued before the query ended adds nothing after it
        self._adding = False  # inside add(): QGIS may deliver the end meanwhile
        self._gone = False

    @pyqtSlot(object)
    def add(self, batch: PreviewBatch) -> None:
        if self._ended:
            return
        self._adding = True
        try:
            self._show(batch)
        finally:
            self._adding = False
        if self._ended:
            self._remove()
        else:
            self.shown.emit(batch)

    def _show(self, batch: PreviewBatch) -> None:
        shown = f"{batch.rows:,} of about {batch.estimated_rows:,}" if batch.estimated_rows >= batch.rows else f"{batch.rows:,}"
        name = f"{self.name} (loading: {shown} segments read)"
        # The layer is the project's: it is found by its id, so no Python reference outlives it.
        layer = QgsProject.instance().mapLayer(self.layer_id) if self.layer_id else None
        if layer is None:
            layer = QgsVectorLayer("Point?crs=EPSG:4326", name, "memory")
            layer.dataProvider().addAttributes(list(preview_fields(self.colour_by)))
            layer.updateFields()
            if self.colour_by and batch.breaks:
                layer.setRenderer(graduated_renderer(self.colour_by, self.colour_variable, batch.minimum, batch.breaks))
            layer.dataProvider().addFeatures(batch.features)
            layer.updateExtents()
            self.layer_id = layer.id()
            QgsProject.instance().addMapLayer(layer)
        else:
            layer.dataProvider().addFeatures(batch.features)
            layer.updateExtents()
            layer.setName(name)
            layer.triggerRepaint()

    @pyqtSlot()
    def end(self) -> None:
        """The query ended (completed, failed or cancelled): the preview goes, now or when ``add`` returns."""
        self._ended = True
        if not self._adding:
            self._remove()

    def _remove(self) -> None:
        if self._gone:
            return
        self._gone = True
        if self.layer_id and QgsProject.instance().mapLayer(self.layer_id) is not None:
            QgsProject.instance().removeMapLayer(self.layer_id)
        self.layer_id = ""
        self.deleteLater()
