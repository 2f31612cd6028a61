"""CEM43 against Sapareto-Dewey and exactness of the linear-in-step integral."""
import numpy as np
import pytest

from fusplan.dose import cem43, cem43_rate, cem43_step


@pytest.mark.parametrize(
    "temperature_c, seconds, expected",
    [(55, 3.52, 240), (50, 112.5, 240), (54, 7.03, 240), (50, 7.97, 17), (57, 0.879, 240), (55, 0.249, 17)],
)
def test_sapareto_dewey_times(temperature_c, seconds, expected):
    # The sheet's times are rounded to 3 significant digits: 0.2% tolerance.
    assert cem43(np.full(2, float(temperature_c)), seconds) == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize("temperature_c", [37.0, 42.99, 43.0, 48.5])
def test_constant_temperature_is_exact(temperature_c):
    r = 0.5 if temperature_c >= 43 else 0.25
    assert cem43(np.full(5, temperature_c), 15.0) == pytest.approx(r ** (43 - temperature_c) * 1.0, rel=1e-12)


def test_linear_ramp_across_43_is_exact():
    # Analytic: ramp 40 -> 46 C over 60 s: 30 s below 43 (R = 1/4), 30 s above (R = 1/2).
    cold = (1 - 0.25 ** 3) / (3 * np.log(4)) * 30 / 60
    hot = (2 ** 3 - 1) / (3 * np.log(2)) * 30 / 60
    assert cem43([40.0, 46.0], 60.0) == pytest.approx(cold + hot, rel=1e-12)
    assert cem43([46.0, 40.0], 60.0) == pytest.approx(cold + hot, rel=1e-12)


def test_dose_does_not_depend_on_output_interval():
    # A piecewise-linear history (knots every 2 s) sampled at 2, 0.5 and 0.01 s.
    knots_t = np.arange(0, 41, 2.0)
    knots_c = 37 + 20 * np.sin(np.pi * knots_t / 40) ** 2 + np.random.default_rng(0).uniform(-1, 1, knots_t.size)
    doses = []
    for dt in (2.0, 0.5, 0.01):
        t = np.arange(0, 40 + dt / 2, dt)
        doses.append(cem43(np.interp(t, knots_t, knots_c), dt))
    assert doses[1] == pytest.approx(doses[0], rel=1e-10)
    assert doses[2] == pytest.approx(doses[0], rel=1e-10)


def test_shapes_and_non_uniform_steps():
    temps = np.stack([np.full((2, 3), 37.0), np.full((2, 3), 50.0), np.full((2, 3), 50.0)])
    dose = cem43(temps, [10.0, 30.0])
    assert dose.shape == (2, 3)
    ramp = cem43_step(37.0, 50.0, 10.0)
    assert np.allclose(dose, ramp + 0.5 ** -7 * 0.5)
    assert cem43_rate(43.0) == 1.0 and cem43_rate(44.0) == 2.0 and cem43_rate(42.0) == 0.25


def test_bad_dt_rejected():
    with pytest.raises(ValueError):
        cem43(np.zeros((3, 2)), [1.0])
    with pytest.raises(ValueError):
        cem43(np.zeros((3, 2)), -1.0)


def test_absurd_temperatures_give_a_finite_dose():
    """Capped at DOSE_CEILING_C (~909 C): no overflow, no NaN, monotonic up to the cap."""
    from fusplan.dose import DOSE_CEILING_C, cem43_step_from_rates

    hot = np.array([100.0, 900.0, 3000.0, 1e6])
    assert np.all(np.isfinite(cem43_rate(hot)))
    assert np.all(np.diff(cem43_rate(hot)) >= 0)
    steps = cem43_step(hot, hot[::-1], 1.0)
    assert np.all(np.isfinite(steps))
    rates = cem43_rate(hot)
    assert np.all(np.isfinite(cem43_step_from_rates(hot, hot[::-1], rates, rates[::-1], 1.0)))
    assert cem43_rate(DOSE_CEILING_C) == pytest.approx(np.exp(600.0))
    assert cem43(np.full(3, 3000.0), 1.0) == pytest.approx(cem43(np.full(3, DOSE_CEILING_C), 1.0))
