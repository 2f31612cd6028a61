import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fusplan.grid import Grid


def test_centred_grid_has_its_central_voxel_on_the_centre():
    grid = Grid.centred((10.0, -20.0, 5.5), extent_mm=40.0, spacing_mm=0.5)
    assert grid.shape == (81, 81, 81)
    np.testing.assert_allclose(grid.index_to_world((40, 40, 40)), (10.0, -20.0, 5.5))
    np.testing.assert_allclose(grid.centre_mm, (10.0, -20.0, 5.5))


def test_rotated_grid_axes_and_round_trip():
    axes = Rotation.from_euler("xyz", (20, -10, 35), degrees=True).as_matrix()
    grid = Grid.centred((1.0, 2.0, 3.0), extent_mm=10.0, spacing_mm=1.0, axes=axes)
    np.testing.assert_allclose(grid.axes, axes, atol=1e-12)
    step = grid.index_to_world((6, 5, 5)) - grid.index_to_world((5, 5, 5))
    np.testing.assert_allclose(step, axes[:, 0], atol=1e-12)
    world = grid.world_coordinates()
    np.testing.assert_allclose(grid.world_to_index(world)[3, 4, 5], (3, 4, 5), atol=1e-9)
    x, y, z = grid.local_coordinates_mm()
    assert x.shape == (11, 1, 1) and z.shape == (1, 1, 11) and x[5, 0, 0] == 0


@pytest.mark.parametrize("axes", [np.diag([-1.0, 1.0, 1.0]), np.zeros((3, 3))])
def test_improper_axes_are_refused(axes):
    with pytest.raises(ValueError):
        Grid.centred((0, 0, 0), axes=axes)
