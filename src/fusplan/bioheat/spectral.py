"""Exact Pennes propagator for homogeneous tissue on a zero-padded periodic grid.

Equation (rise ``theta = T - T_a`` over the arterial temperature)::

    d theta/dt = D lap(theta) - P theta + Q / (rho c)

Homogeneous tissue is solved exactly in Fourier space (Gao, Langer & Corry 1995): with
``lambda = D |k|^2 + P`` a source switched on at ``t = 0`` gives
``theta^(k, t) = (1 - exp(-lambda t)) / lambda * S^(k)``. The grid is zero padded
(:func:`padded_length`) so that the periodic images of the heated region are several
heat-spread lengths away: the padded periodic answer equals the infinite-medium answer
within ~1e-4 K at the focus (tested).

:func:`wavenumbers_squared` is the one place the ``|k|^2`` grid is built (the
propagator, the response tables, k-space stepping and the heterogeneous solver use it).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import scipy.fft as sfft

from fusplan.threads import checked_threads
from fusplan.tissue import Tissue

__all__ = ["Pulse", "padded_length", "axis_wavenumbers_squared", "wavenumbers_squared", "SpectralBioheat"]


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


def axis_wavenumbers_squared(n: int, spacing_mm: float, half: bool = False) -> np.ndarray:
    """``k^2`` (rad^2/m^2) of an ``n``-point FFT axis; ``half``: the rfft half axis."""
    frequencies = sfft.rfftfreq(n, d=spacing_mm * 1e-3) if half else sfft.fftfreq(n, d=spacing_mm * 1e-3)
    return (2 * np.pi * frequencies) ** 2


def wavenumbers_squared(padded_shape, spacing_mm: float) -> list[np.ndarray]:
    """Per-axis ``k^2`` of an ``rfftn`` of ``padded_shape`` (last axis halved), for broadcasting.

    ``sum(wavenumbers_squared(...))`` is ``|k|^2`` on the rfft grid; the 1D factors also
    give separable kernels such as ``exp(-D |k|^2 t)``.
    """
    n0, n1, n2 = padded_shape
    return [
        axis_wavenumbers_squared(n0, spacing_mm)[:, None, None],
        axis_wavenumbers_squared(n1, spacing_mm)[None, :, None],
        axis_wavenumbers_squared(n2, spacing_mm, half=True)[None, None, :],
    ]


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
    threads : int
        FFT worker threads (resolved by the entry point: :class:`fusplan.execution.ExecutionOptions`).
    """

    def __init__(self, shape, spacing_mm: float, tissue: Tissue, duration_s: float = 600.0,
                 margin_mm: float | None = None, *, threads: int = 1):
        self.shape = tuple(int(n) for n in shape)
        self.spacing_mm = float(spacing_mm)
        self.tissue = tissue
        self.threads = checked_threads(threads)
        self.padded_shape = tuple(padded_length(n, spacing_mm, tissue, duration_s, margin_mm) for n in self.shape)
        self.diffusivity = tissue.diffusivity_m2_s
        self.perfusion = tissue.perfusion_rate_per_s
        self._k2_axes = wavenumbers_squared(self.padded_shape, self.spacing_mm)
        self.lam = self.diffusivity * sum(self._k2_axes) + self.perfusion

    def with_threads(self, threads: int | None) -> SpectralBioheat:
        """This solver (sharing its arrays) with another thread count; itself if ``None``."""
        if threads is None:
            return self
        other = copy.copy(self)
        other.threads = checked_threads(threads)
        return other

    # -- transforms -------------------------------------------------------------------
    def spectrum(self, source_w_m3: np.ndarray) -> np.ndarray:
        """Fourier transform of ``Q / (rho c)`` (K/s) on the padded grid."""
        q = np.asarray(source_w_m3, dtype=float) / self.tissue.heat_capacity_j_m3_k
        return sfft.rfftn(q, s=self.padded_shape, workers=self.threads)

    def field(self, spectrum: np.ndarray) -> np.ndarray:
        """Real-space field on the grid (padding cropped)."""
        full = sfft.irfftn(spectrum, s=self.padded_shape, workers=self.threads)
        return full[: self.shape[0], : self.shape[1], : self.shape[2]]

    # -- kernels ----------------------------------------------------------------------
    def decay(self, t_s: float) -> np.ndarray:
        """``exp(-lambda t)``, built from separable 1D factors."""
        e0, e1, e2 = (np.exp(-self.diffusivity * k2 * t_s) for k2 in self._k2_axes)
        return (math.exp(-self.perfusion * t_s) * e0) * e1 * e2

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

