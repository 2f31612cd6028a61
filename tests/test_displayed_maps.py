"""Displayed maps from voxel-averaged response tables against averaging every sample.

:func:`fusplan.bioheat.displayed.displayed_maps` averages the response tables over the
thermometry voxel once (averaging commutes with the superposition of step responses).
Oracle: the driver's own tables evaluated at every display sample on the whole hot box,
each sample voxel-averaged (:func:`voxel_average`), then frame-averaged, its CEM43 and
maximum. Tolerances: the peak to float rounding (1e-9 relative) where it reaches the
dose floor; the dose to 1e-9 relative plus what the steps skipped below the floor can
add, at most the whole protocol at the floor (the code skips voxels and stretches
within 1 C of the floor; a stretch's window may reach back past its start).
"""
import math

import numpy as np
import pytest

import fusplan.bioheat.pulses as driver
from fusplan.bioheat import DriverSettings, Pulse, SpectralBioheat, simulate_pulses, table_rise
from fusplan.bioheat.displayed import DISPLAY_STEP_S
from fusplan.bioheat.run import pulse_powers
from fusplan.dose import cem43, cem43_rate
from fusplan.grid import Grid
from fusplan.thermometry import frame_average, voxel_average
from fusplan.tissue import TISSUE_PRESETS

VOXEL_MM = (1.1, 1.1, 3.0)
FRAME_S = 3.5


def _gaussian(grid, centre_mm):
    x, y, z = grid.local_coordinates_mm()
    q = np.exp(-((x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2) / (2 * 0.6**2) - (z - centre_mm[2]) ** 2 / (2 * 1.5**2))
    return q / ((0.5e-3) ** 3 * q.sum())  # 1 W absorbed


def _simulate(cooling_s: float, monkeypatch):
    """Two foci, three pulses; returns the history and the arguments displayed_maps was given."""
    grid = Grid.centred((0, 0, 0), 12.0, 0.5)
    sources = {"a": _gaussian(grid, (0, 0, 0)), "b": _gaussian(grid, (1.0, 0, 0))}
    pulses, start = [], 0.0
    for key, power_w in (("a", 0.3), ("b", 0.5), ("a", 0.5)):
        pulses.append(Pulse(start, 8.0, key, power_w, cooling_s=cooling_s))
        start += 8.0 + cooling_s
    solver = SpectralBioheat(grid.shape, 0.5, TISSUE_PRESETS["brain"], duration_s=start)
    calls = []
    displayed_maps = driver.displayed_maps

    def recording(*args):
        calls.append(args)
        return displayed_maps(*args)

    monkeypatch.setattr(driver, "displayed_maps", recording)
    history = simulate_pulses(solver, sources, pulses, DriverSettings(displayed=(VOXEL_MM, FRAME_S)))
    return history, calls[0]


def _oracle(run, box, done):
    """Displayed temperature on the whole hot box (time, voxel), its step and its CEM43."""
    n_w = int(math.ceil(FRAME_S / DISPLAY_STEP_S - 1e-9))
    step = FRAME_S / n_w
    times = step * np.arange(-n_w, int(math.ceil(run.t_end / step)) + 1)
    rise = table_rise(box.tables, done, times, pulse_powers(done)).reshape(times.size, *box.shape)
    averaged = voxel_average(rise, run.solver.spacing_mm, VOXEL_MM, first_axis=1).reshape(times.size, -1)
    framed = frame_average(averaged, step, FRAME_S) + run.offset(times[n_w:])
    return framed, step, cem43(framed, step)


@pytest.mark.parametrize("cooling_s", [12.0, 120.0])
def test_averaged_tables_match_averaging_every_sample(cooling_s, monkeypatch):
    history, (run, box, done, *_) = _simulate(cooling_s, monkeypatch)
    framed, step, want_dose = _oracle(run, box, done)
    want_peak = framed.max(0)
    floor_c = run.settings.dose_floor_c
    shown = want_peak >= floor_c  # where the thresholds are read
    assert shown.sum() > 50
    got_peak = history.thermometry_peak_c[box.slices].ravel()
    got_dose = history.thermometry_dose_cem43[box.slices].ravel()
    np.testing.assert_allclose(got_peak[shown], want_peak[shown], rtol=1e-9)
    bound = run.t_end / 60.0 * float(cem43_rate(floor_c))  # the whole protocol at the floor
    np.testing.assert_allclose(got_dose[shown], want_dose[shown], rtol=1e-9, atol=bound)
    cold = framed.max(1) < floor_c - 1.0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], cold.astype(int), [0]])))
    longest = (edges[1::2] - edges[::2]).max()
    chunk = 64  # samples per stretch the code skips when all of them are cold
    assert (longest >= 2 * chunk) == (cooling_s > 100)  # the long cooling holds a whole skipped stretch
