"""The few focus parameters that low-energy thermometry informs, applied to a simulated side.

A simulated side (:class:`fusplan.planner.SideResult`) holds the per-watt heat source
``Q`` of every focus. Calibration and the uncertainty band change it in three ways,
all exact and cheap because the Pennes model is linear and translation invariant:

- ``heating_efficiency`` ``eta``: the heat deposited per emitted watt is ``eta Q``
  (1 = the uncalibrated model). It is what the skull changes most (transmission,
  absorption); a titrated sonication simply needs ``1 / eta`` times the power.
- ``focal_spread`` ``s`` (dimensionless, 1 = the physics model's source: diffraction,
  skull transmission and the residual aberration the skull model computes): ``Q`` is
  convolved with a Gaussian whose standard deviation along grid axis ``a`` is
  ``sqrt(s_a^2 - 1) sigma0_a``, ``sigma0_a = FWHM_a / 2.355`` the width of the physics
  source's focal spot along that axis (:func:`source_sigma_mm`). ``s`` is one number
  (calibration fits one) or one per grid axis (the focus prior). Total power is kept
  (the kernel integrates to 1) and a Gaussian-shaped spot gets exactly ``s_a`` times
  wider along axis ``a``: the broadening of real heads beyond the physics (Pulkkinen
  2014 found simulated CLT foci 40 % too small AP and 22 % SI). A convolution can only
  widen the spot, so ``s >= 1``; the physics spot is the narrowest.

An uncalibrated plan on a skull applies the protocol's focus prior
(:meth:`fusplan.protocol.Protocol.resolved_focus_prior`, Pulkkinen 2014 by default) as a
per-axis spread; :class:`SideModel` keeps the physics sources and the prior, so
calibration fits its spread from the physics source (it replaces the prior) and the
uncalibrated band draws around the prior.
- ``offset_ras_mm``: the spot is translated by this world vector (where thermometry saw
  it relative to where the model put it).

The Gaussian and the translation are applied as Fourier multipliers on a zero-padded
grid (exact for any sub-voxel shift and any width). Everything downstream (the thermal
response, the thermometry voxel and frame averages) commutes with them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Hashable, Sequence

import numpy as np
import scipy.fft as sfft

from .bioheat import Pulse
from .driver import redrive, run_pulses
from .grid import Grid
from .thermometry import DEFAULT_THERMOMETRY, resolve_thermometry

__all__ = ["SideModel", "side_model", "source_sigma_mm", "fwhm_voxels", "broadening_sigma_mm", "gaussian_shift_filter",
           "transform_source", "crop_grid", "run_protocol",
           "DEFAULT_THERMOMETRY"]

SIGMA_PER_FWHM = 1.0 / math.sqrt(8.0 * math.log(2.0))


@dataclass
class SideModel:
    """What calibration and the band need from one simulated side.

    ``pulses`` carry the powers the simulation used (titrated ones included);
    ``sources`` the per-watt heat source (W/m^3 per W) of every focus key, from the
    physics (before any focus prior); ``focus_prior`` the per-axis spread the plan applied
    to them (None: none); ``translations`` the sources that are another's whole-voxel
    translate (steered foci: the thermal solver shares their response tables; every
    transform of :func:`run_protocol` keeps the relation).
    """

    side: str | None
    grid: Grid
    protocol: Any
    tissue: Any
    sources: dict[Hashable, np.ndarray] = field(repr=False)
    pulses: tuple[Pulse, ...]
    target_ras_mm: np.ndarray
    labels: np.ndarray | None = field(default=None, repr=False)
    label_names: dict | None = None
    nucleus_volumes_mm3: dict | None = None
    focus_prior: tuple[float, float, float] | None = None
    translations: dict = field(default_factory=dict)

    @property
    def thermometry(self) -> tuple[tuple[float, float, float], float]:
        """Thermometry voxel (mm) and frame (s): the protocol's, else the clinical default."""
        return resolve_thermometry(self.protocol.thermometry)

    @property
    def main_source(self) -> Hashable:
        """Key of the focus of the first treatment sonication (else the last sonication)."""
        for sonication, pulse in zip(self.protocol.sonications, self.pulses):
            if sonication.stage == "treatment":
                return pulse.source
        return self.pulses[-1].source


def side_model(result, side: str | None = None) -> SideModel:
    """Extract a :class:`SideModel` from a :class:`fusplan.planner.SimulationResult` (a SideModel passes)."""
    if isinstance(result, SideModel):
        return result
    s = result.first if side is None else result.sides[side]
    tissue = result.protocol.tissue
    capacity = tissue.heat_capacity_j_m3_k
    sources = s.physics_sources or {key: s.solver.field(spectrum) * capacity for key, spectrum in s.spectra.items()}
    target = getattr(s.target, "ras_mm", None)
    target = s.grid.centre_mm if target is None else np.asarray(target, float)
    targets = result.targets
    prior = None if s.focus_prior is None else tuple(s.focus_prior.spread)
    return SideModel(s.side, s.grid, result.protocol, tissue, sources, tuple(s.history.pulses), target,
                     s.labels, getattr(targets, "label_names", None), getattr(targets, "nucleus_volumes_mm3", None),
                     prior, dict(s.history.translations))


def source_sigma_mm(q: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Gaussian-equivalent width ``FWHM / 2.355`` (mm) of the focal spot along each grid axis.

    The FWHM is read on the lines through the source's maximum, with linear
    interpolation at the half-maximum crossings.
    """
    q = np.asarray(q, dtype=float)
    peak = np.unravel_index(np.argmax(q), q.shape)
    widths = []
    for axis in range(3):
        line = np.moveaxis(q, axis, 0)[(slice(None),) + tuple(p for a, p in enumerate(peak) if a != axis)]
        widths.append(fwhm_voxels(line, peak[axis]) * spacing_mm)
    return np.array(widths) * SIGMA_PER_FWHM


def fwhm_voxels(line: np.ndarray, centre: float) -> float:
    """Full width at half of ``line``'s value at ``centre`` (voxels; linear crossings)."""
    i = int(round(centre))
    half = line[i] / 2.0
    right = i
    while right + 1 < line.size and line[right + 1] > half:
        right += 1
    left = i
    while left - 1 >= 0 and line[left - 1] > half:
        left -= 1
    hi = right + ((line[right] - half) / (line[right] - line[right + 1]) if right + 1 < line.size else 0.0)
    lo = left - ((line[left] - half) / (line[left] - line[left - 1]) if left >= 1 else 0.0)
    return float(hi - lo)


def broadening_sigma_mm(spread, sigma0_mm) -> np.ndarray:
    """Standard deviation (mm, per grid axis) of the Gaussian that widens the spot by ``spread``.

    ``spread`` is one number or one per grid axis (each >= 1).
    """
    spread = np.asarray(spread, dtype=float)
    if np.any(spread < 1.0 - 1e-12):
        raise ValueError(f"focal_spread must be >= 1 (got {spread.tolist()})")
    return np.sqrt(np.clip(spread**2 - 1.0, 0.0, None)) * np.asarray(sigma0_mm, dtype=float)


def gaussian_shift_filter(fields: np.ndarray, spacing_mm: float, sigma_mm, shift_mm=(0.0, 0.0, 0.0),
                          first_axis: int = 0) -> np.ndarray:
    """Convolve with a Gaussian (``sigma_mm`` per axis) and translate by ``shift_mm``, in Fourier space.

    Acts on axes ``first_axis .. first_axis + 2`` (grid axes, mm along them); the array is
    zero padded by 4 sigma plus the shift so nothing wraps around. Computed in single
    precision (relative error ~1e-7 of the largest value).
    """
    sigma = np.asarray(sigma_mm, dtype=float)
    shift = np.asarray(shift_mm, dtype=float)
    if not np.any(sigma > 0) and not np.any(shift != 0):
        return np.asarray(fields, dtype=float).copy()
    axes = tuple(range(first_axis, first_axis + 3))
    shape = [fields.shape[a] for a in axes]
    padded = [sfft.next_fast_len(n + int(math.ceil((4 * s + abs(d)) / spacing_mm)) + 2, real=True)
              for n, s, d in zip(shape, sigma, shift)]
    spectrum = sfft.rfftn(np.asarray(fields, dtype=np.float32), s=padded, axes=axes, workers=2)
    h = spacing_mm
    multiplier = None
    for i, (n, s, d) in enumerate(zip(padded, sigma, shift)):
        k = 2 * np.pi * (sfft.rfftfreq(n, d=h) if i == 2 else sfft.fftfreq(n, d=h))
        factor = np.exp(-0.5 * (k * s) ** 2 - 1j * k * d).astype(np.complex64)
        factor = factor.reshape([-1 if j == i else 1 for j in range(3)])
        multiplier = factor if multiplier is None else multiplier * factor
    multiplier = multiplier.reshape((1,) * first_axis + multiplier.shape + (1,) * (fields.ndim - first_axis - 3))
    out = sfft.irfftn(spectrum * multiplier, s=padded, axes=axes, workers=2)
    return out[tuple(slice(0, n) for n in fields.shape)].astype(float)


def transform_source(q: np.ndarray, grid: Grid, *, efficiency: float = 1.0, spread=1.0,
                     offset_ras_mm=(0.0, 0.0, 0.0), sigma0_mm=None) -> np.ndarray:
    """``efficiency`` x the per-watt source widened by ``spread`` (one or per grid axis) and moved by ``offset_ras_mm``.

    ``sigma0_mm`` defaults to :func:`source_sigma_mm` of ``q``. The result integrates to
    ``efficiency`` times ``q``'s integral (up to what leaves the grid).
    """
    sigma0 = source_sigma_mm(q, grid.spacing_mm) if sigma0_mm is None else np.asarray(sigma0_mm, float)
    shift_local = grid.axes.T @ np.asarray(offset_ras_mm, dtype=float)
    moved = gaussian_shift_filter(np.asarray(q, float), grid.spacing_mm, broadening_sigma_mm(spread, sigma0),
                                  shift_local)
    return efficiency * moved


def crop_grid(grid: Grid, centre_ras_mm, half_extent_mm: float) -> tuple[Grid, tuple[slice, ...]]:
    """A sub-grid of ``grid`` (same axes and spacing) of ``2 half_extent_mm`` around ``centre_ras_mm``."""
    centre = np.round(grid.world_to_index(centre_ras_mm)).astype(int)
    half = int(round(half_extent_mm / grid.spacing_mm))
    lo = np.clip(centre - half, 0, np.array(grid.shape) - 1)
    hi = np.clip(centre + half + 1, 1, np.array(grid.shape))
    affine = grid.affine.copy()
    affine[:3, 3] = grid.index_to_world(lo)
    return Grid(tuple(int(v) for v in hi - lo), grid.spacing_mm, affine), tuple(slice(a, b) for a, b in zip(lo, hi))


def run_protocol(model: SideModel, *, efficiency: float = 1.0, spread=1.0, offset_ras_mm=(0.0, 0.0, 0.0),
                 tissue=None, fixed_powers_w: dict[int, float] | None = None,
                 peak_shift_c: Sequence[float] | None = None, crop_mm: float | None = None, threads: int = 1,
                 displayed: bool = True, **settings):
    """Simulate the side's protocol (or its first pulses) with a changed focus model (and optionally tissue).

    The protocol driver runs it (:mod:`fusplan.driver`: console power bound, errors naming
    the protocol key), on the plan's pulses re-driven by :func:`fusplan.driver.redrive`:
    sonications with a given power keep it (``fixed_powers_w`` maps 1-based indices to
    the powers actually given, e.g. measured ones); ``peak_c`` sonications are titrated
    under the changed model, to ``peak_c + peak_shift_c[i]`` when given (a thermometry
    reading error); fixed powers stay. ``crop_mm`` runs on a sub-grid of half that
    extent around the target. A ``tissue`` with another ``attenuation_np_m`` scales the
    heat source by the ratio (absorption ``Q = 2 alpha I``; the change of attenuation
    along the short brain path is neglected). ``displayed`` also computes what
    thermometry would show (``history.thermometry_peak_c`` / ``thermometry_dose_cem43``,
    with the side's thermometry). ``settings`` replace fields of the driver's
    :class:`~fusplan.bioheat.DriverSettings` (e.g. ``dose_rtol``, ``dose_floor_c``).

    Returns
    -------
    history : fusplan.bioheat.ThermalHistory
    grid : Grid
        The grid the history's maps live on.
    """
    tissue = model.tissue if tissue is None else tissue
    grid, crop = (model.grid, (slice(None),) * 3) if crop_mm is None else crop_grid(model.grid, model.target_ras_mm,
                                                                                   crop_mm)
    pulses = redrive(model.pulses, given_powers_w=fixed_powers_w, peak_shift_c=peak_shift_c)
    used = {p.source for p in pulses}
    sources = {}
    for key, q in model.sources.items():
        if key not in used:
            continue
        moved = transform_source(q, model.grid, efficiency=efficiency, spread=spread, offset_ras_mm=offset_ras_mm)
        sources[key] = moved[crop] * (tissue.attenuation_np_m / model.tissue.attenuation_np_m)
    history = run_pulses(model.protocol, grid, tissue, sources, pulses, threads=threads, displayed=displayed,
                         translations=model.translations, **settings)
    return history, grid
