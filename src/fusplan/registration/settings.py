"""Settings, presets and plausibility bounds of :func:`fusplan.registration.register`."""
from __future__ import annotations

from dataclasses import dataclass

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
