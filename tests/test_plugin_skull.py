"""The plugin's skull display (Qt-free): CT and entry-point layers in world RAS mm, the results line."""
from types import SimpleNamespace

import numpy as np
import pytest

from fusplan.planner import simulate
from fusplan.protocol import load_protocol
from fusplan.skull.synthetic import ShellProfile, shell_ct
from napari_fusplan._layers import ROLE_KEY
from napari_fusplan._model import PlanSession, TargetingForm
from napari_fusplan._skull import skull_layers, skull_summary

# the porosity mapping: through McDannold's, the synthetic shell's 1600 HU tables need more than 1500 W
PROTOCOL = {"name": "skull layers", "transducer": {"model": "hemispherical_array", "bone_mapping": "aubry2003"},
            "grid": {"spacing_mm": 1.0, "extent_mm": 10},
            "sonications": [{"stage": "treatment", "peak_c": 55, "duration_s": 5, "cooling_s": 0}]}


@pytest.fixture(scope="module")
def result():
    return simulate(load_protocol(PROTOCOL), skull_ct=shell_ct(ShellProfile(), spacing_mm=1.0, centre_mm=(4, -3, 5)))


def test_skull_layers_are_the_traced_ct_and_entry_points_in_world_mm(result):
    ct_layer, points = skull_layers(result)
    data, kwargs, kind = ct_layer
    assert kind == "image" and kwargs["metadata"][ROLE_KEY] == "skull ct"
    # the image's voxel -> world affine puts bone where the shell is (outer radius 70 mm about the centre)
    index = np.argwhere(data > 1000)
    world = index @ kwargs["affine"][:3, :3].T + kwargs["affine"][:3, 3]
    radius = np.linalg.norm(world - [4, -3, 5], axis=1)
    assert radius.min() > 60 and radius.max() < 71
    entries, kwargs, kind = points
    model = result.first.skull
    assert kind == "points" and len(entries) == 1024
    assert np.allclose(entries, model.trace.entry_ras_mm)
    assert np.allclose(kwargs["features"]["incidence_deg"], np.round(model.trace.incidence_deg, 2))


def test_results_line_and_no_layers_without_skull(result):
    line = skull_summary(result.to_dict())
    block = result.to_dict()["skull"]
    assert f"SDR {block['sdr']:.2f}" in line and f"{block['active_elements']}/1024 active" in line
    plain = simulate(load_protocol(PROTOCOL))
    assert skull_layers(plain) == [] and skull_summary(plain.to_dict()) == ""


def test_a_new_ct_in_the_form_drops_the_targets_and_their_registered_ct():
    session = PlanSession()
    form = TargetingForm(scan="head", ct="ct.nii.gz")
    session.set_form(form)
    assert session.set_targets(object(), SimpleNamespace(registration="atlas"), form, skull_ct="registered")
    assert session.skull_ct == "registered"
    other = TargetingForm(scan="head", ct="other.nii.gz")
    session.set_form(other)
    assert session.found is None and session.skull_ct is None
    assert session.reusable_registration(other) == "atlas"  # the atlas registration does not depend on the CT
