"""Simulate a staged sonication protocol: heat source, titration, temperature and dose.

:func:`simulate` runs a :class:`~fusplan.protocol.Protocol` either in a homogeneous
tissue phantom (focus at the grid centre, grid axes = RAS) or on a scan for every
located target (grid centred on the target, axes = the subject's AC-PC frame, beam
along the frame's superior axis). Per side it computes the heat source of every
distinct focus once (module cache, see :func:`clear_cache`), then lets
:func:`fusplan.bioheat.simulate_pulses` titrate ``peak_c`` sonications, sample the
focus curve and integrate CEM43 over the whole protocol. The
:class:`SimulationResult` keeps 3D maps on the grid (with its world affine) and
gives the contract's JSON via :meth:`SimulationResult.to_dict`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from . import timeline
from .acoustics import heat_source
from .bioheat import Pulse, SpectralBioheat, ThermalHistory, simulate_pulses
from .errors import FusplanInputError
from .grid import Grid
from .lesion import LesionRecord, measure_lesion
from .protocol import Protocol, Sonication

if TYPE_CHECKING:
    from .io import Scan
    from .targeting import Target, TargetingResult

__all__ = ["simulate", "SimulationResult", "SideResult", "SonicationRecord", "clear_cache"]

_SOURCE_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_CACHE_SIZE = 16


def clear_cache() -> None:
    """Forget cached heat sources."""
    _SOURCE_CACHE.clear()


def _heat_source(transducer, grid: Grid, focus_mm, tissue, geometric_focus_mm, beam_axis,
                 threads: int | None = None, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Per-watt heat source, cached by transducer, tissue, grid and focus position."""
    key = (
        repr(transducer), repr(tissue), grid.shape, grid.affine.round(9).tobytes(),
        tuple(np.round(focus_mm, 6)), tuple(np.round(geometric_focus_mm, 6)), tuple(np.round(beam_axis, 9)),
    )
    if key in _SOURCE_CACHE:
        _SOURCE_CACHE.move_to_end(key)
        return _SOURCE_CACHE[key]
    q = np.asarray(
        heat_source(transducer, grid, np.asarray(focus_mm, float), tissue,
                    geometric_focus_mm=np.asarray(geometric_focus_mm, float), beam_axis=np.asarray(beam_axis, float),
                    threads=threads, progress=progress),
        dtype=float,
    )
    _SOURCE_CACHE[key] = q
    while len(_SOURCE_CACHE) > _CACHE_SIZE:
        _SOURCE_CACHE.popitem(last=False)
    return q


@dataclass(frozen=True)
class SonicationRecord:
    """What one sonication did: titrated power, energy and peak temperatures.

    ``side`` is None in the phantom; ``thermometry_peak_c`` is None without a
    thermometry block in the protocol.
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

    def to_dict(self) -> dict:
        """Contract ``sonications`` entry (``side`` and ``thermometry_peak_c`` only when set)."""
        doc = {"index": self.index, "stage": self.stage}
        if self.side is not None:
            doc["side"] = self.side
        doc.update(power_w=self.power_w, absorbed_power_w=self.absorbed_power_w, duration_s=self.duration_s,
                   cooling_s=self.cooling_s, energy_j=self.energy_j, peak_temperature_c=self.peak_temperature_c)
        if self.thermometry_peak_c is not None:
            doc["thermometry_peak_c"] = self.thermometry_peak_c
        return doc


@dataclass
class SideResult:
    """Simulation of one target (one side; ``side`` and ``target`` None in the phantom)."""

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

    @property
    def lesion_masks(self) -> dict[float, np.ndarray]:
        """``dose_cem43 >= threshold`` for every reported threshold."""
        return {t: self.dose_cem43 >= t for t in self.thresholds_cem43}

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
    """Result of :func:`simulate`: per-side maps and records, contract JSON via :meth:`to_dict`."""

    protocol: Protocol
    sides: dict[str | None, SideResult]
    scan: Scan | None = None
    targets: TargetingResult | None = None

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

    def temperature_at(self, times_s, side: str | None = None) -> np.ndarray:
        """Temperature (C) on ``side``'s grid at ``times_s``: ``(n_t, *grid.shape)``."""
        return self._side(side).temperature_at(times_s)

    def sonication_peaks(self, side: str | None = None) -> list[dict]:
        """Time and focus temperature of each sonication's hottest moment (:func:`fusplan.timeline.sonication_peaks`)."""
        s = self._side(side)
        windows = timeline.sonication_windows([record.to_dict() for record in s.sonications])
        return timeline.sonication_peaks(s.focus_time_s, s.focus_temperature_c, windows)

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
        lesions = [record.to_dict() for s in self.sides.values() for record in s.lesions]
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
        return doc


def _offset_world(sonication: Sonication, frame_axes: np.ndarray) -> np.ndarray:
    if sonication.offset_mm is None:
        return np.zeros(3)
    offset = np.asarray(sonication.offset_mm, dtype=float)
    return offset if sonication.offset_frame == "ras" else frame_axes @ offset


def _simulate_side(protocol: Protocol, target: Target | None, targets: TargetingResult | None,
                   progress: Callable[[float, str], None], span: tuple[float, float],
                   threads: int | None = None) -> SideResult:
    """One side (``target`` None: the phantom, focus at the origin, grid axes = RAS)."""
    side = None if target is None else target.side
    centre_mm = np.zeros(3) if target is None else np.asarray(target.ras_mm, dtype=float)
    frame_axes = np.eye(3) if targets is None else np.asarray(targets.frame.axes, dtype=float)
    tissue = protocol.tissue
    grid = Grid.centred(centre_mm, protocol.extent_mm, protocol.spacing_mm, axes=frame_axes)
    beam_axis = grid.axes[:, 2]
    lo, hi = span
    label = f"heat source ({side or 'phantom'})"
    progress(lo, label)
    n_foci = len({tuple(np.round(centre_mm + _offset_world(s, frame_axes), 6)) for s in protocol.sonications})
    sources: dict[tuple, np.ndarray] = {}
    absorbed_per_w: dict[tuple, float] = {}
    voxel_m3 = (grid.spacing_mm * 1e-3) ** 3
    pulses = []
    start = 0.0
    for sonication in protocol.sonications:
        focus = centre_mm + _offset_world(sonication, frame_axes)
        key = tuple(np.round(focus, 6))
        if key not in sources:
            share = (hi - lo) * 0.3 / n_foci  # heat sources take the first 30 % of the side's span
            start_of_focus = lo + share * len(sources)
            sources[key] = _heat_source(protocol.transducer, grid, focus, tissue, centre_mm, beam_axis, threads,
                                        lambda f, m: progress(start_of_focus + share * f, f"{label}: {m}"))
            absorbed_per_w[key] = float(sources[key].sum() * voxel_m3)
        if sonication.power_w is not None:
            power = float(sonication.power_w)
        elif sonication.absorbed_power_w is not None:
            power = float(sonication.absorbed_power_w) / absorbed_per_w[key]
        else:
            power = None
        pulses.append(Pulse(start, sonication.duration_s, key, power, sonication.peak_c, sonication.cooling_s))
        start += sonication.duration_s + sonication.cooling_s
    solver = SpectralBioheat(grid.shape, grid.spacing_mm, tissue, duration_s=start)
    thermometry = protocol.thermometry
    progress(lo + 0.3 * (hi - lo), f"bioheat ({side or 'phantom'})")
    history = simulate_pulses(
        solver, sources, pulses,
        thermometry_voxel_mm=None if thermometry is None else tuple(thermometry.voxel_mm),
        thermometry_frame_s=None if thermometry is None else float(thermometry.frame_s),
        threads=threads,
    )
    records = [
        SonicationRecord(
            index=sonication.index, stage=sonication.stage, power_w=float(res.power_w),
            absorbed_power_w=float(res.power_w * absorbed_per_w[pulse.source]),
            duration_s=float(sonication.duration_s), cooling_s=float(sonication.cooling_s),
            energy_j=float(res.power_w * sonication.duration_s), peak_temperature_c=float(res.peak_temperature_c),
            thermometry_peak_c=None if thermometry is None else float(res.thermometry_peak_c), side=side,
        )
        for sonication, pulse, res in zip(protocol.sonications, history.pulses, history.results)
    ]
    progress(lo + 0.9 * (hi - lo), f"lesions ({side or 'phantom'})")
    labels = label_names = nucleus_volumes = None
    if targets is not None:
        labels = targets.labels_on_grid(grid)
        label_names = targets.label_names
        nucleus_volumes = targets.nucleus_volumes_mm3
    lesions = [
        measure_lesion(history.dose_cem43, grid, threshold, labels, label_names, nucleus_volumes, side=side)
        for threshold in protocol.thresholds_cem43
    ]
    return SideResult(side, target, grid, history.peak_temperature_c, history.dose_cem43, records,
                      history.focus_time_s, history.focus_temperature_c, lesions,
                      tuple(protocol.thresholds_cem43), history, solver, history.spectra, labels)


def simulate(protocol: Protocol, scan: Scan | None = None, targets: TargetingResult | None = None, *,
             sides: Sequence[str] | None = None,
             progress: Callable[[float, str], None] | None = None,
             threads: int | None = None) -> SimulationResult:
    """Simulate ``protocol`` in the phantom or at located targets.

    Parameters
    ----------
    protocol : Protocol
        From :func:`fusplan.load_protocol`.
    scan : Scan, optional
        The scan ``targets`` were located on (kept in the result for figures).
        Given without ``targets`` it is an error: locate them first with
        :func:`fusplan.targeting.locate_targets` (the top-level
        :func:`fusplan.simulate` does that for you).
    targets : TargetingResult, optional
        Targets to plan at; without them the protocol runs in a homogeneous
        phantom centred on the origin.
    sides : sequence of str, optional
        Restrict to these sides (default: every target).
    progress : callable(fraction, message), optional
    threads : int, optional
        Threads for the field and FFT work (default: :func:`fusplan.threads.resolve_threads`).

    Returns
    -------
    SimulationResult

    Raises
    ------
    FusplanInputError
        ``scan`` without ``targets``, or no target on the requested sides.
    """
    say = progress or (lambda fraction, message: None)
    if scan is not None and targets is None:
        raise FusplanInputError("simulate: a scan needs targets; locate them first (fusplan.locate_targets)")
    if targets is None:
        side = _simulate_side(protocol, None, None, say, (0.0, 1.0), threads)
        say(1.0, "done")
        return SimulationResult(protocol, {None: side}, scan=scan, targets=None)
    chosen = [t for t in targets.targets if sides is None or t.side in sides]
    if not chosen:
        raise FusplanInputError(f"no target for sides {list(sides)}; have {[t.side for t in targets.targets]}")
    results = {}
    for i, target in enumerate(chosen):
        span = (i / len(chosen), (i + 1) / len(chosen))
        results[target.side] = _simulate_side(protocol, target, targets, say, span, threads)
    say(1.0, "done")
    return SimulationResult(protocol, results, scan=scan, targets=targets)
