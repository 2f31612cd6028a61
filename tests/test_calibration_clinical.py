"""Clinically comparable regions, isotherms and the reversible CLT verification stage."""
import numpy as np
import pytest
import yaml

import fusplan
from fusplan.clinical import CLINICAL_REGIONS, DEFAULT_COMPARISON, clinical_regions, corresponds_to, lesion_model
from fusplan.grid import Grid
from fusplan.lesion import measure_isotherm
from fusplan.protocol import default_protocol_path


def test_regions_table_lists_the_published_comparisons_with_sources():
    levels = {(r.kind, r.level): r for r in CLINICAL_REGIONS}
    assert set(levels) == {("dose", 240.0), ("dose", 200.0), ("dose", 100.0), ("dose", 17.0),
                           ("isotherm", 51.0), ("isotherm", 54.0)}
    assert "T1" in levels[("dose", 200.0)].corresponds_to and "Huang" in levels[("dose", 200.0)].source
    assert "T2" in levels[("dose", 100.0)].corresponds_to
    assert "Bond" in levels[("isotherm", 51.0)].source
    assert all(r.source for r in CLINICAL_REGIONS)
    block = lesion_model()
    assert block["default_comparison"] == DEFAULT_COMPARISON == "cem43_200"
    assert block["default_threshold_cem43"] == 200.0 and "day-1 T1" in block["corresponds_to"]
    assert corresponds_to(200) == "day-1 T1 lesion (Huang 2018)" and corresponds_to(123) is None


@pytest.mark.parametrize("sigmas", [(1.5, 1.5, 1.5), (1.2, 1.6, 2.5)])
def test_isotherm_of_a_gaussian_peak_map_matches_the_analytic_ellipsoid(sigmas):
    grid = Grid.centred([3.0, -2.0, 1.0], extent_mm=20, spacing_mm=0.5)
    x, y, z = grid.local_coordinates_mm()
    amplitude = 20.0
    peak = 37 + amplitude * np.exp(-0.5 * ((x / sigmas[0]) ** 2 + (y / sigmas[1]) ** 2 + (z / sigmas[2]) ** 2))
    level = 51.0
    radius = np.sqrt(2 * np.log(amplitude / (level - 37)))  # in units of sigma
    size = measure_isotherm(peak, grid, level)
    for key, s in zip(("lr_mm", "ap_mm", "si_mm"), sigmas):
        assert getattr(size, key) == pytest.approx(2 * radius * s, abs=0.06)
    volume = 4 / 3 * np.pi * np.prod(sigmas) * radius**3
    assert size.volume_mm3 == pytest.approx(volume, rel=0.02)
    with pytest.raises(ValueError):
        measure_isotherm(peak, grid, 36.0)


@pytest.fixture(scope="module")
def clt_spec():
    with open(default_protocol_path("clt")) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("name", ["clt", "clt_single", "vim"])
def test_bundled_verification_stages_stay_reversible(name):
    """Through its last verification sonication a bundled protocol stays below 17 CEM43."""
    with open(default_protocol_path(name)) as handle:
        spec = yaml.safe_load(handle)
    stages = [s["stage"] for s in spec["sonications"]]
    until = len(stages) - stages[::-1].index("verification")
    spec = dict(spec, sonications=spec["sonications"][:until])
    result = fusplan.simulate(fusplan.load_protocol(spec))
    focus_dose = float(result.dose_cem43.max())
    assert 0.5 < focus_dose < 17.0
    verification = result.first.sonications[-1]
    assert verification.stage == "verification"
    assert verification.thermometry_peak_c == pytest.approx(spec["sonications"][-1]["peak_c"], abs=1e-6)


def test_clinical_regions_on_the_default_plan_are_nested(clt_spec):
    result = fusplan.simulate(fusplan.load_protocol(clt_spec))
    side = result.first
    regions = clinical_regions(side.dose_cem43, side.peak_temperature_c, side.grid)
    by_key = {r.region.key: r for r in regions}
    d = {k: r.equivalent_diameter_mm for k, r in by_key.items()}
    assert d["cem43_17"] > d["cem43_100"] > d["cem43_200"] > d["cem43_240"] > 0
    assert d["max_51c"] > d["max_54c"] > 0
    entry = by_key["cem43_200"].to_dict()
    assert entry["threshold_cem43"] == 200.0 and entry["corresponds_to"].startswith("day-1 T1")
    iso = by_key["max_51c"].to_dict()
    assert iso["max_temperature_c"] == 51.0 and set(iso) >= {"lr_mm", "ap_mm", "si_mm", "volume_mm3",
                                                           "equivalent_diameter_mm"}
