"""Typed results of :func:`fusplan.planner.simulate`: per-sonication records, per-side maps, the whole run.

:class:`SimulationResult` keeps the 3D maps on each side's grid (with its world affine)
and gives the contract's JSON via :meth:`SimulationResult.to_dict`;
:class:`SideResult` holds one target's maps, records and solver state (for exact
temperatures at any time, :meth:`SideResult.temperature_at`; for its sonications on the
clock and its focus curve, :attr:`SideResult.timeline`). :class:`SonicationRecord`
(:mod:`fusplan.timeline`) is one ``sonications`` entry of the report.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import thresholds
from .bioheat import SpectralBioheat, ThermalHistory, simulate_pulses
from .clinical import describe_lesion, report_blocks
from .driver import redrive
from .focusmodel import SIGMA_PER_FWHM, source_sigma_mm
from .grid import Grid
from .lesion import LesionRecord, measure_lesion
from .protocol import FocusPrior, Protocol
from .skull import SkullCT, SkullModel
from .timeline import FocusCurve, Peak, SonicationRecord, Timeline

if TYPE_CHECKING:
    from .io import Scan
    from .targeting import Target, TargetingResult

__all__ = ["Region", "AssessmentBlocks", "SonicationRecord", "SideResult", "SimulationResult", "regions_from_report"]


@dataclass(frozen=True)
class AssessmentBlocks:
    """What the assessment step adds to the report, handed down as plain output data.

    :func:`fusplan.assessment.assess` builds it once, so the result neither imports nor
    calls the step above it. ``report`` holds the ``calibration``, ``prediction`` and
    ``uncertainty`` blocks (each only when computed); ``lesion_uncertainty`` maps
    ``(threshold_cem43, side)`` to the band's entry for that lesion
    (:meth:`fusplan.uncertainty.UncertaintyBand.lesion_uncertainty`); ``calibrated``: the
    bands describe the calibrated prediction (``report["prediction"]``), not the plan.
    """

    report: dict[str, Any]
    lesion_uncertainty: dict[tuple[float, str | None], dict] = field(default_factory=dict)
    calibrated: bool = False

    def add_to(self, doc: dict) -> None:
        """Add the blocks to ``doc`` and each band to its lesion entry (in place)."""
        doc.update(self.report)
        lesions = doc["prediction"]["lesions"] if self.calibrated else doc.get("lesions", [])
        for entry in lesions:
            band = self.lesion_uncertainty.get((entry.get("threshold_cem43"), entry.get("side")))
            if band is not None:
                entry["uncertainty"] = band


@dataclass(frozen=True)
class Region:
    """One dose region of a side: its measured lesion, what it means clinically, its band when computed.

    ``lesion`` is measured on the true field, ``thermometry`` (None without it) on the
    simulated MR thermometry (``basis="thermometry"``). ``meaning`` is
    :func:`fusplan.thresholds.meaning` (None for a threshold without a clinical
    counterpart); ``uncertainty`` is the band's percentiles, coverage, spill and
    explanation (:meth:`fusplan.uncertainty.UncertaintyBand.lesion_uncertainty`) when
    the band describes this region, else None.
    """

    lesion: LesionRecord
    meaning: str | None = None
    uncertainty: dict | None = None
    thermometry: LesionRecord | None = None

    @property
    def threshold_cem43(self) -> float:
        return float(self.lesion.threshold_cem43)

    @property
    def side(self) -> str | None:
        return self.lesion.side


def regions_from_report(report: dict, side: str | None = None) -> list[Region]:
    """The :class:`Region` list of ``side`` (every side when None) read back from a JSON report."""
    fields = {f.name for f in dataclasses.fields(LesionRecord)}
    regions = []
    for entry in report.get("lesions", []):
        if side is not None and entry.get("side") not in (None, side):
            continue
        lesion = LesionRecord(**{k: v for k, v in entry.items() if k in fields})
        displayed = entry.get("thermometry")
        thermometry = None if not displayed else LesionRecord(
            lesion.threshold_cem43, side=lesion.side, **{k: v for k, v in displayed.items() if k in fields})
        regions.append(Region(lesion, thresholds.meaning(lesion.threshold_cem43), entry.get("uncertainty"),
                              thermometry))
    return sorted(regions, key=lambda r: (r.side or "", r.threshold_cem43))


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

    @property
    def timeline(self) -> Timeline:
        """The sonications on the clock and the focus curve (windows, peaks, stage at a time)."""
        return Timeline(tuple(self.sonications), FocusCurve(self.focus_time_s, self.focus_temperature_c), self.side)

    def dose_after(self, index: int) -> np.ndarray:
        """CEM43 on the grid accumulated by the end of sonication ``index`` (1-based, its cooling included).

        The heat equation is causal and linear: up to then the temperature history is
        that of the first ``index`` titrated pulses alone. They are integrated again on
        this side's solver with their titrated powers and heat sources (recovered
        exactly from the stored spectra), with no acoustics, skull model or titration.
        """
        pulses = self.history.pulses
        if index >= len(pulses):
            return np.asarray(self.dose_cem43)
        kept = redrive(pulses[:index], titrate=False)  # the titrated powers, fixed
        capacity = self.solver.tissue.heat_capacity_j_m3_k
        sources = {key: self.solver.field(self.spectra[key]) * capacity for key in {p.source for p in kept}}
        return np.asarray(simulate_pulses(self.solver, sources, kept).dose_cem43)


@dataclass
class SimulationResult:
    """Result of :func:`simulate`: per-side maps and records, contract JSON via :meth:`to_dict`.

    ``assessment`` (set by :func:`fusplan.assessment.assess`, an :class:`AssessmentBlocks`)
    adds the calibration, the calibrated prediction and the uncertainty band to the report.
    """

    protocol: Protocol
    sides: dict[str | None, SideResult]
    scan: Scan | None = None
    targets: TargetingResult | None = None
    assessment: AssessmentBlocks | None = None
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

    def timeline(self, side: str | None = None) -> Timeline:
        """``side``'s sonications on the clock and focus curve (:attr:`SideResult.timeline`)."""
        return self._side(side).timeline

    def sonication_peaks(self, side: str | None = None) -> list[Peak]:
        """Time and focus temperature of each sonication's hottest moment (:meth:`Timeline.sonication_peaks`)."""
        return self.timeline(side).sonication_peaks()

    def regions(self, side: str | None = None) -> list[Region]:
        """``side``'s dose regions, in ascending threshold order, with their meaning and band.

        The band is put on the plan's region only without a calibration (with one it
        describes the calibrated prediction, ``report["prediction"]``).
        """
        s = self._side(side)
        bands = {}
        if self.assessment is not None and not self.assessment.calibrated:
            bands = self.assessment.lesion_uncertainty
        displayed = {r.threshold_cem43: r for r in self.thermometry_lesions(side)}
        return [Region(lesion, thresholds.meaning(lesion.threshold_cem43),
                       bands.get((lesion.threshold_cem43, s.side)), displayed.get(lesion.threshold_cem43))
                for lesion in sorted(s.lesions, key=lambda r: r.threshold_cem43)]

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
        from ._version import __version__

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
            def treatment_j(s: SideResult) -> list[float]:
                return [r.energy_j for r in s.sonications if r.stage == "treatment"]

            doc["skull"] = first.skull.to_dict(treatment_j(first))
            if sided:
                doc["skull_by_side"] = {side: s.skull.to_dict(treatment_j(s)) for side, s in self.sides.items()}
        doc["focus_prior"] = self.focus_prior_block()
        doc.update(report_blocks(self))
        if self.assessment is not None:
            self.assessment.add_to(doc)
        return doc
