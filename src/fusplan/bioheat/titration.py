"""Titration: the power of each ``peak_c`` pulse, by a 1D root solve that always ends.

The field during a pulse is ``A(t) + p B(t)`` on the candidate peak voxels: linear in
the power ``p`` of the current pulse, ``A`` holding the heat left by earlier pulses;
the (true or thermometry) peak over the pulse's window is monotonic in ``p``, so a
bracket and Brent's method find the power. A source that does not heat the focus, a
peak already exceeded by leftover heat, or a power over ``max_power_w`` is refused
(FusplanInputError naming the key) instead of searching without end.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq

from fusplan.errors import FusplanInputError
from fusplan.thermometry import frame_average

from .run import HotBox, RunContext
from .spectral import Pulse
from .tables import table_rise

__all__ = ["MAX_TRUE_PEAK_C", "PulseResult", "titrate"]

#: A source whose focus rises less than this per watt (K/W) does not heat (e.g. no absorption).
NO_HEATING_K_PER_W = 1e-12
#: Highest true peak temperature a ``peak_c`` titrated on thermometry may need (C): water
#: boils at 100 C, where the bioheat model (no phase change, no cavitation) stops being
#: physics; the protocol's own ``peak_c`` is bounded by the same value
#: (:data:`fusplan.protocol.limits.MAX_PEAK_C`).
MAX_TRUE_PEAK_C = 100.0


@dataclass
class PulseResult:
    """What happened during one pulse and its cooling."""

    power_w: float
    peak_temperature_c: float
    thermometry_peak_c: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def titrate(run: RunContext, box: HotBox) -> tuple[list[float], list[PulseResult]]:
    """Power and peaks of every pulse in turn (titrated where ``power_w`` is None)."""
    powers: list[float] = []
    results: list[PulseResult] = []
    for i in range(len(run.pulses)):
        power, result = _titrate_pulse(run, box, i, powers)
        powers.append(power)
        results.append(result)
    return powers, results


def _pulse_window(pulse: Pulse, frame_s: float) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Uniform times ending exactly at the end of the pulse, from one frame before it
    starts to a frame (+2 s) into the cooling: the peak of a pulse (true or frame
    averaged) is reached in that window; afterwards the field only cools.

    Returns the times, the mask of times from the pulse start on, the frame length in
    steps and the step.
    """
    end = pulse.start_s + pulse.duration_s
    n_frame = int(math.ceil(frame_s / 0.1 - 1e-9))
    step = frame_s / n_frame if n_frame else 0.1
    after = min(pulse.cooling_s, frame_s + 2.0)
    k = np.arange(-int(math.ceil((pulse.duration_s + frame_s) / step - 1e-9)), int(math.floor(after / step + 1e-9)) + 1)
    times = end + step * k  # may start before 0: nothing has happened there yet
    return times, times >= pulse.start_s - 1e-9, n_frame, step


def _titrate_pulse(run: RunContext, box: HotBox, i: int, powers: list[float]) -> tuple[float, PulseResult]:
    pulse = run.pulses[i]
    earlier = run.pulses[:i]
    frame = run.settings.thermometry_frame_s or 0.0
    times, in_window, n_frame, step = _pulse_window(pulse, frame)
    offset = run.offset(times)
    # peak over the window is max(a + power * b): linear in this pulse's power
    a_true = (table_rise(box.core_tables, earlier, times, powers) + offset)[in_window]
    b_true = table_rise(box.core_tables, [pulse], times, [1.0])[in_window]
    a_th = b_th = None
    if box.thermometry_tables is not None:
        complete = in_window[n_frame:]  # windows ending at or after the pulse start
        a_th = frame_average(table_rise(box.thermometry_tables, earlier, times, powers) + offset, step, frame)[complete]
        b_th = frame_average(table_rise(box.thermometry_tables, [pulse], times, [1.0]), step, frame)[complete]

    def measures(power: float) -> tuple[float, float | None]:
        true_peak = float((a_true + power * b_true).max())
        if a_th is None:
            return true_peak, None
        return true_peak, float((a_th + power * b_th).max())

    if pulse.power_w is not None:
        power = float(pulse.power_w)
    else:
        power = _solve_power(run, i, measures, b_true if b_th is None else b_th, 0 if a_th is None else 1)
    true_peak, th_peak = measures(power)
    if true_peak > MAX_TRUE_PEAK_C:
        _refuse_boiling(run, i, true_peak, titrated_on_thermometry=pulse.power_w is None and th_peak is not None)
    return power, PulseResult(power, true_peak, th_peak)


def _refuse_boiling(run: RunContext, i: int, true_peak_c: float, titrated_on_thermometry: bool) -> None:
    """A pulse whose true peak passes :data:`MAX_TRUE_PEAK_C`: the bioheat model no longer holds
    (and its CEM43 overflows); with a ``peak_c`` titrated on thermometry, the thermometry
    averages the focus away."""
    settings = run.settings
    names = settings.pulse_names
    label = names[i] if names else f"sonication {i + 1}"
    boils = f"a true peak of {true_peak_c:.0f} C (above {MAX_TRUE_PEAK_C:g} C, tissue boils)"
    if titrated_on_thermometry:
        voxel = " x ".join(f"{v:g}" for v in settings.thermometry_voxel_mm or ())
        raise FusplanInputError(
            f"{label}: peak_c {run.pulses[i].peak_c:g} C on thermometry of {voxel} mm voxels and "
            f"{settings.thermometry_frame_s:g} s frames needs {boils}: the thermometry is coarser than the focus; "
            "give a smaller thermometry.voxel_mm or frame_s, or a lower peak_c")
    raise FusplanInputError(f"{label}: the power given heats the focus to {boils}: give a lower power")


def _solve_power(run: RunContext, i: int, measures, unit: np.ndarray, which: int) -> float:
    """The power whose (true or thermometry) peak equals the pulse's ``peak_c``; always terminates."""
    peak_c = run.pulses[i].peak_c
    names = run.settings.pulse_names
    label = f"{names[i] if names else f'sonication {i + 1}'}: peak_c {peak_c:g} C"
    f0 = measures(0.0)[which] - peak_c
    if f0 >= 0:
        raise FusplanInputError(
            f"{label} is not reachable: heat left from earlier sonications already gives {f0 + peak_c:.2f} C "
            "(lengthen the cooling or raise peak_c)")
    unit_max = float(unit.max()) if unit.size else 0.0
    if not unit_max > NO_HEATING_K_PER_W:
        raise FusplanInputError(
            f"{label} is not reachable: the heat source does not heat the focus "
            "(tissue.attenuation_np_m is 0 or the source is empty)")
    limit = run.settings.max_power_w
    hi = -f0 / unit_max  # the hottest voxel alone would need this
    while measures(hi)[which] < peak_c:
        hi *= 2
        if (limit is not None and hi > 2 * limit) or not math.isfinite(hi) or hi > 1e15:
            break
    if measures(hi)[which] < peak_c or (limit is not None and measures(limit)[which] < peak_c):
        bound = f"max_power_w {limit:g} W" if limit is not None else "any finite power"
        raise FusplanInputError(f"{label} is not reachable with {bound}")
    return brentq(lambda w: measures(w)[which] - peak_c, 0.0, hi, xtol=1e-9 * hi, rtol=1e-12)
