"""Pressure field, intensity and heat source of a transducer in homogeneous tissue.

Propagation path (kept deliberately simple): the skull is a sphere of radius
``brain_path_mm`` around the array's geometric focus, concentric with the array.
Every ray then meets it at normal incidence and crosses the same water path, so the
water section only adds a common phase, and the field near the focus is the
homogeneous Rayleigh sum in brain (tissue sound speed and density), with amplitude
attenuation ``exp(-alpha (brain_path + r_e - R_e))`` along each ray (``R_e`` is the
element's distance to the geometric focus). The skull itself is the energy factor
``skull_transmission`` and, optionally, a random per-element phase error that
broadens the focus as skull aberration does.

Per-element drive (for a skull model): the array functions accept an
:class:`~fusplan.acoustics.ElementDrive` (``drive=``): complex per-element weights
that multiply each element's drive after focusing, and per-element source positions
and normals (refracted virtual sources) that replace the layout of
:func:`~fusplan.acoustics.element_layout`. Focusing phases are computed from the
positions actually used, so virtual sources are in phase at the focus before the
weights' phases apply. Without it the field is exactly the ideal array's.

Power: the source velocity is normalised so that the array radiates 1 W
(``P = rho c u^2 A_total / 2``, the baffled-piston radiation resistance for
``k a >> 1``), hence fields are per watt of emitted acoustic power. The heat source
is ``Q = 2 alpha I`` with ``I = |p|^2 / (2 rho c)``.
"""
from __future__ import annotations

import math
import numpy as np

from fusplan.errors import FusplanInputError
from fusplan.grid import Grid
from fusplan.progress import ProgressCallback, within

from .rayleigh import PistonSources, block_sum, exact_sum
from .drive import ElementDrive
from .transducer import Transducer, aberration_phases, bowl_patches, cap_area_mm2, element_layout

__all__ = ["pressure_at", "pressure_field", "intensity_field", "heat_source"]


def _sources(
    transducer: Transducer,
    focus_mm,
    geometric_focus_mm,
    beam_axis,
    medium,
    drive: ElementDrive | None = None,
) -> tuple[PistonSources, float, float]:
    """Piston sources with per-watt weights; returns (sources, k, alpha)."""
    rho, c, alpha = _medium(medium)
    f_hz = transducer.frequency_khz * 1e3
    k = 2 * math.pi * f_hz / c
    focus = np.asarray(focus_mm, dtype=float)
    if not transducer.kind.elements:
        geometric_focus_mm = focus  # a single bowl steers mechanically
    geo = focus if geometric_focus_mm is None else np.asarray(geometric_focus_mm, dtype=float)
    layout_mm, normals = element_layout(transducer, geo, beam_axis)
    centres_mm = layout_mm
    if drive is not None and drive.positions_mm is not None:
        centres_mm = drive.positions_mm
    if drive is not None and drive.normals is not None:
        normals = drive.normals
    n = len(centres_mm)
    if transducer.kind.elements:
        area_m2 = transducer.element_area_mm2 * 1e-6
    else:
        area_m2 = cap_area_mm2(transducer.radius_mm, bowl_patches(transducer)[1]) * 1e-6 / n
    centres_m = centres_mm * 1e-3
    velocity = math.sqrt(2.0 / (rho * c * area_m2 * n))  # m/s per sqrt(W)
    path_to_focus = np.linalg.norm(centres_m - focus * 1e-3, axis=1)
    dist_geo = np.linalg.norm(centres_m - geo * 1e-3, axis=1)
    phase = k * path_to_focus  # conjugate phases: all contributions in phase at the focus
    if transducer.kind.elements and transducer.phase_aberration_std_rad > 0:
        phase = phase + aberration_phases(transducer, layout_mm - geo)  # fixed to the array
    amplitude = (
        rho * c * k / (2 * math.pi) * velocity * area_m2
        * math.sqrt(transducer.skull_transmission)
        * np.exp(-alpha * (transducer.brain_path_mm * 1e-3 - dist_geo))
    )
    weights = 1j * amplitude * np.exp(1j * phase)
    if drive is not None and drive.weights is not None:
        weights = weights * drive.weights
    return PistonSources(centres_m, normals, math.sqrt(area_m2 / math.pi), weights), k, alpha


def _medium(medium) -> tuple[float, float, float]:
    try:
        rho = float(medium.density_kg_m3)
        c = float(medium.sound_speed_m_s)
        alpha = float(medium.attenuation_np_m)
    except AttributeError as exc:
        raise FusplanInputError(f"tissue lacks an acoustic property: {exc}") from None
    if not (rho > 0 and c > 0 and alpha >= 0):
        raise FusplanInputError("tissue density and sound speed must be > 0 and attenuation >= 0")
    return rho, c, alpha



def _check_radiates(transducer: Transducer) -> None:
    if not transducer.kind.radiates:
        raise FusplanInputError(f"transducer.model {transducer.model} is a heat source, it has no pressure field")


def _default_beam_axis(grid: Grid, beam_axis):
    return grid.axes[:, 2] if beam_axis is None else np.asarray(beam_axis, dtype=float)


_ELEMENT_DOC = """drive : ElementDrive, optional
        Per-element weights and source positions (arrays only; see
        :class:`~fusplan.acoustics.ElementDrive`); without it, the ideal array."""

_PROGRESS_DOC = """progress : callable(fraction, message), optional
        Called between chunks of the Rayleigh sums (fraction of this field done);
        an exception raised from it cancels the computation within one chunk."""


def pressure_at(
    transducer: Transducer,
    points_mm,
    focus_mm,
    medium,
    *,
    geometric_focus_mm=None,
    beam_axis=(0.0, 0.0, 1.0),
    drive: ElementDrive | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Exact complex pressure (Pa per sqrt(W) emitted) at world points ``(..., 3)`` mm.

    ``medium`` needs ``density_kg_m3``, ``sound_speed_m_s``, ``attenuation_np_m``.
    Includes ``skull_transmission`` (as sqrt, an amplitude) and brain attenuation.

    Parameters
    ----------
    {element_doc}
    threads : int
        Worker threads (resolved by the entry point: :class:`fusplan.execution.ExecutionOptions`).
    """
    _check_radiates(transducer)
    if drive is not None:
        drive.check(transducer)
    src, k, alpha = _sources(transducer, focus_mm, geometric_focus_mm, beam_axis, medium, drive)
    points = np.asarray(points_mm, dtype=float)
    flat = points.reshape(-1, 3) * 1e-3
    origin = np.asarray(focus_mm, float) * 1e-3
    return exact_sum(flat, src, k, alpha, origin, threads=threads).reshape(points.shape[:-1])


def pressure_field(
    transducer: Transducer,
    grid: Grid,
    focus_mm,
    medium,
    *,
    geometric_focus_mm=None,
    beam_axis=None,
    method: str = "fast",
    exact_above: float = 1e-3,
    error_margin: float = 1.5,
    block: int | None = None,
    drive: ElementDrive | None = None,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Complex pressure (Pa per sqrt(W) emitted) on ``grid``, complex64 of ``grid.shape``.

    Parameters
    ----------
    method : {{"fast", "exact", "expansion"}}
        ``exact``: the direct piston sum at every voxel (~20 ns per element and voxel
        per core). ``expansion``: the blockwise separable expansion only (batched BLAS;
        its error grows with the squared distance to the centre of its ~4 mm cube).
        ``fast`` (default): the expansion everywhere; then the exact sum at every cube
        corner, where the expansion's error is largest, which calibrates each cube's
        error bound ``eta = error_margin * max error at its 8 corners`` (fraction of
        the peak pressure, at least 1e-3); then the exact sum on every voxel whose
        intensity could exceed ``exact_above`` of the peak given ``eta``. The result is
        the exact Rayleigh sum wherever the intensity exceeds ``exact_above`` of the
        peak, and elsewhere within about ``2 sqrt(exact_above) eta`` of the peak
        intensity (measured: < 2e-4 of the peak on the default 81^3 grid).
    error_margin : float
        Safety factor on the calibrated error bound.
    block : int, optional
        Cube size in voxels for the expansion (default: about 4.5 mm).
    {element_doc}
    threads : int
        Worker threads (resolved by the entry point: :class:`fusplan.execution.ExecutionOptions`).
    {progress_doc}
    """
    _check_radiates(transducer)
    if method not in ("fast", "exact", "expansion"):
        raise ValueError("method must be 'fast', 'exact' or 'expansion'")
    if drive is not None:
        drive.check(transducer)
    src, k, alpha = _sources(transducer, focus_mm, geometric_focus_mm, _default_beam_axis(grid, beam_axis), medium,
                             drive)
    origin = grid.centre_mm * 1e-3
    if method == "exact":
        pts = grid.world_coordinates().reshape(-1, 3) * 1e-3
        return exact_sum(pts, src, k, alpha, origin, threads=threads, progress=progress).reshape(grid.shape)
    if block is None:
        block = max(3, 2 * int(round(4.5 / grid.spacing_mm / 2)) + 1)
    field = block_sum(grid, src, k, alpha, block, threads=threads,
                      progress=within(progress, 0.0, 0.6 if method == "fast" else 1.0))
    if method == "expansion":
        return field
    peak = float(np.abs(field).max())
    # Calibrate the expansion's error at every cube's 8 corners (its worst places: the
    # error grows with the distance to the cube centre) and bound each cube by its own.
    corner_axes = [
        np.unique(np.concatenate([np.arange(0, n, block), np.minimum(np.arange(block - 1, n + block - 1, block), n - 1)]))
        for n in grid.shape
    ]
    corners = np.zeros(grid.shape, bool)
    corners[np.ix_(*corner_axes)] = True
    corner_index = np.argwhere(corners)
    exact_corners = exact_sum(grid.index_to_world(corner_index) * 1e-3, src, k, alpha, origin, threads=threads,
                              progress=within(progress, 0.6, 0.7))
    error = np.abs(field[corners] - exact_corners) / peak
    cube = tuple((corner_index // block).T)
    n_cubes = tuple(int(math.ceil(n / block)) for n in grid.shape)
    cube_error = np.zeros(n_cubes)
    np.maximum.at(cube_error, cube, error)
    eta = np.maximum(1e-3, error_margin * cube_error)
    eta = np.repeat(np.repeat(np.repeat(eta, block, 0), block, 1), block, 2)[: grid.shape[0], : grid.shape[1], : grid.shape[2]]
    field[corners] = exact_corners
    # voxels whose exact intensity could exceed exact_above * peak (1.02: the
    # approximate peak may be ~1 % off)
    mask = (np.abs(field) + eta * peak * 1.02 >= math.sqrt(exact_above) * peak * 0.98) & ~corners
    index = np.argwhere(mask)
    if len(index):
        pts = grid.index_to_world(index) * 1e-3
        field[mask] = exact_sum(pts, src, k, alpha, origin, threads=threads, progress=within(progress, 0.7, 1.0))
    return field


def intensity_field(
    transducer: Transducer,
    grid: Grid,
    focus_mm,
    medium,
    *,
    geometric_focus_mm=None,
    beam_axis=None,
    method: str = "fast",
    drive: ElementDrive | None = None,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Intensity ``|p|^2 / (2 rho c)`` in W/m^2 per W emitted, float64 of ``grid.shape``.

    Parameters as :func:`pressure_field`.
    """
    rho, c, _ = _medium(medium)
    p = pressure_field(
        transducer, grid, focus_mm, medium, geometric_focus_mm=geometric_focus_mm, beam_axis=beam_axis, method=method,
        drive=drive, threads=threads,
        progress=progress,
    )
    return np.abs(p).astype(np.float64) ** 2 / (2 * rho * c)


def _gaussian_source(transducer: Transducer, grid: Grid, focus_mm, beam_axis) -> np.ndarray:
    fwhm = np.asarray(transducer.fwhm_mm, dtype=float) * 1e-3
    sigma = fwhm / math.sqrt(8 * math.log(2))
    w = _default_beam_axis(grid, beam_axis)
    w = w / np.linalg.norm(w)
    ax0 = grid.axes[:, 0] - (grid.axes[:, 0] @ w) * w
    if np.linalg.norm(ax0) < 0.1:
        ax0 = grid.axes[:, 1] - (grid.axes[:, 1] @ w) * w
    ax0 /= np.linalg.norm(ax0)
    frame = np.column_stack([ax0, np.cross(w, ax0), w])
    rel = (grid.world_coordinates() - np.asarray(focus_mm, float)) * 1e-3
    local = rel @ frame
    q = np.exp(-0.5 * ((local / sigma) ** 2).sum(-1))
    return q / ((2 * math.pi) ** 1.5 * sigma.prod())


def heat_source(
    transducer: Transducer,
    grid: Grid,
    focus_mm,
    tissue,
    *,
    geometric_focus_mm=None,
    beam_axis=None,
    drive: ElementDrive | None = None,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Absorbed power density on ``grid``, W/m^3 per W, float64 of ``grid.shape``.

    Per watt of emitted acoustic power for arrays and bowls (``Q = 2 alpha I``,
    including ``skull_transmission`` and attenuation along the brain path), per watt
    absorbed for ``gaussian`` (its integral is 1 W).

    Parameters
    ----------
    focus_mm : array_like (3,)
        World RAS mm of the (steered) focus.
    tissue : object
        Uses ``density_kg_m3``, ``sound_speed_m_s``, ``attenuation_np_m``.
    geometric_focus_mm : array_like (3,), optional
        Where the array's geometric centre sits (default ``focus_mm``); a different
        focus is reached by electronic steering.
    beam_axis : array_like (3,), optional
        World unit vector from the focus towards the apex (default ``grid.axes[:, 2]``).
    {element_doc}
    threads : int
        Worker threads (resolved by the entry point: :class:`fusplan.execution.ExecutionOptions`).
    {progress_doc}
    """
    if not transducer.kind.radiates:
        return _gaussian_source(transducer, grid, focus_mm, beam_axis)
    _, _, alpha = _medium(tissue)
    intensity = intensity_field(
        transducer, grid, focus_mm, tissue, geometric_focus_mm=geometric_focus_mm, beam_axis=beam_axis,
        drive=drive, threads=threads,
        progress=progress,
    )
    return 2 * alpha * intensity


for _function in (pressure_at, pressure_field, heat_source):
    _function.__doc__ = _function.__doc__.format(element_doc=_ELEMENT_DOC, progress_doc=_PROGRESS_DOC)
