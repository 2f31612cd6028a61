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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .atlas import Atlas, load_atlas
from .errors import FusplanInputError
from .io import Scan, atomic_output, resample, voxel_sizes_mm, voxel_to_world, world_to_voxel
from .progress import ProgressCallback
from .registration_file import read_registration_file, write_registration_file
from .template import PreparedTemplate, normalise_intensity, prepared_template, to_lattice

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
        template = prepared_template(atlas, spacing_mm)
        moving, moving_affine = to_lattice(subject, subject_affine, spacing_mm)
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


def _contrast_map(template: PreparedTemplate, subject_on_template: np.ndarray, n_bins: int = 48):
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
    subject = normalise_intensity(scan.data)
    if float(subject.max()) <= 0:
        raise FusplanInputError(f"{name}: image has no positive intensities: registration impossible")
    affine_mm = _affine_stage(atlas, subject, scan.affine, settings, progress, name)
    spacing_mm = CHECK_SPACING_MM
    template = prepared_template(atlas, spacing_mm)
    moving, moving_affine = to_lattice(subject, scan.affine, spacing_mm)
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
        native = prepared_template(atlas, None)
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
