"""The population skull on the bundled sample head, and the skull outputs (JSON block, CSV, figure)."""

import csv

import nibabel as nib
import numpy as np
import pytest

from fusplan.acoustics import Transducer
from fusplan.atlas import sample_scan_path
from fusplan.registration import Registration
from fusplan.skull.ct import resample_to_grid
from fusplan.skull.figure import save_skull_figure
from fusplan.skull.model import ELEMENT_COLUMNS, model_skull, write_elements_csv
from fusplan.skull.population import POPULATION_WARNING, population_skull
from fusplan.skull.pose import array_element_positions

#: Left CL centroid of the Morel atlas (physics.md); Colin27 (ch2) lives in MNI space.
TARGET = np.array([-6.7, -18.9, 8.7])


def identity_registration(atlas="morel"):
    """Affine-only registration: ch2 is Colin27, already in MNI space (keeps the test fast)."""
    empty = np.zeros((0, 0, 0, 3), np.float32)
    return Registration(atlas=atlas, affine_mm=np.eye(4), field_shape=(0, 0, 0), field_affine=np.eye(4),
                        forward_mm=empty, backward_mm=empty, method="identity (Colin27 is in MNI space)",
                        time_s=0.0, similarity=1.0, affine_similarity=1.0, contrast="T1")


@pytest.fixture(scope="module")
def population():
    ct = population_skull(identity_registration())
    elements = array_element_positions(Transducer(), TARGET)
    return ct, model_skull(ct, elements, TARGET, 650e3)


def test_population_skull_on_the_sample_head_is_plausible(population):
    """Measured: 1024/1024 active, mean incidence 9.4 deg (clinical thalamotomy mean 12.7),
    thickness 7.1 mm, energy transmission 0.089 (Kranion cohort 0.012-0.105), SDR 1.00: the
    130-head average has no diploe dip, so its clinical SDR is not a patient figure."""
    _, model = population
    block = model.to_dict()
    assert block["source"] == "population template"
    assert POPULATION_WARNING in block["warnings"]
    assert block["active_elements"] > 900
    assert 6.0 < block["mean_incidence_deg"] < 20.0
    assert 4.0 < block["mean_thickness_mm"] < 10.0
    assert 0.01 < block["energy_transmission"] < 0.3
    assert 0.3 < block["sdr"] <= 1.0
    assert block["head_fit"]["fits"]


def test_population_skull_is_bone_where_the_sample_head_has_skull(population):
    """The mapped template puts bone (> 700 HU) across the vertex of ch2 and soft tissue at the target."""
    ct, _ = population
    image = nib.load(sample_scan_path("ch2"))
    assert ct.sample_hu(np.array([TARGET]))[0] < 100
    vertex = np.array([[0.0, -20.0, z] for z in np.arange(60.0, 95.0, 0.5)])
    assert ct.sample_hu(vertex).max() > 700
    small = resample_to_grid(ct, (20, 20, 20), image.affine @ np.diag([9.0, 10.0, 9.0, 1.0]))
    assert small.shape == (20, 20, 20) and small.max() > 700


@pytest.mark.parametrize("direction", [(0.0, 0.0, 1.0), (1.0, 0.0, 0.3), (-1.0, 0.0, 0.3), (0.0, 1.0, 0.3)])
def test_population_skull_lies_on_the_sample_heads_skull(population, direction):
    """Along rays from the target, the mapped template's bone (> 700 HU) reaches within 3 mm
    of the skull of the ch2 T1 (its darkest point in the 25 mm inside the head's edge)."""
    from scipy import ndimage

    ct, _ = population
    image = nib.load(sample_scan_path("ch2"))
    t1 = np.asarray(image.dataobj, np.float32)
    unit = np.asarray(direction) / np.linalg.norm(direction)
    s = np.arange(40.0, 120.0, 0.25)
    line = TARGET + s[:, None] * unit
    index = (line - image.affine[:3, 3]) @ np.linalg.inv(image.affine[:3, :3]).T
    mr = ndimage.map_coordinates(t1, index.T, order=1)
    head_edge = s[np.nonzero(mr > 30)[0][-1]]
    near_edge = (s > head_edge - 25.0) & (s <= head_edge)
    skull_mr = s[near_edge][np.argmin(mr[near_edge])]
    bone = s[ct.sample_hu(line) > 700]
    assert bone.size and np.min(np.abs(bone - skull_mr)) <= 3.0


def test_elements_csv_and_figure(population, tmp_path):
    _, model = population
    path = write_elements_csv(model, tmp_path / "elements.csv")
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1024 and tuple(rows[0]) == ELEMENT_COLUMNS
    first = rows[0]
    assert float(first["x_mm"]) == pytest.approx(model.element_centres_mm[0, 0], abs=0.01)
    assert float(first["incidence_deg"]) == pytest.approx(model.trace.incidence_deg[0], abs=0.01)
    assert int(first["active"]) == int(model.active[0])
    figure = save_skull_figure(model, tmp_path / "skull.png")
    assert figure.stat().st_size > 10_000


def test_phase_correction_modes(population):
    _, model = population
    assert np.array_equal(model.focus_phase_error_rad(seed=1), model.focus_phase_error_rad(seed=1))
    corrected = np.std(model.focus_phase_error_rad()[model.active])
    assert corrected == pytest.approx(np.sqrt(np.mean(model.residual_phase_std_rad[model.active] ** 2)), rel=0.15)
    ct, _ = population
    uncorrected = model_skull(ct, model.element_centres_mm, TARGET, 650e3, phase_correction="none")
    assert np.array_equal(uncorrected.focus_phase_error_rad(), uncorrected.phase_delay_rad)
    assert np.std(uncorrected.phase_delay_rad[model.active]) > 3 * corrected
