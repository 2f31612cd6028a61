"""An atlas template prepared for registration, and the lattice both images share.

:func:`prepared_template` gives the template's intensities normalised to [0, 1],
its brain mask and its tissue classes (a 3-means split of the intensities in the
brain: CSF, grey, white matter), on its own grid or on a world-axis lattice
(:func:`to_lattice`), on which any storage order of a scan gives the same array.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .atlas import Atlas
from .spatial import corners_world_mm, resample, voxel_sizes_mm


@dataclass(frozen=True)
class PreparedTemplate:
    """An atlas template ready for registration (see :func:`prepared_template`).

    Attributes
    ----------
    image : ndarray, float32
        Intensities normalised to [0, 1] (:func:`normalise_intensity` in the brain).
    affine : (4, 4) ndarray
        Voxel -> template world mm.
    brain : ndarray of bool
        Brain mask on the same grid.
    classes : ndarray of int8
        0 outside the brain, 1 deep CSF (ventricles), 2 grey matter, 3 white matter.
    """

    image: np.ndarray
    affine: np.ndarray
    brain: np.ndarray
    classes: np.ndarray


def normalise_intensity(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Intensities divided by their 99.5th percentile (inside ``mask``, else above 0), clipped to [0, 1]."""
    values = image[mask] if mask is not None and mask.any() else image[image > 0]
    if values.size == 0:
        values = image.ravel()
    high = float(np.percentile(values, 99.5))
    if high <= 0:
        high = float(image.max()) or 1.0
    return np.clip(image / high, 0.0, 1.0).astype(np.float32)


def _three_means(values: np.ndarray) -> np.ndarray:
    """Thresholds of a 1D 3-means clustering (deterministic initialisation)."""
    centres = np.percentile(values, [10, 50, 90]).astype(float)
    for _ in range(50):
        edges = (centres[:-1] + centres[1:]) / 2
        cls = np.digitize(values, edges)
        new = np.array([values[cls == k].mean() if np.any(cls == k) else centres[k] for k in range(3)])
        if np.allclose(new, centres):
            break
        centres = new
    return (centres[:-1] + centres[1:]) / 2


_TEMPLATE_CACHE: dict = {}


def prepared_template(atlas: Atlas, spacing_mm: float | None) -> PreparedTemplate:
    """The atlas template, normalised, with brain mask and tissue classes (cached).

    ``spacing_mm`` None keeps the template's own grid; otherwise it is smoothed
    and resampled onto the world lattice of that spacing (:func:`to_lattice`).
    """
    key = (atlas.name, spacing_mm)
    if key in _TEMPLATE_CACHE:
        return _TEMPLATE_CACHE[key]
    image, affine = atlas.load_template()
    brain = atlas.template_brain_mask()
    if spacing_mm is not None:
        image, new_affine = to_lattice(image, affine, spacing_mm)
        brain = resample(brain.astype(np.float32), affine, image.shape, new_affine, order=1) > 0.5
        affine = new_affine
    spacing_mm = float(voxel_sizes_mm(affine).min())
    image = normalise_intensity(image, brain)
    inner = ndimage.binary_erosion(brain, iterations=max(1, int(round(4 / spacing_mm))))
    edges = _three_means(image[brain])
    classes = np.zeros(image.shape, np.int8)
    classes[brain] = 2
    classes[brain & (image > edges[1])] = 3
    classes[inner & (image < edges[0])] = 1  # deep CSF: ventricles
    template = PreparedTemplate(image, affine, brain, classes)
    _TEMPLATE_CACHE[key] = template
    return template


def to_lattice(data: np.ndarray, affine: np.ndarray, spacing_mm: float,
               cval: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth and resample onto a world-axis-aligned grid on the ``spacing_mm`` world lattice.

    The grid's voxel centres are multiples of ``spacing_mm`` in world coordinates,
    so every storage order of the same data gives the same output array. ``cval``
    fills the grid outside the data (e.g. -1000 HU, air, for a CT).
    """
    affine = np.asarray(affine, dtype=float)
    world = corners_world_mm(affine, data.shape)
    low = np.floor(world.min(axis=0) / spacing_mm) * spacing_mm
    high = np.ceil(world.max(axis=0) / spacing_mm) * spacing_mm
    new_shape = tuple(int(n) for n in np.round((high - low) / spacing_mm) + 1)
    new_affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    new_affine[:3, 3] = low
    sizes = voxel_sizes_mm(affine)
    sigma_mm = np.sqrt(np.clip(spacing_mm**2 - sizes**2, 0, None)) / 2.355
    smoothed = ndimage.gaussian_filter(data.astype(np.float32), sigma_mm / sizes) if np.any(sigma_mm > 0) else data
    return resample(smoothed, affine, new_shape, new_affine, order=1, cval=cval), new_affine
