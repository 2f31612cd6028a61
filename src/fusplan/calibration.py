"""Calibrate the focus model on the low-energy stage's MR thermometry.

Clinicians start with low-energy sonications and read on MR thermometry where the spot
appears, how hot it gets for the power given and how wide it is; then they steer and
set the treatment power. :func:`calibrate` does the same with the model: it fits the
heating efficiency, the focal spread and the spot offset of
:mod:`fusplan.focusmodel` to what thermometry showed (:mod:`fusplan.measured`), and
:func:`fusplan.prediction.predict_treatment` simulates the protocol with the calibrated model.

Thermometry is modelled as what it is: the rise averaged over a thermometry voxel
(the protocol's ``thermometry.voxel_mm``, or a series' own voxel) and a frame (the
protocol's ``frame_s``, or the series'), plus the baseline. Because the model is linear,
the thermometry field per unit efficiency ``A`` of every measured sonication is
computed once, on a box around the focus (response tables of
:class:`fusplan.bioheat.ResponseTable`, every earlier sonication's residual heat
included); a trial parameter set then costs a Gaussian filter and a shift of ``A``:

- numbers (``peak_c``, optional ``spot_ras_mm``, ``spot_fwhm_mm``): the model peak
  ``baseline + eta max(G_s A)`` (parabolic sub-voxel maximum over voxels and frame
  windows), its position ``+ offset`` and the FWHM of the rise through it along the grid
  axes; residuals are divided by the reading accuracy (:data:`NOISE_C` for a peak, half a
  thermometry voxel for a position, one voxel for a width);
- a series: every voxel of every frame inside the box, model sampled (trilinear) at the
  voxel's world position minus the offset; residuals divided by the noise measured on
  the frames before the sonication (else :data:`NOISE_C`).

:func:`scipy.optimize.least_squares` (trust region, bounds ``eta`` 0.05-20, ``s`` 1-6,
offset +/-15 mm) fits the parameters the data inform (the efficiency always; the offset
with a position or a series; the spread with a width or a series). Uncertainties are
``sqrt(diag((J^T J)^-1))`` on the normalised residuals, scaled by the reduced chi-square
when it exceeds 1. Fits outside :data:`EFFICIENCY_RANGE`, above :data:`SPREAD_MAX` or
further than :data:`OFFSET_MAX_MM` from the target are refused
(:class:`~fusplan.errors.FusplanInputError`) instead of extrapolated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

from .bioheat import ResponseTable, SpectralBioheat, hermite_weights
from .driver import redrive
from .errors import FusplanInputError
from .focusmodel import SideModel, broadening_sigma_mm, fwhm_voxels, gaussian_shift_filter, side_model, source_sigma_mm
from .grid import Grid
from .measured import Measurements, load_measurements
from .thermometry import frame_average, voxel_average

__all__ = ["Calibration", "calibrate", "NOISE_C",
           "EFFICIENCY_RANGE", "SPREAD_MAX", "OFFSET_MAX_MM"]

#: Thermometry noise per voxel, C (brain PRF thermometry 0.5-1 C; physics.md).
NOISE_C = 0.75
#: Plausible heating efficiency: outside it the power or the sonication index is wrong.
EFFICIENCY_RANGE = (0.2, 5.0)
#: Widest plausible spot (4 x the model's); a wider one is not a focus.
SPREAD_MAX = 4.0
#: Largest plausible spot offset (mm); clinical corrections are 1-2 mm (Pulkkinen 2014: 1.6 +/- 0.6 mm).
OFFSET_MAX_MM = 8.0
PARAMETERS = ("heating_efficiency", "focal_spread", "offset_x", "offset_y", "offset_z")
_BOX_HALF_MM = (8.0, 8.0, 12.0)
_STEP_S = 0.25


@dataclass
class Calibration:
    """Fitted focus model of one side.

    ``covariance`` is over :data:`PARAMETERS` (rows of unfitted parameters are zero);
    ``uncertainty`` gives one standard deviation per fitted parameter (None for a
    parameter the measurements did not inform: it keeps its model value, 1 or 0, and
    the uncertainty band draws it from its prior). ``residual_c`` is the RMS of the
    temperature residuals (C); ``given_powers_w`` the power of every measured sonication.
    """

    side: str | None
    heating_efficiency: float
    focal_spread: float
    offset_ras_mm: np.ndarray
    uncertainty: dict
    covariance: np.ndarray = field(repr=False)
    residual_c: float
    fitted: tuple[str, ...]
    given_powers_w: dict
    sonications: list[dict]

    def to_dict(self) -> dict:
        """The report's ``calibration`` block (contract.md)."""
        out = {"heating_efficiency": self.heating_efficiency, "focal_spread": self.focal_spread,
               "offset_ras_mm": [float(v) for v in self.offset_ras_mm], "residual_c": self.residual_c,
               "uncertainty": self.uncertainty, "fitted": list(self.fitted), "sonications": self.sonications}
        if self.side is not None:
            out["side"] = self.side
        return out


class _Observation:
    """Model thermometry per unit efficiency of one measured sonication, on a box."""

    def __init__(self, measured, fields: np.ndarray, base_c: np.ndarray, box_grid, voxel_mm):
        self.measured = measured
        self.fields = fields  # (n_windows, *box) rise per unit efficiency, voxel and frame averaged
        self.base_c = base_c  # (n_windows,) baseline temperature of each window
        self.box_grid = box_grid
        self.voxel_mm = np.asarray(voxel_mm, float)
        series = measured.series
        if series is not None:
            ijk = np.argwhere(np.ones(series.temperature_c.shape[:3], bool))
            world = ijk @ series.affine[:3, :3].T + series.affine[:3, 3]
            index = box_grid.world_to_index(world)
            inside = np.all((index >= 1) & (index <= np.array(box_grid.shape) - 2), axis=1)
            if not inside.any():
                raise FusplanInputError(f"{series.source}: the series does not cover the focus "
                                        f"(no voxel within {_BOX_HALF_MM} mm of it)")
            self.world = world[inside]
            self.data = series.temperature_c[tuple(ijk[inside].T)].T  # (n_frames, n_voxels)
            before = series.frame_times_s <= 0
            self.noise_c = float(np.std(self.data[before] - self.data[before].mean(1, keepdims=True))) \
                if before.sum() >= 2 else NOISE_C
            self.noise_c = max(self.noise_c, 0.05)

    def residuals(self, fields_s: np.ndarray, eta: float, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised residuals and the temperature residuals (C) for broadened fields."""
        m = self.measured
        if m.series is not None:
            index = self.box_grid.world_to_index(self.world - offset).T
            model = np.stack([ndimage.map_coordinates(f, index, order=1, mode="nearest") for f in fields_s])
            diff = self.base_c[:, None] + eta * model - self.data
            return (diff / self.noise_c).ravel(), diff.ravel()
        peak, where, w = _peak(fields_s)
        diff = self.base_c[w] + eta * peak - m.peak_c
        out = [diff / NOISE_C]
        if m.spot_ras_mm is not None:
            spot = self.box_grid.index_to_world(where) + offset
            along_axes = self.box_grid.axes.T @ (spot - np.asarray(m.spot_ras_mm))  # voxel sizes are along them
            out += list(along_axes / (0.5 * self.voxel_mm))
        if m.spot_fwhm_mm is not None:
            frame = fields_s[w]
            centre = tuple(int(round(v)) for v in where)
            widths = [fwhm_voxels(np.moveaxis(frame, a, 0)[(slice(None),) + tuple(c for b, c in enumerate(centre)
                                                                                   if b != a)], centre[a])
                      for a in range(3)]
            out += list((np.array(widths) * self.box_grid.spacing_mm - np.asarray(m.spot_fwhm_mm)) / self.voxel_mm)
        return np.array(out, float), np.array([diff])


def _peak(fields: np.ndarray):
    """Maximum over windows and voxels, refined per axis by a parabola: (value, index, window)."""
    w, *ijk = np.unravel_index(np.argmax(fields), fields.shape)
    frame = fields[w]
    value = float(frame[tuple(ijk)])
    where = np.array(ijk, float)
    correction = 0.0
    for a in range(3):
        if 0 < ijk[a] < frame.shape[a] - 1:
            lo, hi = list(ijk), list(ijk)
            lo[a] -= 1
            hi[a] += 1
            f0, f1 = float(frame[tuple(lo)]), float(frame[tuple(hi)])
            curvature = f0 + f1 - 2 * value
            if curvature < 0:
                step = 0.5 * (f0 - f1) / curvature
                where[a] += step
                correction += -0.125 * (f1 - f0) ** 2 / curvature
    return value + correction, where, w


def _series_voxel_on_grid(series, grid) -> np.ndarray:
    """Widths (mm) along the grid axes of a box with the series voxel's second moments."""
    zooms = series.voxel_mm
    directions = series.affine[:3, :3] / zooms
    r = grid.axes.T @ directions
    return np.sqrt((r**2) @ zooms**2)


def _observations(model: SideModel, measurements: Measurements, powers: dict, threads: int) -> list[_Observation]:
    pulses = redrive(model.pulses, given_powers_w=powers, titrate=False)
    last = max(m.sonication for m in measurements.measured)
    end = max(p.start_s + p.duration_s + p.cooling_s for p in pulses[:last])
    for m in measurements.measured:  # a series may run past the sonication's cooling
        if m.series is not None:
            end = max(end, pulses[m.sonication - 1].start_s + float(m.series.frame_times_s.max()))
    grid = model.grid
    focus = grid.world_to_index(model.target_ras_mm)
    half = np.array(_BOX_HALF_MM) / grid.spacing_mm
    lo = np.clip(np.round(focus - half).astype(int), 0, np.array(grid.shape) - 1)
    hi = np.clip(np.round(focus + half).astype(int) + 1, 1, np.array(grid.shape))
    affine = grid.affine.copy()
    affine[:3, 3] = grid.index_to_world(lo)
    box_grid = Grid(tuple(int(v) for v in hi - lo), grid.spacing_mm, affine)
    solver = SpectralBioheat(grid.shape, grid.spacing_mm, model.tissue, duration_s=end + 10.0, threads=threads)
    keys = {p.source for p in pulses[:last]}
    tables = {k: ResponseTable.build(solver, solver.spectrum(model.sources[k]), lo, hi, end + 10.0) for k in keys}
    tissue = model.tissue
    out = []
    for m in measurements.measured:
        i = m.sonication - 1
        pulse = pulses[i]
        if m.series is not None:
            voxel, frame = _series_voxel_on_grid(m.series, grid), m.series.frame_s
            n_sub = max(2, int(np.ceil(frame / _STEP_S)))
            times = pulse.start_s + m.series.frame_times_s[:, None] + np.linspace(-frame, 0.0, n_sub + 1)[None]
            weights = np.full(n_sub + 1, 1.0 / n_sub)
            weights[[0, -1]] *= 0.5
            rise = _rise(tables, pulses[: i + 1], times.ravel()).reshape(*times.shape, -1)
            fields = np.einsum("s,wsv->wv", weights, rise)
            base = np.exp(-solver.perfusion * np.clip(times, 0, None)) @ weights
        else:  # windows ending every step from one frame after the start to 2 s past a frame after the end
            voxel, frame = model.thermometry
            n_sub = max(2, int(np.ceil(frame / _STEP_S)))
            step = frame / n_sub
            times = np.arange(pulse.start_s, pulse.start_s + pulse.duration_s + frame + 2.0 + 1e-9, step)
            fields = frame_average(_rise(tables, pulses[: i + 1], times), step, frame)
            base = frame_average(np.exp(-solver.perfusion * times), step, frame)
            keep = int(np.argmax(fields.max(1)))
            keep = slice(max(keep - 4, 0), keep + 5)  # the peak window (model) and +/- 1 s around it
            fields, base = fields[keep], base[keep]
        base = tissue.blood_temperature_c + (tissue.baseline_temperature_c - tissue.blood_temperature_c) * base
        fields = voxel_average(fields.reshape(-1, *box_grid.shape), grid.spacing_mm, voxel, first_axis=1)
        out.append(_Observation(m, fields, base, box_grid, voxel))
    return out


def _rise(tables: dict, pulses, times: np.ndarray) -> np.ndarray:
    """Rise (K) on the tables' voxels at ``times`` (rows) from ``pulses`` with their powers."""
    n = times.size
    out = None
    rows = np.arange(n)
    for key, table in tables.items():
        chosen = [p for p in pulses if p.source == key and p.power_w]
        if not chosen:
            continue
        tau = np.concatenate([np.concatenate([times - p.start_s, times - p.start_s - p.duration_s]) for p in chosen])
        scale = np.concatenate([np.concatenate([np.full(n, p.power_w), np.full(n, -p.power_w)]) for p in chosen])
        wu, wh = hermite_weights(table.knots, tau, n, np.tile(rows, 2 * len(chosen)), scale)
        part = np.hstack([wu, wh]) @ table.stacked
        out = part if out is None else out + part
    return out


def _resolve_side(result, measurements: Measurements) -> str | None:
    sides = [result.side] if isinstance(result, SideModel) else list(result.sides)
    if measurements.side is None:
        if len(sides) > 1:
            raise FusplanInputError(f"{measurements.source or 'thermometry'}: side is needed when the plan has "
                                    f"both sides")
        return sides[0]
    if measurements.side not in sides:
        raise FusplanInputError(f"{measurements.source or 'thermometry'}: side {measurements.side} was not "
                                f"simulated (have {', '.join(str(s) for s in sides)})")
    return measurements.side


def calibrate(result, measurements, *, progress=None, threads: int = 1) -> Calibration:
    """Fit heating efficiency, focal spread and spot offset to measured thermometry.

    Parameters
    ----------
    result : fusplan.planner.SimulationResult
        The uncalibrated simulation of the protocol (phantom or scan).
    measurements : Measurements, path or mapping
        What thermometry showed (:func:`fusplan.measured.load_measurements`).
    progress : callable(fraction, message), optional
    threads : int
        FFT worker threads (resolved by the entry point).

    Returns
    -------
    Calibration

    Raises
    ------
    FusplanInputError
        Bad measurements, or a fit outside the plausible ranges.
    """
    say = progress or (lambda fraction, message="": None)
    if not isinstance(measurements, Measurements):
        measurements = load_measurements(measurements, n_sonications=len(result.protocol.sonications))
    label = measurements.source or "thermometry"
    n = len(result.protocol.sonications)
    for m in measurements.measured:
        if m.sonication > n:
            raise FusplanInputError(f"{label}: measured sonication {m.sonication} is beyond the protocol's {n}")
    side = _resolve_side(result, measurements)
    model = side_model(result, side)
    powers = {m.sonication: (m.power_w if m.power_w is not None else model.pulses[m.sonication - 1].power_w)
              for m in measurements.measured}
    say(0.1, "thermometry model")
    observations = _observations(model, measurements, powers, threads)
    sigma0 = source_sigma_mm(model.sources[model.pulses[measurements.measured[0].sonication - 1].source],
                             model.grid.spacing_mm)
    has_spot = any(m.spot_ras_mm is not None or m.series is not None for m in measurements.measured)
    has_width = any(m.spot_fwhm_mm is not None or m.series is not None for m in measurements.measured)
    fitted = [True, has_width, has_spot, has_spot, has_spot]
    x0 = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    lower = np.array([0.05, 1.0, -15.0, -15.0, -15.0])
    upper = np.array([20.0, 6.0, 15.0, 15.0, 15.0])
    free = np.flatnonzero(fitted)
    cache = {}

    def broadened(spread: float):
        if spread not in cache:
            cache.clear()
            sigma = broadening_sigma_mm(spread, sigma0)
            cache[spread] = [gaussian_shift_filter(o.fields, model.grid.spacing_mm, sigma, first_axis=1)
                             for o in observations]
        return cache[spread]

    def full(x_free):
        x = x0.copy()
        x[free] = x_free
        return x

    def residuals(x_free, temperatures=False):
        x = full(x_free)
        parts = [o.residuals(f, x[0], x[2:]) for o, f in zip(observations, broadened(x[1]))]
        return np.concatenate([p[1 if temperatures else 0] for p in parts])

    def start_at(spread: float) -> np.ndarray:
        """Efficiency from the peak ratio (temperature is linear in it) and offset from the hottest spot."""
        x = x0.copy()
        x[1] = spread
        first = observations[0]
        peak, where, w = _peak(broadened(spread)[0])
        if first.measured.series is None:
            x[0] = (first.measured.peak_c - first.base_c[w]) / peak
            if first.measured.spot_ras_mm is not None:
                x[2:] = np.asarray(first.measured.spot_ras_mm) - first.box_grid.index_to_world(where)
        else:
            x[0] = (first.data.max() - first.base_c.max()) / peak
            frame = int(np.argmax(first.data.max(1)))
            x[2:] = first.world[int(np.argmax(first.data[frame]))] - first.box_grid.index_to_world(where)
        return np.clip(x, lower + 1e-6, upper - 1e-6)

    # The spread is the one nonlinear parameter: start from the best of a coarse scan.
    candidates = [start_at(s) for s in ((1.0, 1.5, 2.0, 2.5, 3.0, 4.0) if has_width else (1.0,))]
    start = min(candidates, key=lambda x: float(np.sum(residuals(x[free]) ** 2)))
    say(0.3, "fitting")
    fit = least_squares(residuals, start[free], bounds=(lower[free], upper[free]), x_scale="jac",
                        diff_step=1e-4, method="trf")
    x = full(fit.x)
    dof = fit.fun.size - free.size
    jtj = fit.jac.T @ fit.jac
    cov_free = np.linalg.pinv(jtj)
    chi2 = float(fit.fun @ fit.fun)
    if dof > 0:
        cov_free *= max(1.0, chi2 / dof)
    covariance = np.zeros((5, 5))
    covariance[np.ix_(free, free)] = cov_free
    sd = np.sqrt(np.clip(np.diag(covariance), 0, None))
    eta, spread, offset = float(x[0]), float(x[1]), x[2:].copy()
    if spread > SPREAD_MAX:
        raise FusplanInputError(f"{label}: fitted focal spread {spread:.3g} is above the plausible {SPREAD_MAX:g} "
                                f"(a spot that wide is not a focus): check spot_fwhm_mm or the series")
    if np.linalg.norm(offset) > OFFSET_MAX_MM:
        raise FusplanInputError(f"{label}: the spot is {np.linalg.norm(offset):.1f} mm from the target, more "
                                f"than the plausible {OFFSET_MAX_MM:g} mm: check spot_ras_mm (RAS mm) or the series")
    if not EFFICIENCY_RANGE[0] <= eta <= EFFICIENCY_RANGE[1]:
        raise FusplanInputError(
            f"{label}: fitted heating efficiency {eta:.3g} is outside the plausible {EFFICIENCY_RANGE[0]:g}-"
            f"{EFFICIENCY_RANGE[1]:g}: check power_w and the sonication indices")
    temperature_residuals = residuals(fit.x, temperatures=True)
    records = []
    for o, f in zip(observations, broadened(spread)):
        peak, where, w = _peak(f)
        record = {"sonication": o.measured.sonication, "power_w": float(powers[o.measured.sonication]),
                  "model_peak_c": float(o.base_c[w] + eta * peak),
                  "model_spot_ras_mm": [float(v) for v in o.box_grid.index_to_world(where) + offset]}
        if o.measured.peak_c is not None:
            record["measured_peak_c"] = o.measured.peak_c
        else:
            record["thermometry"] = o.measured.series.source
            record["noise_c"] = o.noise_c
        records.append(record)
    say(1.0, "calibrated")
    names = [p for p, f in zip(PARAMETERS, fitted) if f]
    fitted_names = tuple(dict.fromkeys("offset_ras_mm" if p.startswith("offset") else p for p in names))
    return Calibration(
        side, eta, spread, offset,
        {"heating_efficiency": float(sd[0]), "focal_spread": float(sd[1]) if fitted[1] else None,
         "offset_ras_mm": [float(v) for v in sd[2:]] if fitted[2] else None},
        covariance, float(np.sqrt(np.mean(temperature_residuals**2))), fitted_names, powers, records)
