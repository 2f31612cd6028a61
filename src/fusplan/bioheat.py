"""Pennes bioheat solvers: exact Fourier propagator, superposition, heterogeneous scheme.

Equation (rise ``theta = T - T_a`` over the arterial temperature)::

    d theta/dt = D lap(theta) - P theta + Q / (rho c)

Homogeneous tissue is solved exactly in Fourier space (Gao, Langer & Corry 1995): with
``lambda = D |k|^2 + P`` a source switched on at ``t = 0`` gives
``theta^(k, t) = (1 - exp(-lambda t)) / lambda * S^(k)``. The grid is zero padded
(:func:`padded_length`) so that the periodic images of the heated region are several
heat-spread lengths away: the padded periodic answer equals the infinite-medium answer
within ~1e-4 K at the focus (tested).

The equation is linear and time invariant, so a protocol is a superposition of
per-sonication responses ``p_i (U(t - t_i) - U(t - t_i - d_i))`` of the *step
response* ``U`` of each distinct source. :class:`ResponseTable` stores ``U`` and
``dU/dt`` on a sub-box of voxels at ~40 knots in time (dense early, geometric later)
and evaluates any time by cubic Hermite interpolation (error < 1e-4 of the rise,
tested), so temperature at any set of times is a small matrix product instead of an
FFT. With perfusion the table needs two FFTs: ``dU/dt = exp(-lambda t) S`` and
``U = U_inf - exp(-lambda t) U_inf`` and ``exp(-lambda t)`` is a separable periodic
convolution, applied restricted to the box by three small matrix products per axis.

:func:`simulate_pulses` works on a "hot box" (where a source's response reaches 5% of
its maximum, grown by the thermometry kernel; afterwards checked to contain every voxel
above ``dose_floor_c``, else enlarged and rerun). It titrates each ``peak_c`` pulse in
turn by a 1D root solve (the field is ``A(t) + p B(t)``: linear in the power of the
current pulse, ``A`` holding the heat left by earlier pulses), samples the focus curve,
and integrates CEM43 on the voxels that exceed ``dose_floor_c`` with adaptive steps
(step doubling on the exact linear-in-step integral, batched). Full-grid maps outside
the hot voxels come from exact k-space snapshots at pulse ends and 20 s into cooling.

:class:`HeterogeneousBioheat` handles spatially varying tissue with a second-order
exponential time-differencing scheme (ETDRK2) around a homogeneous reference
operator taken at the largest diffusivity and perfusion, which is unconditionally
stable and exact for homogeneous tissue. :func:`kspace_stepping` is the plain
k-Wave-style reference (propagate by ``dt`` with the source held constant).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np
import scipy.fft as sfft
from scipy.optimize import brentq

from .dose import cem43_rate, cem43_step, cem43_step_from_rates
from .errors import FusplanInputError
from .thermometry import box_kernel_1d, frame_average, voxel_average
from .tissue import Tissue

__all__ = [
    "Pulse",
    "padded_length",
    "SpectralBioheat",
    "ResponseTable",
    "hermite_weights",
    "PulseResult",
    "ThermalHistory",
    "simulate_pulses",
    "kspace_stepping",
    "SteppingResult",
    "HeterogeneousBioheat",
]

WORKERS = 2


@dataclass(frozen=True)
class Pulse:
    """One sonication as the thermal solver sees it.

    ``source`` keys a heat source given per watt; ``power_w`` multiplies it (None:
    titrate to ``peak_c``).
    """

    start_s: float
    duration_s: float
    source: Hashable
    power_w: float | None = None
    peak_c: float | None = None
    cooling_s: float = 0.0


def padded_length(n: int, spacing_mm: float, tissue: Tissue, duration_s: float, margin_mm: float | None = None) -> int:
    """FFT length for ``n`` voxels so periodic images do not change the answer.

    The margin is twice the heat-spread length ``min(L_perfusion, sqrt(4 D t))``
    (at least 4 mm): the heated region sits at the box centre, so its nearest periodic
    image is one full period (box + margin, >= 48 mm for the default brain box) away,
    where the perfused Green's function has decayed by ``exp(-period/L) ~ 1e-6``.
    """
    if margin_mm is None:
        spread_mm = min(tissue.perfusion_length_mm, 1e3 * math.sqrt(4 * tissue.diffusivity_m2_s * max(duration_s, 1.0)))
        margin_mm = max(4.0, 2.0 * spread_mm)
    return sfft.next_fast_len(n + int(math.ceil(margin_mm / spacing_mm)), real=True)


class SpectralBioheat:
    """Exact Pennes propagator for homogeneous tissue on a zero-padded periodic grid.

    Parameters
    ----------
    shape : tuple of int
        Grid shape (voxels).
    spacing_mm : float
        Voxel size.
    tissue : Tissue
    duration_s : float
        Longest time the solver will be asked about (sets the padding).
    margin_mm : float, optional
        Override the padding margin (see :func:`padded_length`).
    """

    def __init__(self, shape, spacing_mm: float, tissue: Tissue, duration_s: float = 600.0, margin_mm: float | None = None):
        self.shape = tuple(int(n) for n in shape)
        self.spacing_mm = float(spacing_mm)
        self.tissue = tissue
        self.padded_shape = tuple(padded_length(n, spacing_mm, tissue, duration_s, margin_mm) for n in self.shape)
        h = self.spacing_mm * 1e-3
        self.diffusivity = tissue.diffusivity_m2_s
        self.perfusion = tissue.perfusion_rate_per_s
        k2 = [(2 * np.pi * sfft.fftfreq(n, d=h)) ** 2 for n in self.padded_shape[:2]]
        k2.append((2 * np.pi * sfft.rfftfreq(self.padded_shape[2], d=h)) ** 2)
        self._k2_1d = k2
        self.lam = (
            self.diffusivity * (k2[0][:, None, None] + k2[1][None, :, None] + k2[2][None, None, :]) + self.perfusion
        )

    # -- transforms -------------------------------------------------------------------
    def spectrum(self, source_w_m3: np.ndarray) -> np.ndarray:
        """Fourier transform of ``Q / (rho c)`` (K/s) on the padded grid."""
        q = np.asarray(source_w_m3, dtype=float) / self.tissue.heat_capacity_j_m3_k
        return sfft.rfftn(q, s=self.padded_shape, workers=WORKERS)

    def field(self, spectrum: np.ndarray) -> np.ndarray:
        """Real-space field on the grid (padding cropped)."""
        full = sfft.irfftn(spectrum, s=self.padded_shape, workers=WORKERS)
        return full[: self.shape[0], : self.shape[1], : self.shape[2]]

    # -- kernels ----------------------------------------------------------------------
    def decay(self, t_s: float) -> np.ndarray:
        """``exp(-lambda t)``, built from separable 1D factors."""
        e = [np.exp(-self.diffusivity * k2 * t_s) for k2 in self._k2_1d]
        return (math.exp(-self.perfusion * t_s) * e[0])[:, None, None] * e[1][None, :, None] * e[2][None, None, :]

    def step_gain(self, t_s: float) -> np.ndarray:
        """``(1 - exp(-lambda t)) / lambda``: response to a unit source held on for ``t``."""
        if t_s <= 0:
            return np.zeros_like(self.lam)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = -np.expm1(-self.lam * t_s) / self.lam
        if self.perfusion == 0:
            g[0, 0, 0] = t_s
        return g

    def pulse_gain(self, t_s: float, duration_s: float) -> np.ndarray:
        """Response at ``t`` after the start of a unit pulse of length ``duration_s``."""
        if t_s <= duration_s:
            return self.step_gain(t_s)
        return self.decay(t_s - duration_s) * self.step_gain(duration_s)

    def rise_at(self, pulses: Sequence[Pulse], spectra: Mapping, times_s) -> np.ndarray:
        """Exact temperature rise over ``T_a`` on the grid, shape ``(n_t, *shape)``.

        ``spectra[p.source]`` is :meth:`spectrum` of the per-watt source. The rise from a
        baseline different from ``T_a`` is added by the caller.
        """
        times = np.atleast_1d(np.asarray(times_s, dtype=float))
        out = np.empty((times.size, *self.shape))
        for n, t in enumerate(times):
            acc = np.zeros(self.lam.shape, dtype=complex)
            for p in pulses:
                if t > p.start_s and p.power_w:
                    acc += p.power_w * self.pulse_gain(t - p.start_s, p.duration_s) * spectra[p.source]
            out[n] = self.field(acc)
        return out


def hermite_weights(knots: np.ndarray, tau: np.ndarray, n_rows: int, rows: np.ndarray, scale: np.ndarray):
    """Cubic Hermite weights so that ``U(tau) ~ Wu @ U_knots + Wh @ dU_knots``.

    Adds ``scale * basis(tau)`` into rows ``rows`` of the two ``(n_rows, len(knots))``
    matrices; ``tau <= 0`` contributes nothing (the response starts at 0).
    """
    size = n_rows * knots.size
    live = tau > 0
    if not np.any(live):
        return np.zeros((n_rows, knots.size)), np.zeros((n_rows, knots.size))
    tau, rows, scale = tau[live], rows[live], scale[live]
    if tau.max() > knots[-1] * (1 + 1e-12):
        raise ValueError("time beyond the response table")
    j = np.clip(np.searchsorted(knots, tau, side="right") - 1, 0, knots.size - 2)
    width = knots[j + 1] - knots[j]
    s = (tau - knots[j]) / width
    s2, s3 = s * s, s * s * s
    at, nxt = rows * knots.size + j, rows * knots.size + j + 1
    idx = np.concatenate([at, nxt])
    wu = np.bincount(idx, np.concatenate([scale * (2 * s3 - 3 * s2 + 1), scale * (-2 * s3 + 3 * s2)]), size)
    wh = np.bincount(idx, np.concatenate([scale * width * (s3 - 2 * s2 + s), scale * width * (s3 - s2)]), size)
    return wu.reshape(n_rows, -1), wh.reshape(n_rows, -1)


def default_knots(tau_max_s: float, ratio: float = 1.25) -> np.ndarray:
    """Knot times for a step response: dense while the focal spot forms, geometric after."""
    knots = [0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
    while knots[-1] < tau_max_s:
        knots.append(knots[-1] * ratio)
    return np.array(knots)


def _periodic_kernels(solver: SpectralBioheat, axis: int, taus: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of the periodic 1D heat propagator ``exp(-D k^2 tau)``: shape (J, len(rows), N)."""
    n = solver.padded_shape[axis]
    k2 = (2 * np.pi * sfft.fftfreq(n, d=solver.spacing_mm * 1e-3)) ** 2
    kern = sfft.ifft(np.exp(-solver.diffusivity * np.outer(taus, k2)), axis=1).real  # (J, N)
    offsets = (rows[:, None] - np.arange(n)[None, :]) % n
    return kern[:, offsets]


def _separable_decay(solver: SpectralBioheat, fields: np.ndarray, taus: np.ndarray, lo, hi) -> np.ndarray:
    """``exp(-lambda tau)`` applied to padded fields ``(N0, B, N1, N2)``, kept on the box.

    Returns ``(J, B, m0, m1, m2)``; three small matrix products per axis instead of FFTs.
    """
    n0, nb, n1, n2 = fields.shape
    fields = fields.astype(np.float32)  # products of O(1) kernels: float32 keeps ~1e-6 relative
    k0, k1, k2 = (_periodic_kernels(solver, a, taus, np.arange(lo[a], hi[a])).astype(np.float32) for a in range(3))
    j, m0, m1, m2 = taus.size, k0.shape[1], k1.shape[1], k2.shape[1]
    a = (k0.reshape(j * m0, n0) @ fields.reshape(n0, -1)).reshape(j, m0 * nb, n1, n2)
    a = np.matmul(k1[:, None], a)  # (J, m0*B, m1, N2)
    a = np.matmul(a, k2.transpose(0, 2, 1)[:, None])  # (J, m0*B, m1, m2)
    a = a.astype(float) * np.exp(-solver.perfusion * taus)[:, None, None, None]
    return a.reshape(j, m0, nb, m1, m2).transpose(0, 2, 1, 3, 4)


@dataclass
class ResponseTable:
    """Step response of one per-watt source on a set of voxels, for Hermite interpolation.

    ``values[j]`` is the rise (K per W) at ``knots[j]`` after the source switched on,
    ``slopes[j]`` its time derivative; ``voxels`` are flat indices into the grid.
    """

    knots: np.ndarray
    values: np.ndarray
    slopes: np.ndarray
    voxels: np.ndarray

    @classmethod
    def build(cls, solver: SpectralBioheat, spectrum: np.ndarray, lo, hi, tau_max_s: float) -> "ResponseTable":
        """Tabulate the step response of ``spectrum`` on the box ``lo <= index < hi``.

        With perfusion, ``dU/dt(tau) = exp(-lambda tau) S`` and
        ``U(tau) = U_inf - exp(-lambda tau) U_inf`` (``U_inf = S / lambda``, the steady
        state), and ``exp(-lambda tau)`` is a separable periodic convolution: the table
        costs two FFTs plus small matrix products restricted to the box, identical to
        the Fourier answer. Without perfusion (no steady state) every knot takes FFTs.
        """
        knots = default_knots(tau_max_s)
        shape = solver.shape
        voxels = _box_indices(shape, lo, hi)
        if solver.perfusion <= 0:
            values = np.zeros((knots.size, voxels.size))
            slopes = np.zeros((knots.size, voxels.size))
            slopes[0] = solver.field(spectrum).ravel()[voxels]
            for j, tau in enumerate(knots[1:], start=1):
                slopes[j] = solver.field(solver.decay(tau) * spectrum).ravel()[voxels]
                values[j] = solver.field(solver.step_gain(tau) * spectrum).ravel()[voxels]
            return cls(knots, values, slopes, voxels)
        padded = solver.padded_shape
        source = sfft.irfftn(spectrum, s=padded, workers=WORKERS)
        steady = sfft.irfftn(spectrum / solver.lam, s=padded, workers=WORKERS)
        both = np.stack([source, steady], axis=1)  # (N0, 2, N1, N2)
        smoothed = _separable_decay(solver, both, knots, lo, hi)  # (J, 2, m0, m1, m2)
        slopes = smoothed[:, 0].reshape(knots.size, -1)
        values = steady[tuple(slice(a, b) for a, b in zip(lo, hi))].ravel()[None, :] - smoothed[:, 1].reshape(knots.size, -1)
        values[0] = 0.0
        return cls(knots, values, slopes, voxels)

    def __post_init__(self):
        # One (2 J, n_voxels) block: values and slopes are views, products use it whole.
        self.stacked = np.vstack([self.values, self.slopes])
        self.values, self.slopes = self.stacked[: self.knots.size], self.stacked[self.knots.size :]

    def subset(self, positions: np.ndarray) -> "ResponseTable":
        """The table restricted to ``self.voxels[positions]``."""
        return ResponseTable(self.knots, self.values[:, positions], self.slopes[:, positions], self.voxels[positions])


def _small_matmul(a: np.ndarray, b: np.ndarray, limit: int = 250_000) -> np.ndarray:
    """``a @ b``, cut into row blocks that OpenBLAS runs on one thread when that pays.

    OpenBLAS threads GEMMs with ``m n k > 262144``. For thin products (few knots x a
    few hundred voxels) thread start-up dominates and, on a busy machine, slows them
    by 10-40x (measured); large products keep the threads.
    """
    k, n = b.shape
    if k * n > limit or a.shape[0] * k * n > 50 * limit:
        return a @ b
    rows = max(1, limit // (k * n))
    if rows >= a.shape[0]:
        return a @ b
    return np.concatenate([a[i : i + rows] @ b for i in range(0, a.shape[0], rows)])


def _rise(tables: Mapping, pulses: Sequence[Pulse], times: np.ndarray, powers: Sequence[float]) -> np.ndarray:
    """Rise (K) on the tables' voxels at ``times`` from ``pulses`` with ``powers``."""
    out = None
    n = times.size
    rows = np.arange(n)
    for key, table in tables.items():
        taus, scales, rws = [], [], []
        for p, power in zip(pulses, powers):
            if p.source != key or power == 0:
                continue
            taus += [times - p.start_s, times - p.start_s - p.duration_s]
            scales += [np.full(n, power), np.full(n, -power)]
            rws += [rows, rows]
        if not taus:
            continue
        wu, wh = hermite_weights(table.knots, np.concatenate(taus), n, np.concatenate(rws), np.concatenate(scales))
        part = _small_matmul(np.hstack([wu, wh]), table.stacked)
        out = part if out is None else out + part
    if out is None:
        out = np.zeros((n, next(iter(tables.values())).voxels.size))
    return out


@dataclass
class PulseResult:
    """What happened during one pulse and its cooling."""

    power_w: float
    peak_temperature_c: float
    thermometry_peak_c: float | None


@dataclass
class ThermalHistory:
    """Result of :func:`simulate_pulses` on one grid."""

    pulses: tuple[Pulse, ...]
    results: list[PulseResult]
    focus_time_s: np.ndarray
    focus_temperature_c: np.ndarray
    peak_temperature_c: np.ndarray
    dose_cem43: np.ndarray
    spectra: dict = field(default_factory=dict, repr=False)
    stats: dict = field(default_factory=dict)


def _box_indices(shape, lo, hi) -> np.ndarray:
    """Flat indices of the voxels in the box ``lo <= index < hi``."""
    idx = np.ix_(*[np.arange(a, b) for a, b in zip(lo, hi)])
    return np.ravel_multi_index(idx, shape).ravel()


def simulate_pulses(
    solver: SpectralBioheat,
    sources: Mapping[Hashable, np.ndarray],
    pulses: Sequence[Pulse],
    *,
    thermometry_voxel_mm=None,
    thermometry_frame_s: float | None = None,
    dose_floor_c: float = 39.0,
    focus_interval_s: float = 0.5,
    dose_rtol: float = 1e-2,
    progress: Callable[[str], None] | None = None,
) -> ThermalHistory:
    """Simulate a sequence of pulses: titrate, sample the focus, integrate CEM43.

    Parameters
    ----------
    solver : SpectralBioheat
    sources : mapping key -> ndarray
        Heat source (W/m^3 per W) of every distinct focus, on the solver's grid.
    pulses : sequence of Pulse
        In time order; ``power_w=None`` with ``peak_c`` titrates that pulse so that its
        peak (thermometry-equivalent if ``thermometry_voxel_mm`` is given) equals ``peak_c``.
    thermometry_voxel_mm, thermometry_frame_s
        MR thermometry model: average over a voxel box aligned with the grid axes and a
        sliding frame window.
    dose_floor_c : float
        Voxels that never exceed this temperature get their dose and peak from coarse
        snapshots at the end of each pulse (their dose is below ``0.25**(43 - floor)`` x
        protocol minutes, 0.03 CEM43 for 39 C over 8 min; their peak may read low by
        ~0.2 C where it comes late in the cooling).
    focus_interval_s : float
        Sampling of the focus curve while a pulse is on (coarser in cooling).
    dose_rtol : float
        Per-step relative tolerance of the adaptive CEM43 integration.
    progress : callable(message), optional
        Receives a line of text at each phase.
    """
    tissue = solver.tissue
    shape = solver.shape
    t_art = tissue.blood_temperature_c
    base = tissue.baseline_temperature_c - t_art  # initial uniform rise, decays at rate P
    spectra = {key: solver.spectrum(q) for key, q in sources.items()}
    t_end = max(p.start_s + p.duration_s + p.cooling_s for p in pulses)
    say = progress or (lambda message: None)

    def base_rise(times):
        return base * np.exp(-solver.perfusion * np.clip(times, 0, None))

    # Hot box: where any source's response after the longest pulse is >= 5% of its max
    # (checked afterwards: every voxel above the dose floor must lie inside it).
    box_fraction = 0.05
    d_max = max(p.duration_s for p in pulses)
    gain = solver.step_gain(d_max)
    kernel_half = [0, 0, 0]
    if thermometry_voxel_mm is not None:
        kernel_half = [box_kernel_1d(w, solver.spacing_mm).size // 2 for w in thermometry_voxel_mm]
    margin = [max(3, h + 2) for h in kernel_half]
    lo, hi = np.array(shape), np.zeros(3, int)
    cores = []
    for key, spec in spectra.items():
        f = solver.field(gain * spec)
        where = np.argwhere(f >= box_fraction * f.max())
        lo = np.minimum(lo, where.min(0))
        hi = np.maximum(hi, where.max(0) + 1)
        cores.append(f >= 0.3 * f.max())
    stats = {"padded_shape": solver.padded_shape}
    for attempt in range(4):
        lo = np.maximum(lo - margin, 0)
        hi = np.minimum(hi + margin, shape)
        say(f"bioheat: response tables on {tuple(hi - lo)} voxels")
        tick = time.perf_counter()
        tables = {key: ResponseTable.build(solver, spec, lo, hi, t_end + 1.0) for key, spec in spectra.items()}
        stats["table_seconds"] = time.perf_counter() - tick
        history = _run(solver, spectra, tables, pulses, lo, hi, cores, base_rise, t_end, thermometry_voxel_mm,
                       thermometry_frame_s, dose_floor_c, focus_interval_s, dose_rtol)
        # Every voxel that got hotter than the dose floor must lie inside the box (not on its rim).
        hot = np.argwhere(history.peak_temperature_c >= dose_floor_c - 0.5)
        inner_lo = np.where(lo > 0, lo + 1, 0)
        inner_hi = np.where(hi < shape, hi - 1, shape)
        if hot.size == 0 or (np.all(hot.min(0) >= inner_lo) and np.all(hot.max(0) < inner_hi)):
            history.stats.update(stats, box_shape=tuple(int(v) for v in hi - lo), attempts=attempt + 1)
            history.spectra = spectra
            return history
        lo = np.minimum(lo, hot.min(0))
        hi = np.maximum(hi, hot.max(0) + 1)
    raise RuntimeError("bioheat: the heated region keeps growing past the hot box")


def _initial_nodes(a: float, b: float, first_s: float = 0.1, growth: float = 1.5, longest_s: float = 4.0) -> np.ndarray:
    """Nodes in ``[a, b]``: steps growing geometrically from ``first_s`` after ``a``."""
    nodes, step, t = [a], first_s, a
    while t + step < b - 1e-9:
        t += step
        nodes.append(t)
        step = min(step * growth, longest_s)
    nodes.append(b)
    return np.array(nodes)


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
    nodes = np.unique(np.concatenate([_initial_nodes(a, b) for a, b in zip(events[:-1], events[1:]) if b > a]))
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


def _run(solver, spectra, tables, pulses, lo, hi, cores, base_rise, t_end, th_voxel, th_frame,
         dose_floor_c, focus_interval_s, dose_rtol) -> ThermalHistory:
    tissue = solver.tissue
    t_art = tissue.blood_temperature_c
    shape = solver.shape
    box_shape = tuple(int(v) for v in hi - lo)
    sub = tuple(slice(a, b) for a, b in zip(lo, hi))
    # Candidate voxels for peaks: cores of all sources (where the field is >= 30% of max).
    core = np.zeros(shape, bool)
    for c in cores:
        core |= c
    core_box = core[sub]
    core_sel = np.flatnonzero(core_box)
    core_tables = {key: t.subset(core_sel) for key, t in tables.items()}
    th_tables = None
    if th_voxel is not None:
        # Averaging commutes with superposition: average the tables once.
        th_tables = {}
        for key, t in tables.items():
            v, d = (voxel_average(a.reshape(-1, *box_shape), solver.spacing_mm, th_voxel, first_axis=1)
                    for a in (t.values, t.slopes))
            th_tables[key] = ResponseTable(t.knots, v.reshape(t.knots.size, -1)[:, core_sel],
                                           d.reshape(t.knots.size, -1)[:, core_sel], t.voxels[core_sel])
    powers: list[float] = []
    results: list[PulseResult] = []
    clock = {}
    tick = time.perf_counter()
    for i, p in enumerate(pulses):
        # Uniform times ending exactly at the end of the pulse, from one frame before it
        # starts to a frame (+2 s) into the cooling: the peak of a pulse (true or frame
        # averaged) is reached in that window; afterwards the field only cools.
        frame = th_frame or 0.0
        end = p.start_s + p.duration_s
        n_w = int(math.ceil(frame / 0.1 - 1e-9))
        step = frame / n_w if n_w else 0.1
        after = min(p.cooling_s, frame + 2.0)
        k = np.arange(-int(math.ceil((p.duration_s + frame) / step - 1e-9)), int(math.floor(after / step + 1e-9)) + 1)
        times = end + step * k  # may start before 0: nothing has happened there yet
        in_window = times >= p.start_s - 1e-9
        base = base_rise(times)[:, None] + t_art
        prev = _rise(core_tables, pulses[:i], times, powers) + base
        unit = _rise(core_tables, [p], times, [1.0])
        a_true, b_true = prev[in_window], unit[in_window]
        if th_tables is not None:
            complete = in_window[n_w:]  # windows ending at or after the pulse start
            a_th = frame_average(_rise(th_tables, pulses[:i], times, powers) + base, step, frame)[complete]
            b_th = frame_average(_rise(th_tables, [p], times, [1.0]), step, frame)[complete]

        def measures(power):
            true_peak = float((a_true + power * b_true).max())
            if th_tables is None:
                return true_peak, None
            return true_peak, float((a_th + power * b_th).max())

        if p.power_w is not None:
            power = float(p.power_w)
        else:
            which = 0 if th_tables is None else 1
            f0 = measures(0.0)[which] - p.peak_c
            if f0 >= 0:
                raise FusplanInputError(
                    f"sonication {i + 1}: peak_c {p.peak_c:g} C is not reachable: heat left from earlier "
                    f"sonications already gives {f0 + p.peak_c:.2f} C (lengthen the cooling or raise peak_c)")
            hi_p = (p.peak_c - t_art + abs(f0)) / max(unit[in_window].max(), 1e-30)
            while measures(hi_p)[which] < p.peak_c:
                hi_p *= 2
            power = brentq(lambda w: measures(w)[which] - p.peak_c, 0.0, hi_p, xtol=1e-9 * hi_p, rtol=1e-12)
        powers.append(power)
        true_peak, th_peak = measures(power)
        results.append(PulseResult(power, true_peak, th_peak))

    clock["titration"] = time.perf_counter() - tick
    tick = time.perf_counter()
    done = tuple(Pulse(p.start_s, p.duration_s, p.source, pw, p.peak_c, p.cooling_s) for p, pw in zip(pulses, powers))
    events = sorted({0.0, t_end, *[p.start_s for p in done], *[p.start_s + p.duration_s for p in done]})

    # Focus curve: hottest core voxel, <= focus_interval_s while on, coarser in cooling.
    focus_t = [0.0]
    for a, b in zip(events[:-1], events[1:]):
        on = any(p.start_s <= a < p.start_s + p.duration_s for p in done)
        if on:
            n = int(math.ceil((b - a) / focus_interval_s - 1e-9))
            focus_t += list(np.linspace(a, b, n + 1)[1:])
        else:
            fine = np.arange(focus_interval_s, min(10.0, b - a), focus_interval_s)
            coarse = np.arange(10.0, b - a, 2.0)
            focus_t += list(a + np.concatenate([fine, coarse])) + [b]
    focus_t = np.unique(np.array(focus_t))
    focus_c = np.empty(focus_t.size)
    for s in range(0, focus_t.size, 256):
        tt = focus_t[s : s + 256]
        focus_c[s : s + 256] = (_rise(core_tables, done, tt, powers) + base_rise(tt)[:, None]).max(1) + t_art

    clock["focus"] = time.perf_counter() - tick
    tick = time.perf_counter()
    # Snapshots of the full field at the end of every pulse, 20 s into its cooling (where
    # voxels a few mm out peak) and at the end (state propagated exactly in k-space,
    # fields in float32): peak and coarse dose away from the hot voxels. Voxels below
    # ``negligible_c`` in both snapshots of a step (< 0.25**5 CEM43 per minute) are skipped.
    negligible_c = dose_floor_c - 1.0
    ends = [p.start_s + p.duration_s for p in done]
    late = [e + min(p.cooling_s, 20.0) for e, p in zip(ends, done)]
    snap_t = np.array(sorted({0.0, t_end, *ends, *late}))
    state = np.zeros(solver.lam.shape, complex)
    peak_full = np.full(shape, tissue.baseline_temperature_c)
    dose_full = np.zeros(shape)
    prev_t, prev_field = 0.0, np.full(shape, tissue.baseline_temperature_c)
    for t in snap_t[1:]:
        # advance the k-space state from prev_t to t
        state = solver.decay(t - prev_t) * state
        for p in done:
            a, b = max(p.start_s, prev_t), min(p.start_s + p.duration_s, t)
            if b > a:
                state += p.power_w * solver.decay(t - b) * solver.step_gain(b - a) * spectra[p.source]
        f = solver.field(state.astype(np.complex64)) + (base_rise(t) + t_art)
        np.maximum(peak_full, f, out=peak_full)
        warm = np.maximum(prev_field, f) >= negligible_c
        dose_full[warm] += cem43_step(prev_field[warm], f[warm], t - prev_t)
        prev_t, prev_field = t, f
    clock["snapshots"] = time.perf_counter() - tick
    tick = time.perf_counter()

    # Peak over the box from the tables: every pulse end and 0.5-64 s into its cooling.
    box_t = np.unique([e + dt for e, p in zip(ends, done) for dt in (0.0, 0.5, 1, 2, 4, 8, 16, 32, 64)
                       if dt <= p.cooling_s])
    box_peak = peak_full[sub].ravel().copy()
    for i in range(0, box_t.size, 16):
        tt = box_t[i : i + 16]
        sampled = _rise(tables, done, tt, powers) + base_rise(tt)[:, None] + t_art
        np.maximum(box_peak, sampled.max(0), out=box_peak)
    box_peak = box_peak.reshape(box_shape)
    clock["box_peak"] = time.perf_counter() - tick
    tick = time.perf_counter()

    # Adaptive CEM43 on the box voxels that get hot (exact linear-in-step integral).
    hot_sel = np.flatnonzero(box_peak.ravel() >= dose_floor_c)
    hot_tables = {key: t.subset(hot_sel) for key, t in tables.items()}

    def temps(tt):
        return _rise(hot_tables, done, tt, powers) + base_rise(tt)[:, None] + t_art

    dose, peak, n_eval = adaptive_cem43(temps, events, rtol=dose_rtol)
    box_dose = dose_full[sub].copy().ravel()
    box_dose[hot_sel] = dose
    dose_full[sub] = box_dose.reshape(box_shape)
    bp = box_peak.copy().ravel()
    bp[hot_sel] = np.maximum(bp[hot_sel], peak)
    peak_full[sub] = bp.reshape(box_shape)
    clock["dose"] = time.perf_counter() - tick
    stats = {"dose_times": n_eval, "hot_voxels": int(hot_sel.size), "core_voxels": int(core_sel.size),
             "seconds": clock}
    return ThermalHistory(done, results, focus_t, focus_c, peak_full, dose_full, stats=stats)


@dataclass
class SteppingResult:
    """Output of a time-stepping solver: maps on the grid and the focus curve."""

    times_s: np.ndarray
    focus_temperature_c: np.ndarray
    peak_temperature_c: np.ndarray
    dose_cem43: np.ndarray
    temperature_c: np.ndarray
    recorded: dict = field(default_factory=dict)


class _StepRecorder:
    """What both time-stepping solvers accumulate: dose, peak, focus curve and snapshots."""

    def __init__(self, initial_c: np.ndarray, times_s: np.ndarray, record_s: Sequence[float]):
        self.times_s = times_s
        self.temperature_c = initial_c
        self.peak_c = initial_c.copy()
        self.dose_cem43 = np.zeros(initial_c.shape)
        self.focus_c = np.empty(len(times_s))
        self.focus_c[0] = initial_c.max()
        self.wanted = {round(float(t), 9) for t in record_s}
        self.recorded: dict = {}

    def step(self, i: int, new_c: np.ndarray, dt_s: float) -> None:
        """Take the field at ``times_s[i + 1]``."""
        self.dose_cem43 += cem43_step(self.temperature_c, new_c, dt_s)
        np.maximum(self.peak_c, new_c, out=self.peak_c)
        self.temperature_c = new_c
        self.focus_c[i + 1] = new_c.max()
        key = round(float(self.times_s[i + 1]), 9)
        if key in self.wanted:
            self.recorded[key] = new_c.copy()

    def result(self) -> SteppingResult:
        return SteppingResult(self.times_s, self.focus_c, self.peak_c, self.dose_cem43, self.temperature_c,
                              self.recorded)


def _source_on(pulses: Sequence[Pulse], t0: float, dt: float):
    """Pulses on during ``[t0, t0 + dt]`` (boundaries must fall on steps)."""
    on = []
    for p in pulses:
        a, b = p.start_s, p.start_s + p.duration_s
        if a < t0 + dt - 1e-9 and b > t0 + 1e-9:
            if a > t0 + 1e-9 or b < t0 + dt - 1e-9:
                raise ValueError(f"pulse boundaries at {a:g} / {b:g} s are not on the {dt:g} s steps")
            on.append(p)
    return on


def _n_steps(t_end: float, dt_s: float) -> int:
    n = int(round(t_end / dt_s))
    if abs(n * dt_s - t_end) > 1e-6 * max(1.0, t_end):
        raise ValueError(f"t_end {t_end:g} s is not a whole number of {dt_s:g} s steps")
    return n


def kspace_stepping(
    solver: SpectralBioheat,
    sources: Mapping[Hashable, np.ndarray],
    pulses: Sequence[Pulse],
    dt_s: float = 0.1,
    t_end_s: float | None = None,
    record_s: Sequence[float] = (),
) -> SteppingResult:
    """Reference solver: plain k-space time stepping (k-Wave's ``bioheatExact`` scheme).

    Every step transforms the temperature, propagates it exactly by ``dt_s`` with the
    source held constant, transforms back and accumulates CEM43 (exact linear-in-step
    integral) and the peak on the whole grid. Pulse powers must be set.
    """
    tissue = solver.tissue
    t_art = tissue.blood_temperature_c
    t_end = t_end_s if t_end_s is not None else max(p.start_s + p.duration_s + p.cooling_s for p in pulses)
    spectra = {key: solver.spectrum(q) for key, q in sources.items()}
    decay = solver.decay(dt_s)
    gain = solver.step_gain(dt_s)
    shape, padded = solver.shape, solver.padded_shape
    crop = tuple(slice(0, n) for n in shape)
    theta = np.full(padded, tissue.baseline_temperature_c - t_art)  # padded rise field
    times = dt_s * np.arange(_n_steps(t_end, dt_s) + 1)
    recorder = _StepRecorder(theta[crop] + t_art, times, record_s)
    for i in range(len(times) - 1):
        spec = sfft.rfftn(theta, workers=WORKERS)
        spec *= decay
        for p in _source_on(pulses, times[i], dt_s):
            spec += (p.power_w * gain) * spectra[p.source]
        theta = sfft.irfftn(spec, s=padded, workers=WORKERS)
        recorder.step(i, theta[crop] + t_art, dt_s)
    return recorder.result()


class HeterogeneousBioheat:
    """Pennes solver for spatially varying tissue: ETDRK2 around a homogeneous reference.

    The operator is split as ``L0 + N`` with ``L0 = D0 lap - P0`` (exact in Fourier
    space, ``D0``/``P0`` the largest diffusivity/perfusion rate on the grid) and the
    remainder ``N(theta) = div_h((k - k0) grad_h theta) / (rho c)
    + (k0 / (rho c) - D0) lap(theta) - (P - P0) theta`` (``k0`` the median conductivity,
    ``div_h``/``grad_h`` conservative finite differences with face-averaged ``k``).
    ``N`` vanishes for homogeneous tissue, where the scheme is exact for any step.
    With the reference at the largest rates the constant-coefficient amplification
    factor lies in ``[0, 1]`` for every step (unconditionally stable); the Cox-Matthews
    ETDRK2 corrector makes it second order in ``dt`` (measured in the tests).

    Parameters
    ----------
    labels : int ndarray
        Tissue label of every voxel.
    tissues : mapping int -> Tissue
        Properties of every label (blood and arterial temperatures must agree).
    spacing_mm : float
    margin_mm : float, optional
        Zero padding (default as :func:`padded_length` for the most diffusive tissue).
    """

    def __init__(self, labels: np.ndarray, tissues: Mapping[int, Tissue], spacing_mm: float,
                 margin_mm: float | None = None, duration_s: float = 600.0):
        labels = np.asarray(labels)
        used = [int(v) for v in np.unique(labels)]
        missing = [v for v in used if v not in tissues]
        if missing:
            raise ValueError(f"no tissue given for labels {missing}")
        t_art = {tissues[v].blood_temperature_c for v in used}
        if len(t_art) != 1:
            raise ValueError("all tissues must share one arterial temperature")
        self.blood_temperature_c = t_art.pop()
        self.baseline_temperature_c = tissues[used[0]].baseline_temperature_c
        self.shape = labels.shape
        self.spacing_mm = float(spacing_mm)
        widest = max((tissues[v] for v in used), key=lambda t: t.diffusivity_m2_s)
        least_perfused = min((tissues[v] for v in used), key=lambda t: t.perfusion_rate_per_s)
        spread = Tissue(**{**widest.__dict__, "perfusion_ml_min_kg": least_perfused.perfusion_ml_min_kg})
        self.padded_shape = tuple(padded_length(n, spacing_mm, spread, duration_s, margin_mm) for n in self.shape)
        pad = [(0, p - n) for n, p in zip(self.shape, self.padded_shape)]

        def prop(fn):
            table = np.array([fn(tissues[v]) if v in tissues else 0.0 for v in range(max(used) + 1)])
            return np.pad(table[labels], pad, mode="edge")

        self.rho_c = prop(lambda t: t.heat_capacity_j_m3_k)
        self.k = prop(lambda t: t.conductivity_w_m_k)
        self.p = prop(lambda t: t.perfusion_rate_per_s)
        self.k0 = float(np.median(self.k))
        self.d0 = float((self.k / self.rho_c).max())
        self.p0 = float(self.p.max())
        h = self.spacing_mm * 1e-3
        k2 = [(2 * np.pi * sfft.fftfreq(n, d=h)) ** 2 for n in self.padded_shape[:2]]
        k2.append((2 * np.pi * sfft.rfftfreq(self.padded_shape[2], d=h)) ** 2)
        self.k2 = k2[0][:, None, None] + k2[1][None, :, None] + k2[2][None, None, :]
        self.lam0 = self.d0 * self.k2 + self.p0
        self.faces = [0.5 * (self.k + np.roll(self.k, -1, axis=a)) - self.k0 for a in range(3)]
        self.variable_k = any(np.any(f != 0) for f in self.faces)

    def _remainder(self, theta: np.ndarray, spec: np.ndarray) -> np.ndarray:
        """``N(theta)`` in real space (``spec`` = rfftn of ``theta``)."""
        h2 = (self.spacing_mm * 1e-3) ** 2
        lap = sfft.irfftn(-self.k2 * spec, s=self.padded_shape, workers=WORKERS)
        out = (self.k0 / self.rho_c - self.d0) * lap - (self.p - self.p0) * theta
        if self.variable_k:
            div = np.zeros_like(theta)
            for a, kf in enumerate(self.faces):
                flux = kf * (np.roll(theta, -1, axis=a) - theta)
                div += flux - np.roll(flux, 1, axis=a)
            out += div / (h2 * self.rho_c)
        return out

    def run(self, sources: Mapping[Hashable, np.ndarray], pulses: Sequence[Pulse], dt_s: float,
            t_end_s: float | None = None, record_s: Sequence[float] = ()) -> SteppingResult:
        """Step the protocol with ``dt_s``; CEM43 and peak accumulate on the whole grid."""
        t_art = self.blood_temperature_c
        t_end = t_end_s if t_end_s is not None else max(p.start_s + p.duration_s + p.cooling_s for p in pulses)
        pad = [(0, p - n) for n, p in zip(self.shape, self.padded_shape)]
        src = {key: np.pad(np.asarray(q, float), pad) / self.rho_c for key, q in sources.items()}
        z = self.lam0 * dt_s
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.exp(-z)
            phi1 = np.where(z > 1e-8, -np.expm1(-z) / np.where(z > 1e-8, self.lam0, 1.0), dt_s)
            phi2 = np.where(z > 1e-4, (e - 1 + z) / np.where(z > 1e-4, self.lam0 * z, 1.0), dt_s * (0.5 - z / 6))
        crop = tuple(slice(0, n) for n in self.shape)
        theta = np.full(self.padded_shape, self.baseline_temperature_c - t_art)
        spec = sfft.rfftn(theta, workers=WORKERS)
        times = dt_s * np.arange(_n_steps(t_end, dt_s) + 1)
        recorder = _StepRecorder(theta[crop] + t_art, times, record_s)
        for i in range(len(times) - 1):
            s = sum((p.power_w * src[p.source] for p in _source_on(pulses, times[i], dt_s)), np.zeros(self.padded_shape))
            n_hat = sfft.rfftn(self._remainder(theta, spec) + s, workers=WORKERS)
            a_hat = e * spec + phi1 * n_hat
            a = sfft.irfftn(a_hat, s=self.padded_shape, workers=WORKERS)
            n_a = sfft.rfftn(self._remainder(a, a_hat) + s, workers=WORKERS)
            spec = a_hat + phi2 * (n_a - n_hat)
            theta = sfft.irfftn(spec, s=self.padded_shape, workers=WORKERS)
            recorder.step(i, theta[crop] + t_art, dt_s)
        return recorder.result()
