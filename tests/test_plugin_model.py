"""napari plugin, Qt-free parts: the session model, display data, teaching text (no viewer needed)."""
from __future__ import annotations

import numpy as np
import pytest

from fusplan import load_protocol, load_scan, locate_targets, simulate
from fusplan.atlas import sample_scan_path
from plugin_support import FAST_PROTOCOL, identity_registration

pytest.importorskip("napari")


@pytest.fixture(scope="module")
def located(tmp_path_factory):
    """The sample head with targets on both sides (identity registration, no real registering)."""
    scan = load_scan(sample_scan_path("ch2"))
    registration = identity_registration(tmp_path_factory.mktemp("registration"))
    return scan, locate_targets(scan, sides=("left", "right"), registration=registration)


@pytest.fixture(scope="module")
def phantom():
    return simulate(load_protocol(FAST_PROTOCOL))


def _session_with_result(located, phantom_result=None):
    from napari_fusplan._model import PlanSession, TargetingForm

    scan, found = located
    session = PlanSession()
    form = TargetingForm(scan="ch2", sides=("left", "right"))
    session.set_form(form)
    session.set_protocol(load_protocol(FAST_PROTOCOL))
    assert session.set_targets(scan, found, form)
    provenance = session.provenance_now()
    assert session.set_result(phantom_result or object(), provenance)
    return session, form


def test_any_input_change_drops_the_result(located):
    from dataclasses import replace

    events = []
    session, form = _session_with_result(located)
    session.subscribe(events.append)
    assert "CLp left, CLp right on ch2" in session.provenance.describe()
    # a protocol edit
    edited = dict(FAST_PROTOCOL, sonications=[dict(s) for s in FAST_PROTOCOL["sonications"]])
    edited["sonications"][0]["duration_s"] = 6
    session.set_protocol(load_protocol(edited))
    assert session.result is None and events == ["result"]
    # target, side, atlas, scan: the targets go too
    for change in ({"target": "CM"}, {"sides": ("left",)}, {"atlas": "najdenovska"}, {"scan": "other"}):
        session, _ = _session_with_result(located)
        session.set_form(replace(form, **change))
        assert session.result is None and session.found is None, change
    # dragging a target
    session, _ = _session_with_result(located)
    moved = np.asarray(session.found.targets[0].ras_mm) + [0, 1.0, 0]
    assert session.move_target(0, moved)
    assert session.result is None and np.allclose(session.found.targets[0].ras_mm, moved)
    # the scan layer was closed
    session, _ = _session_with_result(located)
    session.scans_changed(["something else"])
    assert session.found is None and session.result is None


def test_the_registration_outlives_target_and_side_edits_but_not_its_own_inputs(located):
    from dataclasses import replace

    scan, found = located
    session, form = _session_with_result(located)
    registration = found.registration
    for change in ({"target": "CM"}, {"sides": ("left",)}, {"acpc_mm": (11.0, -7.0, 2.0)}):
        session, _ = _session_with_result(located)
        edited = replace(form, **change)
        session.set_form(edited)
        assert session.found is None and session.result is None, change  # the targets and result go...
        assert session.reusable_registration(edited) is registration, change  # ...the registration stays
    for change in ({"scan": "other"}, {"atlas": "najdenovska"}, {"settings": "fast"}, {"registration": "r.npz"}):
        session, _ = _session_with_result(located)
        session.set_form(replace(form, **change))
        assert session.reusable_registration(replace(form, **change)) is None, change
        session.set_form(form)  # and back: the registration was dropped, it does not come back
        assert session.reusable_registration(form) is None, change
    session, _ = _session_with_result(located)
    session.scans_changed(["something else"])  # the scan layer was closed (a new one may share its name)
    assert session.reusable_registration(form) is None


def test_thermometry_inputs_drop_the_result_and_bad_files_name_the_key(located, tmp_path):
    from fusplan.errors import FusplanInputError

    session, _ = _session_with_result(located)
    assert session.measurements() is None
    session.set_assessment(None, 0)  # unchanged: kept
    assert session.result is not None
    path = tmp_path / "measured.yaml"
    path.write_text("measured:\n  - {sonication: 1, peak_c: 44, colour: red}\n")
    session.set_assessment(str(path), 0)
    assert session.result is None and session.provenance_now().thermometry == str(path)
    with pytest.raises(FusplanInputError, match="colour"):
        session.measurements()


def test_a_result_computed_from_old_inputs_is_refused(located):
    session, form = _session_with_result(located)
    provenance = session.provenance_now()
    session.move_target(1, np.asarray(session.found.targets[1].ras_mm) + 0.5)
    assert not session.set_result(object(), provenance)  # finished after the drag: stale
    assert session.result is None
    assert not session.set_targets(*located, form.__class__(scan="ch2", target="CM"))  # the form says CLp


def test_simulate_needs_a_target_when_a_scan_is_open(located):
    from napari_fusplan._model import PlanSession

    session = PlanSession()
    session.set_protocol(load_protocol(FAST_PROTOCOL))
    assert session.simulate_blocker(has_scan=False) is None  # the phantom, in its own view
    assert "locate a target first" in session.simulate_blocker(has_scan=True)
    assert session.set_result(object(), session.provenance_now())  # a phantom result...
    session.scans_changed(["ch2"])
    assert session.result is None  # ...is dropped once a scan is open
    session.set_protocol(None)
    assert "protocol has an error" in session.simulate_blocker(has_scan=False)


def test_only_the_chosen_atlas_labels_are_offered_and_checked():
    from fusplan.errors import FusplanInputError
    from napari_fusplan._layers import atlas_target_names, check_target_name

    assert atlas_target_names("morel")[0] == "CLp"
    najdenovska = atlas_target_names("najdenovska")
    assert "CLp" not in najdenovska and "CL" not in najdenovska
    check_target_name("morel", "CM", ("left", "right"))
    for atlas, target in (("morel", "XYZ"), ("najdenovska", "CLp"), ("najdenovska", "VLpv")):
        with pytest.raises(FusplanInputError):
            check_target_name(atlas, target, ("left",))


def test_display_values_are_the_model_values(phantom):
    from napari_fusplan._movie import DisplayGrid, LazyMovie, movie_times

    part = phantom.first
    display = DisplayGrid(part.grid, part.peak_temperature_c)
    assert not display.resliced  # phantom grid axes are RAS: shown on the model grid itself
    times = movie_times(phantom.timeline())
    calls = []
    movie = LazyMovie(lambda t: calls.append(t) or display.show(part.temperature_at([t])[0]), times, display.shape)
    assert movie.shape == (len(times), *display.shape) and movie.ndim == 4 and not calls  # nothing computed yet
    peak_frame = int(np.argmin(np.abs(times - phantom.sonication_peaks()[-1].time_s)))
    frame = movie[peak_frame]
    assert len(calls) == 1
    exact = part.temperature_at([times[peak_frame]])[0]
    assert frame.max() == pytest.approx(exact.max(), abs=1e-4)  # the peak is not smoothed away
    world = display.affine @ np.r_[np.unravel_index(int(np.argmax(frame)), frame.shape), 1.0]
    index = np.round(np.linalg.solve(part.grid.affine, world)).astype(int)[:3]
    assert frame.max() == pytest.approx(exact[tuple(index)], abs=1e-4)  # same place in world mm
    assert movie[peak_frame, 3].shape == display.shape[1:] and len(calls) == 1  # cached


def test_oblique_grids_are_shown_nearest_on_a_ras_grid(located):
    from fusplan.grid import Grid
    from napari_fusplan._movie import DisplayGrid

    rotation = np.linalg.qr(np.array([[1.0, 0.2, 0.1], [-0.2, 1.0, 0.15], [0.0, -0.1, 1.0]]))[0]
    grid = Grid.centred(np.array([10.0, -5.0, 3.0]), extent_mm=10, spacing_mm=0.5, axes=rotation)
    rng = np.random.default_rng(0)
    volume = 37 + 20 * rng.random(grid.shape)
    display = DisplayGrid(grid, volume)
    shown = display.show(volume)
    assert display.resliced and np.allclose(display.affine[:3, :3], 0.5 * np.eye(3))
    inside = shown[shown > 0]
    assert np.isin(np.round(inside, 9), np.round(volume.ravel(), 9)).all()  # every value is one model voxel's
    from fusplan.spatial import resample

    exact = resample(volume[display.box], display.crop_affine, display.shape, display.affine, order=0, cval=-5.0)
    assert np.array_equal(display.show(volume, cval=-5.0), exact)  # the index map is resample's nearest voxel


def test_lesion_follows_time(phantom):
    from napari_fusplan._movie import lesion_layers, simulation_layers

    (movie,) = simulation_layers(phantom)
    assert "lesion" not in movie["layers"]  # computed apart, while the rest is drawn
    movie["layers"].update(lesion_layers([movie]))
    lesion = movie["layers"]["lesion"][0]
    times = movie["time_s"]
    sizes = (lesion > 0).reshape(len(times), -1).sum(axis=1)
    assert sizes[0] == 0 and (np.diff(sizes) >= 0).all()  # nothing at t = 0, never shrinks
    treatment_start = sum(s["duration_s"] + s["cooling_s"] for s in FAST_PROTOCOL["sonications"][:2])
    assert sizes[times < treatment_start].max() == 0  # alignment and verification stay below 17 CEM43
    final_240 = int((phantom.dose_cem43 >= 240).sum())
    assert int((lesion[-1] == 2).sum()) == final_240 > 0  # the last frame is the library's lesion
    temperature = movie["layers"]["temperature"]
    assert temperature[1]["metadata"]["units"] == "°C" and "°C" in temperature[1]["name"]
    low, high = temperature[1]["contrast_limits"]
    assert low == 37.0 and high == pytest.approx(max(s["peak_temperature_c"] for s in phantom.to_dict()["sonications"]))
    assert all(layer[1]["metadata"]["fusplan_role"] == role for role, layer in movie["layers"].items())
    from napari_fusplan._layers import TARGET_COLOUR

    colours = movie["layers"]["lesion"][1]["colormap"]
    assert TARGET_COLOUR not in (colours[1], colours[2]) and colours[1] != colours[2]  # 17, 240, ring: distinct
    from fusplan.thresholds import threshold_styles

    assert [colours[1], colours[2]] == [s.colour for s in threshold_styles(phantom.first.thresholds_cem43)]


def _document(focus_dose_after_verification: float) -> dict:
    """A two-stage report whose focus curve gives a chosen dose by the end of verification."""
    from fusplan.dose import cem43_step

    minutes_at_55 = focus_dose_after_verification / float(cem43_step(55.0, 55.0, 60.0))
    on_s = 60.0 * minutes_at_55
    time_s = [0.0, 0.001, on_s, on_s + 0.001, on_s + 10, on_s + 10.001, on_s + 20, on_s + 20.001, on_s + 30]
    temperature_c = [37.0, 55.0, 55.0, 37.0, 37.0, 60.0, 60.0, 37.0, 37.0]
    sonications = [
        {"index": 1, "stage": "verification", "power_w": 40.0, "duration_s": on_s, "cooling_s": 10.0,
         "peak_temperature_c": 55.0},
        {"index": 2, "stage": "treatment", "power_w": 60.0, "duration_s": 10.0, "cooling_s": 10.0,
         "peak_temperature_c": 60.0},
    ]
    lesions = [{"threshold_cem43": 17.0, "volume_mm3": 9.0, "lr_mm": 2.0, "ap_mm": 2.0, "si_mm": 3.0},
               {"threshold_cem43": 240.0, "volume_mm3": 5.0, "lr_mm": 1.5, "ap_mm": 1.5, "si_mm": 2.5}]
    return {"sonications": sonications, "lesions": lesions,
            "focus": {"time_s": time_s, "temperature_c": temperature_c}}


@pytest.mark.parametrize("dose", [5.0, 100.0, 369.0])
def test_teaching_text_follows_the_numbers(dose):
    from napari_fusplan._teaching import teaching_steps

    import re

    verification, treatment = teaching_steps(_document(dose), [None])
    stated = float(re.search(r"received ([0-9.e+-]+) CEM43", verification["text"]).group(1))
    assert stated == pytest.approx(dose, rel=0.05)
    assert ("reversible heating" in verification["text"]) == (stated < 17)
    if stated >= 240:
        assert "permanent lesion" in verification["text"] and "coagulates" in verification["text"]
    assert "240 CEM43 lesion measures 1.50 x 1.50 x 2.50 mm" in treatment["text"]
    assert "lesion measures" not in verification["text"]


def test_teaching_names_both_sides(located):
    from napari_fusplan._teaching import teaching_steps

    scan, found = located
    result = simulate(load_protocol(FAST_PROTOCOL), scan=scan, targets=found)
    steps = teaching_steps(result.to_dict(), ["left", "right"])
    assert [s["stage"] for s in steps] == ["alignment", "verification", "treatment"]
    for step in steps:
        assert "Left side" in step["text"] and "Right side" in step["text"]


def test_a_preview_moves_each_side_and_marks_and_hides_what_it_cannot_move():
    from napari.components import ViewerModel
    from napari_fusplan._preview import PREVIEW_SUFFIX, base_affines, move_preview, preview_text, start_preview

    viewer = ViewerModel()
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    for role in ("temperature left", "lesion right", "skull ct"):
        viewer.add_image(np.zeros((4, 4, 4)), name=role, affine=affine, metadata={"fusplan_role": role})
    viewer.add_image(np.zeros((4, 4, 4)), name="scan")  # a user's layer: untouched
    affines = base_affines(viewer)
    assert set(affines) == {"temperature left", "lesion right"}
    start_preview(viewer)
    assert not viewer.layers["skull ct" + PREVIEW_SUFFIX].visible  # traced for the old focus
    assert viewer.layers["temperature left" + PREVIEW_SUFFIX].visible and viewer.layers["scan"].visible
    move_preview(viewer, affines, {"left": np.array([1.0, -2.0, 0.5]), "right": np.zeros(3)})
    assert np.allclose(viewer.layers["temperature left" + PREVIEW_SUFFIX].affine.affine_matrix[:3, 3], [1.0, -2.0, 0.5])
    assert np.allclose(viewer.layers["lesion right" + PREVIEW_SUFFIX].affine.affine_matrix[:3, 3], 0.0)
    assert "PREVIEW" in preview_text({"left": np.array([3.0, 4.0, 0.0])}) and "5.0 mm" in preview_text(
        {"left": np.array([3.0, 4.0, 0.0])})
