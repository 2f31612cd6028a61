"""Orientation safety: the same anatomy stored in any orientation gives the same world answers."""
import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, ornt_transform, io_orientation
from scipy.spatial.transform import Rotation

from fusplan.grid import Grid
from fusplan.io import load_scan

# Anatomy as a function of world RAS mm: a bright blob on the LEFT, a dimmer one on the right,
from fusplan.spatial import resample, voxel_to_world, world_to_voxel

# Anatomy as a function of world RAS mm: a bright blob on the LEFT, a dimmer one on the right,
# one anterior and one superior, so any flip or swap of axes moves a blob somewhere else.
BLOBS_MM = {"left": (-30.0, 0.0, 0.0), "right": (30.0, 0.0, 0.0), "anterior": (0.0, 40.0, 0.0), "superior": (0.0, 0.0, 35.0)}
HEIGHTS = {"left": 1000.0, "right": 600.0, "anterior": 400.0, "superior": 250.0}


def anatomy(world_mm):
    value = 10.0 + 0.0 * world_mm[..., 0]
    for name, centre in BLOBS_MM.items():
        r2 = ((world_mm - np.asarray(centre)) ** 2).sum(axis=-1)
        value = value + HEIGHTS[name] * np.exp(-r2 / (2 * 6.0**2))
    return value


def ras_image():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-70, -70, -60)
    shape = (71, 76, 66)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return nib.Nifti1Image(anatomy(voxel_to_world(affine, index)).astype(np.float32), affine)


def reoriented(image, codes):
    """Same voxels, stored along other axes (a lossless flip/permutation)."""
    transform = ornt_transform(io_orientation(image.affine), axcodes2ornt(codes))
    return image.as_reoriented(transform)


def oblique(image, rotation_deg=(14.0, -9.0, 21.0), spacing=(1.5, 2.0, 2.5)):
    """Same anatomy re-sampled on a rotated, anisotropic grid stored LPS-like."""
    rotation = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix() @ np.diag([-1, -1, 1])
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing)
    shape = (110, 100, 75)
    centre_index = (np.asarray(shape) - 1) / 2
    affine[:3, 3] = -affine[:3, :3] @ centre_index
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return nib.Nifti1Image(anatomy(voxel_to_world(affine, index)).astype(np.float32), affine)


VARIANTS = {
    "RAS": lambda im: im,
    "LAS": lambda im: reoriented(im, "LAS"),
    "LPS": lambda im: reoriented(im, "LPS"),
    "permuted_SAR": lambda im: reoriented(im, "SAR"),
    "permuted_PIL": lambda im: reoriented(im, "PIL"),
    "oblique": oblique,
}


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orientations")
    base = ras_image()
    loaded = {}
    for name, make in VARIANTS.items():
        path = folder / f"{name}.nii.gz"
        nib.save(make(base), path)
        loaded[name] = load_scan(path)
    return loaded


def test_variants_really_differ_in_storage(scans):
    codes = {name: scan.orientation for name, scan in scans.items()}
    assert codes["RAS"] == "RAS" and codes["LAS"] == "LAS" and codes["LPS"] == "LPS"
    assert codes["permuted_SAR"] == "SAR" and codes["permuted_PIL"] == "PIL"
    assert not np.allclose(np.abs(scans["oblique"].affine[:3, :3]) > 1e-3, np.eye(3, dtype=bool))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_brightest_voxel_is_the_left_blob_in_world(scans, name):
    scan = scans[name]
    brightest = np.unravel_index(np.argmax(scan.data), scan.shape)
    world = scan.voxel_to_world(brightest)
    assert np.linalg.norm(world - BLOBS_MM["left"]) <= 1.0 * scan.spacing_mm.max()
    assert world[0] < 0, "the brightest blob is on the subject's left (negative x in RAS)"


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "oblique"])
def test_lossless_variants_hold_identical_values_at_identical_world_points(scans, name):
    reference, scan = scans["RAS"], scans[name]
    rng = np.random.default_rng(1)
    voxels = rng.integers(0, reference.shape, size=(200, 3))
    world = reference.voxel_to_world(voxels)
    index = scan.world_to_voxel(world)
    np.testing.assert_allclose(index, np.round(index), atol=1e-6)
    index = np.round(index).astype(int)
    np.testing.assert_array_equal(scan.data[tuple(index.T)], reference.data[tuple(voxels.T)])
    np.testing.assert_allclose(scan.voxel_to_world(index), world, atol=1e-9)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_world_voxel_round_trip(scans, name):
    scan = scans[name]
    world = np.random.default_rng(2).uniform(-50, 50, size=(50, 3))
    np.testing.assert_allclose(scan.voxel_to_world(scan.world_to_voxel(world)), world, atol=1e-9)
    np.testing.assert_allclose(voxel_to_world(scan.affine, world_to_voxel(scan.affine, world)), world, atol=1e-9)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_resampling_any_variant_onto_one_grid_gives_the_same_anatomy(scans, name):
    grid = Grid.centred((0.0, 5.0, 5.0), extent_mm=90.0, spacing_mm=3.0)
    scan = scans[name]
    resampled = resample(scan.data, scan.affine, grid.shape, grid.affine, order=1)
    expected = anatomy(grid.world_coordinates())
    # linear interpolation of a 6 mm-wide blob sampled at <= 2.5 mm: a few % of the blob height
    assert np.abs(resampled - expected).max() < 0.06 * HEIGHTS["left"]
    peak = grid.index_to_world(np.unravel_index(np.argmax(resampled), grid.shape))
    np.testing.assert_allclose(peak, BLOBS_MM["left"], atol=grid.spacing_mm)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_resampling_onto_a_rotated_grid_keeps_world_positions(scans, name):
    axes = Rotation.from_euler("zyx", (30, 10, -20), degrees=True).as_matrix()
    grid = Grid.centred(BLOBS_MM["right"], extent_mm=30.0, spacing_mm=1.0, axes=axes)
    scan = scans[name]
    resampled = resample(scan.data, scan.affine, grid.shape, grid.affine, order=1)
    peak = grid.index_to_world(np.unravel_index(np.argmax(resampled), grid.shape))
    np.testing.assert_allclose(peak, BLOBS_MM["right"], atol=1.5)


def test_label_resampling_is_nearest_neighbour(scans):
    scan = scans["LPS"]
    labels = (scan.data > 500).astype(np.int16) * 7
    grid = Grid.centred(BLOBS_MM["left"], extent_mm=20.0, spacing_mm=0.7)
    out = resample(labels, scan.affine, grid.shape, grid.affine, order=0)
    assert out.dtype == np.int16 and set(np.unique(out)) <= {0, 7}
    assert out[tuple(np.asarray(grid.shape) // 2)] == 7


def test_reoriented_scan_keeps_every_voxel_in_place(scans):
    """fusplan.samples.reoriented: a lossless re-storage, as the targeting invariance tests use it."""
    from fusplan.samples import reoriented

    reference = scans["RAS"]
    variant = reoriented(reference, order=(2, 0, 1), flips=(False, True, True))
    assert variant.orientation != reference.orientation
    voxels = np.random.default_rng(3).integers(0, reference.shape, size=(100, 3))
    index = np.round(variant.world_to_voxel(reference.voxel_to_world(voxels))).astype(int)
    np.testing.assert_array_equal(variant.data[tuple(index.T)], reference.data[tuple(voxels.T)])
