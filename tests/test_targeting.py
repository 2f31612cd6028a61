"""Targeting on the Colin27 sample: landmarks vs AFIDs, CLp, AC-PC frame, outputs, invariance.

Slow-ish: one standard registration of ch2 (module-scoped) and several ``fast``
registrations for the storage-invariance checks (the geometry, not the accuracy,
is under test there; the benchmark measures the same with standard settings).
"""
from __future__ import annotations

import json
import pickle

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fusplan.atlas import load_atlas, read_fcsv
from fusplan.errors import FusplanInputError
from fusplan.grid import Grid
from fusplan.io import Scan
from fusplan.spatial import resample
from fusplan.samples import make_clinical_like, oblique_lps_affine, reoriented
from fusplan.targeting import (
    AcpcFrame,
    TargetingResult,
    clp_template_point,
    locate_targets,
    template_frame,
)
from fusplan.report import write_target_outputs


def rigid(rotation_deg, translation_mm) -> np.ndarray:
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    motion[:3, 3] = translation_mm
    return motion


def world_points(result: TargetingResult) -> np.ndarray:
    return np.array([t.ras_mm for t in result.targets] + [result.landmarks["AC"], result.landmarks["PC"]])


@pytest.fixture(scope="module")
def found(ch2):
    return locate_targets(ch2)


@pytest.fixture(scope="module")
def fast(ch2):
    return locate_targets(ch2, settings="fast")


# ---------------------------------------------------------------- frame (analytic)
def test_acpc_frame_follows_the_contract():
    rotation = Rotation.from_euler("xyz", (20, -10, 35), degrees=True).as_matrix()
    shift = np.array([5.0, -7.0, 3.0])
    # AC, PC and midline points in a canonical frame, then rotated and shifted
    canonical = {"AC": [0, 14, 0], "PC": [0, -14, 0], "mid": [[0, 30, 20], [0, -40, 5], [0, 0, -25]]}
    ac = rotation @ canonical["AC"] + shift
    pc = rotation @ canonical["PC"] + shift
    midline = np.asarray(canonical["mid"]) @ rotation.T + shift
    frame = AcpcFrame.from_landmarks(ac, pc, midline, right_hint=rotation[:, 0])
    np.testing.assert_allclose(frame.axes, rotation, atol=1e-12)
    np.testing.assert_allclose(frame.to_acpc(ac), [0, 14, 0], atol=1e-12)
    np.testing.assert_allclose(np.cross(frame.axes[:, 1], frame.axes[:, 2]), frame.axes[:, 0], atol=1e-12)
    point = np.array([3.0, -4.0, 12.0])
    np.testing.assert_allclose(frame.to_acpc(frame.to_ras(point)), point, atol=1e-12)


def test_template_clp_rule_lies_in_cl_near_the_pc_level():
    atlas = load_atlas("morel")
    frame = template_frame(atlas)
    for side, index in (("left", 5), ("right", 105)):
        point = clp_template_point(atlas, side)
        voxel = tuple(np.rint(np.linalg.solve(atlas.affine[:3, :3], point - atlas.affine[:3, 3])).astype(int))
        assert atlas.labels[voxel] == index
        acpc = frame.to_acpc(point)
        pc_y = frame.to_acpc(atlas.landmarks["PC"])[1]
        assert pc_y < acpc[1] < pc_y + 4  # posterior CL: at the level of PC, just anterior to it
        assert np.sign(acpc[0]) == (1 if side == "right" else -1)


# ---------------------------------------------------------------- Colin27
@pytest.mark.slow
def test_ac_pc_fall_on_the_colin27_commissures(found):
    atlas = load_atlas("morel")
    truth = read_fcsv(atlas.folder.parent / "landmarks/afids/tpl-MNIColin27_desc-groundtruth_afids.fcsv")
    for key in ("AC", "PC"):
        corrected = truth[key] + [0.0, 1.0, 1.0]  # ch2 origin differs by one voxel (AFIDs README)
        assert np.linalg.norm(found.landmarks[key] - corrected) < 2.0
    assert 24 < found.frame.acpc_length_mm < 31


@pytest.mark.slow
def test_clp_lies_in_the_thalamus_with_a_sane_frame(found, ch2):
    labels = found.labels_on(ch2.shape, ch2.affine)
    for target in found.targets:
        voxel = tuple(np.rint(ch2.world_to_voxel(target.ras_mm)).astype(int))
        assert labels[voxel] > 0
        assert found.label_hemispheres[int(labels[voxel])] == target.side
        assert (target.acpc_mm[0] > 0) == (target.side == "right")
        assert 3 < abs(target.acpc_mm[0]) < 12 and -20 < target.acpc_mm[1] < -5 and 0 < target.acpc_mm[2] < 20
    axes = found.frame.axes
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-9)
    assert np.linalg.det(axes) == pytest.approx(1.0)
    np.testing.assert_allclose(found.frame.to_acpc(found.landmarks["MCP"]), 0, atol=1e-9)


@pytest.mark.slow
def test_labels_on_grid_are_world_consistent(found):
    target = found.target("left")
    grid = Grid.centred(target.ras_mm, 20.0, 1.0, axes=found.frame.axes)
    labels = found.labels_on_grid(grid)
    assert labels.shape == grid.shape and labels.dtype == np.int16
    assert labels[10, 10, 10] > 0
    # the same world points stored in the opposite order give the same labels
    flipped = grid.affine.copy()
    flipped[:3, 3] = grid.index_to_world([20, 20, 20])
    flipped[:3, :3] = -grid.affine[:3, :3]
    np.testing.assert_array_equal(found.labels_on(grid.shape, flipped), labels[::-1, ::-1, ::-1])


@pytest.mark.slow
def test_nucleus_volumes_scale_with_the_registration(found):
    atlas = load_atlas("morel")
    volumes = found.nucleus_volumes_mm3
    scale = abs(np.linalg.det(found.registration.affine_mm[:3, :3]))
    for index in (5, 105):
        atlas_volume = float((atlas.labels == index).sum())
        assert volumes[index] == pytest.approx(atlas_volume * scale, rel=0.25)
    assert found.label_names[5] == "CL" and found.label_names[105] == "CL"


@pytest.mark.slow
def test_acpc_targets_label_targets_and_user_landmarks(found, ch2):
    reg = found.registration
    formula = locate_targets(ch2, registration=reg, acpc_mm=(14.0, -6.0, 0.0), target="Vim")
    for target in formula.targets:
        sign = 1 if target.side == "right" else -1
        np.testing.assert_allclose(target.acpc_mm, [sign * 14.0, -6.0, 0.0], atol=1e-9)
        assert target.name == "Vim"
    label = locate_targets(ch2, registration=reg, target="VPLp", sides="right")
    assert [t.side for t in label.targets] == ["right"] and label.targets[0].name == "VPLp"
    # user AC/PC: the frame and the AC-PC targets follow, atlas targets keep their world position
    ac, pc = found.landmarks["AC"] + [0, 1.0, 0], found.landmarks["PC"] + [0, -1.0, 0.5]
    moved = locate_targets(ch2, registration=reg, ac_mm=ac, pc_mm=pc, acpc_mm=(14.0, -6.0, 0.0))
    np.testing.assert_allclose(moved.landmarks["AC"], ac)
    assert moved.landmark_source == "user"
    np.testing.assert_allclose(moved.frame.to_acpc(moved.targets[1].ras_mm), [14.0, -6.0, 0.0], atol=1e-9)
    kept = locate_targets(ch2, registration=reg, ac_mm=ac, pc_mm=pc)
    np.testing.assert_allclose(kept.targets[0].ras_mm, found.targets[0].ras_mm)
    with pytest.raises(FusplanInputError, match="pc_mm"):
        locate_targets(ch2, registration=reg, pc_mm=(0, 0))
    with pytest.raises(FusplanInputError, match="distance"):
        locate_targets(ch2, registration=reg, ac_mm=found.landmarks["PC"] + [0, 5.0, 0])
    with pytest.raises(FusplanInputError, match="no label"):
        locate_targets(ch2, registration=reg, target="nucleus of nowhere")
    with pytest.raises(FusplanInputError, match="outside the brain|field of view"):
        locate_targets(ch2, registration=reg, acpc_mm=(85.0, 0.0, 0.0))


@pytest.mark.slow
def test_registration_of_another_scan_is_refused(found, ch2):
    other = Scan(ch2.data[::-1].copy(), ch2.affine)
    with pytest.raises(FusplanInputError, match="another scan"):
        locate_targets(other, registration=found.registration)


@pytest.mark.slow
def test_outputs_json_labels_figure_and_pickle(found, ch2, tmp_path):
    paths = write_target_outputs(found, ch2, tmp_path / "out")
    document = json.loads(paths["json"].read_text())
    assert [t["side"] for t in document["targets"]] == ["left", "right"]
    assert set(document["landmarks"]) == {"AC", "PC", "MCP"}
    assert {"method", "time_s", "similarity"} <= set(document["registration"])
    image = nib.load(paths["labels"])
    assert image.shape == ch2.shape and np.allclose(image.affine, ch2.affine)
    assert {5, 105} <= set(np.unique(np.asarray(image.dataobj)).tolist())
    assert paths["figure"].stat().st_size > 50_000
    hidden = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert hidden == [".fusplan-outputs.json"]  # no temp files left, only the list of outputs
    clone = pickle.loads(pickle.dumps(found))
    np.testing.assert_allclose(world_points(clone), world_points(found))


@pytest.mark.slow
def test_najdenovska_needs_a_label_or_acpc(ch2):
    with pytest.raises(FusplanInputError, match="no central lateral"):
        locate_targets(ch2, atlas="najdenovska")
    result = locate_targets(ch2, atlas="najdenovska", target="CL-LP-MPu", settings="fast")
    labels = result.labels_on(ch2.shape, ch2.affine)
    for target in result.targets:
        voxel = tuple(np.rint(ch2.world_to_voxel(target.ras_mm)).astype(int))
        assert result.label_names[int(labels[voxel])] == "CL-LP-MPu"


# ---------------------------------------------------------------- invariance (fast settings)
def _oblique(scan):
    affine, shape = oblique_lps_affine(scan.affine, scan.shape, (1.0, 1.0, 1.0), (8.0, -5.0, 6.0))
    return Scan(resample(scan.data, scan.affine, shape, affine), affine)


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, tolerance_mm",
    [
        (lambda s: reoriented(s, flips=(True, False, False)), 0.5),  # LAS
        (lambda s: reoriented(s, flips=(True, True, False)), 0.5),  # LPS
        (lambda s: reoriented(s, order=(2, 0, 1), flips=(False, True, False)), 0.5),  # permuted
        (_oblique, 0.5),
        (make_clinical_like, 1.0),
    ],
    ids=["LAS", "LPS", "permuted", "oblique", "clinical-like"],
)
def test_storage_orientation_does_not_move_targets(fast, ch2, variant, tolerance_mm):
    result = locate_targets(variant(ch2), settings="fast")
    assert np.linalg.norm(world_points(result) - world_points(fast), axis=1).max() < tolerance_mm


@pytest.mark.slow
def test_targets_move_with_the_head(fast, ch2):
    motion = rigid((6.0, -8.0, 10.0), (15.0, -20.0, 10.0))
    result = locate_targets(Scan(ch2.data, motion @ ch2.affine), settings="fast")
    expected = world_points(fast) @ motion[:3, :3].T + motion[:3, 3]
    assert np.linalg.norm(world_points(result) - expected, axis=1).max() < 0.5
