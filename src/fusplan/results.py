"""Typed results of :func:`fusplan.planner.simulate`: per-sonication records, per-side maps, the whole run.

:class:`SimulationResult` keeps the 3D maps on each side's grid (with its world affine)
and gives the contract's JSON via :meth:`SimulationResult.to_dict`;
:class:`SideResult` holds one target's maps, records and solver state (for exact
temperatures at any time, :meth:`SideResult.temperature_at`); :class:`SonicationRecord`
is one ``sonications`` entry of the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import timeline
from .bioheat import SpectralBioheat, ThermalHistory
from .clinical import describe_lesion, report_blocks
from .focusmodel import SIGMA_PER_FWHM, source_sigma_mm
from .grid import Grid
from .lesion import LesionRecord, measure_lesion
from .protocol import FocusPrior, Protocol
from .skull import SkullCT, SkullModel

if TYPE_CHECKING:
    from .assessment import Assessment
    from .io import Scan
    from .targeting import Target, TargetingResult

__all__ = ["SonicationRecord", "SideResult", "SimulationResult"]


@dataclass(frozen=True)
class SonicationRecord:
    """What one sonication did: titrated power, energy and peak temperatures.

    ``side`` is None in the phantom; ``thermometry_peak_c`` is None without a
    thermometry block in the protocol. With a skull model ``power_w`` is the emitted
    acoustic power titrated through the skull, ``transmitted_power_w`` the part that
    enters the brain and ``skull_absorbed_power_w`` the part absorbed in the bone
    (emitted x (1 - transmission - reflection), :attr:`fusplan.skull.SkullModel.energy_absorbed_in_skull`);
    both None without a skull model.
    """

    index: int
    stage: str
    power_w: float
    absorbed_power_w: float
    duration_s: float
    cooling_s: float
    energy_j: float
    peak_temperature_c: float
    thermometry_peak_c: float | None = None
    side: str | None = None
    transmitted_power_w: float | None = None
    skull_absorbed_power_w: float | None = None

    def to_dict(self) -> dict:
        """Contract ``sonications`` entry (``side``, ``thermometry_peak_c`` and the skull powers only when set)."""
        doc = {"index": self.index, "stage": self.stage}
        if self.side is not None:
            doc["side"] = self.side
        doc.update(power_w=self.power_w, absorbed_power_w=self.absorbed_power_w, duration_s=self.duration_s,
                   cooling_s=self.cooling_s, energy_j=self.energy_j, peak_temperature_c=self.peak_temperature_c)
        if self.thermometry_peak_c is not None:
            doc["thermometry_peak_c"] = self.thermometry_peak_c
        if self.skull_absorbed_power_w is not None:
            doc.update(transmitted_power_w=self.transmitted_power_w, skull_absorbed_power_w=self.skull_absorbed_power_w,
                       skull_absorbed_energy_j=self.skull_absorbed_power_w * self.duration_s)
        return doc


@dataclass
class SideResult:
    """Simulation of one target (one side; ``side`` and ``target`` None in the phantom).

    ``focus_prior`` is the prior on the focal spread the plan applied (None: the physics
    focus); ``physics_sources`` then holds the per-watt heat sources before it (what
    calibration starts from).
    """

    side: str | None
    target: Target | None
    grid: Grid
    peak_temperature_c: np.ndarray
    dose_cem43: np.ndarray
    sonications: list[SonicationRecord]
    focus_time_s: np.ndarray
    focus_temperature_c: np.ndarray
    lesions: list[LesionRecord]
    thresholds_cem43: tuple[float, ...]
    history: ThermalHistory = field(repr=False)
    solver: SpectralBioheat = field(repr=False)
    spectra: dict = field(repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    skull: SkullModel | None = field(default=None, repr=False)
    focus_prior: FocusPrior | None = None
    physics_sources: dict | None = field(default=None, repr=False)

    @property
    def lesion_masks(self) -> dict[float, np.ndarray]:
        """``dose_cem43 >= threshold`` for every reported threshold (true field)."""
        return {t: self.dose_cem43 >= t for t in self.thresholds_cem43}

    @property
    def thermometry_dose_cem43(self) -> np.ndarray | None:
        """CEM43 that the simulated MR thermometry accumulates (:mod:`fusplan.bioheat.displayed`)."""
        return self.history.thermometry_dose_cem43

    @property
    def thermometry_peak_c(self) -> np.ndarray | None:
        """Maximum temperature the simulated MR thermometry shows."""
        return self.history.thermometry_peak_c

    def focal_spot(self) -> dict:
        """The report's ``focal_spot`` entry: which part of the treatment focus' width is which.

        ``physics_fwhm_mm``: FWHM of the heat source along the grid axes (LR, AP, SI on a
        scan) from the physics (diffraction, skull transmission and residual aberration);
        ``prior_spread``: the focus prior's widening (1 without one); ``planned_fwhm_mm``:
        the source the plan heated with.
        """
        key = next((p.source for p, s in zip(self.history.pulses, self.sonications) if s.stage == "treatment"),
                   self.history.pulses[-1].source)
        planned = self.solver.field(self.spectra[key])
        physics = planned if self.physics_sources is None else self.physics_sources[key]
        spacing = self.grid.spacing_mm
        out = {"physics_fwhm_mm": [float(v) for v in source_sigma_mm(physics, spacing) / SIGMA_PER_FWHM],
               "prior_spread": [1.0, 1.0, 1.0] if self.focus_prior is None else list(self.focus_prior.spread),
               "planned_fwhm_mm": [float(v) for v in source_sigma_mm(planned, spacing) / SIGMA_PER_FWHM]}
        return {"side": self.side, **out} if self.side is not None else out

    def temperature_at(self, times_s) -> np.ndarray:
        """Temperature (C) on the grid at ``times_s``, shape ``(n_t, *grid.shape)`` (exact)."""
        times = np.atleast_1d(np.asarray(times_s, dtype=float))
        tissue = self.solver.tissue
        rise = self.solver.rise_at(self.history.pulses, self.spectra, times)
        base = (tissue.baseline_temperature_c - tissue.blood_temperature_c) * np.exp(
            -self.solver.perfusion * np.clip(times, 0, None))
        return rise + (base + tissue.blood_temperature_c)[:, None, None, None]


@dataclass
class SimulationResult:
    """Result of :func:`simulate`: per-side maps and records, contract JSON via :meth:`to_dict`.

    ``assessment`` (set by :func:`fusplan.assessment.assess`) adds the calibration,
    the calibrated prediction and the uncertainty band to the report.
    """

    protocol: Protocol
    sides: dict[str | None, SideResult]
    scan: Scan | None = None
    targets: TargetingResult | None = None
    assessment: Assessment | None = None
    skull_ct: SkullCT | None = field(default=None, repr=False)
    _thermometry_lesions: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def first(self) -> SideResult:
        """The first simulated side (the phantom's only one)."""
        return next(iter(self.sides.values()))

    @property
    def grid(self) -> Grid:
        """Grid of the first side (the phantom's only grid)."""
        return self.first.grid

    @property
    def peak_temperature_c(self) -> np.ndarray:
        """Peak temperature map of the first side."""
        return self.first.peak_temperature_c

    @property
    def dose_cem43(self) -> np.ndarray:
        """CEM43 map of the first side."""
        return self.first.dose_cem43

    def _side(self, side: str | None) -> SideResult:
        if side is None:
            return self.first
        if side not in self.sides:
            raise KeyError(f"no simulation for side {side!r} (have {list(self.sides)})")
        return self.sides[side]

    def thermometry_lesions(self, side: str | None = None) -> list[LesionRecord]:
        """``side``'s lesions measured on its simulated thermometry (``basis="thermometry"``; empty without it)."""
        s = self._side(side)
        if s.side not in self._thermometry_lesions:
            dose = s.thermometry_dose_cem43
            names = None if self.targets is None else self.targets.label_names
            volumes = None if self.targets is None else self.targets.nucleus_volumes_mm3
            self._thermometry_lesions[s.side] = [] if dose is None else [
                measure_lesion(dose, s.grid, t, s.labels, names, volumes, side=s.side, basis="thermometry")
                for t in s.thresholds_cem43]
        return self._thermometry_lesions[s.side]

    def temperature_at(self, times_s, side: str | None = None) -> np.ndarray:
        """Temperature (C) on ``side``'s grid at ``times_s``: ``(n_t, *grid.shape)``."""
        return self._side(side).temperature_at(times_s)

    def sonication_peaks(self, side: str | None = None) -> list[dict]:
        """Time and focus temperature of each sonication's hottest moment (:func:`fusplan.timeline.sonication_peaks`)."""
        s = self._side(side)
        windows = timeline.sonication_windows([record.to_dict() for record in s.sonications])
        return timeline.sonication_peaks(s.focus_time_s, s.focus_temperature_c, windows)

    def focus_prior_block(self) -> dict:
        """The report's ``focus_prior`` block: the prior on the focal spread and each side's focal spot."""
        prior = self.first.focus_prior
        return {
            "applied": prior is not None,
            **({"name": None, "spread": [1.0, 1.0, 1.0], "source": None} if prior is None else prior.to_dict()),
            "setting": self.protocol.focus_prior if isinstance(self.protocol.focus_prior, str) else "protocol",
            "note": "the uncalibrated plan widens the physics heat source (diffraction, skull transmission and "
                    "residual aberration) by the prior along LR, AP, SI; calibration on measured thermometry "
                    "(--thermometry) fits the spread from the physics source instead (calibration.focal_spread, "
                    "prediction)",
            "focal_spot": [s.focal_spot() for s in self.sides.values()],
        }

    def to_dict(self) -> dict:
        """The contract's JSON report (plain Python types)."""
        from . import __version__

        sided = any(side is not None for side in self.sides)
        if self.targets is not None:
            head = self.targets.to_dict()
            targets = [t for t in head["targets"] if t["side"] in self.sides] or head["targets"]
            landmarks = head["landmarks"]
        else:
            targets = [{"name": "phantom focus", "ras_mm": [0.0, 0.0, 0.0], "acpc_mm": [0.0, 0.0, 0.0]}]
            landmarks = {}
        sonications = [record.to_dict() for s in self.sides.values() for record in s.sonications]
        lesions = []
        for side, s in self.sides.items():
            displayed = {r.threshold_cem43: r for r in self.thermometry_lesions(side)}
            for record in s.lesions:
                entry = record.to_dict()
                if record.threshold_cem43 in displayed:
                    entry["thermometry"] = displayed[record.threshold_cem43].sizes()
                lesions.append(describe_lesion(entry))
        first = self.first
        doc = {
            "fusplan_version": __version__,
            "protocol": self.protocol.name,
            "targets": targets,
            "landmarks": landmarks,
            "sonications": sonications,
            "focus": {"time_s": [float(t) for t in first.focus_time_s],
                      "temperature_c": [float(t) for t in first.focus_temperature_c]},
            "lesions": lesions,
        }
        if sided:
            doc["focus_by_side"] = {
                side: {"time_s": [float(t) for t in s.focus_time_s],
                       "temperature_c": [float(t) for t in s.focus_temperature_c]}
                for side, s in self.sides.items()
            }
        if first.skull is not None:
            doc["skull"] = first.skull.to_dict()
            if sided:
                doc["skull_by_side"] = {side: s.skull.to_dict() for side, s in self.sides.items()}
        doc["focus_prior"] = self.focus_prior_block()
        doc.update(report_blocks(self))
        if self.assessment is not None:
            self.assessment.update_report(doc)
        return doc
