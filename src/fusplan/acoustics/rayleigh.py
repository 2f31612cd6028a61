"""Rayleigh sums of circular pistons: the exact sum at points and the fast grid sum.

Every source (array element or bowl patch) is a baffled circular piston of radius
``a``; its wave at distance ``r`` and angle ``theta`` from its normal is
``D(theta) sinc(x) exp(-ik m - alpha r) / m`` with

- ``D = 2 J1(k a sin theta) / (k a sin theta)``, the far-field directivity (jinc);
- ``m = (r + sqrt(r^2 + a^2)) / 2``, the mean of the distances from the point to the
  piston's centre and to its rim as seen from its axis, and
  ``sinc(x) = sin(x) / x`` with ``x = k a^2 / (4 m) = k (sqrt(r^2 + a^2) - r) / 2``.

On the piston's axis this is its exact response
``p = rho c u (exp(-ikr) - exp(-ik sqrt(r^2 + a^2)))`` in amplitude and phase; near
the axis the error is second order in ``theta`` times ``x^2`` (tested against a
subdivided piston). The plain far-field form ``D exp(-ikr) / r`` is 0.5 % high at the
focus of the default array (``x = 0.17`` for its 12 mm elements at 150 mm).

:func:`exact_sum` evaluates the sum at points (float32, chunked, threads);
:func:`block_sum` is the blockwise separable expansion on a whole grid (batched BLAS).
"""
from __future__ import annotations

import itertools
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable, Sequence

import numpy as np

from fusplan.grid import Grid
from fusplan.progress import ProgressCallback

__all__ = ["PistonSources", "exact_sum", "block_sum", "sinc_of_square"]


@dataclass(frozen=True)
class PistonSources:
    """Pistons in metres: centres (N, 3), unit normals (N, 3), radius, complex weights."""

    centres_m: np.ndarray
    normals: np.ndarray
    piston_radius_m: float
    weights: np.ndarray  # Pa * m per sqrt(W): field = sum w D F exp(-(ik + alpha) r) / r


# ----------------------------------------------------------------------------- threads


def _single_threaded_blas() -> None:
    """Make BLAS single-threaded in the calling thread (thread pool initializer).

    Our matrix products are many small ones; OpenBLAS threads on them spin more than
    they compute. Uses numpy's bundled OpenBLAS ``openblas_set_num_threads_local``
    when present (OpenBLAS >= 0.3.27); otherwise does nothing.
    """
    global _BLAS_LOCAL
    if _BLAS_LOCAL is None:
        _BLAS_LOCAL = False
        import ctypes
        import glob

        folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
        for path in glob.glob(os.path.join(folder, "*openblas*")):
            try:
                function = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
            _BLAS_LOCAL = function
            break
    if _BLAS_LOCAL:
        _BLAS_LOCAL(1)


_BLAS_LOCAL = None


def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, initializer=_single_threaded_blas)


#: Most progress reports one sum makes (chunks are grouped to stay under it).
_MAX_REPORTS = 100


def _run_chunks(run: Callable[[int], None], starts: Sequence[int], threads: int | None,
                progress: ProgressCallback | None, message: str) -> None:
    """``run(start)`` for every start, on a pool of ``threads`` threads, reporting between chunks.

    ``threads=None`` runs the chunks in the calling thread (small sums, no pool).
    ``progress(fraction, message)`` is called from the calling thread as chunks finish
    (at most :data:`_MAX_REPORTS` times). At most ``2 threads`` chunks are queued at a
    time, so an exception raised by ``progress`` stops the sum after the chunks already
    queued (none are started after it).
    """
    starts = list(starts)
    every = max(1, math.ceil(len(starts) / _MAX_REPORTS))

    def report(done: int) -> None:
        if progress is not None and (done % every == 0 or done == len(starts)):
            progress(done / len(starts), message)

    if threads is None:
        for done, start in enumerate(starts, 1):
            run(start)
            report(done)
        return
    queued: deque = deque()
    upcoming = iter(starts)
    with _pool(threads) as pool:  # numpy releases the GIL in ufuncs and matmul
        try:
            for start in itertools.islice(upcoming, 2 * threads):
                queued.append(pool.submit(run, start))
            for done in range(1, len(starts) + 1):
                queued.popleft().result()
                report(done)
                for start in itertools.islice(upcoming, 1):
                    queued.append(pool.submit(run, start))
        except BaseException:
            for future in queued:
                future.cancel()
            raise


# ----------------------------------------------------------------------------- exact sum

# Taylor coefficients of 2 J1(x) / x in y = x^2; 12 terms: |error| < 1e-7 for x <= 7.
_JINC = [(-1) ** m / (4**m * math.factorial(m) * math.factorial(m + 1)) for m in range(12)]


def _jinc_terms(y_max: float, tolerance: float = 1e-7) -> int:
    """Series terms needed for 2 J1(x)/x up to ``y_max``: the alternating series' first
    omitted term bounds the error. Near the focus ``y`` is small and a few terms do."""
    for n in range(1, len(_JINC)):
        if abs(_JINC[n]) * y_max**n < tolerance:
            return n
    return len(_JINC)


def _jinc_of_y(y: np.ndarray) -> np.ndarray:
    """2 J1(x)/x for y = x^2 (series up to x = 7, scipy beyond)."""
    coefficients = _JINC[: _jinc_terms(float(min(y.max(), 49.0)))]
    out = np.full_like(y, coefficients[-1])
    for coef in coefficients[-2::-1]:
        out *= y
        out += y.dtype.type(coef)
    big = y > 49.0
    if np.any(big):
        from scipy.special import j1

        x = np.sqrt(y[big].astype(np.float64))
        out[big] = 2 * j1(x) / x
    return out


def _jinc_and_derivative(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 J1(x)/x and its derivative with respect to y = x^2 (float64, series, x <= 7)."""
    y = np.minimum(y, 49.0)
    value = np.full_like(y, _JINC[-1])
    slope = np.full_like(y, (len(_JINC) - 1) * _JINC[-1])
    for m in range(len(_JINC) - 2, -1, -1):
        value = value * y + _JINC[m]
        if m > 0:
            slope = slope * y + m * _JINC[m]
    return value, slope


def _sinc_log_slope(x: np.ndarray) -> np.ndarray:
    """``d ln(sin(x)/x) / dx``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 1e-4, 1 / np.tan(x) - 1 / np.where(x > 1e-4, x, 1.0), -x / 3)


def _near_field(r: np.ndarray, inv: np.ndarray, a2: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """``sinc(x) / m`` and ``m - r`` at distances ``r`` (``inv = 1 / r``), float32.

    ``m = (r + sqrt(r^2 + a^2)) / 2`` and ``x = q / m`` (``q = k a^2 / 4``). Where every
    ``r >= 10 a`` and ``x <= 0.5`` (the array's use: its elements are >= 60 mm from the
    field) by series in ``u = 1 / r`` (relative error < 1e-5)::

        sinc(x) / m = u (1 - (a^2/4 + q^2/6) u^2 + (a^4/8 + a^2 q^2/8 + q^4/120) u^4)
        m - r = a^2 u / 4 - a^4 u^3 / 16

    otherwise exactly.
    """
    u_max = float(inv.max()) if inv.size else 0.0
    if u_max * math.sqrt(a2) <= 0.1 and u_max * q <= 0.5:
        w = inv * inv
        factor = w * np.float32(a2 * a2 / 8 + a2 * q * q / 8 + q**4 / 120)
        factor -= np.float32(a2 / 4 + q * q / 6)
        factor *= w
        factor += np.float32(1.0)
        factor *= inv
        w *= np.float32(-a2 * a2 / 16)
        w += np.float32(a2 / 4)
        w *= inv
        return factor, w
    extra = np.sqrt(r * r + np.float32(a2))
    extra -= r
    extra *= np.float32(0.5)
    inv_mean = np.reciprocal(r + extra)
    x2 = inv_mean * np.float32(q)
    np.square(x2, out=x2)
    factor = sinc_of_square(x2)
    factor *= inv_mean
    return factor, extra


def sinc_of_square(x2: np.ndarray) -> np.ndarray:
    """``sin(x) / x`` from ``x^2`` (series to ``x^8`` for ``x <= 1``: error < 3e-9)."""
    if x2.size and float(x2.max()) <= 1.0:
        out = x2 * np.float32(1 / 362880)
        for coefficient in (-1 / 5040, 1 / 120, -1 / 6):
            out += np.float32(coefficient)
            out *= x2
        out += np.float32(1.0)
        return out
    x = np.sqrt(x2)
    return np.sinc(x / np.pi).astype(x2.dtype)


def exact_sum(points_m: np.ndarray, src: PistonSources, k: float, alpha: float, origin_m, *, threads: int = 1,
              chunk: int = 64, progress: ProgressCallback | None = None) -> np.ndarray:
    """Exact piston sum at points (M, 3) metres; float32 arithmetic, complex64 result.

    Coordinates are taken relative to ``origin_m`` (near the points) so that float32
    keeps ~1e-8 m on distances of 0.15 m (phase error ~1e-4 rad). ``progress(fraction,
    message)`` is called between chunks; raising from it cancels the sum.
    """
    origin = np.asarray(origin_m, float)
    s = (src.centres_m - origin).astype(np.float32)
    nrm = src.normals.astype(np.float32)
    s_t = np.ascontiguousarray(-2 * s.T)
    n_t = np.ascontiguousarray(nrm.T)
    ss = (s.astype(np.float64) ** 2).sum(1).astype(np.float32)
    ns = (nrm.astype(np.float64) * s).sum(1).astype(np.float32)
    ka2 = np.float32((k * src.piston_radius_m) ** 2)
    kk = np.float32(k)
    aa = np.float32(alpha)
    a2 = src.piston_radius_m**2
    quarter_ka2 = k * a2 / 4  # x = quarter_ka2 / m
    w = src.weights.astype(np.complex64)
    w_re = np.ascontiguousarray(w.real)
    w_im = np.ascontiguousarray(w.imag)
    pts = (np.asarray(points_m, float) - origin).astype(np.float32)
    out = np.empty(len(pts), np.complex64)

    def run(start: int) -> None:
        p = pts[start:start + chunk]
        r = p @ s_t
        r += (p.astype(np.float64) ** 2).sum(1).astype(np.float32)[:, None]
        r += ss
        np.sqrt(r, out=r)
        inv = np.reciprocal(r)
        y = p @ n_t
        y -= ns
        y *= inv
        np.square(y, out=y)
        np.subtract(1, y, out=y)
        np.maximum(y, 0, out=y)
        y *= ka2
        amp = _jinc_of_y(y)
        factor, extra_path = _near_field(r, inv, a2, quarter_ka2)
        amp *= factor
        if alpha > 0:
            amp *= np.exp(-aa * r)
        r += extra_path  # the mean path m
        r *= kk
        cos = np.cos(r)
        sin = np.sin(r)
        cos *= amp
        sin *= amp
        # sum_e w_e amp (cos - i sin)
        out[start:start + chunk] = (cos @ w_re + sin @ w_im) + 1j * (cos @ w_im - sin @ w_re)

    pool_threads = threads if len(pts) > 4 * chunk and threads > 1 else None
    _run_chunks(run, range(0, len(pts), chunk), pool_threads, progress, "exact sum")
    return out


# ----------------------------------------------------------------------------- fast grid sum


def block_sum(grid: Grid, src: PistonSources, k: float, alpha: float, block: int, *, threads: int = 1,
              batch: int = 16, progress: ProgressCallback | None = None) -> np.ndarray:
    """Approximate piston sum on the whole grid, complex64 of ``grid.shape``.

    The grid is cut into cubes of ``block`` voxels a side. Around a cube centre ``c``
    each element's wave ``D exp(-(ik + alpha) r) / r`` is expanded as a product of
    three 1D factors along the grid axes: the distance to second order without the
    cross terms (``r ~ r0 + u.d + sum_j d_j^2 (1 - u_j^2) / 2 r0``) and the amplitude
    ``D / r`` to first order in log. The sum over elements is then, per cube, a
    complex matrix product. ``progress(fraction, message)`` is called between batches of
    ``batch`` cubes; raising from it cancels the sum.
    """
    h = grid.spacing_mm * 1e-3
    axes = grid.axes
    nb = [int(math.ceil(n / block)) for n in grid.shape]
    half = (block - 1) / 2
    t = (np.arange(block) - half) * h  # local offsets (m)
    t32, t32sq = t.astype(np.float32), (t**2).astype(np.float32)
    # cube centres in index space, then world metres
    idx = np.stack(
        np.meshgrid(*[np.arange(m) * block + half for m in nb], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    centres = grid.index_to_world(idx) * 1e-3
    s = src.centres_m
    nrm = src.normals
    ka2 = (k * src.piston_radius_m) ** 2
    w = src.weights.astype(np.complex64)
    out = np.empty((len(centres), block, block, block), np.complex64)

    def run(b0: int) -> None:
        c = centres[b0:b0 + batch]  # (B, 3)
        nbat = len(c)
        v = c[:, None, :] - s[None]  # (B, E, 3)
        r0 = np.linalg.norm(v, axis=-1)  # (B, E)
        u = v / r0[..., None]
        # amplitude D(y) / r with y = (k a sin(theta))^2; its log-gradient, analytically
        cos = np.einsum("bej,ej->be", u, nrm)
        y = ka2 * np.clip(1 - cos**2, 0, None)
        d, d_prime = _jinc_and_derivative(y)
        dlog_dy = d_prime / np.where(np.abs(d) > 1e-6, d, 1e-6)
        grad_cos = (nrm[None] - cos[..., None] * u) / r0[..., None]  # (B, E, 3)
        # near-field factor sin(x)/x / m, m = (r + sqrt(r^2 + a^2)) / 2, x = k a^2 / (4 m)
        rim = np.sqrt(r0**2 + src.piston_radius_m**2)
        m0 = 0.5 * (r0 + rim)
        dm_dr = 0.5 * (1 + r0 / rim)
        x = k * src.piston_radius_m**2 / (4 * m0)
        radial = (-_sinc_log_slope(x) * x - 1) * dm_dr / m0
        grad_log = (-2 * ka2 * cos * dlog_dy)[..., None] * grad_cos + radial[..., None] * u
        amp0 = d * sinc_of_square(x * x) / m0
        base = w[None] * (amp0 * np.exp(-alpha * r0 - 1j * k * m0)).astype(np.complex64)  # (B, E)
        phase_slope = (-k * dm_dr).astype(np.float32)[:, None, :]
        factors = []
        half_inv_r0 = (0.5 / r0).astype(np.float32)[:, None, :]
        for j in range(3):
            a = axes[:, j]
            uj = (u @ a).astype(np.float32)[:, None, :]  # (B, 1, E)
            dr = uj * t32[:, None] + (1 - uj * uj) * half_inv_r0 * t32sq[:, None]  # (B, b, E)
            la = (grad_log @ a).astype(np.float32)[:, None, :] * t32[:, None]
            la -= np.float32(alpha) * dr
            np.clip(la, -30, 3, out=la)
            dr *= phase_slope
            fac = np.empty(dr.shape, np.complex64)
            fac.real = np.cos(dr)
            fac.imag = np.sin(dr)
            fac *= np.exp(la)
            factors.append(fac)
        factors[0] *= base[:, None, :]
        kr = factors[0][:, :, None, :] * factors[1][:, None, :, :]  # Khatri-Rao (B, b, b, E)
        out[b0:b0 + batch] = np.matmul(
            kr.reshape(nbat, block * block, len(s)), np.ascontiguousarray(factors[2].transpose(0, 2, 1))
        ).reshape(nbat, block, block, block)

    _run_chunks(run, range(0, len(centres), batch), threads, progress, "blockwise sum")
    full = out.reshape(*nb, block, block, block).transpose(0, 3, 1, 4, 2, 5)
    full = full.reshape(nb[0] * block, nb[1] * block, nb[2] * block)
    return np.ascontiguousarray(full[: grid.shape[0], : grid.shape[1], : grid.shape[2]])

