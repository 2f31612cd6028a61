"""Pulse driver: titrate each sonication, sample the focus, integrate CEM43.

:func:`simulate_pulses` works on a "hot box" (where a source's response reaches 5% of
its maximum, grown by the thermometry kernel; afterwards checked to contain every voxel
above ``dose_floor_c``, else enlarged and rerun). It titrates each ``peak_c`` pulse in
turn by a 1D root solve (the field is ``A(t) + p B(t)``: linear in the power of the
current pulse, ``A`` holding the heat left by earlier pulses), samples the focus curve,
and integrates CEM43 on the voxels that exceed ``dose_floor_c`` with adaptive steps
(step doubling on the exact linear-in-step integral, batched, in chunks of voxels).
Full-grid maps outside the hot voxels come from exact k-space snapshots at pulse ends
and 20 s into cooling.

Bounded resources. Memory does not grow with the protocol's length: the dose
integration runs over chunks of voxels sized to :data:`CEM43_CHUNK_BYTES`, and the
response tables grow with the logarithm of the duration. It grows linearly with the
number of distinct foci (one table and one spectrum each): the cost is estimated
before any table is built and a protocol over ``memory_budget_bytes`` (default
:data:`DEFAULT_MEMORY_BUDGET_BYTES`, 2 GiB) is refused naming the keys that set it.
Every titration terminates: a source that does not heat the focus, or a target that
needs more than ``max_power_w``, is refused naming the key.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from fusplan.dose import adaptive_cem43, cem43_nodes, cem43_step
from fusplan.errors import FusplanInputError
from fusplan.thermometry import box_kernel_1d

from .displayed import displayed_maps
from .run import DriverSettings, HotBox, RunContext, pulse_powers
from .spectral import Pulse, SpectralBioheat
from .tables import ResponseTable, box_indices, table_build_bytes, table_bytes, table_rise
from .titration import PulseResult, titrate

__all__ = ["CEM43_CHUNK_BYTES", "ThermalHistory", "simulate_pulses"]

#: Temporary memory of one chunk of the adaptive CEM43 integration.
CEM43_CHUNK_BYTES = 128 * 1024**2
_BOX_FRACTION = 0.05  # hot box: where a source's response reaches 5 % of its maximum
_CORE_FRACTION = 0.3  # candidate voxels for the peak


@dataclass
class ThermalHistory:
    """Result of :func:`simulate_pulses` on one grid.

    ``thermometry_peak_c`` and ``thermometry_dose_cem43`` are the peak and dose MR
    thermometry would show (:mod:`fusplan.bioheat.displayed`; None unless asked for with
    ``DriverSettings.displayed``).
    """

    pulses: tuple[Pulse, ...]
    results: list[PulseResult]
    focus_time_s: np.ndarray
    focus_temperature_c: np.ndarray
    peak_temperature_c: np.ndarray
    dose_cem43: np.ndarray
    spectra: dict = field(default_factory=dict, repr=False)
    stats: dict = field(default_factory=dict)
    thermometry_peak_c: np.ndarray | None = None
    thermometry_dose_cem43: np.ndarray | None = None
    #: The solver the history was computed with (its grid, tissue and padding: what ``spectra`` mean).
    solver: SpectralBioheat | None = field(default=None, repr=False)
    #: The ``translations`` of the run (sources that are another's whole-voxel translate).
    translations: dict = field(default_factory=dict, repr=False)


def simulate_pulses(
    solver: SpectralBioheat,
    sources: Mapping[Hashable, np.ndarray],
    pulses: Sequence[Pulse],
    settings: DriverSettings | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
    threads: int | None = None,
    translations: Mapping[Hashable, tuple[Hashable, tuple[int, int, int]]] | None = None,
) -> ThermalHistory:
    """Simulate a sequence of pulses: titrate, sample the focus, integrate CEM43.

    Parameters
    ----------
    solver : SpectralBioheat
    sources : mapping key -> ndarray
        Heat source (W/m^3 per W) of every distinct focus, on the solver's grid.
    pulses : sequence of Pulse
        In time order; ``power_w=None`` with ``peak_c`` titrates that pulse so that its
        peak (thermometry-equivalent if ``settings.thermometry_voxel_mm`` is given)
        equals ``peak_c``.
    settings : DriverSettings, optional
        The thermometry model, the dose floor, sampling and tolerances, the memory
        budget, the largest power a titration may reach and the pulses' names in
        messages (default: :class:`DriverSettings`'s defaults; a protocol's come from
        :func:`fusplan.driver.driver_settings`).
    progress : callable(fraction, message), optional
        Told the fraction done at each phase.
    threads : int, optional
        FFT worker threads (default: the solver's).
    translations : mapping key -> (base key, (i, j, k)), optional
        Sources that are another source translated by whole voxels along the grid axes
        (up to what enters or leaves the grid): their response tables are the base's, moved
        (one table build per group instead of one per source).

    Raises
    ------
    FusplanInputError
        A ``peak_c`` that cannot be reached (already exceeded, no heating, over
        ``settings.max_power_w``) or a protocol over the memory budget.
    """
    solver = solver.with_threads(threads)
    settings = DriverSettings() if settings is None else settings
    say = progress or (lambda fraction, message: None)
    t_end = max(p.start_s + p.duration_s + p.cooling_s for p in pulses)
    shape = solver.shape
    spectra = {key: solver.spectrum(q) for key, q in sources.items()}
    run = RunContext(solver, spectra, pulses, settings, t_end, dict(translations or {}))
    lo, hi, cores = _initial_box(run)
    stats = {"padded_shape": solver.padded_shape}
    for attempt in range(4):
        lo = np.maximum(lo - _box_margin(run), 0)
        hi = np.minimum(hi + _box_margin(run), shape)
        _check_memory(run, tuple(int(v) for v in hi - lo))
        say(0.1 + 0.2 * attempt, f"bioheat: response tables on {tuple(hi - lo)} voxels")
        tick = time.perf_counter()
        box = _build_box(run, lo, hi, cores)
        stats["table_seconds"] = time.perf_counter() - tick
        history = _run_once(run, box)
        # Every voxel that got hotter than the dose floor must lie inside the box (not on its rim).
        hot = np.argwhere(history.peak_temperature_c >= settings.dose_floor_c - 0.5)
        inner_lo = np.where(lo > 0, lo + 1, 0)
        inner_hi = np.where(hi < shape, hi - 1, shape)
        if hot.size == 0 or (np.all(hot.min(0) >= inner_lo) and np.all(hot.max(0) < inner_hi)):
            _add_displayed_maps(run, box, history)  # only on the box that holds the heating
            history.stats.update(stats, box_shape=box.shape, attempts=attempt + 1)
            history.spectra = spectra
            history.solver = solver
            history.translations = run.translations
            say(1.0, "bioheat: done")
            return history
        lo = np.minimum(lo, hot.min(0))
        hi = np.maximum(hi, hot.max(0) + 1)
    raise RuntimeError("bioheat: the heated region keeps growing past the hot box")


# ----------------------------------------------------------------------------- hot box


def _box_margin(run: RunContext) -> list[int]:
    """Voxels added around the hot box: the thermometry kernel's half width + 2 (at least 3)."""
    voxels = [run.settings.thermometry_voxel_mm, None if run.settings.displayed is None else run.settings.displayed[0]]
    halves = np.zeros(3, int)
    for voxel in voxels:
        if voxel is not None:
            halves = np.maximum(halves, [box_kernel_1d(w, run.solver.spacing_mm).size // 2 for w in voxel])
    return [max(3, int(h) + 2) for h in halves]


def _initial_box(run: RunContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box where any source's response after the longest pulse is >= 5 % of its max, and the cores."""
    solver = run.solver
    gain = solver.step_gain(max(p.duration_s for p in run.pulses))
    lo, hi = np.array(solver.shape), np.zeros(3, int)
    core = np.zeros(solver.shape, bool)
    for spec in run.spectra.values():
        f = solver.field(gain * spec)
        peak = f.max()
        if not peak > 0:
            continue  # a source that does not heat: no hot region
        where = np.argwhere(f >= _BOX_FRACTION * peak)
        lo = np.minimum(lo, where.min(0))
        hi = np.maximum(hi, where.max(0) + 1)
        core |= f >= _CORE_FRACTION * peak
    if not core.any():  # nothing heats: a small box at the grid centre
        centre = np.array(solver.shape) // 2
        lo, hi = centre, centre + 1
        core[tuple(centre)] = True
    return lo, hi, core


def _check_memory(run: RunContext, box_shape) -> None:
    """Refuse a run whose tables, spectra and maps would exceed the memory budget."""
    solver = run.solver
    n_sources = len(run.spectra)
    box_voxels = int(np.prod(box_shape))
    spectrum = int(np.prod(solver.lam.shape)) * 16
    grid = int(np.prod(solver.shape)) * 8
    need = (
        n_sources * (table_bytes(run.t_end + 1.0, box_voxels) + spectrum)
        + table_build_bytes(solver, run.t_end + 1.0, box_shape)
        + 8 * grid + 3 * spectrum  # full-grid maps and the k-space state of the snapshots
        + CEM43_CHUNK_BYTES
    )
    budget = run.settings.memory_budget_bytes
    if need > budget:
        raise FusplanInputError(
            f"sonications: {n_sources} distinct foci over {run.t_end:g} s on a {box_shape} voxel hot box need "
            f"~{need / 1024**2:.0f} MiB in the thermal solver (budget {budget / 1024**2:.0f} MiB): use fewer "
            "distinct foci (offset_mm), lower power_w, a coarser grid.spacing_mm or a smaller grid.extent_mm")


def _build_tables(run: RunContext, lo, hi) -> dict:
    """Response tables of every source on the box ``lo <= index < hi``.

    A source that is another's translate by whole voxels (``run.translations``) responds as
    that source moved by the same shift (the equation is translation invariant), so its
    table is the other's on the box moved back: one table is built per group, on the box
    grown to cover every member's shift (a group whose grown box leaves the grid builds its
    members one by one). What enters or leaves the grid at its faces with the translation
    (the beam's weak far field, >= 15 mm from the hot box) is neglected in the box.
    """
    solver, tau_max_s = run.solver, run.t_end + 1.0
    groups: dict = {}
    for key in run.spectra:
        base, shift = run.translations.get(key, (key, (0, 0, 0)))
        base = base if base in run.spectra else key
        groups.setdefault(base, []).append((key, np.asarray(shift if base != key else (0, 0, 0), int)))
    shape = np.array(solver.shape)
    tables = {}
    for base, members in groups.items():
        shifts = np.array([shift for _, shift in members])
        big_lo, big_hi = lo - shifts.max(0), hi - shifts.min(0)
        if len(members) == 1 or np.any(big_lo < 0) or np.any(big_hi > shape):
            tables.update({key: ResponseTable.build(solver, run.spectra[key], lo, hi, tau_max_s) for key, _ in members})
            continue
        big = ResponseTable.build(solver, run.spectra[base], big_lo, big_hi, tau_max_s)
        voxels = box_indices(solver.shape, lo, hi)
        for key, shift in members:
            tables[key] = big.sub_box(tuple(big_hi - big_lo), lo - shift - big_lo, tuple(hi - lo), voxels)
    return tables


def _build_box(run: RunContext, lo, hi, core: np.ndarray) -> HotBox:
    solver = run.solver
    tables = _build_tables(run, lo, hi)
    box = HotBox(lo, hi, tables, np.array([], int), {}, None)
    box.core_positions = np.flatnonzero(core[box.slices])
    box.core_tables = {key: t.subset(box.core_positions) for key, t in tables.items()}
    voxel = run.settings.thermometry_voxel_mm
    if voxel is not None:
        # Averaging commutes with superposition: average the tables once.
        box.thermometry_tables = {key: t.voxel_averaged(box.shape, solver.spacing_mm, voxel).subset(box.core_positions)
                                  for key, t in tables.items()}
    return box


# ----------------------------------------------------------------------------- one run


def _run_once(run: RunContext, box: HotBox) -> ThermalHistory:
    clock = {}
    tick = time.perf_counter()
    powers, results = titrate(run, box)
    clock["titration"] = time.perf_counter() - tick
    done = tuple(Pulse(p.start_s, p.duration_s, p.source, pw, p.peak_c, p.cooling_s) for p, pw in zip(run.pulses, powers))

    tick = time.perf_counter()
    focus_t, focus_c = _focus_curve(run, box, done)
    clock["focus"] = time.perf_counter() - tick

    tick = time.perf_counter()
    peak_full, dose_full = _snapshots(run, done)
    clock["snapshots"] = time.perf_counter() - tick

    tick = time.perf_counter()
    box_peak = _box_peak(run, box, done, peak_full)
    clock["box_peak"] = time.perf_counter() - tick

    tick = time.perf_counter()
    n_eval, n_hot = _box_dose(run, box, done, box_peak, peak_full, dose_full)
    clock["dose"] = time.perf_counter() - tick
    stats = {"dose_times": n_eval, "hot_voxels": n_hot, "core_voxels": int(box.core_positions.size), "seconds": clock}
    return ThermalHistory(done, results, focus_t, focus_c, peak_full, dose_full, stats=stats)


def _add_displayed_maps(run: RunContext, box: HotBox, history: ThermalHistory) -> None:
    """The displayed (thermometry-averaged) peak and dose maps, once the hot box holds the heating."""
    if run.settings.displayed is None:
        return
    tick = time.perf_counter()
    history.thermometry_peak_c, history.thermometry_dose_cem43 = displayed_maps(
        run, box, history.pulses, history.peak_temperature_c, history.dose_cem43, *run.settings.displayed)
    history.stats["seconds"]["displayed"] = time.perf_counter() - tick


# ----------------------------------------------------------------------------- maps


def _focus_curve(run: RunContext, box: HotBox, done: Sequence[Pulse]) -> tuple[np.ndarray, np.ndarray]:
    """Hottest core voxel, every ``focus_interval_s`` while on, coarser in cooling."""
    interval = run.settings.focus_interval_s
    events = _events(run, done)
    focus_t = [0.0]
    for a, b in zip(events[:-1], events[1:]):
        on = any(p.start_s <= a < p.start_s + p.duration_s for p in done)
        if on:
            n = int(math.ceil((b - a) / interval - 1e-9))
            focus_t += list(np.linspace(a, b, n + 1)[1:])
        else:
            fine = np.arange(interval, min(10.0, b - a), interval)
            coarse = np.arange(10.0, b - a, 2.0)
            focus_t += list(a + np.concatenate([fine, coarse])) + [b]
    focus_t = np.unique(np.array(focus_t))
    focus_c = np.empty(focus_t.size)
    powers = pulse_powers(done)
    for s in range(0, focus_t.size, 256):
        tt = focus_t[s : s + 256]
        focus_c[s : s + 256] = (table_rise(box.core_tables, done, tt, powers) + run.offset(tt)).max(1)
    return focus_t, focus_c


def _events(run: RunContext, done: Sequence[Pulse]) -> list[float]:
    """Times where a source switches (``dT/dt`` jumps)."""
    return sorted({0.0, run.t_end, *[p.start_s for p in done], *[p.start_s + p.duration_s for p in done]})


def _snapshots(run: RunContext, done: Sequence[Pulse]) -> tuple[np.ndarray, np.ndarray]:
    """Peak and coarse dose on the full grid from exact k-space snapshots.

    At the end of every pulse, 20 s into its cooling (where voxels a few mm out peak)
    and at the end (state propagated exactly in k-space, fields in float32). Voxels
    below ``dose_floor_c - 1`` in both snapshots of a step (< 0.25**5 CEM43 per
    minute) are skipped.
    """
    solver = run.solver
    tissue = solver.tissue
    negligible_c = run.settings.dose_floor_c - 1.0
    ends = [p.start_s + p.duration_s for p in done]
    late = [e + min(p.cooling_s, 20.0) for e, p in zip(ends, done)]
    snap_t = np.array(sorted({0.0, run.t_end, *ends, *late}))
    state = np.zeros(solver.lam.shape, complex)
    peak_full = np.full(solver.shape, tissue.baseline_temperature_c)
    dose_full = np.zeros(solver.shape)
    prev_t, prev_field = 0.0, np.full(solver.shape, tissue.baseline_temperature_c)
    for t in snap_t[1:]:
        state = solver.decay(t - prev_t) * state
        for p in done:
            a, b = max(p.start_s, prev_t), min(p.start_s + p.duration_s, t)
            if b > a and p.power_w:
                state += p.power_w * solver.decay(t - b) * solver.step_gain(b - a) * run.spectra[p.source]
        f = solver.field(state.astype(np.complex64)) + (run.base_rise(t) + run.t_art)
        np.maximum(peak_full, f, out=peak_full)
        warm = np.maximum(prev_field, f) >= negligible_c
        dose_full[warm] += cem43_step(prev_field[warm], f[warm], t - prev_t)
        prev_t, prev_field = t, f
    return peak_full, dose_full


def _box_peak(run: RunContext, box: HotBox, done: Sequence[Pulse], peak_full: np.ndarray) -> np.ndarray:
    """Peak over the box from the tables: every pulse end and 0.5-64 s into its cooling."""
    ends = [p.start_s + p.duration_s for p in done]
    box_t = np.unique([e + dt for e, p in zip(ends, done) for dt in (0.0, 0.5, 1, 2, 4, 8, 16, 32, 64)
                       if dt <= p.cooling_s])
    box_peak = peak_full[box.slices].ravel().copy()
    powers = pulse_powers(done)
    for i in range(0, box_t.size, 16):
        tt = box_t[i : i + 16]
        sampled = table_rise(box.tables, done, tt, powers) + run.offset(tt)
        np.maximum(box_peak, sampled.max(0), out=box_peak)
    return box_peak


def _box_dose(run: RunContext, box: HotBox, done: Sequence[Pulse], box_peak: np.ndarray, peak_full: np.ndarray,
              dose_full: np.ndarray) -> tuple[int, int]:
    """Adaptive CEM43 on the box voxels that get hot, in chunks of voxels; updates the maps.

    Returns the number of times evaluated (summed over chunks) and of hot voxels.
    """
    hot = np.flatnonzero(box_peak >= run.settings.dose_floor_c)
    events = _events(run, done)
    powers = pulse_powers(done)
    # ~16 float64 arrays of (times, voxels) live at once in a round of the integration
    chunk = max(64, CEM43_CHUNK_BYTES // (16 * 8 * cem43_nodes(events).size))
    box_dose = dose_full[box.slices].ravel().copy()
    n_eval = 0
    for start in range(0, hot.size, chunk):
        positions = hot[start:start + chunk]
        tables = {key: t.subset(positions) for key, t in box.tables.items()}

        def temps(tt, tables=tables):
            return table_rise(tables, done, tt, powers) + run.offset(tt)

        dose, peak, n = adaptive_cem43(temps, events, rtol=run.settings.dose_rtol)
        box_dose[positions] = dose
        box_peak[positions] = np.maximum(box_peak[positions], peak)
        n_eval += n
    dose_full[box.slices] = box_dose.reshape(box.shape)
    peak_full[box.slices] = box_peak.reshape(box.shape)
    return n_eval, int(hot.size)
