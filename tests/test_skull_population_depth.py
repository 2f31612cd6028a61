"""The shipped bone depth of the population skull matches its recipe (scripts/make_ct_template_depth.py)."""

import numpy as np

from fusplan.skull.population import _depth_fraction, _template, compute_depth_fraction, diploe_multiplier


def test_shipped_depth_is_the_recipe():
    shipped = _depth_fraction()
    np.testing.assert_array_equal(shipped, compute_depth_fraction())
    bone = _template()[0] >= 700
    assert shipped[bone].min() >= 0 and shipped[bone].max() <= 1
    # the tables (outer and inner quarters) are left as the template has them, the middle is scaled
    multiplier = diploe_multiplier(shipped[bone], 0.4)
    assert np.isclose(multiplier.max(), 1.0) and np.isclose(multiplier.min(), 0.4)
