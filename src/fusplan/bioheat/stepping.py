"""Time-stepping solvers: the k-space reference and the heterogeneous-tissue scheme.

:func:`kspace_stepping` is the plain k-Wave-style reference (propagate by ``dt`` with
the source held constant). :class:`HeterogeneousBioheat` handles spatially varying
tissue with a second-order exponential time-differencing scheme (ETDRK2) around a
homogeneous reference operator taken at the largest diffusivity and perfusion, which
is unconditionally stable and exact for homogeneous tissue.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import scipy.fft as sfft

from fusplan.dose import cem43_step
from fusplan.threads import checked_threads
from fusplan.tissue import Tissue

from .spectral import Pulse, SpectralBioheat, padded_length, wavenumbers_squared

__all__ = ["SteppingResult", "kspace_stepping", "HeterogeneousBioheat"]


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
    *,
    threads: int | None = None,
) -> SteppingResult:
    """Reference solver: plain k-space time stepping (k-Wave's ``bioheatExact`` scheme).

    Every step transforms the temperature, propagates it exactly by ``dt_s`` with the
    source held constant, transforms back and accumulates CEM43 (exact linear-in-step
    integral) and the peak on the whole grid. Pulse powers must be set. ``threads``:
    FFT workers (default: the solver's).
    """
    solver = solver.with_threads(threads)
    workers = solver.threads
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
        spec = sfft.rfftn(theta, workers=workers)
        spec *= decay
        for p in _source_on(pulses, times[i], dt_s):
            spec += (p.power_w * gain) * spectra[p.source]
        theta = sfft.irfftn(spec, s=padded, workers=workers)
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
    duration_s : float
        Longest time the solver will be asked about (sets the padding).
    threads : int
        FFT worker threads (resolved by the entry point: :class:`fusplan.execution.ExecutionOptions`).
    """

    def __init__(self, labels: np.ndarray, tissues: Mapping[int, Tissue], spacing_mm: float,
                 margin_mm: float | None = None, duration_s: float = 600.0, *, threads: int = 1):
        self.threads = checked_threads(threads)
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
        self.k2 = sum(wavenumbers_squared(self.padded_shape, self.spacing_mm))
        self.lam0 = self.d0 * self.k2 + self.p0
        self.faces = [0.5 * (self.k + np.roll(self.k, -1, axis=a)) - self.k0 for a in range(3)]
        self.variable_k = any(np.any(f != 0) for f in self.faces)

    def _remainder(self, theta: np.ndarray, spec: np.ndarray) -> np.ndarray:
        """``N(theta)`` in real space (``spec`` = rfftn of ``theta``)."""
        h2 = (self.spacing_mm * 1e-3) ** 2
        lap = sfft.irfftn(-self.k2 * spec, s=self.padded_shape, workers=self.threads)
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
        spec = sfft.rfftn(theta, workers=self.threads)
        times = dt_s * np.arange(_n_steps(t_end, dt_s) + 1)
        recorder = _StepRecorder(theta[crop] + t_art, times, record_s)
        for i in range(len(times) - 1):
            s = sum((p.power_w * src[p.source] for p in _source_on(pulses, times[i], dt_s)), np.zeros(self.padded_shape))
            n_hat = sfft.rfftn(self._remainder(theta, spec) + s, workers=self.threads)
            a_hat = e * spec + phi1 * n_hat
            a = sfft.irfftn(a_hat, s=self.padded_shape, workers=self.threads)
            n_a = sfft.rfftn(self._remainder(a, a_hat) + s, workers=self.threads)
            spec = a_hat + phi2 * (n_a - n_hat)
            theta = sfft.irfftn(spec, s=self.padded_shape, workers=self.threads)
            recorder.step(i, theta[crop] + t_art, dt_s)
        return recorder.result()
