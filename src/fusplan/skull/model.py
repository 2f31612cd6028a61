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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FusplanInputError
from ..io import atomic_output
from .ct import SkullCT
from .pose import WATER_GAP_MARGIN_MM, HeadFit, head_fit
from .population import POPULATION_WARNING
from .properties import BoneAcoustics
from .raytrace import RayTrace, TraceSettings, trace_elements
from .sdr import SdrSettings, element_sdr

PHASE_CORRECTIONS = ("ct", "none")


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

    def focus_phase_error_rad(self, seed: int = 0) -> np.ndarray:
        """Phase error per element at the focus after the chosen correction.

        ``"none"``: the skull's full phase delay. ``"ct"``: a seeded normal draw with the
        element's ``residual_phase_std_rad`` (the CT model's phases cancel the rest).
        """
        if self.phase_correction == "none":
            return self.phase_delay_rad.copy()
        return np.random.default_rng(seed).normal(0.0, 1.0, len(self.active)) * self.residual_phase_std_rad

    def to_dict(self) -> dict:
        """The report's ``skull`` block (contract.md), plus pose and model details."""
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
            "critical_angle_deg": round(self.critical_angle_deg, 2),
            "head_fit": self.fit.to_dict(),
            "bone_acoustics": self.bone.to_dict(),
            "warnings": list(self.warnings),
        }


def model_skull(ct: SkullCT, element_centres_mm: np.ndarray, focus_ras_mm, frequency_hz: float, *,
                phase_correction: str = "ct", bone: BoneAcoustics = BoneAcoustics(),
                trace_settings: TraceSettings = TraceSettings(), sdr_settings: SdrSettings = SdrSettings(),
                water_gap_margin_mm: float = WATER_GAP_MARGIN_MM, max_missing_fraction: float = 0.1) -> SkullModel:
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
        HU -> acoustic properties (default: porosity mapping, Aubry 2003).
    trace_settings, sdr_settings
    water_gap_margin_mm : float
        Skin closer than this to an element is reported as a head that does not fit.
    max_missing_fraction : float
        More element rays than this fraction meeting no bone means the CT does not contain
        the skull cap the beams cross (a real head always has skull there): refused.

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
    critical = bone.critical_angle_deg
    beyond = hits & ~(trace.incidence_deg < critical)
    reason = np.full(len(centres), "", dtype=object)
    reason[~hits] = "misses skull"
    reason[beyond] = "beyond critical angle"
    reason[hits & ~beyond & trace.crosses_air] = "air on path"
    active = reason == ""
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
        source=ct.source, phase_correction=phase_correction, frequency_hz=float(frequency_hz),
        element_centres_mm=centres, focus_ras_mm=focus, active=active, inactive_reason=reason.astype(str),
        sdr=sdr, amplitude_transmission=amplitude, phase_delay_rad=omega * trace.travel_delay_s,
        residual_phase_std_rad=omega * trace.delay_uncertainty_s, trace=trace, fit=fit, bone=bone,
        critical_angle_deg=critical, warnings=tuple(warnings),
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
