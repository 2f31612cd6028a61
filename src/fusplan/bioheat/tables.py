"""Step-response tables: temperature at any time on a box of voxels by superposition.

The equation is linear and time invariant, so a protocol is a superposition of
per-sonication responses ``p_i (U(t - t_i) - U(t - t_i - d_i))`` of the *step
response* ``U`` of each distinct source. :class:`ResponseTable` stores ``U`` and
``dU/dt`` on a sub-box of voxels at ~40 knots in time (dense early, geometric later)
and evaluates any time by cubic Hermite interpolation (error < 1e-4 of the rise,
tested), so temperature at any set of times is a small matrix product
(:func:`table_rise`) instead of an FFT. With perfusion the table needs two FFTs:
``dU/dt = exp(-lambda t) S`` and ``U = U_inf - exp(-lambda t) U_inf`` and
``exp(-lambda t)`` is a separable periodic convolution, applied restricted to the box
by three small matrix products per axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.fft as sfft

from fusplan.thermometry import voxel_average

from .spectral import Pulse, SpectralBioheat, axis_wavenumbers_squared

__all__ = ["hermite_weights", "default_knots", "ResponseTable", "table_rise", "table_bytes", "table_build_bytes", "box_indices"]


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
    k2 = axis_wavenumbers_squared(n, solver.spacing_mm)
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
    def build(cls, solver: SpectralBioheat, spectrum: np.ndarray, lo, hi, tau_max_s: float) -> ResponseTable:
        """Tabulate the step response of ``spectrum`` on the box ``lo <= index < hi``.

        With perfusion, ``dU/dt(tau) = exp(-lambda tau) S`` and
        ``U(tau) = U_inf - exp(-lambda tau) U_inf`` (``U_inf = S / lambda``, the steady
        state), and ``exp(-lambda tau)`` is a separable periodic convolution: the table
        costs two FFTs plus small matrix products restricted to the box, identical to
        the Fourier answer. Without perfusion (no steady state) every knot takes FFTs.
        """
        knots = default_knots(tau_max_s)
        shape = solver.shape
        voxels = box_indices(shape, lo, hi)
        if solver.perfusion <= 0:
            values = np.zeros((knots.size, voxels.size))
            slopes = np.zeros((knots.size, voxels.size))
            slopes[0] = solver.field(spectrum).ravel()[voxels]
            for j, tau in enumerate(knots[1:], start=1):
                slopes[j] = solver.field(solver.decay(tau) * spectrum).ravel()[voxels]
                values[j] = solver.field(solver.step_gain(tau) * spectrum).ravel()[voxels]
            return cls(knots, values, slopes, voxels)
        padded = solver.padded_shape
        source = sfft.irfftn(spectrum, s=padded, workers=solver.threads)
        steady = sfft.irfftn(spectrum / solver.lam, s=padded, workers=solver.threads)
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

    def sub_box(self, box_shape, start, shape, voxels: np.ndarray) -> ResponseTable:
        """The table on the sub-box ``start .. start + shape`` of its own box (of ``box_shape``),
        relabelled as ``voxels`` (e.g. the same values read as a translated source's box)."""
        window = (slice(None),) + tuple(slice(int(a), int(a) + int(n)) for a, n in zip(start, shape))

        def cut(array: np.ndarray) -> np.ndarray:
            return array.reshape(-1, *box_shape)[window].reshape(self.knots.size, -1)
        return ResponseTable(self.knots, cut(self.values), cut(self.slopes), voxels)

    def voxel_averaged(self, box_shape, spacing_mm: float, voxel_mm) -> ResponseTable:
        """The table averaged over a thermometry voxel (:func:`fusplan.thermometry.voxel_average`).

        Its voxels must be a whole box of ``box_shape`` (C order); beyond the box reads as
        zeros. Averaging commutes with the superposition of step responses, so temperatures
        from the averaged table are the voxel averages of the table's temperatures.
        """
        averaged = voxel_average(self.stacked.reshape(-1, *box_shape), spacing_mm, voxel_mm, first_axis=1)
        averaged = averaged.reshape(2 * self.knots.size, -1)
        return ResponseTable(self.knots, averaged[: self.knots.size], averaged[self.knots.size :], self.voxels)

    def subset(self, positions: np.ndarray) -> ResponseTable:
        """The table restricted to ``self.voxels[positions]``."""
        return ResponseTable(self.knots, self.values[:, positions], self.slopes[:, positions], self.voxels[positions])


def _small_matmul(a: np.ndarray, b: np.ndarray, limit: int = 250_000) -> np.ndarray:
    """``a @ b``, cut into row blocks that OpenBLAS runs on one thread when that pays.

    OpenBLAS threads GEMMs with ``m n k > 262144``. For thin products (few knots x a
    few hundred voxels) thread start-up dominates and, on a busy machine, slows them
    by 10-40x (measured); large products keep the threads.
    """
    k, n = b.shape
    if k * n == 0 or k * n > limit or a.shape[0] * k * n > 50 * limit:
        return a @ b
    rows = max(1, limit // (k * n))
    if rows >= a.shape[0]:
        return a @ b
    return np.concatenate([a[i : i + rows] @ b for i in range(0, a.shape[0], rows)])


def table_rise(tables: Mapping, pulses: Sequence[Pulse], times: np.ndarray, powers: Sequence[float]) -> np.ndarray:
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



def box_indices(shape, lo, hi) -> np.ndarray:
    """Flat indices of the voxels in the box ``lo <= index < hi``."""
    idx = np.ix_(*[np.arange(a, b) for a, b in zip(lo, hi)])
    return np.ravel_multi_index(idx, shape).ravel()


def table_bytes(tau_max_s: float, n_voxels: int) -> int:
    """Memory of one :class:`ResponseTable` over ``n_voxels`` up to ``tau_max_s`` (float64)."""
    return 2 * default_knots(tau_max_s).size * int(n_voxels) * 8


def table_build_bytes(solver: SpectralBioheat, tau_max_s: float, box_shape) -> int:
    """Peak temporary memory of :meth:`ResponseTable.build` on a box (float32 separable products)."""
    n0, n1, n2 = solver.padded_shape
    j = default_knots(tau_max_s).size
    m0, m1, _ = box_shape
    padded_fields = 3 * n0 * n1 * n2 * 8  # source, steady state and their stack
    products = j * m0 * 2 * (n1 * n2 + m1 * n2) * 4
    return padded_fields + 2 * products
