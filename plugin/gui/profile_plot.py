"""The along-track elevation profile drawn with matplotlib: terrain, canopy top and the canopy percentile band.

Draws on a matplotlib ``Figure`` (never pyplot, which keeps global state and picks its own backend), so
the same drawing serves the dialog's Qt canvas and a PNG written without a screen.
"""

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..core.lidar.atl08.profiles import Profile
from ..core.segment_files import temporary_sibling

TERRAIN_COLOUR = "#8c510a"
CANOPY_COLOUR = "#1a9850"
BAND_COLOUR = "#a6d96a"


def broken_at_gaps(profile: Profile, values: np.ndarray):
    """(distance, values) with a NaN at each gap, so a line stops where segments are missing rather than bridging."""
    gaps = profile.gaps()
    return np.insert(profile.distance_km, gaps, np.nan), np.insert(values, gaps, np.nan)


def draw_profile(figure, profile: Profile, title: Optional[str] = None) -> None:
    """Draw ``profile`` on ``figure`` (cleared first): distance along track in km, heights in metres."""
    figure.clear()
    axes = figure.add_subplot(1, 1, 1)
    if profile.band is not None:
        distance, low = broken_at_gaps(profile, profile.band.low)
        _, high = broken_at_gaps(profile, profile.band.high)
        axes.fill_between(distance, low, high, where=np.isfinite(low) & np.isfinite(high), color=BAND_COLOUR, alpha=0.5,
                          linewidth=0, label=profile.band.label)
    if profile.canopy_top is not None:
        axes.plot(*broken_at_gaps(profile, profile.canopy_top), color=CANOPY_COLOUR, linewidth=1.2, marker=".", markersize=3,
                  label="Canopy top (terrain + h_canopy)")
    axes.plot(*broken_at_gaps(profile, profile.terrain), color=TERRAIN_COLOUR, linewidth=1.5, label="Terrain (h_te_best_fit)")
    axes.set_xlabel("Distance along track from the first segment (km)")
    axes.set_ylabel("Height above the WGS84 ellipsoid (m)")
    axes.set_title(title or profile.track.label, fontsize=10)
    axes.grid(True, linewidth=0.3, alpha=0.6)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()


def save_profile_png(profile: Profile, path, title: Optional[str] = None, size=(9, 4), dpi: int = 120) -> None:
    """Write the profile as a PNG without a screen (matplotlib's Agg renderer)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    draw_profile(figure, profile, title)
    save_figure_png(figure, path, dpi)


def save_figure_png(figure, path, dpi: int = 120) -> None:
    """Write ``figure`` to ``path`` under a temporary name first, so a failed save leaves no half-written PNG."""
    target = Path(path)
    temporary = temporary_sibling(target, ".png")
    try:
        figure.savefig(str(temporary), dpi=dpi, format="png")
        os.replace(temporary, target)
    except Exception:
        temporary.unlink(missing_ok=True)
        raise
