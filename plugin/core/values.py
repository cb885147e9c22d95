"""Checks of plain values that the request objects of every domain share."""

import numpy as np


def whole_number(value) -> bool:
    """A whole number (5, or 5.0 from a spin box or a Processing parameter), not a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer())
