"""Synthetic MR thermometry from a known focus: the truth that validates calibration.

:func:`synthetic_series` computes what a thermometry series would show for a focus with
known heating efficiency, spread and offset (or for any other per-watt heat source):
the exact Pennes field (Fourier propagator :meth:`fusplan.bioheat.SpectralBioheat.rise_at`,
not the response tables the calibration uses), averaged over each frame (trapezoid in
0.5 s steps) and over the thermometry voxel, sampled on a voxel grid of its own (with a
random sub-voxel phase) and given Gaussian noise. :func:`gaussian_source` makes the
anisotropic Gaussian heat source used to test calibration against a focus that is not
of the model's family.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from .bioheat import SpectralBioheat
from .focusmodel import SideModel, transform_source
from .measured import ThermometrySeries
from .thermometry import voxel_average

__all__ = ["synthetic_series", "gaussian_source", "truth_model"]


def gaussian_source(model: SideModel, fwhm_mm, *, efficiency: float = 1.0, offset_ras_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A Gaussian heat source (FWHM along the grid axes, W/m^3 per W) centred on target + offset.

    It deposits ``efficiency`` x the power per W of the model's source, all of it in the
    focus (the array's source also heats the beam path: ``efficiency`` ~0.15 gives a
    focal heating similar to the model's).
    """
    grid = model.grid
    total = model.sources[model.main_source].sum()
    sigma = np.asarray(fwhm_mm, float) / math.sqrt(8 * math.log(2))
    centre = grid.axes.T @ (model.target_ras_mm + np.asarray(offset_ras_mm, float) - grid.centre_mm)
    x, y, z = grid.local_coordinates_mm()
    g = np.exp(-0.5 * (((x - centre[0]) / sigma[0]) ** 2 + ((y - centre[1]) / sigma[1]) ** 2
                       + ((z - centre[2]) / sigma[2]) ** 2))
    return efficiency * total * g / g.sum()


def truth_model(model: SideModel, *, efficiency: float = 1.0, spread: float = 1.0, offset_ras_mm=(0.0, 0.0, 0.0),
                source: np.ndarray | None = None) -> SideModel:
    """``model`` with its heat sources replaced by the true ones (transformed, or ``source`` for every focus)."""
    sources = {key: (source if source is not None else
                     transform_source(q, model.grid, efficiency=efficiency, spread=spread, offset_ras_mm=offset_ras_mm))
               for key, q in model.sources.items()}
    return dataclasses.replace(model, sources=sources)


def synthetic_series(truth: SideModel, sonication: int, *, powers_w: dict | None = None, voxel_mm=(1.1, 1.1, 3.0),
                     frame_s: float = 3.5, frames_before: int = 2, frames_after: int = 3, fov_voxels=(15, 15, 7),
                     noise_c: float = 0.75, seed: int = 0) -> ThermometrySeries:
    """The thermometry series of 1-based ``sonication`` under ``truth`` (see :func:`truth_model`).

    ``powers_w`` maps 1-based indices to the powers given (default: ``truth.pulses``'
    powers). Frames are ``frame_s`` long, end at ``k frame_s`` from the sonication's start
    (``frames_before`` of them before it, until ``frames_after`` frames past its end); the
    voxel grid (axes = the planning grid's) is centred near the true spot.
    """
    rng = np.random.default_rng(seed)
    grid = truth.grid
    powers = dict(powers_w or {})
    pulses = [dataclasses.replace(p, power_w=powers.get(i + 1, p.power_w), peak_c=None)
              for i, p in enumerate(truth.pulses[:sonication])]
    pulse = pulses[-1]
    n_during = int(math.ceil(pulse.duration_s / frame_s))
    ends = frame_s * np.arange(1 - frames_before, n_during + frames_after + 1)
    solver = SpectralBioheat(grid.shape, grid.spacing_mm, truth.tissue, duration_s=pulse.start_s + ends[-1] + 1)
    spectra = {key: solver.spectrum(q) for key, q in truth.sources.items()}
    n_sub = int(math.ceil(frame_s / 0.5))
    weights = np.full(n_sub + 1, 1.0 / n_sub)
    weights[[0, -1]] *= 0.5
    tissue = truth.tissue
    frames = []
    for end in ends:
        times = pulse.start_s + end + np.linspace(-frame_s, 0.0, n_sub + 1)
        rise = solver.rise_at(pulses, spectra, times)
        base = tissue.blood_temperature_c + (tissue.baseline_temperature_c - tissue.blood_temperature_c) * np.exp(
            -solver.perfusion * np.clip(times, 0, None))
        frames.append(np.tensordot(weights, rise + base[:, None, None, None], axes=(0, 0)))
    averaged = voxel_average(np.stack(frames), grid.spacing_mm, voxel_mm, first_axis=1)
    # Thermometry voxel grid: axes of the planning grid, centred on the hottest point, random phase.
    hottest = np.unravel_index(np.argmax(averaged.max(0)), grid.shape)
    step = grid.axes * np.asarray(voxel_mm, float)
    fov = np.asarray(fov_voxels)
    origin = grid.index_to_world(hottest) - step @ ((fov - 1) / 2 + rng.uniform(-0.5, 0.5, 3))
    affine = np.eye(4)
    affine[:3, :3] = step
    affine[:3, 3] = origin
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in fov], indexing="ij"), -1).reshape(-1, 3)
    index = grid.world_to_index(ijk @ step.T + origin).T
    data = np.stack([ndimage.map_coordinates(f, index, order=1, mode="nearest").reshape(tuple(fov))
                     for f in averaged], axis=-1)
    data += rng.normal(0.0, noise_c, data.shape)
    return ThermometrySeries(data, affine, ends, float(frame_s), "synthetic")
