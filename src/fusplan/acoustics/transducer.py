"""Transducer models: the protocol's ``transducer:`` block, element layout, aberration.

A :class:`Transducer` is validated on construction (every error names
``transducer.<key>``). :func:`element_layout` places the elements (or the patches of a
single bowl) in world mm for a given geometric focus and beam axis: the skull model
calls it to know where every element sits. :func:`aberration_phases` draws the seeded,
optionally spatially correlated, phase error a skull would leave.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping

import numpy as np

from fusplan.errors import FusplanInputError
from fusplan.vocabulary import SKULL_SOURCES

from .kinds import HEMISPHERICAL_ARRAY, KINDS, MODELS, TransducerKind

__all__ = [
    "MODELS",
    "Transducer",
    "transducer_from_spec",
    "element_layout",
    "aberration_phases",
    "bowl_patches",
    "cap_area_mm2",
]

_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
_SPEC_KEYS = (
    "model",
    "frequency_khz",
    "elements",
    "radius_mm",
    "max_polar_angle_deg",
    "element_area_mm2",
    "aperture_mm",
    "fwhm_mm",
    "skull_transmission",
    "phase_aberration_std_rad",
    "aberration_seed",
    "aberration_correlation_mm",
    "brain_path_mm",
    "skull",
    "phase_correction",
    "tilt_deg",
    "bone_mapping",
    "steering",
)
#: ``transducer.phase_correction`` values (with a skull model).
PHASE_CORRECTIONS = ("ct", "none")
#: ``transducer.bone_mapping`` values: CT HU -> bone acoustics (sources in :mod:`fusplan.skull.properties`).
BONE_MAPPINGS = ("mcdannold2019", "webb2018", "aubry2003")
#: ``transducer.steering`` values: how the heat source of a focus steered near the target is found.
STEERINGS = ("translate", "recompute")
#: Largest steering offset (mm) whose heat source ``steering: translate`` takes from the target's, translated:
#: within it the translated source matches the recomputed one (own skull trace and field) to 1.4 % of the peak
#: (1.5 mm, sample head and phantom; 3.3 % at 3 mm), tests/test_steering.py.
TRANSLATION_LIMIT_MM = 2.0
#: Largest tilt of the array axis from the subject's superior axis (deg), per component and in
#: total (``[45, 45]`` tilts the axis 60 deg: the array would face the temporal bone and the
#: ear, outside the skull cap a transcranial array is placed over).
MAX_TILT_DEG = 45.0


def _bad(key: str, problem: str) -> FusplanInputError:
    return FusplanInputError(f"transducer.{key} {problem}")


@dataclass(frozen=True)
class Transducer:
    """A transducer model (the protocol's ``transducer:`` block).

    Parameters
    ----------
    model : {"hemispherical_array", "focused_bowl", "gaussian"}
        ``hemispherical_array``: ``elements`` circular pistons of ``element_area_mm2`` on
        a sphere of ``radius_mm`` up to ``max_polar_angle_deg`` from the apex, laid out on
        a golden-angle (Fibonacci) spiral with equal-area spacing (element ``i`` at
        ``cos(theta_i) = 1 - (i + 1/2)(1 - cos(theta_max)) / N``, azimuth ``i * 137.5 deg``
        from the world-R direction projected normal to the beam axis), electronically
        steered. ``focused_bowl``: one continuous spherical cap of radius of curvature
        ``radius_mm`` and aperture diameter ``aperture_mm`` (default the array's cap,
        ``2 R sin(theta_max)``); it cannot steer, so it is moved to the focus.
        ``gaussian``: the heat source itself, a 3D Gaussian with ``fwhm_mm``
        ``(lr, ap, si)`` and unit total power.
    frequency_khz : float
        Driving frequency (default 650 kHz, ExAblate Neuro class).
    elements, radius_mm, max_polar_angle_deg, element_area_mm2 : number
        Array geometry (defaults 1024, 150 mm, 87.7 deg, 113.5 mm^2: the generic
        1024-element dome published with Kranion and used by BabelBrain).
    aperture_mm : float, optional
        Bowl aperture diameter.
    fwhm_mm : tuple of 3 floats, optional
        Gaussian full widths at half maximum along LR, AP, SI (grid axes 0, 1, 2; SI
        follows the beam axis when one is given). Required for ``gaussian``.
    skull_transmission : float
        Fraction of the emitted acoustic energy that crosses the skull into the brain
        (default 0.2). Intact-skull energy transmission at ~650 kHz is typically
        reported around 10-30 % (reflection at the outer and inner tables plus
        absorption and scattering in the diploe; Hynynen, McDannold, Pulkkinen et al.),
        strongly dependent on skull density ratio and incidence angle; 0.2 is the middle
        of that band. It scales power only: calibrate it per patient (simulations of
        clinical CLT underestimated the focal rise by 24 +/- 13 %, Pulkkinen et al. 2014).
    phase_aberration_std_rad : float
        Standard deviation of a random per-element phase error (Gaussian, seeded by
        ``aberration_seed``), as left by an uncorrected or imperfectly corrected skull.
        Arrays only. Default 0 (ideal aberration correction).
    aberration_seed : int
        Seed of that phase error.
    aberration_correlation_mm : float
        Correlation length of the phase error over the array surface (Gaussian
        covariance of the element positions). 0 (default) draws independent phases per
        element: that lowers the focal gain but leaves the main lobe's shape (the lost
        energy goes into a diffuse background). Skull thickness varies smoothly over
        centimetres, so its aberration is correlated over neighbouring elements, and
        correlated phase errors do broaden the focus: use 20-60 mm to mimic the skull.
    brain_path_mm : float
        Radius of the spherical skull interface around the geometric focus: the length
        of brain every ray crosses to reach the focus (default 65 mm, half of a typical
        130-140 mm inner skull breadth for a thalamic target near the head centre).
    skull : {"none", "population", "ct"}, optional
        Skull model of the plan (hemispherical arrays only). ``None`` (key absent): the
        planner chooses ``ct`` when a CT is given, else ``population`` on a scan and
        ``none`` in the phantom. With a skull model the per-element amplitudes, phases and
        refracted source positions come from :func:`fusplan.skull.model_skull`, and
        ``skull_transmission`` and ``phase_aberration_std_rad`` are not applied (they
        describe the skull when none is modelled).
    phase_correction : {"ct", "none"}
        With a skull model: ``ct`` (default) drives each element with the phases computed
        from the CT model, leaving the residual error of the CT -> sound-speed mapping;
        ``none`` leaves the skull's full phase delay (the uncorrected focus, for teaching).
    tilt_deg : (lr, ap) floats
        Tilt of the array axis from the subject's superior axis (deg): ``lr`` towards +R,
        then ``ap`` towards +A (:func:`fusplan.skull.tilted_axis`), each within +-45.
        Default (0, 0): the axis along the superior axis of the planning frame.
    bone_mapping : {"mcdannold2019", "webb2018", "aubry2003"}
        With a skull model: the CT HU -> density, speed and attenuation mapping.
        ``mcdannold2019`` (default): McDannold et al. 2019's clinically fitted mapping;
        ``webb2018``: Webb et al. 2018/2021; ``aubry2003``: the porosity mapping with one
        attenuation (fusplan's before issue 17). Sources: :mod:`fusplan.skull.properties`.
    steering : {"translate", "recompute"}
        How the heat source of a focus steered away from the target (``offset_mm``) is found.
        ``translate`` (default): within :data:`TRANSLATION_LIMIT_MM` of the target, the
        target's per-watt source moved by the offset (electronic steering by a few mm
        moves the focal pattern with it; the skull patch the beams cross barely changes);
        farther foci, and every focus with ``recompute``, get their own skull trace and field.
    """

    model: str = HEMISPHERICAL_ARRAY
    frequency_khz: float = 650.0
    elements: int = 1024
    radius_mm: float = 150.0
    max_polar_angle_deg: float = 87.7
    element_area_mm2: float = 113.5
    aperture_mm: float | None = None
    fwhm_mm: tuple[float, float, float] | None = None
    skull_transmission: float = 0.2
    phase_aberration_std_rad: float = 0.0
    aberration_seed: int = 0
    aberration_correlation_mm: float = 0.0
    brain_path_mm: float = 65.0
    skull: str | None = None
    phase_correction: str = "ct"
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    bone_mapping: str = "mcdannold2019"
    steering: str = "translate"

    def __post_init__(self):
        if self.model not in MODELS:
            raise _bad("model", f"must be one of {', '.join(MODELS)} (got {self.model!r})")
        for key in ("frequency_khz", "radius_mm", "element_area_mm2"):
            value = getattr(self, key)
            if not _is_number(value) or not value > 0:
                raise _bad(key, f"must be a number > 0 (got {value!r})")
        if self.frequency_khz > 20000:
            raise _bad("frequency_khz", f"must be <= 20000 (got {self.frequency_khz!r})")
        if isinstance(self.elements, bool) or not isinstance(self.elements, (int, np.integer)) or self.elements < 1:
            raise _bad("elements", f"must be an integer >= 1 (got {self.elements!r})")
        if self.elements > 20000:
            raise _bad("elements", f"must be <= 20000 (got {self.elements!r})")
        if not _is_number(self.max_polar_angle_deg) or not 0 < self.max_polar_angle_deg <= 90:
            raise _bad("max_polar_angle_deg", f"must be in (0, 90] (got {self.max_polar_angle_deg!r})")
        cap_per_element = cap_area_mm2(self.radius_mm, self.max_polar_angle_deg) / self.elements
        if self.kind.elements and self.element_area_mm2 > cap_per_element * (1 + 1e-9):
            raise _bad(
                "element_area_mm2",
                f"{self.element_area_mm2} exceeds the cap area per element ({cap_per_element:.1f} mm^2)",
            )
        if self.aperture_mm is not None:
            if not _is_number(self.aperture_mm) or not 0 < self.aperture_mm <= 2 * self.radius_mm:
                raise _bad("aperture_mm", f"must be in (0, 2 * radius_mm] (got {self.aperture_mm!r})")
        if self.fwhm_mm is not None:
            fwhm = self.fwhm_mm
            if (
                isinstance(fwhm, (str, bytes))
                or not hasattr(fwhm, "__len__")
                or len(fwhm) != 3
                or not all(_is_number(v) and v > 0 for v in fwhm)
            ):
                raise _bad("fwhm_mm", f"must be three numbers > 0 [lr, ap, si] (got {fwhm!r})")
            object.__setattr__(self, "fwhm_mm", tuple(float(v) for v in fwhm))
        if not self.kind.radiates and self.fwhm_mm is None:
            raise _bad("fwhm_mm", f"is required for model {self.model}")
        if not _is_number(self.skull_transmission) or not 0 < self.skull_transmission <= 1:
            raise _bad("skull_transmission", f"must be in (0, 1] (got {self.skull_transmission!r})")
        if not _is_number(self.phase_aberration_std_rad) or not 0 <= self.phase_aberration_std_rad <= 10:
            raise _bad("phase_aberration_std_rad", f"must be in [0, 10] (got {self.phase_aberration_std_rad!r})")
        seed = self.aberration_seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise _bad("aberration_seed", f"must be an integer >= 0 (got {self.aberration_seed!r})")
        if not _is_number(self.aberration_correlation_mm) or not 0 <= self.aberration_correlation_mm <= 300:
            raise _bad("aberration_correlation_mm", f"must be in [0, 300] (got {self.aberration_correlation_mm!r})")
        if not _is_number(self.brain_path_mm) or not 0 <= self.brain_path_mm <= 1000:
            raise _bad("brain_path_mm", f"must be in [0, 1000] (got {self.brain_path_mm!r})")
        if self.skull is not None and self.skull not in SKULL_SOURCES:
            raise _bad("skull", f"must be one of {', '.join(SKULL_SOURCES)} (got {self.skull!r})")
        if self.skull in ("population", "ct") and not self.kind.elements:
            raise _bad("skull", f"{self.skull} needs model {HEMISPHERICAL_ARRAY} (got {self.model})")
        if self.phase_correction not in PHASE_CORRECTIONS:
            raise _bad("phase_correction", f"must be one of {', '.join(PHASE_CORRECTIONS)} (got {self.phase_correction!r})")
        if self.bone_mapping not in BONE_MAPPINGS:
            raise _bad("bone_mapping", f"must be one of {', '.join(BONE_MAPPINGS)} (got {self.bone_mapping!r})")
        if self.steering not in STEERINGS:
            raise _bad("steering", f"must be one of {', '.join(STEERINGS)} (got {self.steering!r})")
        tilt = self.tilt_deg
        if (isinstance(tilt, (str, bytes)) or not hasattr(tilt, "__len__") or len(tilt) != 2
                or not all(_is_number(v) and abs(v) <= MAX_TILT_DEG for v in tilt)):
            raise _bad("tilt_deg", f"must be two numbers [lr, ap] within +-{MAX_TILT_DEG:g} deg (got {_short(tilt)})")
        lr, ap = (math.radians(float(v)) for v in tilt)
        total_deg = math.degrees(math.acos(math.cos(lr) * math.cos(ap)))  # beam axis from superior (skull.pose)
        if total_deg > MAX_TILT_DEG + 1e-9:
            raise _bad("tilt_deg", f"{list(tilt)} tilts the array axis {total_deg:.1f} deg from superior, more than "
                                   f"{MAX_TILT_DEG:g} deg (the skull cap the array faces)")
        object.__setattr__(self, "tilt_deg", (float(tilt[0]), float(tilt[1])))

    @property
    def kind(self) -> TransducerKind:
        """What this ``model`` can do (:data:`fusplan.acoustics.kinds.KINDS`)."""
        return KINDS[self.model]

    @property
    def bowl_aperture_mm(self) -> float:
        """Aperture diameter of the bowl (default: the array's spherical cap)."""
        if self.aperture_mm is not None:
            return float(self.aperture_mm)
        return 2 * self.radius_mm * math.sin(math.radians(self.max_polar_angle_deg))


def _is_number(value) -> bool:
    """A finite int or float (a 400-digit integer is not: it has no float value)."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 400-digit number stays one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def cap_area_mm2(radius_mm: float, polar_deg: float) -> float:
    return 2 * math.pi * radius_mm**2 * (1 - math.cos(math.radians(polar_deg)))


def transducer_from_spec(spec: Mapping | None) -> Transducer:
    """Build a :class:`Transducer` from the protocol's ``transducer:`` mapping.

    Raises
    ------
    FusplanInputError
        Unknown key or invalid value; the message names ``transducer.<key>``.
    """
    if spec is None:
        return Transducer()
    if not isinstance(spec, Mapping):
        raise FusplanInputError(f"transducer must be a mapping (got {type(spec).__name__})")
    for key in spec:
        if key not in _SPEC_KEYS:
            raise _bad(str(key), f"is not a known key (known: {', '.join(_SPEC_KEYS)})")
    kwargs = dict(spec)
    for key in ("fwhm_mm", "tilt_deg"):
        if key in kwargs and isinstance(kwargs[key], list):
            kwargs[key] = tuple(kwargs[key])
    return Transducer(**kwargs)


# ----------------------------------------------------------------------------- geometry


def _frame(beam_axis) -> np.ndarray:
    """Columns u, v, w: w = beam axis (focus -> apex), u = world R projected normal to w."""
    w = np.asarray(beam_axis, dtype=float)
    norm = np.linalg.norm(w)
    if w.shape != (3,) or not norm > 0:
        raise FusplanInputError("beam_axis must be a non-zero 3-vector")
    w = w / norm
    for ref in (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])):
        u = ref - (ref @ w) * w
        if np.linalg.norm(u) > 0.1:
            break
    u /= np.linalg.norm(u)
    return np.column_stack([u, np.cross(w, u), w])


def _cap_directions(n: int, max_polar_deg: float) -> np.ndarray:
    """Golden-spiral equal-area points on the unit cap around +z, shape (n, 3)."""
    i = np.arange(n)
    cos_t = 1 - (i + 0.5) * (1 - math.cos(math.radians(max_polar_deg))) / n
    sin_t = np.sqrt(1 - cos_t**2)
    phi = i * _GOLDEN_ANGLE
    return np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])


def element_layout(
    transducer: Transducer, geometric_focus_mm=(0.0, 0.0, 0.0), beam_axis=(0.0, 0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Where every element (or bowl patch) sits: centres in world mm and unit normals.

    The array is placed with its geometric focus (the centre of its sphere) at
    ``geometric_focus_mm`` and its apex along ``beam_axis`` (the world vector from the
    focus towards the apex). Element ``i`` of the result is element ``i`` of every
    per-element array of an :class:`~fusplan.acoustics.ElementDrive`, so a skull model
    can trace one ray per row.

    Parameters
    ----------
    transducer : Transducer
        ``hemispherical_array`` or ``focused_bowl`` (one-wavelength patches).
    geometric_focus_mm : array_like (3,)
        World RAS mm of the array's geometric focus.
    beam_axis : array_like (3,)
        World direction from the focus towards the apex (need not be unit length).

    Returns
    -------
    centres_mm : (N, 3) ndarray
        Element centres, world RAS mm.
    normals : (N, 3) ndarray
        Unit normals, pointing from each element to the geometric focus.
    """
    frame = _frame(beam_axis)
    radius = transducer.radius_mm
    if not transducer.kind.radiates:
        raise FusplanInputError(f"transducer.model {transducer.model} has no elements")
    if transducer.kind.elements:
        dirs = _cap_directions(transducer.elements, transducer.max_polar_angle_deg)
    else:  # a single bowl: one-wavelength patches
        dirs = _cap_directions(*bowl_patches(transducer))
    world = dirs @ frame.T
    return np.asarray(geometric_focus_mm, float) + radius * world, -world


def aberration_phases(transducer: Transducer, element_offsets_mm: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Seeded random phase error (rad) per element, as a skull would leave it.

    Independent Gaussian draws smoothed by a Gaussian kernel of
    ``aberration_correlation_mm`` over the element positions (offsets from the geometric
    focus, so the pattern is fixed to the array, not to the target), then scaled to
    ``phase_aberration_std_rad``. The kernel is summed ``chunk`` rows at a time in
    float32 (relative rounding ~1e-6): memory ``O(chunk N)`` instead of the ``N x N``
    matrix (20,000 elements: ~330 MB of temporaries instead of 9 GiB, ~3 s on 2 cores).
    """
    rng = np.random.default_rng(transducer.aberration_seed)
    phases = rng.normal(0.0, 1.0, len(element_offsets_mm))
    length = transducer.aberration_correlation_mm
    if length > 0:
        offsets = np.asarray(element_offsets_mm, dtype=float)
        offsets = (offsets - offsets.mean(0)).astype(np.float32)  # centred: float32 keeps the distances
        norms = (offsets**2).sum(1)
        draws = phases.astype(np.float32)
        smoothed = np.empty(len(offsets))
        scale = np.float32(-0.5 / length**2)
        for start in range(0, len(offsets), chunk):
            rows = offsets[start:start + chunk]
            kernel = norms[start:start + chunk, None] + norms[None, :] - 2 * rows @ offsets.T  # squared distances
            kernel *= scale
            np.minimum(kernel, 0, out=kernel)
            np.exp(kernel, out=kernel)
            smoothed[start:start + chunk] = kernel @ draws
        phases = (smoothed - smoothed.mean()) / smoothed.std()
    return transducer.phase_aberration_std_rad * phases


def bowl_patches(transducer: Transducer, patch_size_wavelengths: float = 1.0) -> tuple[int, float]:
    """Number of patches (each about one wavelength across in water) and polar angle."""
    polar = math.degrees(math.asin(min(1.0, transducer.bowl_aperture_mm / (2 * transducer.radius_mm))))
    wavelength_mm = 1482.0 / (transducer.frequency_khz * 1e3) * 1e3
    patch_area = math.pi / 4 * (patch_size_wavelengths * wavelength_mm) ** 2
    n = max(64, int(math.ceil(cap_area_mm2(transducer.radius_mm, polar) / patch_area)))
    return n, polar

