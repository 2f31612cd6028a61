"""The SDR band re-evaluates the plan's rays at the other diploe ratios (skull.model._sdr_band).

Oracle: the full trace of the skull at that diploe ratio (its own refraction, bone march
and inner-table normals), i.e. what the band computed before. Tolerance: energy factor and
SDR within 1 % (measured on the sample head: SDR identical, energy factor within 0.015 %).
"""

from dataclasses import replace

import numpy as np
import pytest

from fusplan.acoustics import Transducer
from fusplan.skull.model import BAND_PERCENTILES, model_skull
from fusplan.skull.population import population_skull, sdr_percentile
from fusplan.skull.pose import array_element_positions
from test_skull_population import TARGET, identity_registration


def test_band_matches_full_traces_at_the_other_diploe_ratios():
    ct = population_skull(identity_registration())
    elements = array_element_positions(Transducer(), TARGET)
    plan = model_skull(ct, elements, TARGET, 650e3, sdr_band=True)
    band = plan.sdr_band
    alone = model_skull(ct, elements, TARGET, 650e3)
    assert alone.coherent_gain == plan.coherent_gain and np.array_equal(alone.sdr, plan.sdr, equal_nan=True)
    for percentile, sdr, factor in zip(BAND_PERCENTILES, band.sdr, band.energy_factor):
        exact = model_skull(replace(ct, diploe_ratio=sdr_percentile(percentile)), elements, TARGET, 650e3)
        assert sdr == pytest.approx(exact.mean_sdr, rel=0.01)
        assert factor == pytest.approx(plan.coherent_gain / exact.coherent_gain, rel=0.01)
    assert band.energy_factor[0] > 1.0 > band.energy_factor[-1]  # lower SDR costs energy here
