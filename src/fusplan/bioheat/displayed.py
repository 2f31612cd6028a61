"""What MR thermometry would have shown over a whole protocol: displayed peak and dose maps.

The clinical lesion thresholds were fitted on thermometry, not on the true field: Huang
et al. 2018's 200 / 100 CEM43 contours are doses accumulated from MR thermometry maps,
and Bond & Elias 2018's 51 C isotherm is a maximum of thermometry temperatures. To score
a simulated lesion the way those thresholds were made, :func:`displayed_maps` computes
the same two maps from the simulated thermometry:

- the temperature every thermometry voxel shows is the rise averaged over a box of
  ``voxel_mm`` centred on the voxel (:func:`fusplan.thermometry.voxel_average`) and over
  the frame window ``[t - frame_s, t]`` (:func:`fusplan.thermometry.frame_average`), plus
  the baseline. The sliding window is the frame average at every phase of the (unknown)
  frame clock, so the result does not depend on it;
- the displayed dose is the CEM43 of that displayed temperature (exact for a temperature
  linear between samples, :func:`fusplan.dose.cem43_step`), the displayed peak its
  maximum over time.

Samples are ``frame_s / ceil(frame_s / 0.5 s)`` apart (0.5 s for a 3.5 s frame) over
the whole protocol; the displayed curve is a frame average, smooth on that scale.
Stretches where no displayed voxel is within 1 C of the dose floor add no dose (less
than ``0.25**5`` CEM43 per minute) and are skipped.
Computed on the response tables of the driver's hot box, restricted to the voxels
within one thermometry half-voxel of where the true peak reached the dose floor:
elsewhere the displayed temperature stays below the floor, and the maps hold the voxel
average of the true peak and dose (both negligible there). The voxel average commutes
with the superposition of step responses, so it is applied once to the tables' knots
(on half a voxel more of context) instead of to every sample: the samples are then
voxel averages already (equal up to float rounding).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fusplan.dose import cem43_rate, cem43_step_from_rates
from fusplan.thermometry import box_kernel_1d, frame_average, voxel_average

from .run import HotBox, RunContext, pulse_powers
from .spectral import Pulse
from .tables import box_indices, table_rise

__all__ = ["displayed_maps", "DISPLAY_STEP_S"]

#: Longest interval between samples of the displayed temperature.
DISPLAY_STEP_S = 0.5
_TIMES_PER_CHUNK = 64


def _grown(lo, hi, by, limit_lo, limit_hi):
    return np.maximum(lo - by, limit_lo), np.minimum(hi + by, limit_hi)


def displayed_maps(run: RunContext, box: HotBox, done: Sequence[Pulse], peak_full: np.ndarray,
                   dose_full: np.ndarray, voxel_mm, frame_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Peak temperature (C) and CEM43 that MR thermometry of ``voxel_mm`` and ``frame_s`` shows.

    Parameters
    ----------
    run, box, done
        The driver's run, hot box and pulses with their final powers.
    peak_full, dose_full : ndarray, grid shape
        True peak temperature and dose (the region to compute is where the true peak
        reached ``run.settings.dose_floor_c``).
    voxel_mm : sequence of 3 float
        Thermometry voxel along the grid axes (mm).
    frame_s : float
        Thermometry frame (s).

    Returns
    -------
    peak_c, dose_cem43 : ndarray, grid shape
    """
    spacing = run.solver.spacing_mm
    baseline = run.solver.tissue.baseline_temperature_c
    peak_out = baseline + voxel_average(peak_full - baseline, spacing, voxel_mm)
    dose_out = voxel_average(dose_full, spacing, voxel_mm)
    hot = np.argwhere(peak_full[box.slices] >= run.settings.dose_floor_c)
    if hot.size == 0:
        return peak_out, dose_out
    half = np.array([box_kernel_1d(w, spacing).size // 2 for w in voxel_mm])
    out_lo, out_hi = _grown(hot.min(0), hot.max(0) + 1, half, 0, np.array(box.shape))  # may show >= the floor
    tables = _averaged_tables(box, out_lo, out_hi, half, spacing, voxel_mm)
    n_w = int(math.ceil(frame_s / DISPLAY_STEP_S - 1e-9))
    step = frame_s / n_w
    times = step * np.arange(-n_w, int(math.ceil(run.t_end / step)) + 1)
    powers = pulse_powers(done)
    n_out = int(np.prod(out_hi - out_lo))
    dose = np.zeros(n_out)
    peak = np.full(n_out, -np.inf)
    history, last = None, None  # the last n_w averaged samples; the last displayed value
    negligible_c = run.settings.dose_floor_c - 1.0  # below it a step adds < 0.25**5 CEM43 per minute
    for start in range(0, times.size, _TIMES_PER_CHUNK):
        tt = times[start:start + _TIMES_PER_CHUNK]
        live = [i for i, p in enumerate(done) if p.start_s < tt[-1]]  # the others add exact zeros
        averaged = table_rise(tables, [done[i] for i in live], tt, [powers[i] for i in live])
        if averaged.max() + run.offset(tt).max() < negligible_c:  # a cold stretch: keep the window's context only
            history, last = averaged[-n_w:], None
            continue
        series = averaged if history is None else np.concatenate([history, averaged])
        history = series[-n_w:]
        if series.shape[0] <= n_w:
            continue
        ends = times[start + tt.size - (series.shape[0] - n_w):start + tt.size]
        framed = frame_average(series, step, frame_s) + run.offset(ends)
        np.maximum(peak, framed.max(0), out=peak)
        if last is not None:
            framed = np.concatenate([last[None], framed])
        last = framed[-1]
        rows = np.maximum(framed[:-1], framed[1:]).max(1) >= negligible_c
        cols = np.flatnonzero(framed.max(0) >= negligible_c)
        if rows.any() and cols.size:
            warm = framed[:, cols]
            rates = cem43_rate(warm)
            dose[cols] += cem43_step_from_rates(warm[:-1][rows], warm[1:][rows], rates[:-1][rows], rates[1:][rows],
                                                step).sum(0)
    target = tuple(slice(int(b + a), int(b + c)) for a, c, b in zip(out_lo, out_hi, box.lo))
    peak_out[target] = peak.reshape(tuple(out_hi - out_lo))
    dose_out[target] = dose.reshape(tuple(out_hi - out_lo))
    return peak_out, dose_out


def _averaged_tables(box: HotBox, out_lo, out_hi, half, spacing_mm: float, voxel_mm) -> dict:
    """The hot box's response tables averaged over the thermometry voxel, on the output box.

    The average of a voxel needs ``half`` voxels of context around it (the hot box edge
    reads as zeros, as for an average of the samples).
    """
    ctx_lo, ctx_hi = _grown(out_lo, out_hi, half, 0, np.array(box.shape))
    ctx_shape = tuple(int(v) for v in ctx_hi - ctx_lo)
    context = box_indices(box.shape, ctx_lo, ctx_hi)
    inner = box_indices(ctx_shape, out_lo - ctx_lo, out_hi - ctx_lo)
    return {key: t.subset(context).voxel_averaged(ctx_shape, spacing_mm, voxel_mm).subset(inner)
            for key, t in box.tables.items()}
