"""Steered foci near the target take the target's heat source, translated (``transducer.steering``).

The oracle is the recomputed source: the focus's own field (and, through a skull, its own
ray trace). Within ``TRANSLATION_LIMIT_MM`` the translated source must match it to 2 % of
the peak everywhere on the grid (measured on the sample head through the population skull:
0.4-1.4 % at 1.5 mm, 3.3 % at 3 mm along the beam; in the phantom 0.4-1.2 % at 1.5 mm).
"""

import numpy as np
import pytest

from fusplan.acoustics import heat_source, transducer_from_spec
from fusplan.acoustics.transducer import TRANSLATION_LIMIT_MM
from fusplan.errors import FusplanInputError
from fusplan.focusmodel import source_sigma_mm, transform_source
from fusplan.grid import Grid
from fusplan.planner import simulate
from fusplan.protocol import load_protocol
from fusplan.tissue import tissue_from_spec
from test_skull_planning import shell

GRID = Grid.centred(np.zeros(3), 16.0, 0.5)
TISSUE = tissue_from_spec("brain")


def _source(transducer, focus_mm):
    return heat_source(transducer, GRID, np.asarray(focus_mm, float), TISSUE, geometric_focus_mm=np.zeros(3),
                       beam_axis=np.array([0.0, 0.0, 1.0]), threads=2)


@pytest.mark.parametrize("offset_mm", [(0.0, 1.5, 0.0), (1.5, 0.0, 0.0), (0.0, 0.0, 1.5), (1.0, 1.0, 1.0)])
def test_translated_source_matches_the_recomputed_one(offset_mm):
    transducer = transducer_from_spec({"model": "hemispherical_array"})
    assert np.linalg.norm(offset_mm) <= TRANSLATION_LIMIT_MM
    target = _source(transducer, np.zeros(3))
    recomputed = _source(transducer, offset_mm)
    translated = transform_source(target, GRID, offset_ras_mm=offset_mm)
    peak = recomputed.max()
    assert np.abs(translated - recomputed).max() < 0.02 * peak
    assert np.unravel_index(translated.argmax(), GRID.shape) == np.unravel_index(recomputed.argmax(), GRID.shape)
    np.testing.assert_allclose(source_sigma_mm(translated, 0.5), source_sigma_mm(recomputed, 0.5), rtol=0.02)


def _protocol(steering):
    return load_protocol({
        "name": "sub-units", "tissue": "brain",
        "transducer": {"model": "hemispherical_array", "steering": steering, "bone_mapping": "aubry2003"},
        "grid": {"spacing_mm": 0.5, "extent_mm": 18.0},
        "sonications": [{"stage": "treatment", "peak_c": 55, "duration_s": 8, "cooling_s": 20},
                        {"stage": "treatment", "peak_c": 55, "duration_s": 8, "cooling_s": 20, "offset_mm": [0, 1.5, 0]},
                        {"stage": "treatment", "peak_c": 55, "duration_s": 8, "cooling_s": 20, "offset_mm": [1.5, 0, 0]},
                        {"stage": "treatment", "peak_c": 55, "duration_s": 8, "cooling_s": 0, "offset_mm": [0, 0, 3.0]}],
    })


def test_sub_units_through_a_skull_translate_within_the_limit_only():
    """Through a synthetic shell: the sub-units 1.5 mm away take the target's source, the one
    3 mm away its own; powers and lesion match the all-recomputed plan to 2 %."""
    skull = shell()
    fast = simulate(_protocol("translate"), skull_ct=skull).to_dict()
    exact = simulate(_protocol("recompute"), skull_ct=skull).to_dict()
    assert [s["heat_source"] for s in fast["sonications"]] == ["computed", "translated", "translated", "computed"]
    assert {s["heat_source"] for s in exact["sonications"]} == {"computed"}
    for a, b in zip(fast["sonications"], exact["sonications"]):
        assert a["power_w"] == pytest.approx(b["power_w"], rel=0.02)
        assert a["peak_temperature_c"] == pytest.approx(b["peak_temperature_c"], abs=0.05)
        # a translated focus reports the skull powers of the target's trace
        assert a["transmitted_power_w"] / a["power_w"] == pytest.approx(b["transmitted_power_w"] / b["power_w"], rel=0.02)
    for a, b in zip(fast["lesions"], exact["lesions"]):
        assert a["volume_mm3"] == pytest.approx(b["volume_mm3"], rel=0.03, abs=0.2)
        for axis in ("lr_mm", "ap_mm", "si_mm"):
            assert a[axis] == pytest.approx(b[axis], rel=0.02, abs=0.05)


def test_steering_key_is_validated():
    with pytest.raises(FusplanInputError, match="transducer.steering"):
        transducer_from_spec({"model": "hemispherical_array", "steering": "shift"})


def test_translated_sources_share_the_targets_response_table():
    """A source given as another's whole-voxel translate takes the other's response table,
    moved: the run matches the one that builds every table (exact for sources that vanish at
    the grid's faces, up to the tables' float32 products: powers and doses within 1e-6
    relative, peaks within 1e-6 C)."""
    from fusplan.bioheat import DriverSettings, Pulse, SpectralBioheat, simulate_pulses

    grid = Grid.centred(np.zeros(3), 16.0, 0.5)
    x, y, z = grid.local_coordinates_mm()

    def blob(dx_mm, dy_mm):
        q = np.exp(-((x - dx_mm) ** 2 + (y - dy_mm) ** 2) / (2 * 0.6**2) - z**2 / (2 * 1.5**2))
        return q / ((0.5e-3) ** 3 * q.sum())
    sources = {"target": blob(0, 0), "ahead": blob(0, 1.5), "right": blob(1.5, 0)}
    pulses = [Pulse(0.0, 10.0, "target", None, 56.0, cooling_s=20.0),
              Pulse(30.0, 10.0, "ahead", None, 56.0, cooling_s=20.0),
              Pulse(60.0, 10.0, "right", None, 56.0, cooling_s=30.0)]
    settings = DriverSettings(thermometry_voxel_mm=(1.1, 1.1, 3.0), thermometry_frame_s=3.5,
                              displayed=((1.1, 1.1, 3.0), 3.5))
    solver = SpectralBioheat(grid.shape, 0.5, tissue_from_spec("brain"), duration_s=100)
    built = simulate_pulses(solver, sources, pulses, settings)
    shared = simulate_pulses(solver, sources, pulses, settings,
                             translations={"ahead": ("target", (0, 3, 0)), "right": ("target", (3, 0, 0))})
    assert [r.power_w for r in shared.results] == pytest.approx([r.power_w for r in built.results], rel=1e-6)
    np.testing.assert_allclose(shared.peak_temperature_c, built.peak_temperature_c, atol=1e-6)
    np.testing.assert_allclose(shared.dose_cem43, built.dose_cem43, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(shared.thermometry_dose_cem43, built.thermometry_dose_cem43, rtol=1e-6, atol=1e-9)
