"""napari plugin on the sample head: world alignment, dragging the target, screenshots, one real registration.

Most tests reuse an *identity* registration saved to ``.npz`` (the widget's "reuse
registration" field, like ``fusplan target --registration``): the Colin27 sample
lives in MNI space, so the MNI atlas maps onto it without a warp. That keeps these
GUI tests about the GUI; ``test_real_locate_on_the_sample`` runs one real (fast
preset) registration through the widget.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import nibabel as nib  # noqa: E402
from scipy import ndimage  # noqa: E402

from fusplan.atlas import sample_scan_path  # noqa: E402
from fusplan.io import load_scan, resample, save_nifti  # noqa: E402
from fusplan.samples import oblique_lps_affine  # noqa: E402
from plugin_support import FAST_PROTOCOL, wait_idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
WAIT_MS = 240_000


@pytest.fixture(scope="module")
def identity_registration(tmp_path_factory) -> Path:
    from fusplan.registration import Registration

    empty = np.zeros((0, 0, 0, 3), dtype=np.float32)
    registration = Registration(
        atlas="morel", affine_mm=np.eye(4), field_shape=(0, 0, 0), field_affine=np.eye(4), forward_mm=empty,
        backward_mm=empty, method="identity (sample already in MNI space)", time_s=0.0, similarity=1.0,
        affine_similarity=1.0, contrast="T1")
    return registration.save(tmp_path_factory.mktemp("registration") / "identity.npz")


@pytest.fixture(scope="module")
def scan_copies(tmp_path_factory) -> dict[str, Path]:
    """The sample head stored RAS, LPS (axes flipped) and oblique LPS (resampled, 12/-7/9 deg)."""
    folder = tmp_path_factory.mktemp("copies")
    ras = load_scan(sample_scan_path("ch2"))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [ras.shape[0] - 1, ras.shape[1] - 1, 0]
    lps = save_nifti(np.ascontiguousarray(ras.data[::-1, ::-1, :]), ras.affine @ flip, folder / "ch2_lps.nii.gz")
    affine, shape = oblique_lps_affine(ras.affine, ras.shape, spacing_mm=(1.0, 1.0, 1.0))
    oblique = save_nifti(resample(ras.data, ras.affine, shape, affine), affine, folder / "ch2_oblique.nii.gz")
    assert nib.aff2axcodes(nib.load(lps).affine) == ("L", "P", "S")
    return {"ras": sample_scan_path("ch2"), "lps": lps, "oblique": oblique}


def make_planner(make_napari_viewer, size=None):
    """Viewer + docked widget; shown at ``size`` (for screenshots) or hidden (faster on llvmpipe)."""
    from napari_fusplan._widget import PlanningWidget

    viewer = make_napari_viewer(show=size is not None)
    if size is not None:
        viewer.window.resize(*size)
    widget = PlanningWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Thalamotomy planner")
    return viewer, widget


def run(qtbot, widget, action, timeout=WAIT_MS):
    action()
    wait_idle(qtbot, widget, timeout)


def sample_world(layer, world_mm, order=1) -> float:
    """Scan intensity at a world RAS point through the layer's own world -> data transform."""
    index = np.asarray(layer.world_to_data(world_mm), dtype=float)
    return float(ndimage.map_coordinates(np.asarray(layer.data, dtype=float), index[:, None], order=order)[0])


def test_target_lands_on_the_same_anatomy_in_ras_lps_and_oblique_copies(
        make_napari_viewer, qtbot, identity_registration, scan_copies):
    viewer, widget = make_planner(make_napari_viewer)
    widget.registration_file.setText(str(identity_registration))
    found = {}
    for name, path in scan_copies.items():
        (layer,) = viewer.open(path, plugin="fusplan", name=name)
        assert np.allclose(layer.affine.affine_matrix, nib.load(path).affine)
        widget.select_scan(name)
        run(qtbot, widget, widget.locate)
        targets = widget.layer("targets")
        nuclei = widget.layer("nuclei")
        world = np.asarray(targets.data[0], dtype=float)
        label = nuclei.get_value(world, world=True)
        found[name] = {
            "target": world,
            "landmarks": np.asarray(widget.layer("landmarks").data, dtype=float),
            "nucleus": nuclei.features.set_index("index").loc[label, "nucleus"],
            "nearest": sample_world(layer, world, order=0),
            "linear": sample_world(layer, world, order=1),
            "range": float(np.percentile(layer.data, 99)),
        }
        found[name]["hover"] = nuclei.get_status(world, world=True)["value"]
        reslice = widget._layers.get("reslice")  # RAS display copy, only for oblique scans
        found[name]["reslice"] = None if reslice is None else sample_world(reslice, world, order=1)
    reference = found["ras"]
    assert reference["nucleus"] == "CL" and "nucleus: CL" in reference["hover"]  # name shown on hover
    assert np.allclose(reference["target"], widget.found.targets[0].ras_mm)
    for name in ("lps", "oblique"):
        assert np.allclose(found[name]["target"], reference["target"], atol=1e-6)
        assert np.allclose(found[name]["landmarks"], reference["landmarks"], atol=1e-6)
        assert found[name]["nucleus"] == "CL"
    assert found["lps"]["nearest"] == reference["nearest"]  # same voxel, stored the other way round
    assert abs(found["oblique"]["linear"] - reference["linear"]) < 0.05 * reference["range"]
    assert reference["reslice"] is None and found["lps"]["reslice"] is None
    assert abs(found["oblique"]["reslice"] - reference["linear"]) < 0.05 * reference["range"]


def test_target_typed_in_acpc_coordinates_with_given_ac_pc(make_napari_viewer, qtbot, identity_registration):
    from fusplan.atlas import load_atlas

    viewer, widget = make_planner(make_napari_viewer)
    viewer.open_sample("fusplan", "ch2")
    landmarks = load_atlas("morel").landmarks  # identity registration: template AC/PC are the sample's
    widget.registration_file.setText(str(identity_registration))
    widget.side_combo.setCurrentText("both")
    widget.use_acpc.setChecked(True)
    widget.acpc_target.setValue((11.0, -7.0, 2.0))
    widget.manual_acpc.setChecked(True)
    widget.ac_input.setValue(np.round(landmarks["AC"], 1))
    widget.pc_input.setValue(np.round(landmarks["PC"], 1))
    run(qtbot, widget, widget.locate)
    found = widget.found
    assert found.landmark_source == "user"
    assert np.allclose(found.landmarks["AC"], np.round(landmarks["AC"], 1))
    by_side = {t.side: t for t in found.targets}
    assert np.allclose(by_side["left"].acpc_mm, (-11.0, -7.0, 2.0), atol=1e-6)
    assert np.allclose(by_side["right"].acpc_mm, (11.0, -7.0, 2.0), atol=1e-6)
    points = widget.layer("targets")
    assert np.allclose(points.data, [t.ras_mm for t in found.targets])
    assert list(points.features["name"]) == ["acpc left", "acpc right"]
    mcp = widget.layer("landmarks").data[list(widget.layer("landmarks").features["name"]).index("MCP")]
    assert np.allclose(found.frame.to_acpc(mcp), 0.0, atol=1e-6)


def test_drag_target_then_simulate_follows_and_screenshots(
        make_napari_viewer, qtbot, identity_registration):
    from fusplan.protocol import load_protocol

    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer, widget = make_planner(make_napari_viewer, size=(1400, 900))
    viewer.open_sample("fusplan", "ch2")
    widget.registration_file.setText(str(identity_registration))
    widget.side_combo.setCurrentText("both")
    run(qtbot, widget, widget.locate)
    acpc = {t.side: np.asarray(t.acpc_mm) for t in widget.found.targets}
    assert acpc["left"][0] < 0 < acpc["right"][0]
    qtbot.wait(200)
    shot_locate = viewer.screenshot(str(IMAGES / "plugin_locate.png"), canvas_only=False)

    # drag the left target 2 mm anterior and 1 mm lateral (world RAS): acpc_mm and the plan follow
    targets = widget.layer("targets")
    moved = np.asarray(targets.data, dtype=float).copy()
    moved[0] += [-1.0, 2.0, 0.0]
    targets.data = moved
    left = widget.found.targets[0]
    assert np.allclose(left.ras_mm, moved[0])
    assert np.allclose(left.acpc_mm, widget.found.frame.to_acpc(moved[0]))
    assert f"{left.acpc_mm[1]:.1f}" in widget.target_info.text()

    widget.editor.load(FAST_PROTOCOL)
    run(qtbot, widget, widget.simulate)
    document = widget.document
    assert np.allclose(document["targets"][0]["ras_mm"], moved[0], atol=1e-3)
    temperature = widget.layer("temperature left")
    peak = np.unravel_index(int(np.argmax(temperature.data.max(axis=0))), temperature.data.shape[1:])
    hottest_mm = np.asarray(temperature.data_to_world((0, *peak)))[1:]
    assert np.linalg.norm(hottest_mm - moved[0]) <= 0.5 * np.sqrt(3) + 1e-6
    lesion = widget.layer("lesion left")
    assert lesion.get_value(moved[0], world=True) == 2  # the 240 CEM43 region holds the target
    assert widget.document == widget.result.to_dict()
    assert load_protocol(FAST_PROTOCOL).name == document["protocol"]

    widget.tabs.setCurrentIndex(1)
    qtbot.wait(200)
    shot_protocol = viewer.screenshot(str(IMAGES / "plugin_protocol.png"), canvas_only=False)
    widget.show_step(len(widget.steps) - 1)
    qtbot.wait(200)
    shot_teach = viewer.screenshot(str(IMAGES / "plugin_teaching.png"), canvas_only=False)
    widget.tabs.setCurrentIndex(2)
    qtbot.wait(200)
    shot_results = viewer.screenshot(str(IMAGES / "plugin_results.png"), canvas_only=False)
    viewer.dims.ndisplay = 3
    for key in ("nuclei", "targets"):
        widget.layer(key).visible = False
    viewer.layers["ch2"].visible = False
    viewer.scene.camera.angles = (-20.0, 35.0, 120.0)
    qtbot.wait(200)
    shot_3d = viewer.screenshot(str(IMAGES / "plugin_lesion_3d.png"), canvas_only=True)
    for shot in (shot_locate, shot_protocol, shot_teach, shot_results, shot_3d):
        rgb = np.asarray(shot)[..., :3].astype(float)
        assert rgb.std() > 10, "blank screenshot"
    hot = np.asarray(shot_3d)[..., :3].astype(int)
    assert ((hot[..., 0] > 200) & (hot[..., 2] < 120)).sum() > 20  # warm inferno/lesion colours on the canvas


def test_real_locate_on_the_sample(make_napari_viewer, qtbot):
    viewer, widget = make_planner(make_napari_viewer)
    viewer.open_sample("fusplan", "ch2")
    widget.settings_combo.setCurrentText("fast")
    run(qtbot, widget, widget.locate)
    (target,) = widget.found.targets
    assert target.side == "left" and target.name == "CLp"
    assert -15 < target.acpc_mm[0] < -3 and -25 < target.acpc_mm[1] < 0 and -5 < target.acpc_mm[2] < 15
    nuclei = widget.layer("nuclei")
    label = nuclei.get_value(np.asarray(widget.layer("targets").data[0]), world=True)
    assert nuclei.features.set_index("index").loc[label, "nucleus"] == "CL"
    assert widget.found.registration.similarity > 0.5
