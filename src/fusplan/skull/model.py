"""The skull model of one plan: per-element table and the report's ``skull`` block.

:func:`model_skull` runs the pose check, the ray tracing and the clinical SDR and returns a
:class:`SkullModel` whose per-element arrays (amplitude, phase, active mask, refracted
geometry) feed the acoustic field, and whose :meth:`SkullModel.to_dict` is the JSON
``skull`` block of contract.md.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import FusplanInputError
from ..io import atomic_output
from .aberration import correlated_phase_error, focal_fwhm_mm
from .ct import SkullCT
from .pose import WATER_GAP_MARGIN_MM, HeadFit, head_fit
from .population import POPULATION_WARNING, SDR_SOURCE, PopulationSkullCT, sdr_percentile
from .properties import BoneAcoustics
from .raytrace import RayTrace, TraceSettings, retrace, trace_elements
from .sdr import SdrSettings, element_sdr

PHASE_CORRECTIONS = ("ct", "none")


@dataclass(frozen=True)
class FocalWidth:
    """Focal intensity FWHM through the skull along world R, A, S (ray model, point sources).

    Attributes
    ----------
    perfect_correction_mm : (3,) ndarray
        Every element's phase exactly corrected (the skull's apodisation and refraction only).
    with_phase_error_mm : (3,) ndarray
        With the phase error ``phase_correction`` leaves (the correlated residual of ``ct``,
        or the whole skull delay with ``none``).
    peak_shift_mm : float
        Distance of the peak with that error from the intended focus.
    """

    perfect_correction_mm: np.ndarray
    with_phase_error_mm: np.ndarray
    peak_shift_mm: float

    @property
    def broadening(self) -> np.ndarray:
        """``with_phase_error_mm / perfect_correction_mm`` per axis: the focal spread the
        physics of this skull produces."""
        return self.with_phase_error_mm / self.perfect_correction_mm

    def to_dict(self) -> dict:
        """JSON-ready (mm, 3 decimals; axes world R, A, S)."""
        def listed(values):
            return [None if not math.isfinite(v) else round(float(v), 3) for v in values]

        return {"axes": "world R, A, S", "perfect_correction_mm": listed(self.perfect_correction_mm),
                "with_phase_error_mm": listed(self.with_phase_error_mm), "broadening": listed(self.broadening),
                "peak_shift_mm": round(self.peak_shift_mm, 3),
                "method": "ray model: intensity of the element drive's point sources in water, through the peak"}


#: Percentiles of the patients' SDR the population band reports.
BAND_PERCENTILES = (10, 50, 90)
#: What the band cannot say.
BAND_CAVEAT = ("population figures: the template's geometry with a diploe restored at each SDR of the "
               "patients' distribution; the energy factor is the inverse ratio of the CT-corrected coherent focal "
               "gain per emitted watt (same heat-source shape assumed); a patient's CT gives that patient's figure")


@dataclass(frozen=True)
class SdrBand:
    """Energies over the patients' SDR distribution for a plan without a CT.

    Attributes
    ----------
    percentiles : tuple of int
    target_sdr : tuple of float
        The distribution's SDR at each percentile (the restored diploe ratio).
    sdr : tuple of float
        The clinical SDR the recipe measures on that skull.
    energy_factor : tuple of float
        Energy to reach the same temperature / the plan's energy (the plan's skull is the median).
    """

    percentiles: tuple[int, ...]
    target_sdr: tuple[float, ...]
    sdr: tuple[float, ...]
    energy_factor: tuple[float, ...]

    def to_dict(self, treatment_energies_j=None) -> dict:
        """JSON-ready; with the plan's treatment energies, each percentile's range in kJ."""
        rows = {}
        energies = [float(e) for e in (treatment_energies_j or [])]
        for p, target, sdr, factor in zip(self.percentiles, self.target_sdr, self.sdr, self.energy_factor):
            row = {"target_sdr": round(target, 3), "sdr": round(sdr, 3), "energy_factor": round(factor, 3)}
            if energies:
                row["treatment_energy_kj"] = [round(min(energies) * factor / 1e3, 2), round(max(energies) * factor / 1e3, 2)]
            rows[f"p{p}"] = row
        return {"distribution": SDR_SOURCE, "percentiles": rows, "caveat": BAND_CAVEAT}


@dataclass(frozen=True, eq=False)
class SkullModel:
    """Skull effects per element and in summary (world RAS mm, arrays of length N).

    Attributes
    ----------
    source : str
        ``"ct"`` or ``"population template"``.
    phase_correction : {"ct", "none"}
    frequency_hz : float
    element_centres_mm : (N, 3) ndarray
    focus_ras_mm : (3,) ndarray
    active : (N,) bool ndarray
        Element fires: its ray meets the skull, below the critical angle, no air on the path.
    inactive_reason : (N,) str ndarray
        ``""`` (active), ``"beyond critical angle"``, ``"air on path"`` or ``"misses skull"``.
    sdr : (N,) ndarray
        Clinical SDR per element (NaN where no bone).
    amplitude_transmission : (N,) ndarray
        Pressure-amplitude factor sqrt(power transmission); 0 for inactive elements.
    phase_delay_rad : (N,) ndarray
        Extra phase the skull adds at the focus (omega x travel-time change; negative:
        the wave arrives early through fast bone).
    residual_phase_std_rad : (N,) ndarray
        Standard deviation of the phase error left after CT-based correction (from the
        sound-speed mapping uncertainty along the bone path).
    aberration_seed : int
        Seed of the residual phase-error draw (the transducer's ``aberration_seed``).
    trace : RayTrace
        Geometry: entry/exit points, normals, incidence, thickness, refracted directions,
        apparent source positions, focus miss distance.
    fit : HeadFit
    bone : BoneAcoustics
    critical_angle_deg : float
    warnings : tuple of str
    """

    source: str
    phase_correction: str
    frequency_hz: float
    element_centres_mm: np.ndarray
    focus_ras_mm: np.ndarray
    active: np.ndarray
    inactive_reason: np.ndarray
    sdr: np.ndarray
    amplitude_transmission: np.ndarray
    phase_delay_rad: np.ndarray
    residual_phase_std_rad: np.ndarray
    trace: RayTrace
    fit: HeadFit
    bone: BoneAcoustics
    critical_angle_deg: float
    warnings: tuple[str, ...] = field(default=())
    aberration_seed: int = 0
    sdr_band: SdrBand | None = None

    @property
    def active_elements(self) -> int:
        """Number of elements that fire."""
        return int(self.active.sum())

    def _mean_active(self, values: np.ndarray) -> float:
        chosen = values[self.active & np.isfinite(values)]
        return float(chosen.mean()) if chosen.size else math.nan

    @property
    def mean_sdr(self) -> float:
        """The patient's SDR: mean clinical SDR over active elements."""
        return self._mean_active(self.sdr)

    @property
    def energy_transmission(self) -> float:
        """Transmitted / emitted acoustic power with equal power per active element
        (inactive elements do not emit)."""
        return self._mean_active(self.amplitude_transmission**2)

    @property
    def energy_reflection(self) -> float:
        """Reflected (back into the water) / emitted acoustic power, same weighting."""
        return self._mean_active(self.trace.power_reflection)

    @property
    def energy_absorbed_in_skull(self) -> float:
        """Acoustic power absorbed in the bone / emitted: ``1 - transmission - reflection``
        (incoherent layer model of :mod:`.raytrace`; scattering counts as absorbed)."""
        return max(0.0, 1.0 - self.energy_transmission - self.energy_reflection)

    def focus_phase_error_rad(self, seed: int | None = None) -> np.ndarray:
        """Phase error per element at the focus after the chosen correction.

        ``"none"``: the skull's full phase delay. ``"ct"``: a seeded draw with each element's
        ``residual_phase_std_rad``, correlated between elements through the bone their
        footprints share (:mod:`.aberration`; the CT model's phases cancel the rest).
        ``seed`` defaults to ``aberration_seed``.
        """
        if self.phase_correction == "none":
            return self.phase_delay_rad.copy()
        if seed is None or seed == self.aberration_seed:
            return self._residual_draw.copy()
        return correlated_phase_error(np.where(self.active, self.residual_phase_std_rad, 0.0),
                                      self.trace.entry_ras_mm, seed)

    @cached_property
    def _residual_draw(self) -> np.ndarray:
        return correlated_phase_error(np.where(self.active, self.residual_phase_std_rad, 0.0),
                                      self.trace.entry_ras_mm, self.aberration_seed)

    @cached_property
    def focal_width(self) -> FocalWidth:
        """Intensity FWHM of this skull's focus with a perfect correction and with the
        phase error left by ``phase_correction`` (:func:`.aberration.focal_fwhm_mm`)."""
        positions = self.trace.apparent_sources_ras_mm
        args = (self.frequency_hz, self.bone.speed_water_m_s)
        perfect, _ = focal_fwhm_mm(self.amplitude_transmission, np.zeros(len(self.active)), positions,
                                   self.focus_ras_mm, *args)
        left, peak = focal_fwhm_mm(self.amplitude_transmission, -self.focus_phase_error_rad(), positions,
                                   self.focus_ras_mm, *args)
        return FocalWidth(perfect_correction_mm=perfect, with_phase_error_mm=left,
                          peak_shift_mm=float(np.linalg.norm(peak - self.focus_ras_mm)))

    @property
    def coherent_gain(self) -> float:
        """Focal intensity per emitted watt with every phase corrected, up to a constant:
        ``(sum of amplitude transmissions)^2 / active elements`` (equal power per active element)."""
        return float(self.amplitude_transmission.sum() ** 2 / max(self.active_elements, 1))

    def to_dict(self, treatment_energies_j=None) -> dict:
        """The report's ``skull`` block (contract.md), plus pose and model details; with a
        population band and the plan's treatment energies (J), the band's energies too."""
        def rounded(value, digits):
            return None if not math.isfinite(value) else round(value, digits)

        return {
            "source": self.source,
            "sdr": rounded(self.mean_sdr, 3),
            "sdr_method": "clinical (Kranion): min between tables / outer-table peak, 5x5 rays, mean over active elements",
            "active_elements": self.active_elements,
            "elements": int(len(self.active)),
            "mean_incidence_deg": rounded(self._mean_active(self.trace.incidence_deg), 2),
            "mean_thickness_mm": rounded(self._mean_active(self.trace.thickness_mm), 2),
            "energy_transmission": rounded(self.energy_transmission, 4),
            "energy_reflection": rounded(self.energy_reflection, 4),
            "energy_absorbed_in_skull": rounded(self.energy_absorbed_in_skull, 4),
            "phase_correction": self.phase_correction,
            "mean_residual_phase_std_rad": rounded(self._mean_active(self.residual_phase_std_rad), 3),
            "residual_phase_error": "correlated between elements through the bone their 9 x 9 mm footprints share",
            "aberration_seed": self.aberration_seed,
            "focal_fwhm": self.focal_width.to_dict(),
            "critical_angle_deg": round(self.critical_angle_deg, 2),
            "head_fit": self.fit.to_dict(),
            "bone_acoustics": self.bone.to_dict(),
            "warnings": list(self.warnings),
            **({} if self.sdr_band is None else {"sdr_band": self.sdr_band.to_dict(treatment_energies_j)}),
        }


def model_skull(ct: SkullCT, element_centres_mm: np.ndarray, focus_ras_mm, frequency_hz: float, *,
                phase_correction: str = "ct", bone: BoneAcoustics = BoneAcoustics(),
                trace_settings: TraceSettings = TraceSettings(), sdr_settings: SdrSettings = SdrSettings(),
                water_gap_margin_mm: float = WATER_GAP_MARGIN_MM, max_missing_fraction: float = 0.1,
                aberration_seed: int = 0, sdr_band: bool = False) -> SkullModel:
    """Trace the skull for every element and summarise it.

    Parameters
    ----------
    ct : SkullCT
        Patient CT (registered) or population skull, sampled at subject world RAS mm.
    element_centres_mm : (N, 3) ndarray
        Element centres (see :func:`fusplan.skull.pose.array_element_positions`).
    focus_ras_mm : (3,) array_like
        Where the element rays converge (the target, or the steered focus).
    frequency_hz : float
    phase_correction : {"ct", "none"}
    bone : BoneAcoustics
        HU -> acoustic properties (default: McDannold 2019's clinically fitted mapping).
    trace_settings, sdr_settings
    water_gap_margin_mm : float
        Skin closer than this to an element is reported as a head that does not fit.
    max_missing_fraction : float
        More element rays than this fraction meeting no bone means the CT does not contain
        the skull cap the beams cross (a real head always has skull there): refused.
    aberration_seed : int
        Seed of the residual phase-error draw (``phase_correction: ct``).
    sdr_band : bool
        With the population skull: also re-evaluate it at the patients' SDR percentiles
        (:data:`BAND_PERCENTILES`) along this trace's rays (:func:`.raytrace.retrace`) and
        report the energy band (:class:`SdrBand`).

    Raises
    ------
    FusplanInputError
        If ``phase_correction`` is unknown, or the CT does not cover the skull cap the beams
        cross (naming the CT).
    """
    if phase_correction not in PHASE_CORRECTIONS:
        raise FusplanInputError(f"phase_correction must be one of {', '.join(PHASE_CORRECTIONS)}, got {phase_correction!r}")
    centres = np.asarray(element_centres_mm, float)
    focus = np.asarray(focus_ras_mm, float)
    trace = trace_elements(ct, centres, focus, frequency_hz, bone, trace_settings)
    hits = trace.hits_skull
    if 1.0 - hits.mean() > max_missing_fraction:
        raise FusplanInputError(f"{ct.name}: the CT does not contain the skull cap the beams cross "
                                f"({int((~hits).sum())} of {len(hits)} element rays meet no bone)")
    options = dict(phase_correction=phase_correction, bone=bone, sdr_settings=sdr_settings,
                   water_gap_margin_mm=water_gap_margin_mm, aberration_seed=int(aberration_seed))
    model = _summarise(ct, trace, float(frequency_hz), **options)
    if not (sdr_band and isinstance(ct, PopulationSkullCT)):
        return model
    return replace(model, sdr_band=_sdr_band(ct, model, trace_settings, options))


def _sdr_band(ct: PopulationSkullCT, model: SkullModel, trace_settings: TraceSettings, options: dict) -> SdrBand:
    """The band of ``model`` (traced through ``ct``): the skull at each percentile's diploe
    ratio along ``model``'s rays (:func:`.raytrace.retrace`: same geometry, the HU-dependent
    acoustics and the clinical SDR re-evaluated on the same sample points)."""
    targets = tuple(sdr_percentile(p) for p in BAND_PERCENTILES)
    others = []
    for target in targets:
        if math.isclose(target, ct.diploe_ratio, abs_tol=1e-9):
            others.append(model)
            continue
        skull = replace(ct, diploe_ratio=target)
        trace = retrace(skull, model.trace, model.frequency_hz, model.bone, trace_settings)
        others.append(_summarise(skull, trace, model.frequency_hz, **options))
    return SdrBand(percentiles=BAND_PERCENTILES, target_sdr=targets, sdr=tuple(m.mean_sdr for m in others),
                   energy_factor=tuple(model.coherent_gain / m.coherent_gain for m in others))


def _summarise(ct: SkullCT, trace: RayTrace, frequency_hz: float, *, phase_correction: str, bone: BoneAcoustics,
               sdr_settings: SdrSettings, water_gap_margin_mm: float, aberration_seed: int) -> SkullModel:
    """The :class:`SkullModel` of ``trace`` through ``ct``: which elements fire and why not,
    the clinical SDR on ``ct`` along the trace's rays, amplitudes, phases and head fit."""
    critical = bone.critical_angle_deg
    hits = trace.hits_skull
    # beyond the clinical critical angle, or beyond total reflection into its own bone
    beyond = hits & (~(trace.incidence_deg < critical) | trace.totally_reflected)
    reason = np.full(len(hits), "", dtype=object)
    reason[~hits] = "misses skull"
    reason[beyond] = "beyond critical angle"
    reason[hits & ~beyond & trace.crosses_air] = "air on path"
    active = reason == ""
    centres = trace.geometry.centres_mm
    sdr = element_sdr(ct, centres, trace.directions, trace.entry_distance_mm, sdr_settings)
    omega = 2 * math.pi * frequency_hz
    amplitude = np.where(active, np.sqrt(np.clip(trace.power_transmission, 0.0, 1.0)), 0.0)
    fit = head_fit(trace.skin_distance_mm, water_gap_margin_mm)
    warnings = []
    if ct.source == "population template":
        warnings.append(POPULATION_WARNING)
    if not fit.fits:
        warnings.append(fit.message())
    return SkullModel(
        source=ct.source, phase_correction=phase_correction, frequency_hz=frequency_hz,
        element_centres_mm=centres, focus_ras_mm=trace.geometry.focus_mm, active=active,
        inactive_reason=reason.astype(str), sdr=sdr, amplitude_transmission=amplitude,
        phase_delay_rad=omega * trace.travel_delay_s, residual_phase_std_rad=omega * trace.delay_uncertainty_s,
        trace=trace, fit=fit, bone=bone, critical_angle_deg=critical, warnings=tuple(warnings),
        aberration_seed=aberration_seed,
    )


ELEMENT_COLUMNS = (
    "element", "x_mm", "y_mm", "z_mm", "active", "inactive_reason", "incidence_deg", "thickness_mm",
    "bone_path_mm", "mean_bone_hu", "sdr", "transmission", "amplitude", "phase_delay_rad",
    "residual_phase_std_rad", "entry_x_mm", "entry_y_mm", "entry_z_mm",
)


def write_elements_csv(model: SkullModel, path: str | os.PathLike) -> Path:
    """Write ``elements.csv``: one row per element (position and entry point in world RAS mm,
    active, reason, incidence, thickness, SDR, power transmission, amplitude, phase)."""
    path = Path(path)
    t = model.trace

    def num(value, digits=3):
        return "" if not np.isfinite(value) else f"{value:.{digits}f}"

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(ELEMENT_COLUMNS)
            for i, centre in enumerate(model.element_centres_mm):
                writer.writerow([
                    i, *(num(c, 2) for c in centre), int(model.active[i]), model.inactive_reason[i],
                    num(t.incidence_deg[i], 2), num(t.thickness_mm[i], 2), num(t.bone_path_mm[i], 2),
                    num(t.mean_bone_hu[i], 1), num(model.sdr[i], 4), num(t.power_transmission[i], 5),
                    num(model.amplitude_transmission[i], 5), num(model.phase_delay_rad[i], 4),
                    num(model.residual_phase_std_rad[i], 4), *(num(c, 2) for c in t.entry_ras_mm[i]),
                ])
    return path
