"""Tissue presets, derived coefficients and validated overrides."""
import math

import pytest

from fusplan.errors import FusplanInputError
from fusplan.tissue import TISSUE_PRESETS, Tissue, tissue_from_spec


def test_brain_derived_values_match_physics_sheet():
    brain = TISSUE_PRESETS["brain"]
    # physics.md (derived): D 1.34e-7 m^2/s, w_b 9.75e-3 1/s, tau ~103 s, L ~3.7 mm
    assert brain.diffusivity_m2_s == pytest.approx(1.343e-7, rel=2e-3)
    assert brain.perfusion_per_s == pytest.approx(9.75e-3, rel=1e-3)
    assert 1 / brain.perfusion_rate_per_s == pytest.approx(103, rel=0.01)
    assert brain.perfusion_length_mm == pytest.approx(3.7, rel=0.01)


def test_presets_carry_babelbrain_table_values():
    grey, white, csf = (TISSUE_PRESETS[k] for k in ("grey_matter", "white_matter", "csf"))
    assert (grey.conductivity_w_m_k, grey.specific_heat_j_kg_k, grey.perfusion_ml_min_kg) == (0.55, 3696, 764)
    assert (white.conductivity_w_m_k, white.specific_heat_j_kg_k, white.perfusion_ml_min_kg) == (0.48, 3583, 212)
    assert (csf.conductivity_w_m_k, csf.specific_heat_j_kg_k, csf.perfusion_ml_min_kg) == (0.57, 4096, 0)
    assert csf.perfusion_rate_per_s == 0 and math.isinf(csf.perfusion_length_mm)


def test_spec_preset_name_and_overrides():
    assert tissue_from_spec("csf") == TISSUE_PRESETS["csf"]
    t = tissue_from_spec({"preset": "white_matter", "perfusion_ml_min_kg": 0, "baseline_temperature_c": 36.5})
    assert isinstance(t, Tissue)
    assert t.perfusion_ml_min_kg == 0 and t.baseline_temperature_c == 36.5
    assert t.conductivity_w_m_k == 0.48
    assert tissue_from_spec({"conductivity_w_m_k": 0.6}).density_kg_m3 == 1046  # default preset brain


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"preset": "bone"}, "tissue.preset"),
        ({"conductivity": 0.5}, "tissue.conductivity"),
        ({"density_kg_m3": -1}, "tissue.density_kg_m3"),
        ({"perfusion_ml_min_kg": -5}, "tissue.perfusion_ml_min_kg"),
        ({"blood_temperature_c": 80}, "tissue.blood_temperature_c"),
        ({"specific_heat_j_kg_k": "a lot"}, "tissue.specific_heat_j_kg_k"),
    ],
)
def test_bad_spec_names_the_key(spec, key):
    with pytest.raises(FusplanInputError, match=key.replace(".", r"\.")):
        tissue_from_spec(spec)
