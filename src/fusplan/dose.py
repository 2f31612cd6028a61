"""Thermal dose in cumulative equivalent minutes at 43 C (CEM43, Sapareto & Dewey 1984).

``CEM43 = integral R^(43 - T(t)) dt`` (minutes), with ``R = 0.5`` at or above 43 C and
``R = 0.25`` below. The integral is evaluated exactly for a temperature that varies
linearly in time within each step: with ``f(T) = R^(43 - T) = exp(b (T - 43))`` and
``b = ln(1/R)``, a step from ``T0`` to ``T1`` of length ``dt`` contributes
``dt (f(T1) - f(T0)) / (b (T1 - T0))``; a step that crosses 43 C is split exactly at
the crossing. A constant temperature gives exactly ``R^(43 - T) dt``, and refining the
output interval of a piecewise linear history does not change the result.

Temperatures are capped at :data:`DOSE_CEILING_C` (~909 C, where ``R^(43 - T)``
reaches ``e^600``) so that absurd inputs give a huge finite dose instead of an
overflow; every thermal-ablation temperature is far below it.

:func:`adaptive_cem43` integrates a temperature history given as a function of time
(the bioheat solvers' tables) with adaptive steps.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["DOSE_CEILING_C", "cem43", "cem43_step", "cem43_step_from_rates", "cem43_rate", "cem43_nodes", "adaptive_cem43"]

_B_HOT = np.log(2.0)  # R = 0.5 at/above 43 C
_B_COLD = np.log(4.0)  # R = 0.25 below 43 C
#: Temperature cap of the dose: the rate is ``e^600`` there, far from float overflow.
DOSE_CEILING_C = 43.0 + 600.0 / float(_B_HOT)


def cem43_rate(temperature_c) -> np.ndarray:
    """Instantaneous dose rate ``R^(43 - T)`` in CEM43 minutes per minute."""
    t = np.minimum(np.asarray(temperature_c, dtype=float), DOSE_CEILING_C) - 43.0
    return np.exp(np.where(t >= 0, _B_HOT, _B_COLD) * t)


def _phi(x: np.ndarray) -> np.ndarray:
    """``(1 - exp(-x)) / x`` for ``x >= 0`` (1 at 0)."""
    small = x < 1e-6
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 - 0.5 * x, -np.expm1(-safe) / safe)


def cem43_step(temperature0_c, temperature1_c, dt_s) -> np.ndarray:
    """Dose (CEM43 minutes) accrued over one step with ``T`` linear from ``T0`` to ``T1``.

    Parameters
    ----------
    temperature0_c, temperature1_c : array_like
        Temperatures at the start and end of the step (broadcastable).
    dt_s : float or array_like
        Step length in seconds (>= 0).
    """
    t0, t1 = np.broadcast_arrays(
        np.minimum(np.asarray(temperature0_c, dtype=float), DOSE_CEILING_C) - 43.0,
        np.minimum(np.asarray(temperature1_c, dtype=float), DOSE_CEILING_C) - 43.0,
    )
    shape = t0.shape
    t0, t1 = t0.ravel(), t1.ravel()
    hi = np.maximum(t0, t1)
    lo = np.minimum(t0, t1)
    b = np.where(hi >= 0, _B_HOT, _B_COLD)
    # Same side of 43 C: the exact mean of exp(b t) over the ramp is exp(b hi) phi(b (hi - lo)).
    mean = np.exp(b * hi) * _phi(b * (hi - lo))
    cross = (lo < 0) & (hi >= 0)
    if np.any(cross):
        # Split at 43 C (f = 1 there): fraction -lo/(hi-lo) of the step is below 43 C.
        h, low = hi[cross], lo[cross]
        cold = -low / (h - low)
        mean[cross] = cold * _phi(-_B_COLD * low) + (1.0 - cold) * np.exp(_B_HOT * h) * _phi(_B_HOT * h)
    return mean.reshape(shape) * (np.asarray(dt_s, dtype=float) / 60.0)


def cem43_step_from_rates(temperature0_c, temperature1_c, rate0, rate1, dt_s) -> np.ndarray:
    """:func:`cem43_step` reusing precomputed :func:`cem43_rate` at both ends (same shapes).

    For adaptive integrators that evaluate each sample's rate once: a step on one side
    of 43 C is ``dt (f1 - f0) / (b (T1 - T0))`` without new exponentials; the few
    steps that cross 43 C go through :func:`cem43_step`.
    """
    t0 = np.minimum(np.asarray(temperature0_c, dtype=float), DOSE_CEILING_C)
    t1 = np.minimum(np.asarray(temperature1_c, dtype=float), DOSE_CEILING_C)
    dt = np.asarray(dt_s, dtype=float)
    hot0, hot1 = t0 >= 43.0, t1 >= 43.0
    delta = np.where(hot0, _B_HOT, _B_COLD) * (t1 - t0)
    flat = np.abs(delta) < 1e-6
    mean = np.where(flat, 0.5 * (rate0 + rate1), (rate1 - rate0) / np.where(flat, 1.0, delta))
    out = mean * (dt / 60.0)
    cross = hot0 != hot1
    if np.any(cross):
        out[cross] = cem43_step(t0[cross], t1[cross], np.broadcast_to(dt, out.shape)[cross])
    return out


def cem43(temperature_c, dt_s) -> np.ndarray:
    """Accumulated thermal dose (CEM43 minutes) of a sampled temperature history.

    Parameters
    ----------
    temperature_c : array_like, shape (n_t, ...)
        Temperature samples in C, time on axis 0.
    dt_s : float or array_like, shape (n_t - 1,)
        Interval between consecutive samples in s (uniform if scalar).

    Returns
    -------
    ndarray, shape ``temperature_c.shape[1:]``
        Dose after the last sample, integrating ``R^(43 - T)`` exactly for ``T``
        linear within each step.
    """
    temperature_c = np.asarray(temperature_c, dtype=float)
    if temperature_c.ndim < 1 or temperature_c.shape[0] < 1:
        raise ValueError("temperature_c needs at least one sample along axis 0")
    n = temperature_c.shape[0]
    dt = np.asarray(dt_s, dtype=float)
    if dt.ndim == 0:
        dt = np.full(n - 1, float(dt))
    if dt.shape != (n - 1,):
        raise ValueError(f"dt_s must be a scalar or have {n - 1} entries (got shape {dt.shape})")
    if np.any(dt < 0):
        raise ValueError("dt_s must be >= 0")
    dose = np.zeros(temperature_c.shape[1:])
    per_sample = max(1, int(np.prod(temperature_c.shape[1:])))
    chunk = max(1, 2_000_000 // per_sample)  # bound the temporary arrays
    expand = (slice(None),) + (None,) * (temperature_c.ndim - 1)
    for i in range(0, n - 1, chunk):
        j = min(i + chunk, n - 1)
        dose += cem43_step(temperature_c[i:j], temperature_c[i + 1 : j + 1], dt[i:j][expand]).sum(0)
    return dose


def _initial_nodes(a: float, b: float, first_s: float = 0.1, growth: float = 1.5, longest_s: float = 4.0) -> np.ndarray:
    """Nodes in ``[a, b]``: steps growing geometrically from ``first_s`` after ``a``."""
    nodes, step, t = [a], first_s, a
    while t + step < b - 1e-9:
        t += step
        nodes.append(t)
        step = min(step * growth, longest_s)
    nodes.append(b)
    return np.array(nodes)


def cem43_nodes(events: Sequence[float]) -> np.ndarray:
    """The first times :func:`adaptive_cem43` evaluates (steps growing after every event)."""
    return np.unique(np.concatenate([_initial_nodes(a, b) for a, b in zip(events[:-1], events[1:]) if b > a]))


def adaptive_cem43(temps: Callable[[np.ndarray], np.ndarray], events: Sequence[float], rtol: float = 1e-2,
                   atol: float = 1e-3, max_rounds: int = 30):
    """CEM43 of ``temps(times) -> (n_t, n_v)`` over ``[events[0], events[-1]]``, adaptively.

    Steps never straddle an event (where ``dT/dt`` jumps). Each interval is checked by
    step doubling: the exact linear-in-step integral over the whole interval and over
    its two halves must agree within ``rtol * dose + atol`` (CEM43) on every voxel;
    failing intervals are split and checked again. Accepted intervals contribute the
    Richardson value ``half + (half - full) / 3``. All evaluations of a round are one
    batched call, so the work is a few large matrix products.

    Returns
    -------
    dose : (n_v,) ndarray
    peak_c : (n_v,) ndarray
        Maximum over all evaluated times.
    n_times : int
        Number of times evaluated.
    """
    nodes = cem43_nodes(events)
    values = temps(nodes)
    rates = cem43_rate(values)
    n_times = nodes.size
    dose = np.zeros(values.shape[1])
    peak = values.max(0)
    left, right = nodes[:-1], nodes[1:]
    v_left, v_right, r_left, r_right = values[:-1], values[1:], rates[:-1], rates[1:]
    for _ in range(max_rounds):
        if left.size == 0:
            break
        mids = 0.5 * (left + right)
        v_mid = temps(mids)
        r_mid = cem43_rate(v_mid)
        n_times += mids.size
        np.maximum(peak, v_mid.max(0), out=peak)
        dt = (right - left)[:, None]
        half = (cem43_step_from_rates(v_left, v_mid, r_left, r_mid, dt / 2)
                + cem43_step_from_rates(v_mid, v_right, r_mid, r_right, dt / 2))
        full = cem43_step_from_rates(v_left, v_right, r_left, r_right, dt)
        ok = np.all(np.abs(half - full) <= rtol * half + atol, axis=1)
        dose += (half[ok] + (half[ok] - full[ok]) / 3.0).sum(0)
        bad = ~ok
        left, right = np.concatenate([left[bad], mids[bad]]), np.concatenate([mids[bad], right[bad]])
        v_left, v_right = np.concatenate([v_left[bad], v_mid[bad]]), np.concatenate([v_mid[bad], v_right[bad]])
        r_left, r_right = np.concatenate([r_left[bad], r_mid[bad]]), np.concatenate([r_mid[bad], r_right[bad]])
    else:
        raise RuntimeError("adaptive CEM43 integration did not converge")
    return dose, peak, n_times
