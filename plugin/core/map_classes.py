"""Classes that make maps comparable: one set of natural breaks for several maps of the same quantity, and
classes symmetric around 0 for a map of change.

Two maps of NDVI in 2019 and 2024 classified each on its own values give the same colour to
different values, so the eye compares classes, not NDVI. ``shared_breaks`` classifies the
union of the maps' values (all years together), so a colour means the same value on each.
A change map's zero must sit in the middle of a diverging ramp, with as much room for loss as
for gain: ``symmetric_classes`` runs from -max|change| to +max|change| in equal classes.

    minimum, breaks = shared_breaks([values_2019, values_2024], k=5)
    minimum, breaks = symmetric_classes(change, k=5)       # minimum == -breaks[-1]

Both return ``(minimum, class upper bounds)``, as ``statistics.layer_breaks`` and the
renderers on the QGIS side take them.
"""

from typing import Iterable, List, Optional, Tuple

import numpy as np

from .natural_breaks import fisher_jenks, sample_for_breaks


def _finite(values) -> np.ndarray:
    x = np.asarray([np.nan if v is None else v for v in values] if not isinstance(values, np.ndarray) else values,
                   dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def shared_breaks(maps: Iterable, k: int = 5) -> Tuple[Optional[float], List[float]]:
    """(minimum, Fisher-Jenks upper bounds) of the values of all ``maps`` together (each an iterable of values;
    None and NaN ignored); each map is sampled alike, so a large raster does not outweigh a small one.
    The last bound is the overall maximum. ``(None, [])`` when no map has a value."""
    parts = [_finite(values) for values in maps]
    parts = [part for part in parts if len(part)]
    if not parts:
        return None, []
    union = np.concatenate([sample_for_breaks(part) for part in parts])
    bounds = fisher_jenks(sample_for_breaks(union), k)
    bounds[-1] = max(float(part.max()) for part in parts)
    return min(float(part.min()) for part in parts), bounds


def symmetric_classes(values, k: int = 5) -> Tuple[Optional[float], List[float]]:
    """(-m, upper bounds) of ``k`` equal classes from -m to +m, m = max|value|: a change map's classes, symmetric
    around 0 (an odd ``k`` gives a middle class around no change). ``(None, [])`` without a finite value."""
    if k < 1:
        raise ValueError("the number of classes must be at least 1")
    x = _finite(values)
    if not len(x):
        return None, []
    limit = float(np.abs(x).max()) or 1.0  # no change anywhere: still a readable ramp
    edges = np.linspace(-limit, limit, k + 1)
    return -limit, [float(edge) for edge in edges[1:]]
