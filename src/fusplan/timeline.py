"""The timeline of a planned procedure: sonication records, their windows, the focus curve and its peaks.

Typed values every consumer reads (figures, teaching text, the demo, the napari plugin,
the batch summary) instead of the JSON report's dicts:

- :class:`SonicationRecord`: what one sonication did (one ``sonications`` entry of the
  report; :meth:`SonicationRecord.from_dict` reads one back from ``report.json``);
- :class:`SonicationWindow`: a record with its start, end of heating and end of cooling;
- :class:`FocusCurve`: the hottest point's temperature against time, and the dose it
  accumulates;
- :class:`Peak`: the hottest focus moment of a sonication or of a stage;
- :class:`Timeline`: one side's records and focus curve, with the windows, peaks and
  "what is happening at time t".

A live result gives its timeline (:meth:`fusplan.results.SideResult.timeline`); a saved
report gives the same one (:meth:`Timeline.from_report`). Sonications are numbered
from 1, as in the protocol file's ``sonications[]`` order and every message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from collections.abc import Mapping

import numpy as np

__all__ = ["FocusCurve", "Peak", "SonicationRecord", "SonicationWindow", "Timeline"]


@dataclass(frozen=True)
class SonicationRecord:
    """What one sonication did: titrated power, energy and peak temperatures.

    ``index`` counts from 1. ``side`` is None in the phantom; ``thermometry_peak_c`` is
    None without a thermometry block in the protocol. With a skull model ``power_w`` is
    the emitted acoustic power titrated through the skull, ``transmitted_power_w`` the
    part that enters the brain and ``skull_absorbed_power_w`` the part absorbed in the
    bone (emitted x (1 - transmission - reflection),
    :attr:`fusplan.skull.SkullModel.energy_absorbed_in_skull`); both None without a
    skull model. ``heat_source`` says how the focus's heat source was found: ``"computed"``
    (its own field, and skull trace) or ``"translated"`` (the target's, moved by a steering
    offset within ``transducer.steering``'s limit); None when not known (older reports).
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
    heat_source: str | None = None

    @property
    def skull_absorbed_energy_j(self) -> float | None:
        """Energy absorbed in the bone over the sonication (None without a skull model)."""
        return None if self.skull_absorbed_power_w is None else self.skull_absorbed_power_w * self.duration_s

    def to_dict(self) -> dict:
        """Contract ``sonications`` entry (``side``, ``thermometry_peak_c`` and the skull powers only when set)."""
        doc = {"index": self.index, "stage": self.stage}
        if self.side is not None:
            doc["side"] = self.side
        doc.update(power_w=self.power_w, absorbed_power_w=self.absorbed_power_w, duration_s=self.duration_s,
                   cooling_s=self.cooling_s, energy_j=self.energy_j, peak_temperature_c=self.peak_temperature_c)
        if self.thermometry_peak_c is not None:
            doc["thermometry_peak_c"] = self.thermometry_peak_c
        if self.heat_source is not None:
            doc["heat_source"] = self.heat_source
        if self.skull_absorbed_power_w is not None:
            doc.update(transmitted_power_w=self.transmitted_power_w, skull_absorbed_power_w=self.skull_absorbed_power_w,
                       skull_absorbed_energy_j=self.skull_absorbed_energy_j)
        return doc

    @classmethod
    def from_dict(cls, entry: Mapping) -> SonicationRecord:
        """A record from a ``sonications`` entry of a JSON report (inverse of :meth:`to_dict`)."""
        def number(key):
            value = entry.get(key)
            return None if value is None else float(value)

        return cls(index=int(entry["index"]), stage=str(entry["stage"]), power_w=number("power_w"),
                   absorbed_power_w=number("absorbed_power_w"), duration_s=float(entry["duration_s"]),
                   cooling_s=float(entry.get("cooling_s") or 0.0), energy_j=number("energy_j"),
                   peak_temperature_c=number("peak_temperature_c"), thermometry_peak_c=number("thermometry_peak_c"),
                   side=entry.get("side"), transmitted_power_w=number("transmitted_power_w"),
                   skull_absorbed_power_w=number("skull_absorbed_power_w"), heat_source=entry.get("heat_source"))


@dataclass(frozen=True)
class SonicationWindow:
    """A sonication on the clock: heating from ``start_s`` to ``on_end_s``, cooling until ``end_s`` (s)."""

    record: SonicationRecord
    start_s: float
    on_end_s: float
    end_s: float

    @property
    def index(self) -> int:
        return self.record.index

    @property
    def stage(self) -> str:
        return self.record.stage

    def contains(self, time_s: float) -> bool:
        """Whether ``time_s`` falls in this sonication's heating or cooling."""
        return self.start_s <= time_s <= self.end_s


@dataclass(frozen=True)
class Peak:
    """The hottest focus moment of a sonication (or of a stage: its hottest sonication's)."""

    sonication: int
    stage: str
    time_s: float
    temperature_c: float


@dataclass(frozen=True, eq=False)
class FocusCurve:
    """Temperature of the hottest point (the focus) against time."""

    time_s: np.ndarray
    temperature_c: np.ndarray

    @cached_property
    def dose_cem43(self) -> np.ndarray:
        """CEM43 accumulated up to every sample (exact per step, :func:`fusplan.dose.cem43_step`)."""
        from .dose import cem43_step

        steps = cem43_step(self.temperature_c[:-1], self.temperature_c[1:], np.diff(self.time_s))
        return np.concatenate([[0.0], np.cumsum(steps)])

    def dose_at(self, time_s: float) -> float:
        """Dose accumulated at the focus by ``time_s`` (interpolated between samples)."""
        return float(np.interp(time_s, self.time_s, self.dose_cem43))

    @classmethod
    def from_dict(cls, entry: Mapping) -> FocusCurve:
        """From a report's ``focus`` block (``time_s``, ``temperature_c`` lists)."""
        return cls(np.asarray(entry["time_s"], dtype=float), np.asarray(entry["temperature_c"], dtype=float))


@dataclass(frozen=True, eq=False)
class Timeline:
    """One side's sonications on the clock and its focus curve.

    Sonications follow each other: sonication ``i`` starts when the cooling of
    sonication ``i - 1`` ends, the first at 0 s.
    """

    sonications: tuple[SonicationRecord, ...]
    focus: FocusCurve
    side: str | None = None
    _windows: tuple[SonicationWindow, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        windows, start = [], 0.0
        for record in self.sonications:
            on_end = start + float(record.duration_s)
            end = on_end + float(record.cooling_s or 0.0)
            windows.append(SonicationWindow(record, start, on_end, end))
            start = end
        object.__setattr__(self, "_windows", tuple(windows))

    @classmethod
    def from_report(cls, report: Mapping, side: str | None = None) -> Timeline:
        """The timeline of ``side`` (default the first) in a JSON report (``to_dict()`` or ``report.json``)."""
        entries = list(report.get("sonications", []))
        by_side = report.get("focus_by_side") or {}
        if side is None and by_side:
            side = next(iter(by_side))
        if side is not None and any("side" in e for e in entries):
            entries = [e for e in entries if e.get("side") == side]
        focus = by_side.get(side) if side is not None and side in by_side else report["focus"]
        return cls(tuple(SonicationRecord.from_dict(e) for e in entries), FocusCurve.from_dict(focus), side)

    @property
    def windows(self) -> tuple[SonicationWindow, ...]:
        """Every sonication with its start, end of heating and end of cooling."""
        return self._windows

    @property
    def has_thermometry(self) -> bool:
        """Whether the sonications carry thermometry peaks."""
        return any(r.thermometry_peak_c is not None for r in self.sonications)

    def window(self, index: int) -> SonicationWindow:
        """The window of sonication ``index`` (1-based)."""
        for w in self._windows:
            if w.index == index:
                return w
        raise KeyError(f"no sonication {index} (have {[w.index for w in self._windows]})")

    def sonication_peaks(self) -> list[Peak]:
        """Hottest focus moment of every sonication (its heating and cooling) with samples inside it."""
        t, c = self.focus.time_s, self.focus.temperature_c
        peaks = []
        for w in self._windows:
            inside = (t >= w.start_s) & (t <= w.end_s)
            if inside.any():
                k = np.flatnonzero(inside)[np.argmax(c[inside])]
                peaks.append(Peak(w.index, w.stage, float(t[k]), float(c[k])))
        return peaks

    def stage_peaks(self) -> list[Peak]:
        """Hottest focus moment of each stage, in time order (the earliest sonication if two are equally hot)."""
        best: dict[str, Peak] = {}
        for peak in self.sonication_peaks():
            known = best.get(peak.stage)
            if known is None or peak.temperature_c > known.temperature_c:
                best[peak.stage] = peak
        return sorted(best.values(), key=lambda p: p.time_s)

    def stages(self) -> list[str]:
        """The stages present, in the order they first appear."""
        return list(dict.fromkeys(r.stage for r in self.sonications))

    def stage_members(self, stage: str) -> list[SonicationWindow]:
        """The windows of ``stage``'s sonications."""
        return [w for w in self._windows if w.stage == stage]

    def dose_after(self, index: int) -> float:
        """Focus dose accumulated by the end of sonication ``index`` (1-based, its cooling included)."""
        return self.focus.dose_at(self.window(index).end_s)

    def label(self, record: SonicationRecord) -> str:
        """``"treatment 2 (sonication 5)"``: the stage, its ordinal when it has several, and the sonication."""
        members = self.stage_members(record.stage)
        ordinal = next(n for n, w in enumerate(members, start=1) if w.index == record.index)
        return f"{record.stage}{f' {ordinal}' if len(members) > 1 else ''} (sonication {record.index})"

    def stage_at(self, time_s: float) -> str:
        """What happens at ``time_s``: ``"treatment 2 (sonication 5): sonicating"``, ``"... : cooling"``."""
        for w in self._windows:
            if w.start_s <= time_s <= w.on_end_s:  # the peak is at the end of sonicating
                return f"{self.label(w.record)}: sonicating"
            if w.on_end_s <= time_s < w.end_s or (w is self._windows[-1] and time_s >= w.end_s):
                return f"{self.label(w.record)}: cooling"
        return "before the first sonication"

