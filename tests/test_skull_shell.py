"""Synthetic spherical-shell skulls with a designed HU profile: geometry, SDR, transmission,
active elements, air, monotonicity and storage orientation."""

import math

import numpy as np
import pytest

from fusplan.acoustics import Transducer
from fusplan.skull.model import model_skull
from fusplan.skull.pose import array_element_positions, tilted_axis
from fusplan.skull.properties import BoneAcoustics, layer_power_transmission_incoherent
from fusplan.skull.synthetic import ShellProfile, shell_ct

F_HZ = 650e3
R_OUTER = 70.0
FOCUS = np.zeros(3)
ELEMENTS = array_element_positions(Transducer(), FOCUS)


def geometric_incidence_deg(centres, focus, shell_centre, radius):
    """Angle between each straight element->focus ray and the sphere normal where it enters."""
    d = focus - centres
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    oc = centres - shell_centre
    b = np.sum(oc * d, axis=1)
    disc = b**2 - (np.sum(oc * oc, axis=1) - radius**2)
    t = -b - np.sqrt(np.maximum(disc, 0))
    hit = centres + t[:, None] * d
    normal = (hit - shell_centre) / radius
    return np.degrees(np.arccos(np.clip(-np.sum(d * normal, axis=1), -1, 1))), disc > 0


@pytest.fixture(scope="module")
def centred():
    profile = ShellProfile()
    return profile, model_skull(shell_ct(profile, R_OUTER, min_z_mm=-2), ELEMENTS, FOCUS, F_HZ)


def test_centred_shell_normal_incidence_thickness_sdr(centred):
    profile, model = centred
    first, last = profile.crossings_mm()
    assert model.active.all()
    assert np.nanmax(model.trace.incidence_deg) < 1.0
    assert model.trace.thickness_mm == pytest.approx(last - first, abs=0.1)
    assert model.sdr == pytest.approx(profile.diploe_hu / profile.outer_hu, abs=0.005)
    assert model.to_dict()["sdr"] == pytest.approx(0.375, abs=0.005)
    # focus unmoved: every refracted ray still passes within 1 mm of the focus
    assert model.trace.focus_miss_mm.max() < 1.0


def test_centred_shell_transmission_and_phase_equal_the_layer_formulas(centred):
    profile, model = centred
    first, last = profile.crossings_mm()
    mean_hu = profile.mean_bone_hu()
    # the model uses the path-mean bone properties at both faces (documented choice) and
    # integrates the attenuation (a function of HU) through tables and diploe
    depth = np.linspace(first, last, 20001)
    attenuation = float(np.mean(BoneAcoustics().attenuation_np_m(profile.hu_at(depth), F_HZ))) * (last - first) * 1e-3
    expected = float(layer_power_transmission_incoherent(BoneAcoustics(), mean_hu, last - first, 0.0, F_HZ,
                                                          attenuation))
    # 6 %: the 0.5 mm CT's trilinear ramps against the analytic profile, through a mapping
    # non-linear in HU (measured 4-5 %; within 2 % with the porosity mapping)
    assert model.amplitude_transmission**2 == pytest.approx(expected, rel=0.06)
    assert model.energy_transmission == pytest.approx(expected, rel=0.06)
    slowness = np.mean(1 / BoneAcoustics().speed_m_s(profile.hu_at(depth))) - 1 / 1500.0
    phase = 2 * math.pi * F_HZ * slowness * (last - first) * 1e-3
    assert model.phase_delay_rad == pytest.approx(phase, rel=0.01)
    assert np.all(model.residual_phase_std_rad > 0)


@pytest.mark.parametrize(("shift", "axis"), [((6.0, -4.0, 8.0), (0.0, 0.0, 1.0)), ((-10.0, 5.0, 0.0), None)])
def test_shifted_and_tilted_shell_incidence_is_geometric(shift, axis):
    beam = np.asarray(axis) if axis is not None else tilted_axis(15.0, -10.0)
    centres = array_element_positions(Transducer(), FOCUS, beam)
    profile = ShellProfile()
    model = model_skull(shell_ct(profile, R_OUTER, centre_mm=shift, min_z_mm=-40), centres, FOCUS, F_HZ)
    radius = R_OUTER - profile.crossings_mm()[0]
    expected, hit = geometric_incidence_deg(centres, FOCUS, np.asarray(shift), radius)
    ok = hit & model.trace.hits_skull & (expected < 60)
    assert ok.sum() > 600
    assert model.trace.incidence_deg[ok] == pytest.approx(expected[ok], abs=0.75)


def test_elements_beyond_the_critical_angle_are_switched_off():
    """The clinical rule (asin(1500 / 2900)), with the porosity mapping whose bone is never
    faster than 2900 m/s (a faster clinical mapping also switches off rays totally reflected
    by their own bone, below that angle)."""
    shift = np.array([45.0, 0.0, -5.0])
    profile = ShellProfile()
    model = model_skull(shell_ct(profile, R_OUTER, centre_mm=shift, min_z_mm=-40), ELEMENTS, FOCUS, F_HZ,
                        bone=BoneAcoustics(mapping="aubry2003"))
    expected, hit = geometric_incidence_deg(ELEMENTS, FOCUS, shift, R_OUTER - profile.crossings_mm()[0])
    critical = BoneAcoustics().critical_angle_deg
    clear = hit & (np.abs(expected - critical) > 1.0)
    beyond = clear & (expected > critical)
    assert 50 < beyond.sum() < 900
    assert not model.active[beyond].any()
    assert set(model.inactive_reason[beyond]) == {"beyond critical angle"}
    assert model.active[clear & ~beyond].all()
    assert np.all(model.amplitude_transmission[~model.active] == 0)


def test_air_pocket_switches_off_exactly_the_elements_whose_rays_cross_it():
    pocket, radius = np.array([25.0, 10.0, 40.0]), 10.0
    model = model_skull(shell_ct(air_pocket=(pocket, radius), min_z_mm=-2), ELEMENTS, FOCUS, F_HZ)
    d = (FOCUS - ELEMENTS) / np.linalg.norm(FOCUS - ELEMENTS, axis=1, keepdims=True)
    along = np.sum((pocket - ELEMENTS) * d, axis=1)
    miss = np.linalg.norm(pocket - ELEMENTS - along[:, None] * d, axis=1)
    crosses, clear = miss < radius - 0.5, miss > radius + 0.5
    assert crosses.sum() > 5
    assert not model.active[crosses].any()
    assert set(model.inactive_reason[crosses]) == {"air on path"}
    assert model.active[clear].all()


def test_thicker_and_denser_shells_transmit_less():
    """With the porosity mapping (before issue 17); the clinical mappings: next test."""
    def energy(**changes):
        profile = ShellProfile(**changes)
        return model_skull(shell_ct(profile, R_OUTER, spacing_mm=1.0, min_z_mm=-2), ELEMENTS, FOCUS,
                           F_HZ, bone=BoneAcoustics(mapping="aubry2003")).energy_transmission

    thickness = [energy(plateau_mm=p) for p in (1.5, 2.5, 3.5)]
    # denser: all tables scaled up (path-mean HU below 1000, where porosity is not yet 0)
    density = [energy(outer_hu=h, diploe_hu=0.4 * h, inner_hu=0.9 * h) for h in (900.0, 1100.0, 1300.0)]
    assert thickness[0] > thickness[1] > thickness[2]
    assert density[0] > density[1] > density[2]


@pytest.mark.parametrize("mapping", ["mcdannold2019", "webb2018"])
def test_lower_sdr_costs_transmission_with_the_clinical_mappings(mapping):
    """Fixed tables (1600 / 1400 HU), diploe falling from 700 to 100 HU (SDR 0.44 -> 0.06):
    transmission falls monotonically (porous diploe attenuates more). Above 700 HU McDannold's
    attenuation is nearly flat (minimum near 1000 HU) and the faces take the path-mean
    impedance, so 900 -> 700 HU gains 1 % (bench_skull.py reports the sweep). The porosity mapping
    gives the same transmission for every diploe (it saturates at 1000 HU and its
    attenuation ignores HU): the bug of issue 17."""
    def run(diploe, bone):
        profile = ShellProfile(diploe_hu=diploe)
        return model_skull(shell_ct(profile, R_OUTER, spacing_mm=1.0, min_z_mm=-2), ELEMENTS, FOCUS, F_HZ, bone=bone)

    models = [run(d, BoneAcoustics(mapping=mapping)) for d in (700.0, 500.0, 300.0, 100.0)]
    sdr = [m.mean_sdr for m in models]
    energy = [m.energy_transmission for m in models]
    assert np.all(np.diff(sdr) < 0)
    assert np.all(np.diff(energy) < 0), energy
    assert energy[-1] < 0.5 * energy[0]
    old = [run(d, BoneAcoustics(mapping="aubry2003")).energy_transmission for d in (900.0, 300.0)]
    assert old[1] == pytest.approx(old[0], rel=0.05)


def test_thicker_shell_leaves_a_larger_residual_phase_error():
    def residual(plateau):
        profile = ShellProfile(plateau_mm=plateau)
        model = model_skull(shell_ct(profile, R_OUTER, spacing_mm=1.0, min_z_mm=-2), ELEMENTS, FOCUS, F_HZ)
        return float(np.mean(model.residual_phase_std_rad))

    assert residual(1.5) < residual(2.5) < residual(3.5)


def _rotation(angles_deg):
    a, b, c = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_storage_orientation_does_not_change_the_element_table():
    """RAS, LPS, permuted and oblique storage of the same world skull: same table within
    0.5 deg and 0.01 SDR (the issue's tolerance). 1 mm voxels, bone edges blurred over
    2 mm as in a clinical CT (measured worst element on this test: 0.51 deg with 1.5 mm edges)."""
    shift, pocket = (5.0, -3.0, 6.0), (np.array([20.0, -15.0, 45.0]), 5.0)
    storages = {
        "RAS": np.eye(3),
        "LPS": np.diag([-1.0, -1.0, 1.0]),
        "permuted": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        "oblique": _rotation((20.0, -15.0, 30.0)),
    }
    tables = {}
    for name, rotation in storages.items():
        ct = shell_ct(ShellProfile(ramp_mm=2.0), centre_mm=shift, spacing_mm=1.0, affine_rotation=rotation,
                      air_pocket=pocket)
        tables[name] = model_skull(ct, ELEMENTS, FOCUS, F_HZ)
    reference = tables["RAS"]
    for name, model in tables.items():
        assert np.array_equal(model.active, reference.active), name
        assert model.trace.incidence_deg == pytest.approx(reference.trace.incidence_deg, abs=0.5), name
        assert model.sdr == pytest.approx(reference.sdr, abs=0.01), name
