"""Residual phase error correlated through the bone the elements share, and the focal width it leaves."""

import math

import numpy as np
import pytest

from fusplan.acoustics import Transducer
from fusplan.skull.aberration import (
    FOOTPRINT_DIAMETER_MM,
    correlated_phase_error,
    focal_fwhm_mm,
    footprint_correlation,
)
from fusplan.skull.model import model_skull
from fusplan.skull.pose import array_element_positions
from fusplan.skull.synthetic import ShellProfile, shell_ct

F_HZ = 650e3


def test_footprint_correlation_is_the_overlap_of_two_discs():
    """1 at the same entry point, 0 beyond a footprint's diameter, and the lens-area formula
    between: at half a diameter (2/pi)(acos(1/2) - (1/2) sqrt(3/4)) = 0.391."""
    d = FOOTPRINT_DIAMETER_MM
    assert d == pytest.approx(2 * 5 * 2.25 / math.sqrt(math.pi))
    points = np.array([[0.0, 0.0, 0.0], [d / 2, 0.0, 0.0], [0.0, d, 0.0], [0.0, 0.0, 3 * d]])
    rho = footprint_correlation(points)
    assert np.diag(rho) == pytest.approx(1.0)
    assert rho[0, 1] == pytest.approx((2 / math.pi) * (math.acos(0.5) - 0.5 * math.sqrt(0.75)), abs=1e-12)
    assert rho[0, 2] == pytest.approx(0.0, abs=1e-12) and rho[0, 3] == 0.0
    assert np.allclose(rho, rho.T)


def test_draw_has_each_elements_std_and_neighbours_share_their_error():
    """Over many seeds: each element's standard deviation is its own, neighbours 2 mm apart
    are strongly correlated, elements 30 mm apart are not; no bone, no error."""
    entry = np.array([[0.0, 0.0, 70.0], [2.0, 0.0, 70.0], [30.0, 0.0, 65.0], [np.nan, np.nan, np.nan]])
    std = np.array([0.3, 0.5, 0.4, 0.0])
    draws = np.array([correlated_phase_error(std, entry, seed) for seed in range(4000)])
    assert draws.std(axis=0)[:3] == pytest.approx(std[:3], rel=0.06)
    assert np.all(draws[:, 3] == 0.0)
    r = np.corrcoef(draws[:, :3].T)
    expected = footprint_correlation(entry[:3])
    assert r[0, 1] == pytest.approx(expected[0, 1], abs=0.05) and r[0, 1] > 0.7
    assert abs(r[0, 2]) < 0.06
    assert np.array_equal(correlated_phase_error(std, entry, 7), correlated_phase_error(std, entry, 7))


def test_focal_width_of_a_perfectly_corrected_shell_and_the_residual():
    """Through a centred shell every element is alike: the ray model's intensity FWHM is the
    array's free-field spot (lateral ~1.0 mm, axial ~2.1 mm at 650 kHz in water, the -3 dB
    pressure widths of physics.md's 1.4 x 2.9 mm at -6 dB). The correlated residual lowers
    the coherent gain and leaves the width within 3 %; the report carries both widths."""
    elements = array_element_positions(Transducer(), np.zeros(3))
    model = model_skull(shell_ct(ShellProfile(), 70.0, spacing_mm=1.0, min_z_mm=-2), elements, np.zeros(3), F_HZ)
    width = model.focal_width
    assert width.perfect_correction_mm[:2] == pytest.approx([1.0, 1.0], abs=0.1)
    assert width.perfect_correction_mm[2] == pytest.approx(2.1, abs=0.15)
    assert width.broadening == pytest.approx(1.0, abs=0.03)
    error = model.focus_phase_error_rad()
    amplitude = model.amplitude_transmission
    gain = abs(np.sum(amplitude * np.exp(-1j * error))) ** 2 / np.sum(amplitude) ** 2
    assert gain < 0.97
    block = model.to_dict()["focal_fwhm"]
    assert block["perfect_correction_mm"] == pytest.approx(list(width.perfect_correction_mm), abs=1e-3)
    assert block["axes"] == "world R, A, S"


def test_focal_fwhm_grows_with_the_wavelength():
    """Point sources on a cap: the focal width scales with the speed (wavelength)."""
    elements = array_element_positions(Transducer(), np.zeros(3))
    ones, zeros = np.ones(len(elements)), np.zeros(len(elements))
    slow, _ = focal_fwhm_mm(ones, zeros, elements, np.zeros(3), F_HZ, 1500.0)
    fast, peak = focal_fwhm_mm(ones, zeros, elements, np.zeros(3), F_HZ, 1800.0)
    assert fast == pytest.approx(slow * 1.2, rel=0.03)
    assert peak == pytest.approx(np.zeros(3), abs=0.11)
