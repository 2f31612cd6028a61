"""Residual phase error after CT-based correction, correlated through the bone the elements share.

Each element's error is its own sensitivity to the bone's sound speed (the speed
uncertainty of the HU mapping integrated along its refracted bone path,
``residual_phase_std_rad``, :mod:`.raytrace`) times the relative speed error of the bone
under its footprint. The clinical recipe gives each element a 9 x 9 mm patch of skull
(its SDR is the mean of 5 x 5 rays 2.25 mm apart, physics.md); taken as a disc of the same
area (diameter 2 x 9 / sqrt(pi) = 10.2 mm) centred on the element's outer-table entry point,
over bone whose mapping error is uncorrelated at finer scales, two elements share the error
of the overlap of their patches: their correlation is the normalised overlap area of two
discs, ``rho(d) = (2 / pi) (acos(u) - u sqrt(1 - u^2))``, ``u = d / D`` (0 beyond ``D``).
Elements whose rays cross neighbouring bone get neighbouring errors; the pattern then
broadens the focus as well as lowering it (an independent draw per element only lowers it).

:func:`focal_fwhm_mm` measures the focal spot of a drive from its point sources (intensity
FWHM along three axes through the peak), so the broadening can be reported with and without
the residual error.
"""

from __future__ import annotations

import math

import numpy as np

#: Side of the skull patch the clinical recipe assigns to an element (5 x 5 rays 2.25 mm apart).
FOOTPRINT_SIDE_MM = 5 * 2.25
#: Diameter of the disc of that area.
FOOTPRINT_DIAMETER_MM = 2 * FOOTPRINT_SIDE_MM / math.sqrt(math.pi)


def footprint_correlation(entry_mm: np.ndarray, diameter_mm: float = FOOTPRINT_DIAMETER_MM) -> np.ndarray:
    """Correlation ``(N, N)`` of the errors of elements entering the bone at ``entry_mm`` ``(N, 3)``.

    The normalised overlap area of two discs of ``diameter_mm`` whose centres are
    ``|e_i - e_j|`` apart (module docstring); 1 on the diagonal.
    """
    entry = np.asarray(entry_mm, float)
    d = np.linalg.norm(entry[:, None, :] - entry[None, :, :], axis=-1)
    u = np.clip(d / diameter_mm, 0.0, 1.0)
    return (2 / math.pi) * (np.arccos(u) - u * np.sqrt(1 - u**2))


def correlated_phase_error(std_rad: np.ndarray, entry_mm: np.ndarray, seed: int,
                           diameter_mm: float = FOOTPRINT_DIAMETER_MM) -> np.ndarray:
    """One seeded draw of the residual phase error per element (rad).

    Parameters
    ----------
    std_rad : (N,) ndarray
        Each element's standard deviation (0 where the element has no bone path).
    entry_mm : (N, 3) ndarray
        Outer-table entry points, world RAS mm (NaN where no bone).
    seed : int
    diameter_mm : float
        Footprint diameter (default: the clinical recipe's patch, module docstring).
    """
    std = np.asarray(std_rad, float)
    error = np.zeros(len(std))
    chosen = np.nonzero((std > 0) & np.all(np.isfinite(entry_mm), axis=1))[0]
    white = np.random.default_rng(seed).normal(0.0, 1.0, len(std))[chosen]
    if chosen.size == 0:
        return error
    correlation = footprint_correlation(np.asarray(entry_mm, float)[chosen], diameter_mm)
    try:  # positive semi-definite: a tiny ridge makes the fast factorisation safe
        factor = np.linalg.cholesky(correlation + 1e-8 * np.eye(len(chosen)))
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(correlation)
        factor = vectors * np.sqrt(np.clip(values, 0.0, None))
    error[chosen] = (factor @ white) * std[chosen]
    return error


def _intensity(amplitude, phase_rad, positions_mm, focus_mm, wavenumber_per_mm, points_mm) -> np.ndarray:
    """|p|^2 at ``points_mm`` (M, 3) of point sources focused on ``focus_mm`` (phases added)."""
    r = np.linalg.norm(points_mm[:, None, :] - positions_mm[None, :, :], axis=-1)
    r0 = np.linalg.norm(focus_mm - positions_mm, axis=1)
    field = (amplitude / r * np.exp(1j * (wavenumber_per_mm * (r - r0) + phase_rad))).sum(axis=1)
    return np.abs(field) ** 2


def _fwhm(s: np.ndarray, values: np.ndarray) -> float:
    """Full width at half maximum around the maximum of a sampled profile (linear crossings)."""
    peak = int(np.argmax(values))
    half = values[peak] / 2
    below = np.nonzero(values[:peak] < half)[0]
    above = np.nonzero(values[peak:] < half)[0]
    if below.size == 0 or above.size == 0:
        return math.nan
    i, j = below[-1], peak + above[0]
    left = s[i] + (half - values[i]) / (values[i + 1] - values[i]) * (s[i + 1] - s[i])
    right = s[j - 1] + (values[j - 1] - half) / (values[j - 1] - values[j]) * (s[j] - s[j - 1])
    return float(right - left)


def focal_fwhm_mm(amplitude: np.ndarray, phase_rad: np.ndarray, positions_mm: np.ndarray, focus_mm,
                  frequency_hz: float, speed_m_s: float, half_width_mm: float = 6.0,
                  step_mm: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Intensity FWHM (mm) of a drive's focus along world R, A and S through its peak.

    Point sources at ``positions_mm`` (the drive's apparent sources) with ``amplitude`` and
    the focusing phases to ``focus_mm`` plus ``phase_rad``, in a medium of ``speed_m_s``.
    The peak is found by two passes of line searches along the axes from the focus.

    Returns
    -------
    fwhm_mm : (3,) ndarray
        Along R, A, S (NaN where the half maximum is not reached within ``half_width_mm``).
    peak_mm : (3,) ndarray
        Where the intensity peaks (world RAS mm).
    """
    amplitude, phase = np.asarray(amplitude, float), np.asarray(phase_rad, float)
    on = amplitude > 0
    amplitude, phase, positions = amplitude[on], phase[on], np.asarray(positions_mm, float)[on]
    focus = np.asarray(focus_mm, float)
    k = 2 * math.pi * frequency_hz / (speed_m_s * 1e3)
    s = np.arange(-half_width_mm, half_width_mm + step_mm / 2, step_mm)
    peak = focus.copy()
    profiles = [None, None, None]
    for _ in range(2):
        for axis in range(3):
            line = np.repeat(peak[None], len(s), axis=0)
            line[:, axis] += s
            profiles[axis] = _intensity(amplitude, phase, positions, focus, k, line)
            peak[axis] = line[int(np.argmax(profiles[axis])), axis]
    fwhm = np.array([_fwhm(s, profile) for profile in profiles])
    return fwhm, peak
