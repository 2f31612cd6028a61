"""The prior on the focal spread of an uncalibrated plan (issue 17, item 2).

Oracle: a Gaussian heat source widened by ``s_a`` along axis ``a`` is a Gaussian exactly
``s_a`` times wider (FWHM read on the grid, 0.5 mm voxels: within 1.5 %), power kept.
"""
import copy

import numpy as np
import pytest

import fusplan
from fusplan.errors import FusplanInputError
from fusplan.focusmodel import side_model, source_sigma_mm, transform_source
from fusplan.protocol import FocusPrior, load_protocol
from fusplan.protocol.limits import FOCUS_PRIORS

from conftest import _GAUSSIAN_SPEC

SPREAD = (1.67, 1.67, 1.28)


def _spec(**extra):
    spec = copy.deepcopy(_GAUSSIAN_SPEC)
    spec["grid"]["extent_mm"] = 24
    spec.update(extra)
    return spec


def test_pulkkinen_prior_is_the_measured_over_simulated_ratio():
    spread, source = FOCUS_PRIORS["pulkkinen2014"]
    # 40 % (AP) and 22 % (SI) smaller simulated foci: measured / simulated = 1 / 0.60 and 1 / 0.78
    assert spread == pytest.approx((1 / 0.60, 1 / 0.60, 1 / 0.78), abs=0.005)
    assert "Pulkkinen" in source


def test_protocol_key_forms_and_defaults():
    assert load_protocol(_spec()).focus_prior == "auto"
    auto = load_protocol(_spec())
    assert auto.resolved_focus_prior(head=True).spread == pytest.approx(SPREAD)
    assert auto.resolved_focus_prior(head=False) is None
    assert load_protocol(_spec(focus_prior="none")).resolved_focus_prior(head=True) is None
    named = load_protocol(_spec(focus_prior="pulkkinen2014")).resolved_focus_prior(head=False)
    assert named.name == "pulkkinen2014"
    given = load_protocol(_spec(focus_prior={"spread": [1.2, 1.3, 1.1], "source": "my site"}))
    assert given.focus_prior == FocusPrior((1.2, 1.3, 1.1), "my site")


@pytest.mark.parametrize("value, key", [
    ({"spread": [0.9, 1.0, 1.0]}, "focus_prior.spread[0]"),
    ({"spread": [1.2, 1.2]}, "focus_prior.spread"),
    ({"spread": [1.2, 1.2, 9]}, "focus_prior.spread[2]"),
    ({"spread": [1.2, 1.2, 1.2], "width": 1}, "focus_prior"),
    ("pulkinen", "focus_prior"),
])
def test_bad_priors_are_refused_naming_the_key(value, key):
    with pytest.raises(FusplanInputError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_protocol(_spec(focus_prior=value))


def test_per_axis_spread_widens_a_gaussian_exactly():
    result = fusplan.simulate(load_protocol(_spec(focus_prior="none")))
    model = side_model(result)
    q = model.sources[model.main_source]
    widened = transform_source(q, model.grid, spread=SPREAD)
    ratio = source_sigma_mm(widened, model.grid.spacing_mm) / source_sigma_mm(q, model.grid.spacing_mm)
    assert ratio == pytest.approx(SPREAD, rel=0.015)
    assert widened.sum() == pytest.approx(q.sum(), rel=1e-3)


def test_the_plan_heats_with_the_prior_and_calibration_starts_from_the_physics():
    plain = fusplan.simulate(load_protocol(_spec(focus_prior="none")))
    widened = fusplan.simulate(load_protocol(_spec(focus_prior={"spread": list(SPREAD), "source": "test"})))
    block = widened.to_dict()["focus_prior"]
    assert block["applied"] and block["spread"] == list(SPREAD)
    spot = block["focal_spot"][0]
    assert np.array(spot["planned_fwhm_mm"]) / np.array(spot["physics_fwhm_mm"]) == pytest.approx(SPREAD, rel=0.015)
    assert spot["physics_fwhm_mm"] == pytest.approx(plain.to_dict()["focus_prior"]["focal_spot"][0]["planned_fwhm_mm"])
    assert not plain.to_dict()["focus_prior"]["applied"]
    # calibration and the band start from the physics source, and know the prior
    model = side_model(widened)
    reference = side_model(plain)
    for key, q in model.sources.items():
        assert np.allclose(q, reference.sources[key], rtol=0, atol=1e-6 * q.max())
    assert model.focus_prior == pytest.approx(SPREAD)
    # a wider spot needs more power for the same titrated peak
    titrated = [(a.power_w, b.power_w) for a, b in zip(plain.first.sonications, widened.first.sonications)
                if a.stage == "treatment"]
    assert all(wide > narrow for narrow, wide in titrated)


def test_uncalibrated_band_draws_the_spread_around_the_prior():
    from fusplan.uncertainty import draw_parameters

    widened = fusplan.simulate(load_protocol(_spec(focus_prior={"spread": list(SPREAD), "source": "test"})))
    draws = draw_parameters(side_model(widened), None, 400, np.random.default_rng(1))
    spreads = np.array([d["spread"] for d in draws])
    assert spreads.shape == (400, 3) and np.all(spreads >= 1.0)
    assert np.allclose(spreads[:, 0], spreads[:, 1])  # LR with AP: the focus is symmetric about the beam
    fractions = np.median(1.0 / spreads, axis=0)  # Pulkkinen: simulated / measured 0.60 (AP), 0.78 (SI)
    assert fractions == pytest.approx([1 / 1.67, 1 / 1.67, 1 / 1.28], abs=0.03)
