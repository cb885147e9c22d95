"""The elevation profile of one ATL08 track of a result layer: terrain, canopy top and the canopy percentile band
along track, in a matplotlib canvas.

Opened from the layer's context menu (or the plugin menu for the active layer). QGIS 3.26+ also shows the
segments in its own Elevation Profile tool (``layers/profile_layer.set_segment_elevation``); this plot is
what QGIS 3.22 has, and it draws the percentile band QGIS's tool does not.
"""

from typing import Optional

from qgis.PyQt.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QPushButton,
                                 QVBoxLayout)

from ..core.errors import CanopyExplorerError
from ..core.lidar.atl08.profiles import Profile, Track, along_track_profile
from ..layers.profile_layer import layer_tracks, selected_track, track_segments
from .messages import error_line
from .profile_plot import draw_profile, save_figure_png


def figure_canvas():
    """A matplotlib figure in a Qt widget; the qtagg backend follows the Qt binding QGIS runs (Qt5 or Qt6)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    return FigureCanvasQTAgg(Figure(figsize=(9, 4), dpi=100))


class ProfileDialog(QDialog):
    """One layer's tracks in a list; the chosen track's profile below it, saved as PNG on request."""

    def __init__(self, layer, parent=None, track: Optional[Track] = None):
        super().__init__(parent)
        self.setObjectName("CanopyExplorerProfileDialog")
        self.layer = layer
        self.profile: Optional[Profile] = None
        self.setWindowTitle(f"Elevation profile: {layer.name()}")
        self.tracks = layer_tracks(layer)
        if not self.tracks:
            raise CanopyExplorerError(f"layer '{layer.name()}' has no segments to draw a profile of")
        self.track_combo = QComboBox(self)
        self.track_combo.setObjectName("trackCombo")
        for candidate in self.tracks:
            self.track_combo.addItem(candidate.label, candidate)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.canvas = figure_canvas()
        self.canvas.setParent(self)
        save = QPushButton("Save as PNG…", self)
        save.setObjectName("saveButton")
        save.clicked.connect(lambda: self.save_png())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        choose = QHBoxLayout()
        choose.addWidget(QLabel("Track:", self))
        choose.addWidget(self.track_combo, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(save)
        bottom.addStretch(1)
        bottom.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(choose)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.status)
        layout.addLayout(bottom)
        self.resize(900, 520)
        self.track_combo.currentIndexChanged.connect(self.show_track)
        start = track or selected_track(layer)
        self.choose_track(start if start is not None else self.tracks[0])

    def choose_track(self, track: Track) -> None:
        index = next((i for i, candidate in enumerate(self.tracks) if candidate.same_pass(track)), 0)
        if self.track_combo.currentIndex() == index:
            self.show_track(index)
        else:
            self.track_combo.setCurrentIndex(index)  # draws through currentIndexChanged

    def show_track(self, index: int) -> None:
        track = self.track_combo.itemData(index)
        try:
            self.profile = along_track_profile(track_segments(self.layer, track), track)
        except CanopyExplorerError as error:
            self.profile = None
            self.canvas.figure.clear()
            self.canvas.draw_idle()
            self.status.setText(error_line(str(error)))
            return
        draw_profile(self.canvas.figure, self.profile)
        self.canvas.draw_idle()
        length = self.profile.distance_km[-1] if len(self.profile) else 0.0
        band = f"; shaded: {self.profile.band.label.lower()} of the canopy heights" if self.profile.band else ""
        self.status.setText(f"{len(self.profile):,} segments over {length:.1f} km{band}.")

    def save_png(self, path: str = "") -> Optional[str]:
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save the profile as PNG", "", "PNG image (*.png)")
            if not path:
                return None
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            save_figure_png(self.canvas.figure, path)
        except OSError as error:
            self.status.setText(error_line(f"cannot save the profile to {path}: {error.strerror or error}"))
            return None
        self.status.setText(f"Profile saved to {path}.")
        return path
