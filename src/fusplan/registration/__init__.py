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

Modules: :mod:`.settings` (presets and plausibility bounds), :mod:`.result` (the
:class:`Registration` and its ``.npz`` file), :mod:`.stages` (affine, contrast guard,
SyN) and :mod:`.pipeline` (:func:`register`).
"""
from .pipeline import register
from .result import Registration, load_registration, scan_fingerprint
from .settings import (
    CHECK_SPACING_MM,
    MIN_AFFINE_SIMILARITY,
    MIN_SIMILARITY,
    SCALE_RANGE,
    SETTINGS,
    RegistrationSettings,
)

__all__ = [
    "CHECK_SPACING_MM", "MIN_AFFINE_SIMILARITY", "MIN_SIMILARITY", "SCALE_RANGE", "SETTINGS", "Registration",
    "RegistrationSettings", "load_registration", "register", "scan_fingerprint",
]
