"""Lesions scored on the simulated thermometry as well as on the true field (issue 17, item 3).

Oracle: the exact Fourier temperature (:meth:`SideResult.temperature_at`) averaged over
the thermometry voxel (:func:`voxel_average`) and frame (trapezoid over ``[t - F, t]``
at 0.125 s), its CEM43 (:func:`fusplan.cem43`) and maximum, computed independently
of the driver's response tables.
"""
import copy

import numpy as np
import pytest

import fusplan
from fusplan.clinical import DEFAULT_BASIS, clinical_regions
from fusplan.protocol import load_protocol
from fusplan.thermometry import voxel_average

from conftest import _GAUSSIAN_SPEC

VOXEL_MM = (1.1, 1.1, 3.0)
FRAME_S = 3.5


@pytest.fixture(scope="module")
def simulated():
    spec = copy.deepcopy(_GAUSSIAN_SPEC)
    spec["thermometry"] = {"voxel_mm": list(VOXEL_MM), "frame_s": FRAME_S}
    return fusplan.simulate(load_protocol(spec))


def _oracle(result, voxels: np.ndarray):
    """Displayed peak and dose at ``voxels`` (n, 3) from the exact field, fine time steps."""
    side = result.first
    end = sum(r.duration_s + r.cooling_s for r in side.sonications)
    step = 0.125
    n_w = int(round(FRAME_S / step))
    times = np.arange(-FRAME_S, end + 1e-9, step)
    lo = voxels.min(0) - 4
    hi = voxels.max(0) + 8
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    rows = []
    for chunk in range(0, times.size, 64):
        tt = times[chunk:chunk + 64]
        temps = result.temperature_at(np.clip(tt, 0, None))[(slice(None),) + box]
        baseline = result.protocol.tissue.baseline_temperature_c
        averaged = voxel_average(temps - baseline, side.grid.spacing_mm, VOXEL_MM, first_axis=1) + baseline
        rows.append(averaged[(slice(None),) + tuple((voxels - lo).T)])
    series = np.concatenate(rows)
    csum = np.concatenate([np.zeros((1, series.shape[1])), np.cumsum(0.5 * (series[1:] + series[:-1]), axis=0)])
    framed = (csum[n_w:] - csum[:-n_w]) / n_w
    return framed.max(0), fusplan.cem43(framed, step)


def test_displayed_maps_match_the_exact_field_averaged_over_voxel_and_frame(simulated):
    side = simulated.first
    peak = side.thermometry_peak_c
    dose = side.thermometry_dose_cem43
    centre = np.array(np.unravel_index(np.argmax(peak), peak.shape))
    voxels = np.array([centre, centre + [2, 0, 0], centre + [0, 3, 0], centre + [0, 0, 4], centre + [3, 0, 3]])
    want_peak, want_dose = _oracle(simulated, voxels)
    got_peak = peak[tuple(voxels.T)]
    got_dose = dose[tuple(voxels.T)]
    assert np.allclose(got_peak, want_peak, atol=0.05), (got_peak, want_peak)
    assert np.allclose(got_dose, want_dose, rtol=0.03, atol=0.05), (got_dose, want_dose)


def test_displayed_peak_is_what_the_titration_aimed_at(simulated):
    titrated = [r for r in simulated.first.sonications if r.thermometry_peak_c is not None]
    assert max(r.thermometry_peak_c for r in titrated) == pytest.approx(
        float(simulated.first.thermometry_peak_c.max()), abs=0.05)


def test_a_small_focus_scores_smaller_on_thermometry_than_on_the_true_field(simulated):
    side = simulated.first
    regions = clinical_regions(side.dose_cem43, side.peak_temperature_c, side.grid,
                               thermometry_dose_cem43=side.thermometry_dose_cem43,
                               thermometry_peak_c=side.thermometry_peak_c)
    for region in regions:
        assert region.basis == "true field" and region.thermometry.basis == "thermometry"
        assert region.thermometry.equivalent_diameter_mm < region.equivalent_diameter_mm, region.region.key
    sizes = {r.region.key: r.thermometry.equivalent_diameter_mm for r in regions}
    assert sizes["cem43_17"] > 1.0 and sizes["max_51c"] > 1.0


def test_report_gives_both_bases_and_names_the_default(simulated):
    doc = simulated.to_dict()
    assert doc["lesion_model"]["default_basis"] == DEFAULT_BASIS == "thermometry"
    assert doc["lesion_model"]["thermometry"] == {"voxel_mm": list(VOXEL_MM), "frame_s": FRAME_S}
    for entry in doc["lesions"] + doc["isotherms"]:
        assert entry["basis"] == "true field"
        assert entry["thermometry"]["basis"] == "thermometry"
        assert set(entry["thermometry"]) >= {"lr_mm", "ap_mm", "si_mm", "volume_mm3", "equivalent_diameter_mm"}
    by_threshold = {e["threshold_cem43"]: e for e in doc["lesions"]}
    records = {r.threshold_cem43: r for r in simulated.thermometry_lesions()}
    assert by_threshold[240.0]["thermometry"]["equivalent_diameter_mm"] == records[240.0].equivalent_diameter_mm


def test_without_a_thermometry_block_the_clinical_default_thermometry_is_used():
    result = fusplan.simulate(load_protocol(copy.deepcopy(_GAUSSIAN_SPEC)))
    doc = result.to_dict()
    assert doc["lesion_model"]["thermometry"] == {"voxel_mm": [1.1, 1.1, 3.0], "frame_s": 3.5}
    assert result.first.thermometry_dose_cem43 is not None
