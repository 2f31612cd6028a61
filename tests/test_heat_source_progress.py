"""Progress and cancellation of the heat source (the napari "heat source" step, issue 13)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

import fusplan.acoustics.rayleigh as rayleigh
from fusplan.acoustics import Transducer, heat_source
from fusplan.grid import Grid

BRAIN = SimpleNamespace(density_kg_m3=1046.0, sound_speed_m_s=1546.0, attenuation_np_m=4.0)
GRID = Grid.centred((0.0, 0.0, 0.0), 30.0, 0.5)  # 61^3: 7^3 cubes of 9 voxels, 22 batches of 16


class Cancelled(Exception):
    pass


@pytest.fixture
def batches(monkeypatch):
    """Count the batches of cubes the blockwise sum computes (one jinc evaluation each)."""
    count = {"n": 0}
    original = rayleigh._jinc_and_derivative

    def counting(y):
        count["n"] += 1
        return original(y)

    monkeypatch.setattr(rayleigh, "_jinc_and_derivative", counting)
    return count


def test_heat_source_reports_progress_between_chunks(batches):
    calls = []
    heat_source(Transducer(), GRID, (0, 0, 0), BRAIN, threads=2, progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert batches["n"] == 22
    assert len(calls) >= 22  # at least one report per batch: cancelling waits for one chunk at most
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert {m for _, m in calls} >= {"blockwise sum", "exact sum"}


@pytest.mark.parametrize("threads", [1, 2])
def test_raising_from_progress_cancels_heat_source_within_a_chunk(batches, threads):
    calls = []

    def cancel(fraction, message):
        calls.append(fraction)
        raise Cancelled

    with pytest.raises(Cancelled):
        heat_source(Transducer(), GRID, (0, 0, 0), BRAIN, threads=threads, progress=cancel)
    assert len(calls) == 1
    # the batch reported and those already queued behind it (2 per thread), nothing more
    assert batches["n"] <= 2 * threads



def test_simulate_cancels_during_the_heat_source():
    from fusplan import planner
    from fusplan.protocol import load_protocol

    messages = []

    def cancel(fraction, message):
        messages.append(message)
        if message.startswith("heat source (phantom): "):
            raise Cancelled

    with pytest.raises(Cancelled):
        planner.simulate(load_protocol("clt"), progress=cancel)
    assert messages == ["heat source (phantom)", "heat source (phantom): blockwise sum"]
