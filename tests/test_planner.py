"""simulate(): contract JSON, titration, offsets, heat-source cache, sides."""
import json
from dataclasses import dataclass

import numpy as np
import pytest

from fusplan import planner
from fusplan.errors import FusplanInputError
from fusplan.planner import simulate
from fusplan.protocol import load_protocol, override_protocol

@pytest.fixture(scope="module")
def phantom(gaussian_protocol):
    calls = []
    original = planner.heat_source

    def counting(*args, **kwargs):
        calls.append(np.asarray(args[2]).copy())
        return original(*args, **kwargs)

    planner.heat_source = counting
    try:
        result = simulate(gaussian_protocol)
    finally:
        planner.heat_source = original
    return result, calls


def test_contract_json(phantom):
    result, _ = phantom
    doc = json.loads(json.dumps(result.to_dict()))
    assert set(doc) == {"fusplan_version", "protocol", "targets", "landmarks", "sonications", "focus", "lesions",
                        "isotherms", "lesion_model", "focus_prior"}
    assert doc["protocol"] == "test gaussian"
    keys = {"index", "stage", "power_w", "absorbed_power_w", "duration_s", "cooling_s", "energy_j", "peak_temperature_c",
            "heat_source"}
    for entry in doc["sonications"]:
        assert set(entry) == keys  # no thermometry block, no side in the phantom
        assert entry["energy_j"] == pytest.approx(entry["power_w"] * entry["duration_s"])
    assert [e["index"] for e in doc["sonications"]] == [1, 2, 3]
    assert doc["sonications"][0]["absorbed_power_w"] == pytest.approx(0.1, rel=1e-9)
    assert [(e["threshold_cem43"]) for e in doc["lesions"]] == [17.0, 240.0]
    assert all("side" not in e for e in doc["lesions"])
    assert doc["lesions"][0]["lr_mm"] > doc["lesions"][1]["lr_mm"] >= 0
    assert doc["lesions"][0]["volume_mm3"] > 0


def test_titration_and_peaks(phantom):
    result, _ = phantom
    peaks = [e["peak_temperature_c"] for e in result.to_dict()["sonications"]]
    assert peaks[1] == pytest.approx(55.0, abs=0.05)
    assert peaks[2] == pytest.approx(55.0, abs=0.05)
    assert 37.0 < peaks[0] < 55.0
    assert result.peak_temperature_c.max() == pytest.approx(55.0, abs=0.05)


def test_focus_curve_sampling(phantom):
    result, _ = phantom
    focus = result.to_dict()["focus"]
    t, temp = np.array(focus["time_s"]), np.array(focus["temperature_c"])
    assert t[0] == 0.0 and t[-1] == pytest.approx(64.0)
    assert np.all(np.diff(t) > 0)
    for start, duration in [(0, 6), (16, 8), (40, 8)]:
        on = (t >= start) & (t <= start + duration)
        assert np.diff(t[on]).max() <= 0.5 + 1e-9
        assert start + duration in t
    assert temp.max() == pytest.approx(55.0, abs=0.05)


def test_heat_source_computed_once_per_focus(phantom, gaussian_protocol, monkeypatch):
    result, calls = phantom
    assert len(calls) == 1  # the target; the 1 mm offset takes it translated (steering: translate)
    assert np.allclose(calls[0], 0.0)
    assert [e["heat_source"] for e in result.to_dict()["sonications"]] == ["computed", "computed", "translated"]
    recomputed = []
    original = planner.heat_source
    monkeypatch.setattr(planner, "heat_source", lambda *a, **k: recomputed.append(np.asarray(a[2]).copy())
                        or original(*a, **k))
    simulate(override_protocol(gaussian_protocol, {"transducer.steering": "recompute"}))
    assert len(recomputed) == 2  # target and the 1 mm offset, three sonications
    assert np.allclose(recomputed[1] - recomputed[0], [1.0, 0, 0])


def test_a_callers_cache_shares_heat_sources_between_runs_and_nothing_else_does(gaussian_protocol, monkeypatch):
    from fusplan.execution import ExecutionOptions, HeatSourceCache

    calls = []
    original = planner.heat_source
    monkeypatch.setattr(planner, "heat_source", lambda *a, **k: calls.append(1) or original(*a, **k))
    gaussian_protocol = override_protocol(gaussian_protocol, {"transducer.steering": "recompute"})
    simulate(gaussian_protocol)
    simulate(gaussian_protocol)
    assert len(calls) == 4  # no module-global cache: each run computes its two foci
    shared = ExecutionOptions(heat_sources=HeatSourceCache())
    first = simulate(gaussian_protocol, execution=shared)
    again = simulate(gaussian_protocol, execution=shared)
    assert len(calls) == 6 and len(shared.heat_sources) == 2
    np.testing.assert_array_equal(again.dose_cem43, first.dose_cem43)


def test_offset_moves_the_dose(phantom):
    result, _ = phantom
    dose = result.dose_cem43
    x = result.grid.world_coordinates()[..., 0]
    centroid = (dose * x).sum() / dose.sum()
    assert 0.1 < centroid < 1.0  # between the two foci, pulled towards +x


def test_temperature_at_matches_focus_curve(phantom):
    result, _ = phantom
    focus = result.to_dict()["focus"]
    picks = [10, 40, 100]
    fields = result.temperature_at([focus["time_s"][k] for k in picks])
    assert fields.shape == (3, *result.grid.shape)
    for k, f in zip(picks, fields):
        assert f.max() == pytest.approx(focus["temperature_c"][k], abs=0.01)
    peaks = result.sonication_peaks()
    assert [p.sonication for p in peaks] == [1, 2, 3]
    assert peaks[1].time_s == pytest.approx(24.0, abs=0.5)


@dataclass
class _Target:
    name: str
    side: str
    ras_mm: np.ndarray
    acpc_mm: np.ndarray


@dataclass
class _Frame:
    axes: np.ndarray


class _Targets:
    """Stand-in for a TargetingResult: two sides, a rotated AC-PC frame, one label."""

    def __init__(self):
        angle = np.deg2rad(10)
        c, s = np.cos(angle), np.sin(angle)
        self.frame = _Frame(np.array([[1, 0, 0], [0, c, -s], [0, s, c]]))
        self.targets = [_Target("CLp", "left", np.array([-8.0, -18.0, 6.0]), np.array([-8.0, -7.0, 3.0])),
                        _Target("CLp", "right", np.array([8.0, -18.0, 6.0]), np.array([8.0, -7.0, 3.0]))]
        self.label_names = {5: "CL", 105: "CL"}
        self.nucleus_volumes_mm3 = None  # nucleus volumes inside the planning box

    def labels_on_grid(self, grid):
        world = grid.world_coordinates()
        labels = np.zeros(grid.shape, int)
        labels[np.linalg.norm(world - np.array([-8.0, -18.0, 6.0]), axis=-1) < 2.0] = 5
        labels[np.linalg.norm(world - np.array([8.0, -18.0, 6.0]), axis=-1) < 2.0] = 105
        return labels

    def to_dict(self):
        return {"targets": [{"name": t.name, "side": t.side, "ras_mm": t.ras_mm.tolist(), "acpc_mm": t.acpc_mm.tolist()}
                            for t in self.targets],
                "landmarks": {"AC": [0, 2, -5], "PC": [0, -25, -2], "MCP": [0, -11.5, -3.5]}}


def test_scan_without_targets_is_refused_before_simulating(gaussian_protocol):
    with pytest.raises(FusplanInputError, match="needs targets"):
        simulate(gaussian_protocol, scan=object())


def test_top_level_simulate_is_the_planner_in_the_phantom(phantom, gaussian_protocol):
    import fusplan

    assert fusplan.simulate(gaussian_protocol).to_dict() == phantom[0].to_dict()
    assert isinstance(phantom[0], fusplan.SimulationResult)
    assert all(isinstance(r, fusplan.SonicationRecord) for r in phantom[0].first.sonications)
    assert all(isinstance(r, fusplan.LesionRecord) for r in phantom[0].first.lesions)


def test_stage_peaks_are_the_hottest_sonication_of_each_stage(phantom):
    from fusplan.timeline import Timeline

    result, _ = phantom
    by_sonication = result.sonication_peaks()
    by_stage = result.timeline().stage_peaks()
    assert by_stage == Timeline.from_report(result.to_dict()).stage_peaks()  # a saved report gives the same
    assert [p.stage for p in by_stage] == ["alignment", "treatment"]
    for peak in by_stage:
        same_stage = [p for p in by_sonication if p.stage == peak.stage]
        hottest = max(same_stage, key=lambda p: p.temperature_c)
        assert (peak.sonication, peak.time_s) == (hottest.sonication, hottest.time_s)


def test_both_sides_with_thermometry(gaussian_spec):
    spec = {**gaussian_spec, "sonications": gaussian_spec["sonications"][:2], "thermometry": {"voxel_mm": [1.1, 1.1, 3.0], "frame_s": 3.5}}
    result = simulate(load_protocol(spec), scan=object(), targets=_Targets())
    doc = json.loads(json.dumps(result.to_dict()))
    assert [e["side"] for e in doc["sonications"]] == ["left", "left", "right", "right"]
    assert all("thermometry_peak_c" in e for e in doc["sonications"])
    assert doc["sonications"][1]["thermometry_peak_c"] == pytest.approx(55.0, abs=0.05)
    assert doc["sonications"][1]["peak_temperature_c"] > 55.5
    assert [(e["side"], e["threshold_cem43"]) for e in doc["lesions"]] == [
        ("left", 17.0), ("left", 240.0), ("right", 17.0), ("right", 240.0)]
    assert "CL" in doc["lesions"][0]["nuclei"]
    assert set(doc["focus_by_side"]) == {"left", "right"}
    assert doc["landmarks"]["AC"] == [0, 2, -5]
    grid = result.sides["right"].grid
    assert np.allclose(grid.centre_mm, [8.0, -18.0, 6.0]) and np.allclose(grid.axes, _Targets().frame.axes)
    hottest = np.unravel_index(result.sides["left"].peak_temperature_c.argmax(), grid.shape)
    assert np.linalg.norm(result.sides["left"].grid.index_to_world(hottest) - [-8.0, -18.0, 6.0]) <= 0.75
