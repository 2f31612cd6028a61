"""Lesion measurement against analytic shapes (ellipsoids on rotated grids)."""
import numpy as np
import pytest

from fusplan.grid import Grid
from fusplan.lesion import measure_lesion


def _rotation(seed):
    """A random proper rotation (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _ellipsoid_dose(grid, centre_mm, radii_mm, rotation, threshold=240.0, peak_rise_c=20.0, iso_c=54.0):
    """Dose whose ``threshold`` isosurface is the ellipsoid (world frame, any orientation).

    Temperature is a Gaussian bump of 37 + ``peak_rise_c`` C; dose = threshold * 2^(T - iso_c), so
    ``dose >= threshold`` exactly where ``T >= iso_c``, i.e. inside the ellipsoid.
    """
    shape_matrix = rotation @ np.diag(1 / np.asarray(radii_mm, dtype=float) ** 2) @ rotation.T
    x = grid.world_coordinates() - np.asarray(centre_mm)
    q = np.einsum("...i,ij,...j->...", x, shape_matrix, x)
    rho = 2 * np.log(peak_rise_c / (iso_c - 37))
    temperature_c = 37 + peak_rise_c * np.exp(-q * rho / 2)
    dose = threshold * 2.0 ** (temperature_c - iso_c)
    inverse = np.linalg.inv(shape_matrix)
    extents = [2 * np.sqrt(grid.axes[:, i] @ inverse @ grid.axes[:, i]) for i in range(3)]
    return dose, np.array(extents), 4 / 3 * np.pi * np.prod(radii_mm)


@pytest.mark.parametrize("seed", range(6))
def test_rotated_ellipsoid_extents_and_volume(seed):
    grid = Grid.centred((3.0, -17.0, 8.0), extent_mm=20.0, spacing_mm=0.5, axes=_rotation(seed))
    centre = np.array([3.0, -17.0, 8.0]) + np.random.default_rng(seed).uniform(-0.25, 0.25, 3)
    dose, extents, volume = _ellipsoid_dose(grid, centre, (1.7, 2.3, 3.1), _rotation(100 + seed))
    lesion = measure_lesion(dose, grid, 240)
    measured = np.array([lesion.lr_mm, lesion.ap_mm, lesion.si_mm])
    np.testing.assert_allclose(measured, extents, atol=0.08)
    assert lesion.volume_mm3 == pytest.approx(volume, rel=0.01)
    assert lesion.equivalent_diameter_mm == pytest.approx((6 * lesion.volume_mm3 / np.pi) ** (1 / 3))
    assert lesion.nuclei == {}


@pytest.mark.parametrize("radii", [(1.0, 1.5, 2.0), (1.5, 1.5, 1.5), (2.5, 1.2, 3.5)])
def test_axis_aligned_small_ellipsoids(radii):
    grid = Grid.centred((0, 0, 0), extent_mm=16.0, spacing_mm=0.5)
    dose, extents, volume = _ellipsoid_dose(grid, (0.2, -0.1, 0.13), radii, np.eye(3))
    lesion = measure_lesion(dose, grid, 240)
    np.testing.assert_allclose([lesion.lr_mm, lesion.ap_mm, lesion.si_mm], extents, atol=0.08)
    assert lesion.volume_mm3 == pytest.approx(volume, rel=0.01)


def test_extents_follow_grid_axes_not_world_axes():
    # A cigar along world x measured on a grid rotated 90 deg about z: grid axis 1 points along world -x.
    axes = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    grid = Grid.centred((0, 0, 0), extent_mm=20.0, spacing_mm=0.5, axes=axes)
    dose, extents, _ = _ellipsoid_dose(grid, (0, 0, 0), (4.0, 1.5, 1.5), np.eye(3))
    lesion = measure_lesion(dose, grid, 240)
    assert lesion.ap_mm == pytest.approx(8.0, abs=0.1)
    assert lesion.lr_mm == pytest.approx(3.0, abs=0.1)


def test_empty_region_gives_zeros():
    grid = Grid.centred((0, 0, 0), extent_mm=10.0, spacing_mm=0.5)
    lesion = measure_lesion(np.full(grid.shape, 5.0), grid, 240, labels=np.ones(grid.shape, int))
    assert lesion.to_dict() == {"threshold_cem43": 240.0, "lr_mm": 0.0, "ap_mm": 0.0, "si_mm": 0.0,
                                "volume_mm3": 0.0, "equivalent_diameter_mm": 0.0, "nuclei": {}, "basis": "true field"}


def test_single_voxel_step_dose_uses_linear_crossing_against_zero():
    # One voxel at 2x threshold, zero around: crossings halfway to each neighbour (linear in dose).
    grid = Grid.centred((0, 0, 0), extent_mm=10.0, spacing_mm=1.0)
    dose = np.zeros(grid.shape)
    dose[5, 5, 5] = 480.0
    lesion = measure_lesion(dose, grid, 240)
    assert lesion.lr_mm == pytest.approx(1.0)
    assert 0 < lesion.volume_mm3 <= 1.0


def test_two_separate_regions_extent_spans_both():
    grid = Grid.centred((0, 0, 0), extent_mm=30.0, spacing_mm=0.5)
    a, _, va = _ellipsoid_dose(grid, (-5, 0, 0), (1.5, 1.5, 1.5), np.eye(3))
    b, _, vb = _ellipsoid_dose(grid, (5, 0, 0), (1.5, 1.5, 1.5), np.eye(3))
    lesion = measure_lesion(np.maximum(a, b), grid, 240)
    assert lesion.lr_mm == pytest.approx(13.0, abs=0.1)
    assert lesion.si_mm == pytest.approx(3.0, abs=0.1)
    assert lesion.volume_mm3 == pytest.approx(va + vb, rel=0.01)


def test_nuclei_fractions_on_synthetic_labels():
    grid = Grid.centred((0, 0, 0), extent_mm=20.0, spacing_mm=0.5)
    dose = np.zeros(grid.shape)
    dose[16:24, 20, 20] = 1000.0  # 8 lesion voxels along axis 0
    labels = np.zeros(grid.shape, dtype=int)
    labels[10:20, 15:25, 15:25] = 5  # "CL" left part: 1000 voxels, holds 4 lesion voxels
    labels[20:22, 20, 20] = 105  # "CL" too (other side's label): 2 voxels, both in the lesion
    labels[22:30, 15:25, 15:25] = 7  # "VPL": 800 voxels, holds 2 lesion voxels
    names = {5: "CL", 105: "CL", 7: "VPL"}
    voxel = 0.5**3
    lesion = measure_lesion(dose, grid, 240, labels=labels, label_names=names)
    assert list(lesion.nuclei) == ["CL", "VPL"]
    assert lesion.nuclei["CL"]["fraction_of_lesion"] == pytest.approx(6 / 8)
    assert lesion.nuclei["CL"]["fraction_of_nucleus"] == pytest.approx(6 / 1002)
    assert lesion.nuclei["VPL"]["fraction_of_lesion"] == pytest.approx(2 / 8)
    assert lesion.nuclei["VPL"]["fraction_of_nucleus"] == pytest.approx(2 / 800)
    # Whole-nucleus volumes (e.g. from the atlas) replace the in-box volume.
    lesion = measure_lesion(dose, grid, 240, labels=labels, label_names=names,
                            nucleus_volumes_mm3={"CL": 835.0, 7: 200.0})
    assert lesion.nuclei["CL"]["fraction_of_nucleus"] == pytest.approx(6 * voxel / 835.0)
    assert lesion.nuclei["VPL"]["fraction_of_nucleus"] == pytest.approx(2 * voxel / 200.0)
    # Without names, keys are label numbers as text.
    assert set(measure_lesion(dose, grid, 240, labels=labels).nuclei) == {"5", "105", "7"}


def test_shape_mismatch_is_an_error():
    grid = Grid.centred((0, 0, 0), extent_mm=10.0, spacing_mm=0.5)
    with pytest.raises(ValueError, match="shape"):
        measure_lesion(np.zeros((3, 3, 3)), grid, 240)


def test_region_filling_the_grid_is_measured_to_the_edge_voxel_centres():
    grid = Grid.centred((0, 0, 0), extent_mm=10.0, spacing_mm=0.5)
    lesion = measure_lesion(np.full(grid.shape, 1000.0), grid, 240)
    side = (grid.shape[0] - 1) * grid.spacing_mm
    assert (lesion.lr_mm, lesion.ap_mm, lesion.si_mm) == (side, side, side)
    assert lesion.volume_mm3 == pytest.approx(grid.shape[0] ** 3 * grid.spacing_mm**3)
