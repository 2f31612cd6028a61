"""CT input: NIfTI and DICOM reading, refusal of non-CT input, CT -> MR registration."""

import math

import nibabel as nib
import numpy as np
import pytest

from corpus_inputs import write_dicom_series
from fusplan.acoustics import Transducer
from fusplan.errors import FusplanInputError
from fusplan.io import scan_from_array
from fusplan.skull.ct import ct_from_array, load_ct
from fusplan.skull.model import model_skull
from fusplan.skull.pose import array_element_positions
from fusplan.skull.population import CT_TEMPLATE_FOLDER
from fusplan.skull.registration import load_ct_registration, register_ct_to_mr
from fusplan.skull.synthetic import shell_ct


def _oblique_affine(spacing=(0.8, 0.8, 1.5), angle_deg=12.0, origin=(-40.0, 30.0, -20.0)):
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _head_like(shape=(40, 36, 24)):
    rng = np.random.default_rng(3)
    data = np.full(shape, -1000.0, np.float32)
    data[5:-5, 5:-5, 3:-3] = 40.0
    data[8:-8, 8:-8, 5:-5] = 1200.0
    data[10:-10, 10:-10, 7:-7] = 30.0
    return data + rng.normal(0, 5, shape).astype(np.float32)


def test_load_nifti_ct(tmp_path):
    data, affine = _head_like(), _oblique_affine()
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ct.nii.gz")
    ct = load_ct(tmp_path / "ct.nii.gz")
    assert ct.source == "ct" and np.allclose(ct.affine, affine)
    centre = affine[:3, :3] @ np.array([20.0, 18.0, 12.0]) + affine[:3, 3]
    assert ct.sample_hu(centre[None])[0] == pytest.approx(data[20, 18, 12], abs=1e-3)


def test_dicom_series_gives_the_same_ct_as_nifti(tmp_path):
    data, affine = np.round(_head_like()), _oblique_affine()
    write_dicom_series(tmp_path / "dicom", data, affine, slope=1.0, intercept=-1024.0, shuffle=True)
    ct = load_ct(tmp_path / "dicom")
    # the reader may store the slices in the other order: compare in world space
    index = np.indices(np.array(data.shape) - 2).reshape(3, -1).T[::7] + 1  # interior voxels
    world = index @ affine[:3, :3].T + affine[:3, 3]
    assert np.allclose(ct.sample_hu(world), data[tuple(index.T)], atol=1e-2)
    assert abs(np.linalg.det(ct.affine[:3, :3])) == pytest.approx(abs(np.linalg.det(affine[:3, :3])))


def test_mr_passed_as_ct_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).uniform(0, 900, (20, 20, 20)).astype(np.float32), np.eye(4)), path)
    with pytest.raises(FusplanInputError, match=r"t1.nii.gz: not a CT in Hounsfield units"):
        load_ct(path)


def test_ct_without_bone_is_refused(tmp_path):
    data = np.where(_head_like() > 500, 80.0, _head_like()).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "soft.nii.gz")
    with pytest.raises(FusplanInputError, match="soft.nii.gz: no bone"):
        load_ct(tmp_path / "soft.nii.gz")
    with pytest.raises(FusplanInputError, match="no such CT"):
        load_ct(tmp_path / "missing.nii.gz")


def test_crop_without_the_skull_cap_the_beams_cross_is_refused():
    elements = array_element_positions(Transducer(), np.zeros(3))
    low_crop = shell_ct(min_z_mm=-80)
    keep = int(low_crop.data.shape[2] * 0.6)  # the vertex cropped away
    cropped = type(low_crop)(data=low_crop.data[:, :, :keep].copy(), affine=low_crop.affine, path=None)
    with pytest.raises(FusplanInputError, match="does not contain the skull cap"):
        model_skull(cropped, elements, np.zeros(3), 650e3)


@pytest.mark.slow
def test_ct_to_mr_rigid_registration_recovers_a_known_pose(tmp_path):
    """MI registration of the CT template to a T1-like rendering of itself moved by 8 deg / 6 mm."""
    image = nib.load(CT_TEMPLATE_FOLDER / "template_with_skull_2mm.nii.gz")
    hu = np.asarray(image.dataobj, np.float32)
    ct_data = np.where(hu == 0, -1000.0, hu).astype(np.float32)  # background as air
    ct = ct_from_array(ct_data, image.affine)
    t1_like = np.where(hu > 400, 30.0, np.where(hu > 0, 120.0 - hu, 0.0)).astype(np.float32)
    a = math.radians(8.0)
    moved = np.eye(4)
    moved[:3, :3] = [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
    moved[:3, 3] = [6.0, -4.0, 3.0]
    scan = scan_from_array(t1_like, moved @ image.affine)  # MR world = moved CT world
    registration = register_ct_to_mr(ct, scan)
    points = np.array([[128.0, 128.0, 128.0], [90.0, 160.0, 170.0], [170.0, 100.0, 80.0]]) * [-1, 1, 1]
    mr_points = points @ moved[:3, :3].T + moved[:3, 3]
    mapped = mr_points @ registration.mr_to_ct_mm[:3, :3].T + registration.mr_to_ct_mm[:3, 3]
    assert np.linalg.norm(mapped - points, axis=1).max() < 1.5
    saved = load_ct_registration(registration.save(tmp_path / "ct_reg.npz"))
    assert np.allclose(saved.mr_to_ct_mm, registration.mr_to_ct_mm)
    assert saved.matches(ct, scan)
    registered = saved.apply(ct)
    assert registered.sample_hu(mr_points[:1])[0] == pytest.approx(ct.sample_hu(points[:1])[0], abs=30)



def test_head_too_close_to_the_elements_is_reported():
    from fusplan.skull.pose import head_fit

    fit = head_fit(np.array([30.0, 12.0, 3.5, np.nan, 4.0]), margin_mm=5.0)
    assert not fit.fits and fit.elements_too_close == 2 and fit.min_water_gap_mm == 3.5
    assert "head does not fit" in fit.message() and "3.5 mm" in fit.message()
    assert head_fit(np.array([30.0, 12.0])).fits
