"""The stages of :func:`fusplan.registration.register`: affine (dipy mutual information),
the contrast guard, and the nonlinear SyN stage on a cube around the thalami."""
from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
from scipy import ndimage

from ..atlas import Atlas
from ..errors import FusplanInputError
from ..spatial import voxel_sizes_mm, voxel_to_world, world_to_voxel
from ..progress import ProgressCallback
from ..template import PreparedTemplate, prepared_template, to_lattice
from .settings import SCALE_RANGE, RegistrationSettings


@contextlib.contextmanager
def quiet_dipy():
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


def report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """``progress(fraction, message)`` with the fraction clipped to [0, 1], if there is a callback."""
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def affine_stage(atlas: Atlas, subject: np.ndarray, subject_affine: np.ndarray,
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
            report(progress, 0.02 + 0.28 * step / n_steps, f"affine registration: {name}, {spacing_mm:g} mm")
            step += 1
            registration = AffineRegistration(
                metric=MutualInformationMetric(nbins=32, sampling_proportion=None),
                level_iters=[int(iterations)], sigmas=[0.0], factors=[1], verbosity=0,
            )
            with quiet_dipy():
                current = registration.optimize(
                    template.image, moving, transforms[name](), None,
                    static_grid2world=template.affine, moving_grid2world=moving_affine,
                    starting_affine=current, static_mask=static_mask,
                ).affine
        check_scale(current, name_of_scan, atlas)
    return np.asarray(current, dtype=float)


def check_scale(affine_mm: np.ndarray, name: str, atlas: Atlas) -> None:
    """Refuse an affine whose scale factors are outside :data:`SCALE_RANGE` (not a head)."""
    scales = np.linalg.svd(np.asarray(affine_mm)[:3, :3], compute_uv=False)
    if scales.min() < SCALE_RANGE[0] or scales.max() > SCALE_RANGE[1]:
        raise FusplanInputError(
            f"{name}: registration to the {atlas.space} template failed (scale factors "
            f"{', '.join(f'{s:.2f}' for s in scales)} outside {SCALE_RANGE[0]}-{SCALE_RANGE[1]}): is this a head scan?"
        )


def pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of ``a`` and ``b`` inside ``mask`` (0 when undefined)."""
    x = a[mask].astype(float)
    y = b[mask].astype(float)
    if x.size < 10 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def contrast_map(template: PreparedTemplate, subject_on_template: np.ndarray, n_bins: int = 48):
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
def cube_grid(atlas: Atlas, settings: RegistrationSettings) -> tuple[tuple[int, int, int], np.ndarray]:
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


def syn_stage(static: np.ndarray, moving: np.ndarray, grid_affine: np.ndarray, settings: RegistrationSettings,
               progress: ProgressCallback | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dipy SyN on the cube: forward and backward displacement fields (mm) and the warped moving image."""
    from dipy.align.imwarp import RegistrationStages, SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric

    total = max(1, sum(settings.syn_level_iters))
    done = [0]

    def callback(sdr, stage):
        if stage == RegistrationStages.ITER_END:
            done[0] += 1
            report(progress, 0.35 + 0.55 * min(done[0] / total, 1.0), "nonlinear registration (SyN)")

    sdr = SymmetricDiffeomorphicRegistration(
        CCMetric(3, sigma_diff=2.0, radius=settings.cc_radius),
        level_iters=list(settings.syn_level_iters), callback=callback,
    )
    with quiet_dipy():
        mapping = sdr.optimize(static, moving, static_grid2world=grid_affine, moving_grid2world=grid_affine)
    warped = mapping.transform(moving).astype(np.float32)
    return (np.asarray(mapping.get_forward_field(), dtype=np.float32),
            np.asarray(mapping.get_backward_field(), dtype=np.float32), warped)
