"""Classes for comparable maps: one set of natural breaks for maps of one quantity (all years together), and
classes symmetric around 0 for change maps (plugin/core/map_classes.py)."""

import numpy as np
import pytest

from canopy_explorer.plugin.core.map_classes import shared_breaks, symmetric_classes
from natural_breaks_reference import textbook_fisher_jenks


def test_shared_breaks_are_the_natural_breaks_of_all_maps_values_together():
    rng = np.random.default_rng(7)
    early, late = rng.normal(0.3, 0.1, 400), rng.normal(0.6, 0.1, 300)
    minimum, breaks = shared_breaks([early, late], k=5)
    assert minimum == early.min()
    assert breaks[-1] == late.max()
    assert breaks == pytest.approx(textbook_fisher_jenks(np.concatenate([early, late]), 5))


def test_shared_breaks_leave_out_nulls_and_empty_maps():
    minimum, breaks = shared_breaks([[None, 1.0, 2.0], [np.nan, 3.0, 10.0], []], k=2)
    assert minimum == 1.0 and breaks == [3.0, 10.0]
    assert shared_breaks([[None], []]) == (None, [])


def test_change_classes_run_from_minus_to_plus_the_largest_absolute_change():
    minimum, bounds = symmetric_classes([-0.05, 0.02, None, 0.2, np.nan], k=5)
    edges = np.array([minimum, *bounds])
    assert edges[-1] == pytest.approx(0.2)
    np.testing.assert_allclose(edges, -edges[::-1])
    np.testing.assert_allclose(np.diff(edges), 0.08)
    assert symmetric_classes([0.0, 0.0], k=4) == (-1.0, [-0.5, 0.0, 0.5, 1.0])  # no change: still a ramp
    assert symmetric_classes([None]) == (None, [])
