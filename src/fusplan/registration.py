"""Registration of an atlas template to a subject head scan (dipy).

Pipeline (:func:`register`):

1. **Affine stage**, on 2 mm data. The subject is smoothed and resampled onto a
   2 mm grid aligned with the world axes whose voxel centres lie on a fixed 2 mm
   world lattice, so a scan stored RAS, LAS, LPS or with permuted axes gives the
   optimiser exactly the same numbers. dipy's Mattes mutual information (dense
   sampling: deterministic) with the template brain mask restricting the metric,
   initialised by the centres of mass, then translation -> rigid -> affine, each
   multi-resolution (4, 2, 1 x the 2 mm grid).
2. **Contrast guard**. The template's tissue classes (CSF, GM, WM from a 3-means
   split of the template intensities inside the brain) are carried to the subject
   by the affine. In a T1 scan WM > GM > CSF. Otherwise (T2-like and other
   contrasts) the subject is remapped to a T1-like image by a piecewise-linear map
   learnt from the affinely aligned joint histogram (median template intensity per
   subject-intensity bin), so the cross-correlation metric of the next stage sees
   comparable images.
3. **Nonlinear stage**: dipy symmetric normalisation (SyN, cross-correlation
   metric) at 1 mm on a cube (default 96 mm) around the template's thalami, both
   images multiplied by the smoothed template brain mask (so skull-stripped and
   with-skull scans are treated alike).

The result, :class:`Registration`, maps points both ways and is a plain picklable
dataclass of arrays that can be saved to and reloaded from ``.npz``. Every
coordinate it takes or returns is world RAS mm.

Conventions: ``affine_mm`` maps template world mm to subject world mm. The two
displacement fields live on the cube grid (template world mm):
``template_to_subject(t) = affine_mm @ (t + forward(t))`` and
``subject_to_template(u) = m + backward(m)`` with ``m = inv(affine_mm) @ u``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

from .atlas import Atlas, load_atlas
from .errors import FusplanInputError
from .io import Scan, atomic_output, corners_world_mm, resample, voxel_sizes_mm, voxel_to_world, world_to_voxel
from .registration_file import read_registration_file, write_registration_file

#: Progress callback: ``progress(fraction, message)``; raising inside it cancels.
ProgressCallback = Callable[[float, str], None]

#: Plausible range of the affine's scale factors (template -> subject).
SCALE_RANGE = (0.7, 1.4)
#: Minimum brain-masked correlation between template and affinely aligned subject.
MIN_AFFINE_SIMILARITY = 0.5
#: Minimum brain-masked correlation after the nonlinear stage.
MIN_SIMILARITY = 0.6

#: Grid spacing of the contrast check and the affine similarity.
CHECK_SPACING_MM = 2.0


@dataclass(frozen=True)
class RegistrationSettings:
    """Knobs of :func:`register` (see :data:`SETTINGS` for the presets).

    Attributes
    ----------
    affine_levels : tuple of (spacing_mm, stages, iterations)
        Pyramid of the affine stage, coarse to fine: grid spacing, the transforms
        optimised in turn at that spacing, and the maximum number of function
        evaluations of each.
    syn_spacing_mm, syn_extent_mm : float
        Voxel size and side of the cube of the nonlinear stage.
    syn_level_iters : tuple of int
        SyN iterations per level (coarse to fine); empty tuple: affine only.
    cc_radius : int
        Half-width (voxels) of the cross-correlation window.
    """

    affine_levels: tuple = ((8.0, ("translation", "rigid", "affine"), 100), (4.0, ("affine",), 60))
    syn_spacing_mm: float = 1.0
    syn_extent_mm: float = 80.0
    syn_level_iters: tuple[int, ...] = (60, 30, 6)
    cc_radius: int = 4


#: Presets: ``standard`` (planning), ``fast`` (tests, previews; ~4x faster, less
#: accurate), ``affine`` (no nonlinear stage).
SETTINGS = {
    "standard": RegistrationSettings(),
    "fast": RegistrationSettings(affine_levels=((8.0, ("translation", "rigid", "affine"), 100), (4.0, ("affine",), 50)),
                                 syn_spacing_mm=2.0, syn_level_iters=(30, 15)),
    "affine": RegistrationSettings(syn_level_iters=()),
}


@dataclass(frozen=True, eq=False)
class Registration:
    """A template -> subject registration (affine + diffeomorphic displacement).

    Attributes
    ----------
    atlas : str
        Atlas whose template was registered.
    affine_mm : (4, 4) ndarray
        Template world mm -> subject world mm.
    field_shape : tuple of int
        Shape of the displacement grid (the cube).
    field_affine : (4, 4) ndarray
        Cube voxel -> template world mm.
    forward_mm, backward_mm : ndarray, shape field_shape + (3,), float32
        Displacements in mm (see module docstring). Zero-size when the
        registration is affine only.
    method : str
        Human-readable description of the method.
    time_s : float
        Wall time of the registration.
    similarity : float
        Pearson correlation of template and registered subject inside the
        template brain (1 = identical up to a linear intensity map).
    affine_similarity : float
        The same after the affine stage.
    contrast : str
        ``"T1"`` or ``"non-T1"`` (the contrast guard's decision).
    scan_fingerprint : str
        Hash of the scan's data and affine (see :func:`scan_fingerprint`).
    """

    atlas: str
    affine_mm: np.ndarray
    field_shape: tuple[int, int, int]
    field_affine: np.ndarray
    forward_mm: np.ndarray
    backward_mm: np.ndarray
    method: str
    time_s: float
    similarity: float
    affine_similarity: float
    contrast: str
    scan_fingerprint: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def has_warp(self) -> bool:
        """True when there is a nonlinear stage."""
        return self.forward_mm.size > 0

    @property
    def scale_factors(self) -> np.ndarray:
        """Singular values of the affine's linear part (template -> subject scaling)."""
        return np.linalg.svd(self.affine_mm[:3, :3], compute_uv=False)

    def _displacement(self, field_mm: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
        if not self.has_warp:
            return np.zeros_like(points_mm)
        index = world_to_voxel(self.field_affine, points_mm)
        flat = index.reshape(-1, 3).T
        out = np.stack(
            [ndimage.map_coordinates(field_mm[..., k], flat, order=1, mode="nearest") for k in range(3)], axis=-1
        )
        return out.reshape(points_mm.shape)

    def template_to_subject(self, points_mm) -> np.ndarray:
        """Map template world mm ``(..., 3)`` to subject world mm."""
        points = np.asarray(points_mm, dtype=float)
        return voxel_to_world(self.affine_mm, points + self._displacement(self.forward_mm, points))

    def subject_to_template(self, points_mm) -> np.ndarray:
        """Map subject world mm ``(..., 3)`` to template world mm."""
        moved = world_to_voxel(self.affine_mm, points_mm)
        return moved + self._displacement(self.backward_mm, moved)

    def jacobian_determinant(self, points_mm) -> np.ndarray:
        """Local volume ratio (subject / template) of the mapping at template points ``(..., 3)``."""
        points = np.asarray(points_mm, dtype=float)
        det_affine = abs(np.linalg.det(self.affine_mm[:3, :3]))
        if not self.has_warp:
            return np.full(points.shape[:-1], det_affine)
        index = world_to_voxel(self.field_affine, points).reshape(-1, 3)
        # only the block of the field around the points is differentiated
        start = np.clip(np.floor(index.min(axis=0)).astype(int) - 2, 0, self.field_shape)
        stop = np.clip(np.ceil(index.max(axis=0)).astype(int) + 3, 0, self.field_shape)
        if np.any(stop - start < 3):
            return np.full(points.shape[:-1], det_affine)
        block = self.forward_mm[tuple(slice(a, b) for a, b in zip(start, stop))]
        spacing = voxel_sizes_mm(self.field_affine)
        axes = self.field_affine[:3, :3] / spacing
        # J = I + G @ axes.T, with G[..., i, j] = d f_i / d (grid axis j) in mm
        grads = np.stack([np.stack(np.gradient(block[..., i], *spacing), axis=-1) for i in range(3)], axis=-2)
        j = np.eye(3) + grads @ axes.T
        det = (j[..., 0, 0] * (j[..., 1, 1] * j[..., 2, 2] - j[..., 1, 2] * j[..., 2, 1])
               - j[..., 0, 1] * (j[..., 1, 0] * j[..., 2, 2] - j[..., 1, 2] * j[..., 2, 0])
               + j[..., 0, 2] * (j[..., 1, 0] * j[..., 2, 1] - j[..., 1, 1] * j[..., 2, 0]))
        values = ndimage.map_coordinates(det.astype(np.float32), (index - start).T, order=1, mode="nearest")
        return det_affine * values.reshape(points.shape[:-1])

    def matches(self, scan: Scan) -> bool:
        """True if this registration was computed for ``scan`` (same data and affine)."""
        return self.scan_fingerprint == scan_fingerprint(scan)

    def facts(self) -> dict:
        """JSON-ready summary: method, time, similarity, contrast, scale factors."""
        return {
            "method": self.method,
            "time_s": round(float(self.time_s), 2),
            "similarity": round(float(self.similarity), 4),
            "affine_similarity": round(float(self.affine_similarity), 4),
            "contrast": self.contrast,
            "scale_factors": [round(float(s), 4) for s in self.scale_factors],
            "atlas": self.atlas,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write to a compressed ``.npz`` file atomically, with a format version and a
        SHA-256 checksum (see :mod:`fusplan.registration_file`); reload with
        :func:`load_registration`."""
        path = Path(path)
        meta = {
            "atlas": self.atlas,
            "field_shape": [int(n) for n in self.field_shape],
            "method": self.method,
            "time_s": float(self.time_s),
            "similarity": float(self.similarity),
            "affine_similarity": float(self.affine_similarity),
            "contrast": self.contrast,
            "scan_fingerprint": self.scan_fingerprint,
            "settings": self.settings,
        }
        arrays = {"affine_mm": self.affine_mm, "field_affine": self.field_affine,
                  "forward_mm": self.forward_mm, "backward_mm": self.backward_mm}
        with atomic_output(path) as tmp:
            write_registration_file(tmp, arrays, meta)
        return path


def load_registration(path: str | os.PathLike, scan: Scan | None = None) -> Registration:
    """Read and validate a registration written by :meth:`Registration.save`.

    Parameters
    ----------
    path : str or path-like
    scan : Scan, optional
        When given, the registration must have been computed for this scan.

    Raises
    ------
    FusplanInputError
        One line naming the registration file: missing, not a registration archive,
        damaged (checksum), an older or newer format, wrong shapes, NaN/Inf, a singular
        affine, or computed for another scan.
    """
    expected = None if scan is None else scan_fingerprint(scan)
    arrays, meta = read_registration_file(path, expected_fingerprint=expected)
    return Registration(
        atlas=meta["atlas"],
        field_shape=meta["field_shape"],
        method=meta["method"],
        time_s=float(meta["time_s"]),
        similarity=float(meta["similarity"]),
        affine_similarity=float(meta["affine_similarity"]),
        contrast=meta["contrast"],
        scan_fingerprint=meta["scan_fingerprint"],
        settings=meta["settings"],
        **arrays,
    )


def scan_fingerprint(scan: Scan) -> str:
    """SHA-1 of a scan's data and affine (identifies the scan a registration belongs to)."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(scan.data, dtype=np.float32).tobytes())
    digest.update(np.round(np.asarray(scan.affine, dtype=float), 6).tobytes())
    digest.update(str(scan.data.shape).encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- template side
@dataclass(frozen=True)
class _Template:
    image: np.ndarray  # float32, normalised to [0, 1]
    affine: np.ndarray
    brain: np.ndarray  # bool, on the template grid
    classes: np.ndarray  # int8: 0 outside, 1 CSF (deep), 2 GM, 3 WM
    

def _normalise(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
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


def _derived_brain_mask(atlas: Atlas, template: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Brain mask of a template without one: grey + white matter maps beside it, filled."""
    folder = atlas.template_path.parent
    gm = sorted(folder.glob("*_gm_*.nii*"))
    wm = sorted(folder.glob("*_wm_*.nii*"))
    if gm and wm:
        import nibabel as nib

        tissue = sum(np.asarray(nib.load(path[0]).dataobj, dtype=np.float32) for path in (gm, wm))
        brain = tissue > 0.5 * float(np.percentile(tissue[tissue > 0], 50))
    else:
        brain = template > np.percentile(template[template > 0], 40)
    brain = ndimage.binary_closing(brain, iterations=3)
    brain = ndimage.binary_fill_holes(brain)
    labels, n = ndimage.label(brain)
    if n > 1:
        sizes = ndimage.sum(brain, labels, range(1, n + 1))
        brain = labels == (1 + int(np.argmax(sizes)))
    return brain


_TEMPLATE_CACHE: dict = {}


def _load_template(atlas: Atlas, spacing_mm: float | None) -> _Template:
    """The atlas template, normalised, with brain mask and tissue classes.

    ``spacing_mm`` None keeps the template's own grid; otherwise it is smoothed
    and resampled onto the world lattice of that spacing.
    """
    key = (atlas.name, spacing_mm)
    if key in _TEMPLATE_CACHE:
        return _TEMPLATE_CACHE[key]
    image, affine = atlas.load_template()
    loaded = atlas.load_template_mask()
    if loaded is None:
        brain = _derived_brain_mask(atlas, image, affine)
    else:
        brain, mask_affine = loaded
        if brain.shape != image.shape or not np.allclose(mask_affine, affine):
            brain = resample(brain.astype(np.float32), mask_affine, image.shape, affine, order=1) > 0.5
    if spacing_mm is not None:
        image, new_affine = _to_lattice(image, affine, spacing_mm)
        brain = resample(brain.astype(np.float32), affine, image.shape, new_affine, order=1) > 0.5
        affine = new_affine
    spacing_mm = float(voxel_sizes_mm(affine).min())
    image = _normalise(image, brain)
    inner = ndimage.binary_erosion(brain, iterations=max(1, int(round(4 / spacing_mm))))
    edges = _three_means(image[brain])
    classes = np.zeros(image.shape, np.int8)
    classes[brain] = 2
    classes[brain & (image > edges[1])] = 3
    classes[inner & (image < edges[0])] = 1  # deep CSF: ventricles
    template = _Template(image, affine, brain, classes)
    _TEMPLATE_CACHE[key] = template
    return template


def _to_lattice(data: np.ndarray, affine: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth and resample onto a world-axis-aligned grid on the ``spacing_mm`` world lattice.

    The grid's voxel centres are multiples of ``spacing_mm`` in world coordinates,
    so every storage order of the same data gives the same output array.
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
    return resample(smoothed, affine, new_shape, new_affine, order=1), new_affine


# --------------------------------------------------------------------------- affine stage
@contextlib.contextmanager
def _quiet_dipy():
    """Silence dipy's INFO logging and warnings while it runs (restored afterwards)."""
    logger = logging.getLogger("dipy")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def _affine_stage(atlas: Atlas, subject: np.ndarray, subject_affine: np.ndarray,
                  settings: RegistrationSettings, progress: ProgressCallback | None, name_of_scan: str) -> np.ndarray:
    """Template -> subject world affine: centres of mass, then a coarse-to-fine pyramid.

    dipy's own pyramid smooths but keeps the full grid at every level, so each
    level here is a separate single-level dipy optimisation on images resampled to
    that level's lattice (much cheaper at the coarse levels).
    """
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric, transform_centers_of_mass
    from dipy.align.transforms import AffineTransform3D, RigidTransform3D, TranslationTransform3D

    transforms = {"translation": TranslationTransform3D, "rigid": RigidTransform3D, "affine": AffineTransform3D}
    current = None
    n_steps = sum(len(stages) for _, stages, _ in settings.affine_levels)
    step = 0
    for spacing_mm, stages, iterations in settings.affine_levels:
        template = _load_template(atlas, spacing_mm)
        moving, moving_affine = _to_lattice(subject, subject_affine, spacing_mm)
        static_mask = ndimage.binary_dilation(template.brain, iterations=1).astype(np.int32)
        if current is None:
            current = transform_centers_of_mass(template.image, template.affine,
                                                moving, moving_affine).affine
        for name in stages:
            _report(progress, 0.02 + 0.28 * step / n_steps, f"affine registration: {name}, {spacing_mm:g} mm")
            step += 1
            registration = AffineRegistration(
                metric=MutualInformationMetric(nbins=32, sampling_proportion=None),
                level_iters=[int(iterations)], sigmas=[0.0], factors=[1], verbosity=0,
            )
            with _quiet_dipy():
                current = registration.optimize(
                    template.image, moving, transforms[name](), None,
                    static_grid2world=template.affine, moving_grid2world=moving_affine,
                    starting_affine=current, static_mask=static_mask,
                ).affine
        _check_scale(current, name_of_scan, atlas)
    return np.asarray(current, dtype=float)


def _check_scale(affine_mm: np.ndarray, name: str, atlas: Atlas) -> None:
    scales = np.linalg.svd(np.asarray(affine_mm)[:3, :3], compute_uv=False)
    if scales.min() < SCALE_RANGE[0] or scales.max() > SCALE_RANGE[1]:
        raise FusplanInputError(
            f"{name}: registration to the {atlas.space} template failed (scale factors "
            f"{', '.join(f'{s:.2f}' for s in scales)} outside {SCALE_RANGE[0]}-{SCALE_RANGE[1]}): is this a head scan?"
        )


def _pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x = a[mask].astype(float)
    y = b[mask].astype(float)
    if x.size < 10 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _contrast_map(template: _Template, subject_on_template: np.ndarray, n_bins: int = 48):
    """Decide T1 vs other and give a piecewise-linear map of subject intensities to T1-like ones.

    T1 when the subject's median intensities in the template's (affinely mapped)
    WM, GM and deep CSF are ordered WM > GM > CSF: identity map. Otherwise the map
    is the median template intensity of the brain voxels in each of ``n_bins``
    subject-intensity bins (a lookup table learnt from the affinely aligned joint
    histogram, lightly smoothed), with 0 kept at 0.

    Returns
    -------
    contrast : {"T1", "non-T1"}
    xp, fp : ndarray
        ``np.interp(subject, xp, fp)`` is the T1-like subject.
    """
    core = {k: ndimage.binary_erosion(template.classes == k) for k in (1, 2, 3)}
    masks = [core[k] if core[k].sum() > 20 else template.classes == k for k in (1, 2, 3)]
    subject_values = np.array([float(np.median(subject_on_template[mask])) for mask in masks])
    csf, gm, wm = subject_values
    spread = max(abs(wm - csf), 1e-6)
    if wm > gm + 0.05 * spread and gm > csf + 0.05 * spread:
        return "T1", np.array([0.0, 1.0]), np.array([0.0, 1.0])
    inner = ndimage.binary_erosion(template.brain)
    values = subject_on_template[inner]
    targets = template.image[inner]
    low, high = np.percentile(values, [0.5, 99.5])
    edges = np.linspace(low, high, n_bins + 1)
    bins = np.clip(np.digitize(values, edges) - 1, 0, n_bins - 1)
    centres, medians = [], []
    for k in range(n_bins):
        selected = bins == k
        if selected.sum() >= 30:
            centres.append((edges[k] + edges[k + 1]) / 2)
            medians.append(float(np.median(targets[selected])))
    if len(centres) < 3:
        return "non-T1", np.array([0.0, 1.0]), np.array([0.0, 1.0])
    medians = ndimage.uniform_filter1d(np.asarray(medians), 3, mode="nearest")
    xp = np.concatenate([[0.0], centres]) if centres[0] > 0 else np.asarray(centres)
    fp = np.concatenate([[0.0], medians]) if centres[0] > 0 else medians
    return "non-T1", xp, fp


# --------------------------------------------------------------------------- nonlinear stage
def _cube_grid(atlas: Atlas, settings: RegistrationSettings) -> tuple[tuple[int, int, int], np.ndarray]:
    """Cube around the atlas's thalamic labels, on the atlas grid's axes and lattice."""
    index = np.argwhere(atlas.labels > 0)
    centre_world = voxel_to_world(atlas.affine, (index.min(axis=0) + index.max(axis=0)) / 2)
    spacing = voxel_sizes_mm(atlas.affine)
    axes = atlas.affine[:3, :3] / spacing
    step = settings.syn_spacing_mm
    n = int(np.ceil(settings.syn_extent_mm / step))
    n += n % 2  # even count of voxels keeps the cube on the atlas lattice for 1 and 2 mm steps
    affine = np.eye(4)
    affine[:3, :3] = axes * step
    centre_index = np.round(world_to_voxel(atlas.affine, centre_world))
    origin = voxel_to_world(atlas.affine, centre_index) - axes @ np.full(3, step * n / 2)
    affine[:3, 3] = origin
    return (n, n, n), affine


def _syn_stage(static: np.ndarray, moving: np.ndarray, grid_affine: np.ndarray, settings: RegistrationSettings,
               progress: ProgressCallback | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from dipy.align.imwarp import RegistrationStages, SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric

    total = max(1, sum(settings.syn_level_iters))
    done = [0]

    def callback(sdr, stage):
        if stage == RegistrationStages.ITER_END:
            done[0] += 1
            _report(progress, 0.35 + 0.55 * min(done[0] / total, 1.0), "nonlinear registration (SyN)")

    sdr = SymmetricDiffeomorphicRegistration(
        CCMetric(3, sigma_diff=2.0, radius=settings.cc_radius),
        level_iters=list(settings.syn_level_iters), callback=callback,
    )
    with _quiet_dipy():
        mapping = sdr.optimize(static, moving, static_grid2world=grid_affine, moving_grid2world=grid_affine)
    warped = mapping.transform(moving).astype(np.float32)
    return (np.asarray(mapping.get_forward_field(), dtype=np.float32),
            np.asarray(mapping.get_backward_field(), dtype=np.float32), warped)


# --------------------------------------------------------------------------- entry point
def register(
    scan: Scan,
    atlas: str | Atlas = "morel",
    *,
    settings: RegistrationSettings | str = "standard",
    progress: ProgressCallback | None = None,
) -> Registration:
    """Register an atlas template to a subject head scan.

    Parameters
    ----------
    scan : Scan
        Subject head (T1 preferred, T2-like handled by the contrast guard), with
        or without skull, any orientation, anisotropic voxels allowed.
    atlas : str or Atlas
        Atlas whose template is registered (``"morel"`` or ``"najdenovska"``).
    settings : RegistrationSettings or {"standard", "fast", "affine"}
        Stage parameters.
    progress : callable(fraction, message), optional
        Called as the registration advances; an exception raised inside it
        aborts the registration (cancellation) and propagates.

    Returns
    -------
    Registration

    Raises
    ------
    FusplanInputError
        When the registration fails its plausibility checks (similarity too
        low, implausible scaling): the scan is probably not a head.
    """
    start = time.perf_counter()
    atlas = load_atlas(atlas) if isinstance(atlas, str) else atlas
    if isinstance(settings, str):
        if settings not in SETTINGS:
            raise FusplanInputError(f"unknown registration settings {settings!r}; choose one of {', '.join(SETTINGS)}")
        settings = SETTINGS[settings]
    name = scan.path.name if scan.path is not None else "scan"
    _report(progress, 0.0, "preparing images")
    subject = _normalise(scan.data)
    if float(subject.max()) <= 0:
        raise FusplanInputError(f"{name}: image has no positive intensities: registration impossible")
    affine_mm = _affine_stage(atlas, subject, scan.affine, settings, progress, name)
    spacing_mm = CHECK_SPACING_MM
    template = _load_template(atlas, spacing_mm)
    moving, moving_affine = _to_lattice(subject, scan.affine, spacing_mm)
    _report(progress, 0.3, "contrast check")
    on_template = resample(moving, moving_affine, template.image.shape, affine_mm @ template.affine, order=1)
    contrast, xp, fp = _contrast_map(template, on_template)
    remapped = np.interp(on_template, xp, fp).astype(np.float32)
    inner = ndimage.binary_erosion(template.brain, iterations=2)
    affine_similarity = _pearson(template.image, remapped, inner)
    if affine_similarity < MIN_AFFINE_SIMILARITY:
        raise FusplanInputError(
            f"{name}: registration to the {atlas.space} template failed (brain similarity "
            f"{affine_similarity:.2f} < {MIN_AFFINE_SIMILARITY}): is this a head scan?"
        )

    method = ("dipy affine (mutual information, centre of mass -> translation -> rigid -> affine, "
              + " -> ".join(f"{level[0]:g}" for level in settings.affine_levels) + " mm)")
    empty = np.zeros((0, 0, 0, 3), np.float32)
    if not settings.syn_level_iters:
        shape, grid_affine = _cube_grid(atlas, settings)
        forward = backward = empty
        similarity = affine_similarity
    else:
        _report(progress, 0.33, "preparing nonlinear stage")
        shape, grid_affine = _cube_grid(atlas, settings)
        native = _load_template(atlas, None)
        static = resample(native.image, native.affine, shape, grid_affine, order=1)
        weight = resample(native.brain.astype(np.float32), native.affine, shape, grid_affine, order=1)
        weight = ndimage.gaussian_filter(weight, 2.0 / settings.syn_spacing_mm)
        if settings.syn_spacing_mm >= spacing_mm:
            source, source_affine = moving, moving_affine  # already smoothed to this resolution
        else:
            source, source_affine = subject, scan.affine
        moving_cube = resample(source, source_affine, shape, affine_mm @ grid_affine, order=1)
        moving_cube = np.interp(moving_cube, xp, fp).astype(np.float32)
        forward, backward, warped = _syn_stage(static * weight, moving_cube * weight, grid_affine, settings, progress)
        similarity = _pearson(static, warped / np.maximum(weight, 1e-3), weight > 0.9)
        method += f" + dipy SyN (cross-correlation, {settings.syn_spacing_mm:g} mm, {settings.syn_extent_mm:g} mm cube)"
        if similarity < MIN_SIMILARITY:
            raise FusplanInputError(
                f"{name}: registration to the {atlas.space} template failed (similarity {similarity:.2f} < "
                f"{MIN_SIMILARITY}): is this a head scan?"
            )
    if contrast != "T1":
        method += ", non-T1 contrast remapped to T1-like"
    _report(progress, 1.0, "registration done")
    return Registration(
        atlas=atlas.name,
        affine_mm=affine_mm,
        field_shape=tuple(int(n) for n in shape),
        field_affine=grid_affine,
        forward_mm=forward,
        backward_mm=backward,
        method=method,
        time_s=time.perf_counter() - start,
        similarity=float(similarity),
        affine_similarity=float(affine_similarity),
        contrast=contrast,
        scan_fingerprint=scan_fingerprint(scan),
        settings=json.loads(json.dumps(settings.__dict__)),
    )


# --------------------------------------------------------------------------- synthetic subjects (validation)
@dataclass(frozen=True, eq=False)
class SyntheticSubject:
    """A head made from the atlas template with a known warp (see :func:`synthetic_subject`).

    Attributes
    ----------
    scan : Scan
        The synthetic scan.
    affine_mm : (4, 4) ndarray
        Known affine part, template world -> subject world.
    field_affine : (4, 4) ndarray
        Voxel -> template world mm of the displacement grid.
    displacement_mm : ndarray, shape (..., 3)
        Known displacement ``d``: a subject point ``u`` shows the template at
        ``m + d(m)`` with ``m = inv(affine_mm) @ u``.
    """

    scan: Scan
    affine_mm: np.ndarray
    field_affine: np.ndarray
    displacement_mm: np.ndarray

    def _d(self, points: np.ndarray) -> np.ndarray:
        index = world_to_voxel(self.field_affine, points).reshape(-1, 3).T
        out = [ndimage.map_coordinates(self.displacement_mm[..., k], index, order=1, mode="nearest") for k in range(3)]
        return np.stack(out, axis=-1).reshape(points.shape)

    def template_to_subject(self, points_mm) -> np.ndarray:
        """True subject world mm of template points ``(..., 3)`` (fixed-point inversion, < 1e-4 mm)."""
        target = np.asarray(points_mm, dtype=float)
        moved = target.copy()
        for _ in range(100):
            updated = target - self._d(moved)
            if np.abs(updated - moved).max() < 1e-6:
                break
            moved = updated
        return voxel_to_world(self.affine_mm, moved)


def t2_like(template: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Remap a T1 template to a T2-like contrast (CSF bright, WM darker than GM).

    Inside the (smoothed) brain mask normalised intensities 0.15 (CSF), 0.55 (GM)
    and 0.85 (WM) go to 1.0, 0.6 and 0.35; outside, scalp and skull keep half
    their T1 intensity.
    """
    image = _normalise(template, brain)
    inside = np.interp(image, [0.0, 0.15, 0.55, 0.85, 1.0], [0.0, 1.0, 0.6, 0.35, 0.3])
    weight = ndimage.gaussian_filter(brain.astype(np.float32), 1.0)
    return (weight * inside + (1 - weight) * 0.5 * image).astype(np.float32)


def synthetic_subject(
    atlas: str | Atlas = "morel",
    seed: int = 0,
    *,
    contrast: str = "T1",
    warp_mm: float = 3.0,
    rotation_deg: float = 10.0,
    translation_mm: float = 20.0,
    scale_range: tuple[float, float] = (0.92, 1.08),
    spacing_mm=(1.0, 1.0, 1.0),
    bias: float = 0.15,
    noise: float = 0.02,
) -> SyntheticSubject:
    """A synthetic head: the atlas template under a known random affine and smooth warp.

    Parameters
    ----------
    atlas : str or Atlas
    seed : int
        Seed of every random choice.
    contrast : {"T1", "T2"}
        ``T2`` remaps the template with :func:`t2_like`.
    warp_mm : float
        Largest displacement of the smooth nonlinear warp (correlation length ~20 mm).
    rotation_deg, translation_mm : float
        Largest rotation about each axis and translation along each axis.
    scale_range : (float, float)
        Range of the per-axis scale factors.
    spacing_mm : sequence of 3 floats
        Voxel size of the synthetic scan (stored LPS).
    bias, noise : float
        Amplitude of the multiplicative bias field and Rician-like noise level
        (fraction of the 99th percentile).
    """
    from scipy.spatial.transform import Rotation

    atlas = load_atlas(atlas) if isinstance(atlas, str) else atlas
    rng = np.random.default_rng(seed)
    raw, template_affine = atlas.load_template()
    loaded = atlas.load_template_mask()
    brain = _derived_brain_mask(atlas, raw, template_affine) if loaded is None else loaded[0]
    image = _normalise(raw, brain)
    if contrast.upper() == "T2":
        image = t2_like(raw, brain)
    elif contrast.upper() != "T1":
        raise FusplanInputError(f"synthetic contrast must be 'T1' or 'T2', not {contrast!r}")

    rotation = Rotation.from_euler("xyz", rng.uniform(-rotation_deg, rotation_deg, 3), degrees=True).as_matrix()
    scales = rng.uniform(*scale_range, 3)
    shear = np.eye(3) + np.triu(rng.uniform(-0.03, 0.03, (3, 3)), 1)
    affine_mm = np.eye(4)
    affine_mm[:3, :3] = rotation @ shear @ np.diag(scales)
    affine_mm[:3, 3] = rng.uniform(-translation_mm, translation_mm, 3)

    # smooth warp on a 4 mm grid over the template
    field_step = 4.0
    world = corners_world_mm(template_affine, raw.shape)
    low, high = world.min(axis=0) - 10, world.max(axis=0) + 10
    field_shape = tuple(int(n) for n in np.ceil((high - low) / field_step) + 1)
    field_affine = np.diag([field_step] * 3 + [1.0])
    field_affine[:3, 3] = low
    noise_field = rng.normal(size=field_shape + (3,))
    smooth = np.stack([ndimage.gaussian_filter(noise_field[..., k], 20.0 / field_step / 2) for k in range(3)], axis=-1)
    displacement = (smooth * (warp_mm / np.abs(smooth).max())).astype(np.float64)

    # subject grid: LPS storage covering the moved head
    spacing = np.asarray(spacing_mm, dtype=float)
    subject_world = voxel_to_world(affine_mm, world)
    directions = np.diag([-1.0, -1.0, 1.0])
    local = subject_world @ directions
    lo, hi = local.min(axis=0) - 5, local.max(axis=0) + 5
    shape = tuple(int(n) for n in np.ceil((hi - lo) / spacing) + 1)
    scan_affine = np.eye(4)
    scan_affine[:3, :3] = directions * spacing
    scan_affine[:3, 3] = directions @ lo

    subject = SyntheticSubject(None, affine_mm, field_affine, displacement)
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), axis=-1)
    moved = voxel_to_world(np.linalg.inv(affine_mm) @ scan_affine, index)
    del index
    template_points = moved + subject._d(moved)
    del moved
    source = world_to_voxel(template_affine, template_points).reshape(-1, 3).T
    del template_points
    data = ndimage.map_coordinates(image, source, order=1, mode="constant", cval=0.0).reshape(shape)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    c = rng.uniform(-1, 1, 4)
    field_bias = np.exp(bias * (c[0] * grid[0] + c[1] * grid[1] + c[2] * grid[2] ** 2 + c[3] * grid[0] * grid[2]))
    sigma = noise * float(np.percentile(data, 99))
    real = data * field_bias + rng.normal(0.0, sigma, shape)
    noisy = np.hypot(real, rng.normal(0.0, sigma, shape)).astype(np.float32)
    scan = Scan(data=noisy, affine=scan_affine, warnings=(f"synthetic {contrast} subject, seed {seed}",))
    return replace(subject, scan=scan)
