"""The one protocol driver: a protocol's sonications -> pulses -> the bioheat pulse driver.

Every simulation of a protocol (the plan, :func:`fusplan.planner.simulate`; the
calibrated prediction, the uncertainty band and the demo's partial doses, through
:func:`fusplan.focusmodel.run_protocol`) turns sonications into pulses with
:func:`plan_pulses` (or re-drives the plan's pulses with :func:`redrive`) and runs them
with :func:`run_pulses`. So everywhere:

- which of ``power_w``, ``absorbed_power_w`` and ``peak_c`` drives a pulse is decided
  once (:func:`plan_pulses`);
- a titrated power is bounded by the console's maximum acoustic power
  (:data:`~fusplan.protocol.MAX_CONSOLE_ACOUSTIC_POWER_W`), and an ``absorbed_power_w``
  that needs more is refused;
- errors name the protocol entry (``"clt.yaml: sonication entry 3"``, :func:`sonication_keys`);
- the protocol's ``thermometry`` block sets what a titrated ``peak_c`` means.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from .bioheat import DriverSettings, Pulse, SpectralBioheat, ThermalHistory, simulate_pulses
from .errors import FusplanInputError
from .protocol import MAX_CONSOLE_ACOUSTIC_POWER_W
from .thermometry import resolve_thermometry

if TYPE_CHECKING:
    from .grid import Grid
    from .protocol import Protocol

__all__ = ["sonication_keys", "plan_pulses", "redrive", "driver_settings", "run_pulses"]


def sonication_keys(protocol: Protocol) -> list[str]:
    """``"<file>: sonication entry i"`` for every expanded sonication, as validation errors name it.

    ``i`` is the entry of the file's list, counted from 1 like every number shown to
    people (an entry with ``repeat: 3`` names three sonications).
    """
    label = protocol.source or "protocol"
    keys = []
    for i, entry in enumerate(protocol.spec.get("sonications", [])):
        repeat = entry.get("repeat", 1) if isinstance(entry, dict) else 1
        keys.extend([f"{label}: sonication entry {i + 1}"] * int(repeat))
    if len(keys) != len(protocol.sonications):  # a protocol built another way: count the expanded list
        keys = [f"{label}: sonication {s.index}" for s in protocol.sonications]
    return keys


def plan_pulses(protocol: Protocol, focus_keys: Sequence[Hashable],
                absorbed_per_w: Mapping[Hashable, float]) -> tuple[Pulse, ...]:
    """The protocol's sonications as pulses, back to back (each followed by its cooling).

    ``power_w`` drives a pulse at that emitted power; ``absorbed_power_w`` at the
    emitted power that deposits it (``absorbed_per_w[key]``: watts absorbed in the grid
    per watt emitted at that focus); ``peak_c`` leaves the power to the titration.

    Parameters
    ----------
    protocol : Protocol
    focus_keys : sequence of hashable
        Heat-source key of every sonication.
    absorbed_per_w : mapping key -> float

    Raises
    ------
    FusplanInputError
        An ``absorbed_power_w`` that needs more than the console's maximum acoustic
        power, naming the sonication's key.
    """
    pulses = []
    start = 0.0
    for sonication, key, name in zip(protocol.sonications, focus_keys, sonication_keys(protocol)):
        if sonication.power_w is not None:
            power = float(sonication.power_w)
        elif sonication.absorbed_power_w is not None:
            power = float(sonication.absorbed_power_w) / absorbed_per_w[key]
            if power > MAX_CONSOLE_ACOUSTIC_POWER_W:
                raise FusplanInputError(
                    f"{name}: absorbed_power_w {sonication.absorbed_power_w:g} W needs {power:.4g} W emitted, more "
                    f"than the console's maximum acoustic power of {MAX_CONSOLE_ACOUSTIC_POWER_W:g} W")
        else:
            power = None
        pulses.append(Pulse(start, sonication.duration_s, key, power, sonication.peak_c, sonication.cooling_s))
        start += sonication.duration_s + sonication.cooling_s
    return tuple(pulses)


def redrive(pulses: Sequence[Pulse], *, given_powers_w: Mapping[int, float] | None = None,
            peak_shift_c: Sequence[float] | None = None, titrate: bool = True) -> tuple[Pulse, ...]:
    """The plan's pulses (as simulated: titrated powers filled in) driven again.

    ``given_powers_w`` maps 1-based sonication indices to the powers actually given
    (e.g. measured ones); a titrated pulse (``peak_c``) without one is titrated again
    (``titrate``), to ``peak_c + peak_shift_c[i]`` when given (a thermometry reading
    error), or keeps its planned power (``titrate=False``); a pulse with a fixed power
    keeps it.
    """
    given = dict(given_powers_w or {})
    out = []
    for i, pulse in enumerate(pulses):
        if i + 1 in given:
            power, peak = float(given[i + 1]), None
        elif pulse.peak_c is None or not titrate:
            power, peak = pulse.power_w, None
        else:
            shift = 0.0 if peak_shift_c is None else float(peak_shift_c[i])
            power, peak = None, pulse.peak_c + shift
        out.append(dataclasses.replace(pulse, power_w=power, peak_c=peak))
    return tuple(out)


def driver_settings(protocol: Protocol, *, displayed: bool = False, **overrides) -> DriverSettings:
    """How the protocol's pulses are run: its thermometry block, the console bound, its keys.

    ``displayed`` also computes the maps MR thermometry would show, with the protocol's
    thermometry (else the clinical default, :func:`fusplan.thermometry.resolve_thermometry`).
    ``overrides`` replace other :class:`~fusplan.bioheat.DriverSettings` fields (e.g.
    ``dose_rtol``, ``dose_floor_c`` of a coarse run).
    """
    thermometry = protocol.thermometry
    return DriverSettings(
        thermometry_voxel_mm=None if thermometry is None else tuple(thermometry.voxel_mm),
        thermometry_frame_s=None if thermometry is None else float(thermometry.frame_s),
        max_power_w=MAX_CONSOLE_ACOUSTIC_POWER_W,  # titrated power is bounded by the console
        pulse_names=tuple(sonication_keys(protocol)),
        displayed=resolve_thermometry(thermometry) if displayed else None,
        **overrides,
    )


def run_pulses(protocol: Protocol, grid: Grid, tissue, sources: Mapping[Hashable, np.ndarray],
               pulses: Sequence[Pulse], *, threads: int, progress: Callable[[float, str], None] | None = None,
               translations: Mapping[Hashable, tuple[Hashable, tuple[int, int, int]]] | None = None,
               **overrides) -> ThermalHistory:
    """Titrate, sample the focus and integrate CEM43 for ``pulses`` of ``protocol`` on ``grid``.

    Parameters
    ----------
    protocol : Protocol
        Its thermometry block and keys (:func:`driver_settings`); ``pulses`` are its
        sonications (or their first ones), from :func:`plan_pulses` or :func:`redrive`.
    grid : Grid
    tissue : Tissue
    sources : mapping key -> ndarray
        Heat source (W/m^3 per W) of every focus key, on ``grid``.
    pulses : sequence of Pulse
    threads : int
        FFT worker threads (resolved by the entry point).
    progress : callable(fraction, message), optional
    translations : mapping key -> (base key, (i, j, k)), optional
        Sources that are another's translated by whole grid voxels (steered foci,
        :func:`fusplan.bioheat.simulate_pulses`).
    **overrides
        ``displayed`` and other :class:`~fusplan.bioheat.DriverSettings` fields
        (:func:`driver_settings`).

    Raises
    ------
    FusplanInputError
        A ``peak_c`` that cannot be reached (over the console's maximum acoustic power,
        no heating, already exceeded) naming the sonication's key, or a run over the
        memory budget.
    """
    end = max(p.start_s + p.duration_s + p.cooling_s for p in pulses)
    solver = SpectralBioheat(grid.shape, grid.spacing_mm, tissue, duration_s=end, threads=threads)
    return simulate_pulses(solver, sources, pulses, driver_settings(protocol, **overrides), progress=progress,
                           translations=translations)
