"""Teaching figures (fusplan.figures) and the demo (fusplan.demo)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fusplan.figures import (
    PLANES,
    animation_times,
    field_planes,
    focus_figure,
    plane_grid,
    scan_planes,
    stage_slices_figure,
    write_animation,
)
from fusplan.atlas import sample_scan_path
from fusplan.grid import Grid
from fusplan.timeline import FocusCurve, Peak, Timeline


def _report():
    """A two-stage report whose focus curve is piecewise linear (exact expectations)."""
    sonications = [
        {"index": 1, "stage": "alignment", "duration_s": 10.0, "cooling_s": 20.0, "power_w": 40.0,
         "peak_temperature_c": 43.0, "energy_j": 400.0},
        {"index": 2, "stage": "treatment", "duration_s": 10.0, "cooling_s": 20.0, "power_w": 90.0,
         "peak_temperature_c": 55.0, "energy_j": 900.0},
        {"index": 3, "stage": "treatment", "duration_s": 10.0, "cooling_s": 20.0, "power_w": 95.0,
         "peak_temperature_c": 54.0, "energy_j": 950.0},
    ]
    time_s = [0, 10, 30, 40, 60, 70, 90]
    temperature_c = [37, 43, 37, 55, 37, 54, 37]
    return {"protocol": "test", "sonications": sonications,
            "focus": {"time_s": time_s, "temperature_c": temperature_c},
            "lesions": [{"threshold_cem43": 17.0}, {"threshold_cem43": 240.0}]}


def test_focus_dose_matches_the_constant_temperature_oracle():
    # 240 CEM43 take 112.5 s at 50 C (physics.md); R = 0.25 below 43 C.
    time_s = np.linspace(0, 112.5, 7)
    dose = FocusCurve(time_s, np.full(7, 50.0)).dose_cem43
    assert dose[-1] == pytest.approx(240.0, rel=1e-9)
    assert np.all(np.diff(dose) > 0)
    cool = FocusCurve(np.array([0.0, 60.0]), np.array([41.0, 41.0]))
    assert cool.dose_at(60.0) == pytest.approx(0.25**2, rel=1e-9)


def test_timeline_helpers():
    timeline = Timeline.from_report(_report())
    windows = timeline.windows
    assert [(w.start_s, w.on_end_s, w.end_s) for w in windows] == [(0, 10, 30), (30, 40, 60), (60, 70, 90)]
    assert timeline.stage_peaks() == [Peak(1, "alignment", 10.0, 43.0), Peak(2, "treatment", 40.0, 55.0)]
    # one numbering with the report: the stage's ordinal and the sonication's number
    assert timeline.stage_at(5) == "alignment (sonication 1): sonicating"
    assert timeline.stage_at(45) == "treatment 1 (sonication 2): cooling"
    assert timeline.stage_at(65) == "treatment 2 (sonication 3): sonicating"
    assert timeline.stage_at(90) == "treatment 2 (sonication 3): cooling"
    times = animation_times(timeline, n_frames=60)
    assert times[0] == 0 and times[-1] == 90 and np.all(np.diff(times) > 0)
    assert 40 <= len(times) <= 80
    on = sum(((w.start_s < times) & (times <= w.on_end_s)).sum() for w in windows)
    assert on / len(times) > 0.4  # sonications (1/3 of the time) get more than their share


def test_planes_are_world_consistent():
    # A rotated grid: the scan's value at a world point must appear at that point of the plane.
    axes = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    grid = Grid.centred((5.0, -3.0, 2.0), extent_mm=20, spacing_mm=1.0, axes=axes)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-40, -40, -40)
    index = np.stack(np.meshgrid(*[np.arange(41)] * 3, indexing="ij"), -1)
    world = index * 2.0 - 40
    data = (world @ np.array([1.0, 10.0, 100.0])).astype(np.float32)  # linear: exact under linear resampling
    planes = scan_planes(data, affine, grid, half_width_mm=6.0)
    for plane in PLANES:
        shape, plane_affine = plane_grid(grid, plane, 6.0)
        section = planes[plane.name]
        assert section.shape == (13, 13)
        i, j = 2, 9
        voxel = [0, 0, 0]
        voxel[plane.u], voxel[plane.v] = i, j
        point = plane_affine[:3, :3] @ voxel + plane_affine[:3, 3]
        assert section[i, j] == pytest.approx(point @ [1, 10, 100], abs=1e-3)
    field = np.arange(np.prod(grid.shape), dtype=float).reshape(grid.shape)
    cropped = field_planes(field, grid, half_width_mm=3.0)
    assert cropped["axial"].shape == (7, 7)
    assert cropped["axial"][3, 3] == field[10, 10, 10]


def _phantom_fields(grid: Grid, peak_c: float):
    x, y, z = grid.local_coordinates_mm()
    temperature = 37 + (peak_c - 37) * np.exp(-(x**2 + y**2) / 4 - z**2 / 12)
    dose = 500.0 * np.exp(-(x**2 + y**2) / 2 - z**2 / 6)
    return temperature, dose


def test_figures_render_and_save(tmp_path):
    figure = focus_figure(Timeline.from_report(_report()), (17.0, 240.0), path=tmp_path / "focus.png")
    assert figure.axes[0].get_ylabel().startswith("temperature")
    assert figure.axes[1].get_yscale() == "log"
    grid = Grid.centred((0, 0, 0), extent_mm=20, spacing_mm=1.0)
    snapshots = []
    for label, peak in (("alignment", 43.0), ("treatment", 55.0)):
        temperature, dose = _phantom_fields(grid, peak)
        snapshots.append({"label": label, "temperature_c": temperature, "dose_cem43": dose * (peak > 50)})
    stage_slices_figure(snapshots, grid, (17, 240), half_width_mm=8, path=tmp_path / "stages.png")
    for name in ("focus.png", "stages.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 600


def test_animation_is_a_small_gif_with_one_frame_per_time(tmp_path):
    timeline = Timeline.from_report(_report())
    grid = Grid.centred((0, 0, 0), extent_mm=20, spacing_mm=1.0)
    times = animation_times(timeline, n_frames=12)
    planes = [field_planes(_phantom_fields(grid, 37 + 18 * np.sin(t / 90 * np.pi) ** 2)[0], grid, 8.0) for t in times]
    path = write_animation(tmp_path / "movie.gif", timeline, grid, times, planes, half_width_mm=8.0)
    with Image.open(path) as gif:
        assert gif.n_frames == len(times)
    assert path.stat().st_size < 5e6
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_run_demo_on_the_sample_head(tmp_path, staged_gaussian_spec):
    """End to end on the bundled head; the affine registration preset and a small gaussian protocol keep it short."""
    from fusplan.demo import run_demo

    calls = []
    written = run_demo(tmp_path, protocol=dict(staged_gaussian_spec, thresholds_cem43=[17, 200, 240]), animation_frames=8,
                       progress=lambda fraction, message: calls.append((fraction, message)),
                       registration_settings="affine", uncertainty_samples=8)
    fractions = [fraction for fraction, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # one (fraction, message) signature, monotonic
    messages = [message for _, message in calls]
    for name in ("report.json", "summary.md", "focus.png", "stages.png", "procedure.gif", "demo.md",
                 "registration-affine.npz"):
        assert written[name].is_file(), name
    with Image.open(written["procedure.gif"]) as gif:
        assert gif.n_frames >= 8
    notes = written["demo.md"].read_text()
    assert "CLp" in notes and "on the left" in notes and "### Treatment" in notes
    assert "day-1 T1 equivalent lesion" in notes and "in 90 % of cases" in notes  # the band, in words
    assert "| 200 | day-1 T1 lesion (Huang 2018) |" in notes
    assert any("registering" in m for m in messages)
    # Running again reuses the registration cached in the folder.
    from fusplan.demo import locate_demo_target
    from fusplan.io import load_scan

    messages.clear()
    found = locate_demo_target(load_scan(sample_scan_path("ch2")), "left", written["registration-affine.npz"],
                               "affine", lambda fraction, message: messages.append(message))
    assert messages[0] == f"reusing the cached registration in {written['registration-affine.npz']}"
    assert found.targets[0].side == "left"


def test_dose_after_reuses_the_result_and_matches_the_focus_dose(staged_gaussian_spec, monkeypatch):
    """The dose "so far" comes from the result's own solver, sources and titrated pulses.

    Oracle: the hottest voxel's dose after sonication k equals the dose accumulated on
    the focus curve by the end of sonication k (two independent integrations). No
    acoustics or re-planning runs (the cause of a slow figure step: the demo used to
    plan the truncated protocol again, skull model included, once per stage).
    """
    from fusplan import planner
    from fusplan.planner import simulate
    from fusplan.protocol import load_protocol

    result = simulate(load_protocol(staged_gaussian_spec))
    side = result.sides[None]
    timeline = side.timeline
    monkeypatch.setattr(planner, "simulate", None)  # dose_after must not plan again
    full = side.dose_cem43
    for window in timeline.windows:
        so_far = side.dose_after(window.index)
        assert np.all(so_far <= full * (1 + 1e-6) + 1e-9)
        expected = timeline.dose_after(window.index)
        assert so_far.max() == pytest.approx(expected, rel=0.05, abs=1e-3)
