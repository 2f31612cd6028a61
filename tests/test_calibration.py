"""Calibration on low-energy thermometry: focus transforms, recovery, refusals, prediction."""
import dataclasses

import numpy as np
import pytest
import yaml

import fusplan
from fusplan.calibration import calibrate
from fusplan.prediction import predict_treatment
from fusplan.clinical import clinical_regions
from fusplan.errors import FusplanInputError
from fusplan.focusmodel import (fwhm_voxels, gaussian_shift_filter, run_protocol, side_model, source_sigma_mm,
                               transform_source)
from fusplan.grid import Grid
from fusplan.measured import MeasuredSonication, Measurements
from fusplan.protocol import default_protocol_path
from fusplan.synthetic_thermometry import synthetic_series, truth_model

TRUTH = {"efficiency": 0.7, "spread": 1.6, "offset_ras_mm": (0.8, -0.6, 1.3)}
POWERS = {1: 60.0, 2: 100.0}


def _moments(field, grid):
    world = grid.world_coordinates().reshape(-1, 3)
    w = field.ravel() / field.sum()
    centre = w @ world
    local = (world - centre) @ grid.axes
    return centre, np.sqrt(w @ local**2)


def _oblique_grid():
    a, b = 0.4, -0.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return Grid.centred([5.0, -12.0, 7.0], extent_mm=24, spacing_mm=0.5, axes=rz @ rx)


def test_gaussian_filter_widens_a_gaussian_exactly_and_moves_it_by_sub_voxel_shifts():
    grid = _oblique_grid()
    x, y, z = grid.local_coordinates_mm()
    sigma0 = np.array([0.8, 1.0, 1.5])
    blob = np.exp(-0.5 * ((x / sigma0[0]) ** 2 + (y / sigma0[1]) ** 2 + (z / sigma0[2]) ** 2))
    out = gaussian_shift_filter(blob, grid.spacing_mm, [0.6, 0.0, 1.1], [0.3, -0.7, 1.25])
    centre, sigma = _moments(out, grid)
    np.testing.assert_allclose(sigma, np.sqrt(sigma0**2 + np.array([0.6, 0.0, 1.1]) ** 2), rtol=2e-3)
    np.testing.assert_allclose(grid.axes.T @ (centre - grid.centre_mm), [0.3, -0.7, 1.25], atol=2e-3)
    assert out.sum() == pytest.approx(blob.sum(), rel=1e-6)


def test_transform_source_offsets_in_world_ras_and_scales_widths_on_an_oblique_grid():
    grid = _oblique_grid()
    x, y, z = grid.local_coordinates_mm()
    q = np.exp(-0.5 * ((x / 0.6) ** 2 + (y / 0.6) ** 2 + (z / 1.2) ** 2))
    np.testing.assert_allclose(source_sigma_mm(q, grid.spacing_mm), [0.6, 0.6, 1.2], rtol=0.03)
    offset = np.array([1.0, -2.0, 0.5])
    moved = transform_source(q, grid, efficiency=0.5, spread=2.0, offset_ras_mm=offset, sigma0_mm=[0.6, 0.6, 1.2])
    centre, sigma = _moments(moved, grid)
    np.testing.assert_allclose(centre - grid.centre_mm, offset, atol=2e-3)
    np.testing.assert_allclose(sigma, 2 * np.array([0.6, 0.6, 1.2]), rtol=3e-3)
    assert moved.sum() == pytest.approx(0.5 * q.sum(), rel=1e-4)
    with pytest.raises(ValueError):
        transform_source(q, grid, spread=0.9)


@pytest.fixture(scope="module")
def base():
    with open(default_protocol_path("clt_single")) as handle:
        spec = yaml.safe_load(handle)
    spec["grid"] = {"spacing_mm": 0.5, "extent_mm": 24}
    result = fusplan.simulate(fusplan.load_protocol(spec))
    return result, side_model(result)


@pytest.fixture(scope="module")
def series_case(base):
    result, model = base
    truth = truth_model(model, **TRUTH)
    series = [synthetic_series(truth, i, powers_w=POWERS, noise_c=0.75, seed=i) for i in (1, 2)]
    measurements = Measurements(None, tuple(MeasuredSonication(i, POWERS[i], series=s)
                                            for i, s in zip((1, 2), series)))
    return truth, measurements, calibrate(result, measurements)


def test_efficiency_from_a_displayed_peak_is_recovered(base):
    result, model = base
    truth = truth_model(model, efficiency=0.8)
    history, _ = run_protocol(truth, fixed_powers_w={1: 60.0})
    displayed = history.results[0].thermometry_peak_c
    fit = calibrate(result, {"measured": [{"sonication": 1, "power_w": 60.0, "peak_c": displayed}]})
    assert fit.heating_efficiency == pytest.approx(0.8, rel=0.01)
    assert fit.fitted == ("heating_efficiency",) and fit.focal_spread == 1.0
    assert fit.residual_c < 0.05
    assert 0 < fit.uncertainty["heating_efficiency"] < 0.2


def test_series_with_noise_recovers_efficiency_spread_offset_and_the_lesion(base, series_case):
    result, model = base
    truth, _, fit = series_case
    assert fit.heating_efficiency == pytest.approx(TRUTH["efficiency"], rel=0.05)
    assert fit.focal_spread == pytest.approx(TRUTH["spread"], abs=0.2)
    np.testing.assert_allclose(fit.offset_ras_mm, TRUTH["offset_ras_mm"], atol=0.2)
    assert fit.residual_c == pytest.approx(0.75, rel=0.15)  # the noise: the model explains the rest
    assert set(fit.fitted) == {"heating_efficiency", "focal_spread", "offset_ras_mm"}
    prediction = predict_treatment(result, fit)
    history, grid = run_protocol(truth, fixed_powers_w=POWERS)
    truth_t1 = clinical_regions(history.dose_cem43, history.peak_temperature_c, grid, keys=["cem43_200"])[0]
    predicted_t1 = next(r for r in prediction.regions if r.region.key == "cem43_200")
    assert predicted_t1.equivalent_diameter_mm == pytest.approx(truth_t1.equivalent_diameter_mm, abs=0.5)
    doc = prediction.to_dict()
    np.testing.assert_allclose(doc["steering_offset_ras_mm"], -fit.offset_ras_mm)
    np.testing.assert_allclose(doc["focus_ras_mm"], model.target_ras_mm + fit.offset_ras_mm)
    treatment = [s for s in doc["sonications"] if s["stage"] == "treatment"]
    assert all(s["energy_j"] == pytest.approx(s["power_w"] * 14.0) for s in treatment)
    assert all(s["thermometry_peak_c"] == pytest.approx(55.0, abs=1.01) for s in treatment)
    assert doc["lesion_model"]["default_comparison"] == "cem43_200"
    assert {e["max_temperature_c"] for e in doc["isotherms"]} == {51.0, 54.0}
    block = fit.to_dict()
    assert set(block) >= {"heating_efficiency", "focal_spread", "offset_ras_mm", "residual_c", "uncertainty"}
    assert len(block["uncertainty"]["offset_ras_mm"]) == 3


def test_a_series_stored_flipped_gives_the_same_calibration(base, series_case):
    result, _ = base
    _, measurements, fit = series_case
    flipped = []
    for m in measurements.measured:
        s = m.series
        affine = s.affine.copy()
        affine[:3, 3] += affine[:3, 0] * (s.temperature_c.shape[0] - 1)
        affine[:3, 0] *= -1
        flipped.append(dataclasses.replace(m, series=dataclasses.replace(
            s, temperature_c=s.temperature_c[::-1].copy(), affine=affine)))
    again = calibrate(result, Measurements(None, tuple(flipped)))
    assert again.heating_efficiency == pytest.approx(fit.heating_efficiency, rel=1e-4)
    assert again.focal_spread == pytest.approx(fit.focal_spread, abs=1e-3)
    np.testing.assert_allclose(again.offset_ras_mm, fit.offset_ras_mm, atol=1e-3)


@pytest.mark.parametrize("entry, needle", [
    ({"sonication": 1, "power_w": 2.0, "peak_c": 90.0}, "heating efficiency"),
    ({"sonication": 1, "peak_c": 43.0, "spot_ras_mm": [12.0, 0.0, 0.0]}, "from the target"),
    ({"sonication": 1, "peak_c": 43.0, "spot_fwhm_mm": [20.0, 20.0, 30.0]}, "focal spread"),
])
def test_implausible_fits_are_refused(base, entry, needle):
    result, _ = base
    with pytest.raises(FusplanInputError, match=needle):
        calibrate(result, {"measured": [entry]})


def test_a_side_that_was_not_simulated_is_refused(base):
    result, _ = base
    with pytest.raises(FusplanInputError, match="side left was not simulated"):
        calibrate(result, {"side": "left", "measured": [{"sonication": 1, "peak_c": 43.0}]})
    with pytest.raises(FusplanInputError, match="measured\\[1\\].sonication"):
        calibrate(result, {"measured": [{"sonication": 99, "peak_c": 43.0}]})


def test_numbers_read_off_a_thermometry_image_give_a_consistent_fit(base):
    """Peak, spot and FWHM read off a noise-free synthetic image (1.1 x 1.1 x 3 mm voxels)."""
    result, model = base
    truth = truth_model(model, **TRUTH)
    series = synthetic_series(truth, 2, powers_w=POWERS, noise_c=0.0, fov_voxels=(31, 31, 11), seed=4)
    rise = series.temperature_c - 37.0
    frame = rise[..., int(np.argmax(rise.reshape(-1, rise.shape[3]).max(0)))]
    hottest = np.unravel_index(np.argmax(frame), frame.shape)
    spot = series.affine[:3, :3] @ np.array(hottest) + series.affine[:3, 3]
    widths = [fwhm_voxels(np.moveaxis(frame, a, 0)[(slice(None),) + tuple(c for b, c in enumerate(hottest) if b != a)],
                          hottest[a]) * series.voxel_mm[a] for a in range(3)]
    fit = calibrate(result, {"measured": [{"sonication": 2, "power_w": POWERS[2], "peak_c": float(frame.max() + 37),
                                           "spot_ras_mm": spot.tolist(), "spot_fwhm_mm": widths}]})
    sd = fit.uncertainty
    assert abs(fit.heating_efficiency - TRUTH["efficiency"]) < max(2 * sd["heating_efficiency"], 0.05)
    assert abs(fit.focal_spread - TRUTH["spread"]) < 2 * sd["focal_spread"]
    assert np.all(np.abs(fit.offset_ras_mm - TRUTH["offset_ras_mm"]) <= series.voxel_mm)  # read on whole voxels
    np.testing.assert_allclose(sd["offset_ras_mm"], 0.5 * series.voxel_mm, rtol=0.05)


def test_a_prediction_over_the_console_maximum_is_refused_naming_the_sonication(base, series_case):
    """Prediction runs through the plan's driver: the console bound and the protocol key apply."""
    from fusplan.driver import sonication_keys
    from fusplan.protocol import MAX_CONSOLE_ACOUSTIC_POWER_W

    result, _ = base
    _, _, fit = series_case
    weak = dataclasses.replace(fit, heating_efficiency=0.02)  # ~50x the plan's ~70 W treatment power
    first_titrated = next(i for i, s in enumerate(result.protocol.sonications)
                          if s.peak_c is not None and s.index not in fit.given_powers_w)  # measured ones keep theirs
    key = sonication_keys(result.protocol)[first_titrated]
    with pytest.raises(FusplanInputError) as refused:
        predict_treatment(result, weak)
    peak = result.protocol.sonications[first_titrated].peak_c
    assert str(refused.value).startswith(
        f"{key}: peak_c {peak:g} C is not reachable with max_power_w {MAX_CONSOLE_ACOUSTIC_POWER_W:g} W")
