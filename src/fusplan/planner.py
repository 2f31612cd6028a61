"""Simulate a staged sonication protocol: heat source, titration, temperature and dose.

:func:`simulate` runs a :class:`~fusplan.protocol.Protocol` either in a homogeneous
tissue phantom (focus at the grid centre, grid axes = RAS) or on a scan for every
located target (grid centred on the target, axes = the subject's AC-PC frame, beam
along the frame's superior axis). Per side it computes the heat source of every
distinct focus once (shared across runs through the caller's
:class:`~fusplan.execution.HeatSourceCache`, ``execution.heat_sources``; a focus steered
within 2 mm of the target takes the target's, translated: ``transducer.steering``), then the
protocol driver (:mod:`fusplan.driver`: pulses, console bound, key-named errors) lets
:func:`fusplan.bioheat.simulate_pulses` titrate ``peak_c`` sonications, sample the
focus curve and integrate CEM43 over the whole protocol.

Skull: with a skull model (``transducer.skull``; default ``ct`` when ``skull_ct`` is
given, ``population`` on a scan, ``none`` in the phantom) every computed focus gets a
:func:`fusplan.skull.model_skull` trace, and its heat source is driven through the skull
(:func:`fusplan.skull.skull_drive`: per-element transmission, phase, refracted sources)
instead of ``skull_transmission``; titrated powers are then emitted powers through this
skull, and each sonication also reports the power transmitted into the brain and absorbed
in the bone. The array's natural focus sits at the target, its axis along the planning
frame's superior axis tilted by ``transducer.tilt_deg``. A head that does not fit the
array (skin closer than the water-gap margin to an element) is simulated and reported
(``skull.head_fit`` and a warning), not refused: the fit is judged from the CT's skin,
which a population template or a CT's field of view only approximates, and the plan of a
tilted or repositioned array is what the user needs to see next. The result types live
in :mod:`fusplan.results`: :class:`SimulationResult` keeps 3D maps on the grid (with its
world affine) and gives the contract's JSON via :meth:`SimulationResult.to_dict`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from collections.abc import Callable, Sequence

import numpy as np

from .acoustics import HEMISPHERICAL_ARRAY, heat_source
from .acoustics.transducer import TRANSLATION_LIMIT_MM
from .driver import plan_pulses, run_pulses
from .errors import FusplanInputError
from .execution import ExecutionOptions, HeatSourceCache, execution_options
from .focusmodel import transform_source
from .grid import Grid
from .lesion import measure_lesion
from .protocol import Protocol, Sonication
from .results import SideResult, SimulationResult, SonicationRecord
from .skull import BoneAcoustics, SkullCT, SkullModel, model_skull, population_skull, skull_drive, tilted_axis

if TYPE_CHECKING:
    from .io import Scan
    from .targeting import Target, TargetingResult

__all__ = ["simulate", "SimulationResult", "SideResult", "SonicationRecord", "focus_heat_source"]


def focus_heat_source(transducer, grid: Grid, focus_mm, tissue, geometric_focus_mm, beam_axis, *, threads: int,
                      drive=None, cache: HeatSourceCache | None = None,
                      progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Per-watt heat source of one focus (:func:`fusplan.acoustics.heat_source`), through ``cache`` if given.

    The cache key holds the transducer, tissue, grid, focus, array position and skull
    drive, so a cached source never outlives any of them.
    """
    key = (
        repr(transducer), repr(tissue), grid.shape, grid.affine.round(9).tobytes(),
        tuple(np.round(focus_mm, 6)), tuple(np.round(geometric_focus_mm, 6)), tuple(np.round(beam_axis, 9)),
        None if drive is None else drive.key,
    )
    cached = None if cache is None else cache.get(key)
    if cached is not None:
        return cached
    q = np.asarray(
        heat_source(transducer, grid, np.asarray(focus_mm, float), tissue,
                    geometric_focus_mm=np.asarray(geometric_focus_mm, float), beam_axis=np.asarray(beam_axis, float),
                    threads=threads, progress=progress, drive=None if drive is None else drive.element_drive),
        dtype=float,
    )
    if cache is not None:
        cache.put(key, q)
    return q


def _offset_world(sonication: Sonication, frame_axes: np.ndarray) -> np.ndarray:
    if sonication.offset_mm is None:
        return np.zeros(3)
    offset = np.asarray(sonication.offset_mm, dtype=float)
    return offset if sonication.offset_frame == "ras" else frame_axes @ offset


def _resolve_skull(protocol: Protocol, targets: TargetingResult | None, skull_ct: SkullCT | None) -> SkullCT | None:
    """The skull to trace (None: ``skull_transmission`` as before), from ``transducer.skull``."""
    transducer = protocol.transducer
    mode = transducer.skull
    if mode is None:
        if skull_ct is not None:
            mode = "ct"
        else:
            mode = "population" if targets is not None and transducer.kind.elements else "none"
    if mode == "none":
        return None
    if not transducer.kind.elements:
        raise FusplanInputError(f"a skull CT needs transducer.model {HEMISPHERICAL_ARRAY} (got {transducer.model})")
    if mode == "ct":
        if skull_ct is None:
            raise FusplanInputError("transducer.skull is ct but no CT was given (--ct CT)")
        return skull_ct
    if targets is None:
        raise FusplanInputError("transducer.skull population needs a scan with targets (the phantom has no head)")
    return population_skull(targets.registration)


class _SkullPath:
    """Per-focus skull models and drives of one side (the array stays put; steering moves the focus)."""

    def __init__(self, ct: SkullCT, transducer, geometric_focus_mm: np.ndarray, beam_axis: np.ndarray):
        from .acoustics import element_layout

        self.ct, self.transducer = ct, transducer
        self.centres, self.normals = element_layout(transducer, geometric_focus_mm, beam_axis)
        self.models: dict[tuple, SkullModel] = {}
        # the field through the skull: the skull's transmission and phase come from the trace
        self.field_transducer = replace(transducer, skull_transmission=1.0, phase_aberration_std_rad=0.0)

    def model(self, focus_mm: np.ndarray) -> SkullModel:
        key = _key(focus_mm)
        if key not in self.models:
            self.models[key] = model_skull(self.ct, self.centres, focus_mm, self.transducer.frequency_khz * 1e3,
                                           phase_correction=self.transducer.phase_correction,
                                           bone=BoneAcoustics(mapping=self.transducer.bone_mapping),
                                           aberration_seed=self.transducer.aberration_seed,
                                           sdr_band=not self.models)  # the band at the array's natural focus only
        return self.models[key]

    def drive(self, focus_mm: np.ndarray):
        return skull_drive(self.model(focus_mm), self.normals, seed=self.transducer.aberration_seed)


class _Steering:
    """Which foci of a side take the target's heat source translated (``transducer.steering``).

    With ``steering: translate`` a focus steered from the target by at most
    :data:`~fusplan.acoustics.transducer.TRANSLATION_LIMIT_MM` gets the target's per-watt
    source moved by the offset (:func:`~fusplan.focusmodel.transform_source`); electronic
    steering by a few mm moves the focal pattern with the focus, and the skull patch the
    beams cross barely changes (tests/test_steering.py measures both against the recomputed source).
    """

    def __init__(self, transducer, target_mm: np.ndarray):
        self.translate = transducer.steering == "translate"
        self.target_mm = np.asarray(target_mm, dtype=float)

    def translated(self, focus_mm: np.ndarray) -> bool:
        """True when ``focus_mm``'s source is the target's, translated."""
        distance = float(np.linalg.norm(np.asarray(focus_mm, float) - self.target_mm))
        return self.translate and 1e-6 < distance <= TRANSLATION_LIMIT_MM + 1e-9

    def reference(self, focus_mm: np.ndarray) -> np.ndarray:
        """The focus whose source is computed for ``focus_mm``: the target, or itself."""
        return self.target_mm if self.translated(focus_mm) else np.asarray(focus_mm, dtype=float)

    def voxel_shifts(self, foci: Sequence[np.ndarray], grid: Grid) -> dict:
        """``{focus key: (target key, (i, j, k))}`` for the translated foci whose offset is whole
        grid voxels (the thermal solver then shares the target's response table)."""
        shifts = {}
        for focus in foci:
            if self.translated(focus):
                voxels = grid.axes.T @ (np.asarray(focus, float) - self.target_mm) / grid.spacing_mm
                if np.allclose(voxels, np.round(voxels), atol=1e-6):
                    shifts[_key(focus)] = (_key(self.target_mm), tuple(int(v) for v in np.round(voxels)))
        return shifts


def _key(focus_mm) -> tuple:
    """The dictionary key of a focus (world mm, rounded to 1 nm)."""
    return tuple(np.round(focus_mm, 6))


def _simulate_side(protocol: Protocol, target: Target | None, targets: TargetingResult | None,
                   options: ExecutionOptions, span: tuple[float, float], skull_ct: SkullCT | None = None) -> SideResult:
    """One side (``target`` None: the phantom, focus at the origin, grid axes = RAS)."""
    progress = options.say
    side = None if target is None else target.side
    centre_mm = np.zeros(3) if target is None else np.asarray(target.ras_mm, dtype=float)
    frame_axes = np.eye(3) if targets is None else np.asarray(targets.frame.axes, dtype=float)
    tissue = protocol.tissue
    grid = Grid.centred(centre_mm, protocol.extent_mm, protocol.spacing_mm, axes=frame_axes)
    beam_axis = grid.axes @ tilted_axis(*protocol.transducer.tilt_deg)
    lo, hi = span
    skull = None if skull_ct is None else _SkullPath(skull_ct, protocol.transducer, centre_mm, beam_axis)
    if skull is not None:
        progress(lo, f"skull ray tracing ({side or 'phantom'})")
        skull.model(centre_mm)
    label = f"heat source ({side or 'phantom'})"
    progress(lo, label)
    foci = [centre_mm + _offset_world(s, frame_axes) for s in protocol.sonications]
    keys = [_key(focus) for focus in foci]
    steering = _Steering(protocol.transducer, centre_mm)
    computed = {_key(f): f for f in map(steering.reference, foci)}  # in protocol order
    physics: dict[tuple, np.ndarray] = {}
    for i, (key, focus) in enumerate(computed.items()):
        share = (hi - lo) * 0.3 / len(computed)  # heat sources take the first 30 % of the side's span

        def report(fraction: float, message: str, start: float = lo + share * i, share: float = share) -> None:
            progress(start + share * fraction, f"{label}: {message}")
        transducer, drive = (protocol.transducer, None) if skull is None else (skull.field_transducer,
                                                                             skull.drive(focus))
        physics[key] = focus_heat_source(transducer, grid, focus, tissue, centre_mm, beam_axis, threads=options.threads,
                                         drive=drive, cache=options.heat_sources, progress=report)
    for focus, key in zip(foci, keys):
        if key not in physics:  # steered within the translation limit: the target's source, moved
            reference = steering.reference(focus)
            physics[key] = transform_source(physics[_key(reference)], grid,
                                            offset_ras_mm=focus - reference)
    prior = protocol.resolved_focus_prior(head=skull is not None and target is not None)
    sources: dict[tuple, np.ndarray] = {}
    absorbed_per_w: dict[tuple, float] = {}
    voxel_m3 = (grid.spacing_mm * 1e-3) ** 3
    for key in keys:
        if key not in sources:  # the residual of real heads beyond the physics (Protocol.focus_prior)
            sources[key] = physics[key] if prior is None else transform_source(physics[key], grid, spread=prior.spread)
            absorbed_per_w[key] = float(sources[key].sum() * voxel_m3)
    pulses = plan_pulses(protocol, keys, absorbed_per_w)
    thermometry = protocol.thermometry
    progress(lo + 0.3 * (hi - lo), f"bioheat ({side or 'phantom'})")
    history = run_pulses(protocol, grid, tissue, sources, pulses, threads=options.threads,
                         translations=steering.voxel_shifts(foci, grid),
                         displayed=True)  # lesions on the basis the thresholds were made on
    records = [
        SonicationRecord(
            index=sonication.index, stage=sonication.stage, power_w=float(res.power_w),
            absorbed_power_w=float(res.power_w * absorbed_per_w[key]),
            duration_s=float(sonication.duration_s), cooling_s=float(sonication.cooling_s),
            energy_j=float(res.power_w * sonication.duration_s), peak_temperature_c=float(res.peak_temperature_c),
            thermometry_peak_c=None if thermometry is None else float(res.thermometry_peak_c), side=side,
            heat_source="translated" if steering.translated(focus) else "computed",
            **({} if skull is None else _skull_powers(skull.model(steering.reference(focus)), float(res.power_w))),
        )
        for sonication, focus, key, res in zip(protocol.sonications, foci, keys, history.results)
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
                      tuple(protocol.thresholds_cem43), history, history.solver, history.spectra, labels,
                      skull=None if skull is None else skull.model(centre_mm),
                      focus_prior=prior, physics_sources=None if prior is None else {k: physics[k] for k in sources})


def _skull_powers(model: SkullModel, power_w: float) -> dict:
    """Power entering the brain and absorbed in the bone for ``power_w`` emitted."""
    return {"transmitted_power_w": power_w * model.energy_transmission,
            "skull_absorbed_power_w": power_w * model.energy_absorbed_in_skull}


def simulate(protocol: Protocol, scan: Scan | None = None, targets: TargetingResult | None = None, *,
             sides: Sequence[str] | None = None,
             progress: Callable[[float, str], None] | None = None,
             threads: int | None = None, skull_ct: SkullCT | None = None,
             execution: ExecutionOptions | None = None) -> SimulationResult:
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
        Overrides ``execution.progress``.
    threads : int, optional
        Threads for the field and FFT work; overrides ``execution.threads`` (default:
        :func:`fusplan.threads.resolve_threads`).
    skull_ct : fusplan.skull.SkullCT, optional
        The patient's head CT, samplable at subject world mm (registered with
        :func:`fusplan.skull.register_ct_to_mr` and :meth:`~fusplan.skull.CtRegistration.apply`).
        Without it, ``transducer.skull`` defaults to the population skull on a scan
        (:func:`fusplan.skull.population_skull` through ``targets.registration``) and to
        none in the phantom (where a CT, e.g. a synthetic shell, lives in grid world mm).
    execution : fusplan.execution.ExecutionOptions, optional
        Threads, progress and a heat-source cache shared with the caller's other runs
        (resolved here once).

    Returns
    -------
    SimulationResult

    Raises
    ------
    FusplanInputError
        ``scan`` without ``targets``, no target on the requested sides, a skull
        choice the inputs cannot serve, or a CT that does not cover the skull cap.
    """
    options = execution_options(execution, threads=threads, progress=progress)
    say = options.say
    if scan is not None and targets is None:
        raise FusplanInputError("simulate: a scan needs targets; locate them first (fusplan.locate_targets)")
    skull_ct = _resolve_skull(protocol, targets, skull_ct)
    if targets is None:
        side = _simulate_side(protocol, None, None, options, (0.0, 1.0), skull_ct)
        say(1.0, "done")
        return SimulationResult(protocol, {None: side}, scan=scan, targets=None, skull_ct=skull_ct)
    chosen = [t for t in targets.targets if sides is None or t.side in sides]
    if not chosen:
        raise FusplanInputError(f"no target for sides {list(sides)}; have {[t.side for t in targets.targets]}")
    results = {}
    for i, target in enumerate(chosen):
        span = (i / len(chosen), (i + 1) / len(chosen))
        results[target.side] = _simulate_side(protocol, target, targets, options, span, skull_ct)
    say(1.0, "done")
    return SimulationResult(protocol, results, scan=scan, targets=targets, skull_ct=skull_ct)
