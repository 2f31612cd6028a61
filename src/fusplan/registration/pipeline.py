"""The entry point :func:`register`: the stages in order, with their plausibility checks."""
from __future__ import annotations

import json
import time

import numpy as np
from scipy import ndimage

from ..atlas import Atlas, load_atlas
from ..errors import FusplanInputError
from ..io import Scan
from ..spatial import resample
from ..progress import ProgressCallback
from ..template import normalise_intensity, prepared_template, to_lattice
from .result import Registration, scan_fingerprint
from .settings import CHECK_SPACING_MM, MIN_AFFINE_SIMILARITY, MIN_SIMILARITY, SETTINGS, RegistrationSettings
from ..vocabulary import DEFAULT_ATLAS, DEFAULT_REGISTRATION_PRESET
from .stages import affine_stage, contrast_map, cube_grid, pearson, report, syn_stage


def register(
    scan: Scan,
    atlas: str | Atlas = DEFAULT_ATLAS,
    *,
    settings: RegistrationSettings | str = DEFAULT_REGISTRATION_PRESET,
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
    report(progress, 0.0, "preparing images")
    subject = normalise_intensity(scan.data)
    if float(subject.max()) <= 0:
        raise FusplanInputError(f"{name}: image has no positive intensities: registration impossible")
    affine_mm = affine_stage(atlas, subject, scan.affine, settings, progress, name)
    spacing_mm = CHECK_SPACING_MM
    template = prepared_template(atlas, spacing_mm)
    moving, moving_affine = to_lattice(subject, scan.affine, spacing_mm)
    report(progress, 0.3, "contrast check")
    on_template = resample(moving, moving_affine, template.image.shape, affine_mm @ template.affine, order=1)
    contrast, xp, fp = contrast_map(template, on_template)
    remapped = np.interp(on_template, xp, fp).astype(np.float32)
    inner = ndimage.binary_erosion(template.brain, iterations=2)
    affine_similarity = pearson(template.image, remapped, inner)
    if affine_similarity < MIN_AFFINE_SIMILARITY:
        raise FusplanInputError(
            f"{name}: registration to the {atlas.space} template failed (brain similarity "
            f"{affine_similarity:.2f} < {MIN_AFFINE_SIMILARITY}): is this a head scan?"
        )

    method = ("dipy affine (mutual information, centre of mass -> translation -> rigid -> affine, "
              + " -> ".join(f"{level[0]:g}" for level in settings.affine_levels) + " mm)")
    empty = np.zeros((0, 0, 0, 3), np.float32)
    if not settings.syn_level_iters:
        shape, grid_affine = cube_grid(atlas, settings)
        forward = backward = empty
        similarity = affine_similarity
    else:
        report(progress, 0.33, "preparing nonlinear stage")
        shape, grid_affine = cube_grid(atlas, settings)
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
        forward, backward, warped = syn_stage(static * weight, moving_cube * weight, grid_affine, settings, progress)
        similarity = pearson(static, warped / np.maximum(weight, 1e-3), weight > 0.9)
        method += f" + dipy SyN (cross-correlation, {settings.syn_spacing_mm:g} mm, {settings.syn_extent_mm:g} mm cube)"
        if similarity < MIN_SIMILARITY:
            raise FusplanInputError(
                f"{name}: registration to the {atlas.space} template failed (similarity {similarity:.2f} < "
                f"{MIN_SIMILARITY}): is this a head scan?"
            )
    if contrast != "T1":
        method += ", non-T1 contrast remapped to T1-like"
    report(progress, 1.0, "registration done")
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
