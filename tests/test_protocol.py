"""Protocol loading, validation and overrides."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from fusplan.errors import FusplanInputError
from fusplan.protocol import (
    BUNDLED_PROTOCOLS,
    Protocol,
    Sonication,
    Thermometry,
    default_protocol_path,
    load_protocol,
    override_protocol,
    parse_override,
)

BASE = {
    "name": "test",
    "tissue": "brain",
    "transducer": {"model": "hemispherical_array", "frequency_khz": 650},
    "grid": {"spacing_mm": 0.5, "extent_mm": 40},
    "sonications": [
        {"stage": "alignment", "power_w": 100, "duration_s": 10, "cooling_s": 40},
        {"stage": "verification", "peak_c": 50, "duration_s": 12, "cooling_s": 60},
        {"stage": "treatment", "peak_c": 56, "duration_s": 15, "cooling_s": 120, "repeat": 2},
    ],
    "thresholds_cem43": [17, 240],
    "thermometry": {"voxel_mm": [1.1, 1.1, 3.0], "frame_s": 3.5},
}
GAUSSIAN = {"model": "gaussian", "fwhm_mm": [1.4, 1.4, 3.5]}


def _spec(**changes):
    spec = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        spec[key] = value
    return spec


def _sonication(i, **changes):
    spec = _spec()
    spec["sonications"][i].update(changes)
    return spec


@pytest.mark.parametrize("name, count", [("clt", 7), ("clt_single", 7), ("vim", 6)])
def test_bundled_protocols_load(name, count):
    path = default_protocol_path(name)
    assert path.is_file() and path.suffix == ".yaml"
    protocol = load_protocol(path)
    assert protocol == load_protocol(name)  # bundled name works too
    assert len(protocol.sonications) == count
    assert [s.index for s in protocol.sonications] == list(range(1, count + 1))
    assert protocol.sonications[0].stage == "alignment"
    assert protocol.sonications[-1].stage == "treatment"
    assert all(s.peak_c is not None for s in protocol.sonications)
    assert 6 * 60 <= protocol.total_time_s <= 10 * 60
    assert protocol.thermometry == Thermometry((1.1, 1.1, 3.0), 3.5)
    assert protocol.source == str(path)


def test_clt_builds_the_target_from_sub_units_as_practised():
    # Gallay 2019 / 2021: 5-7 sub-units of 1.5 x 1.5 x 3 mm by focal displacement, short sonications
    protocol = load_protocol("clt")
    treatment = [s for s in protocol.sonications if s.stage == "treatment"]
    centres = np.array([s.offset_mm or (0.0, 0.0, 0.0) for s in treatment])
    assert 5 <= len({tuple(c) for c in centres}) <= 7
    nearest = [min(np.linalg.norm(c - o) for o in centres if not np.array_equal(c, o)) for c in centres]
    assert np.allclose(nearest, 1.5) and np.all(centres[:, 2] == 0)  # one 3 mm thermometry slice
    assert all(s.duration_s <= 12 for s in treatment)
    assert all(s.offset_mm is None for s in protocol.sonications if s.stage != "treatment")
    single = load_protocol("clt_single")
    assert all(s.offset_mm is None for s in single.sonications)


def test_vim_retargets_between_treatment_sonications():
    treatment = [s for s in load_protocol("vim").sonications if s.stage == "treatment"]
    moves = [np.linalg.norm(np.subtract(b.offset_mm or (0, 0, 0), a.offset_mm or (0, 0, 0)))
             for a, b in zip(treatment[:-1], treatment[1:])]
    assert any(0.5 <= m <= 2.0 for m in moves)
    assert all(55 <= s.peak_c <= 60 for s in treatment)


def test_clt_protocol_is_staged_like_clinical_practice():
    protocol = load_protocol("clt")
    peaks = {stage: [s.peak_c for s in protocol.sonications if s.stage == stage] for stage in
             ("alignment", "verification", "treatment")}
    assert all(40 <= p <= 45 for p in peaks["alignment"])
    # clinical ~46-52 C displayed; 45 C keeps the modelled focus below 17 CEM43 (clt.yaml, issue 12)
    assert all(45 <= p <= 52 for p in peaks["verification"])
    assert len(peaks["treatment"]) == 5 and all(54 <= p <= 60 for p in peaks["treatment"])
    assert all(10 <= s.duration_s <= 20 and s.cooling_s >= 40 for s in protocol.sonications)
    assert protocol.thresholds_cem43 == (17.0, 100.0, 200.0, 240.0)  # console and day-1 MRI contours


def test_unknown_bundled_name():
    with pytest.raises(FusplanInputError, match="unknown bundled protocol 'nope'"):
        default_protocol_path("nope")


def test_protocol_is_hashable_and_picklable():
    protocol = load_protocol(BASE)
    assert hash(protocol) == hash(load_protocol(BASE))
    assert pickle.loads(pickle.dumps(protocol)) == protocol
    assert {protocol: 1}[load_protocol(BASE)] == 1


def test_mapping_yaml_and_json_files_agree(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "p.json").write_text(json.dumps(BASE))
    from_mapping = load_protocol(BASE)
    from_yaml = load_protocol(tmp_path / "p.yaml")
    from_json = load_protocol(str(tmp_path / "p.json"))
    assert from_yaml.sonications == from_json.sonications == from_mapping.sonications
    assert from_yaml.source == str(tmp_path / "p.yaml") and from_mapping.source is None
    assert load_protocol(from_yaml) is from_yaml


def test_fields_and_repeat_expansion():
    protocol = load_protocol(BASE)
    assert isinstance(protocol, Protocol)
    assert protocol.name == "test" and protocol.spacing_mm == 0.5 and protocol.extent_mm == 40.0
    assert protocol.tissue.conductivity_w_m_k == pytest.approx(0.51)
    assert protocol.transducer.model == "hemispherical_array"
    assert protocol.sonications == (
        Sonication(1, "alignment", 10.0, 40.0, power_w=100.0),
        Sonication(2, "verification", 12.0, 60.0, peak_c=50.0),
        Sonication(3, "treatment", 15.0, 120.0, peak_c=56.0),
        Sonication(4, "treatment", 15.0, 120.0, peak_c=56.0),
    )
    assert protocol.total_time_s == 10 + 40 + 12 + 60 + 2 * (15 + 120)


def test_defaults():
    spec = {"transducer": {}, "sonications": [{"stage": "treatment", "peak_c": 55, "duration_s": 10,
                                               "offset_mm": [1, -2, 0.5]}]}
    protocol = load_protocol(spec)
    assert protocol.name == "protocol"
    assert protocol.tissue == load_protocol(BASE).tissue  # brain preset
    assert (protocol.spacing_mm, protocol.extent_mm) == (0.5, 40.0)
    assert protocol.thresholds_cem43 == (17.0, 100.0, 200.0, 240.0)
    assert protocol.thermometry is None
    sonication = protocol.sonications[0]
    assert sonication.cooling_s == 0.0 and sonication.offset_frame == "acpc"
    assert sonication.offset_mm == (1.0, -2.0, 0.5)


def test_gaussian_transducer_takes_absorbed_power_or_peak():
    spec = _spec(transducer=GAUSSIAN)
    with pytest.raises(FusplanInputError, match=r"sonication entry 1: power_w is not allowed with a gaussian"):
        load_protocol(spec)
    spec["sonications"][0] = {"stage": "alignment", "absorbed_power_w": 0.2, "duration_s": 10}
    protocol = load_protocol(spec)
    assert protocol.sonications[0].absorbed_power_w == 0.2


@pytest.mark.parametrize("spec, message", [
    (_spec(foo=1), "protocol: unknown key foo"),
    ({k: v for k, v in BASE.items() if k != "sonications"}, "missing required key sonications"),
    ({k: v for k, v in BASE.items() if k != "transducer"}, "missing required key transducer"),
    (_spec(name=""), "name must be a non-empty string"),
    (_spec(name=3), "name must be a non-empty string (got 3)"),
    (_spec(sonications=[]), "sonications must be a non-empty list"),
    (_spec(sonications={"stage": "alignment"}), "sonications must be a non-empty list (got a mapping)"),
    (_sonication(1, duration_s=0), "sonication entry 2: duration_s must be > 0 (got 0)"),
    (_sonication(1, duration_s=-3), "sonication entry 2: duration_s must be > 0 (got -3)"),
    (_sonication(1, duration_s=1000), "sonication entry 2: duration_s must be <= 300"),
    (_sonication(1, duration_s="10"), "sonication entry 2: duration_s must be a number (got '10')"),
    (_sonication(1, duration_s=True), "sonication entry 2: duration_s must be a number (got true)"),
    (_sonication(1, duration_s=float("nan")), "sonication entry 2: duration_s must be finite"),
    (_sonication(1, peak_c=37), "sonication entry 2: peak_c must be > 37 C, the baseline temperature (got 37)"),
    (_sonication(1, peak_c=120), "sonication entry 2: peak_c must be <= 100 (got 120)"),
    (_sonication(0, power_w=6000), "sonication entry 1: power_w must be <= 1500 (got 6000)"),
    (_sonication(0, power_w=0), "sonication entry 1: power_w must be > 0 (got 0)"),
    (_sonication(0, absorbed_power_w=1), "sonication entry 1 must give exactly one of power_w, absorbed_power_w, "
                                         "peak_c (gives power_w and absorbed_power_w)"),
    (_spec(sonications=[{"stage": "treatment", "duration_s": 10}]), "sonication entry 1 must give exactly one"),
    (_sonication(2, stage="ablation"), "sonication entry 3: stage must be one of alignment, verification, treatment"),
    (_spec(sonications=[{"peak_c": 50, "duration_s": 10}]), "missing required key sonication entry 1: stage"),
    (_sonication(2, colling_s=5), "unknown key sonication entry 3: colling_s"),
    (_sonication(2, cooling_s=-1), "sonication entry 3: cooling_s must be >= 0 (got -1)"),
    (_sonication(2, repeat=0), "sonication entry 3: repeat must be between 1 and 50 (got 0)"),
    (_sonication(2, repeat=1.5), "sonication entry 3: repeat must be an integer (got 1.5)"),
    (_sonication(2, repeat=100), "sonication entry 3: repeat must be between 1 and 50"),
    (_sonication(2, offset_mm=[20, 0, 0]), "sonication entry 3: offset_mm moves the focus 20 mm from the target"),
    (_sonication(2, offset_mm=[1, 2]), "sonication entry 3: offset_mm must be a list of 3 numbers (got a list of 2)"),
    (_sonication(2, offset_mm=[1, "a", 2]), "sonication entry 3: offset_mm[1] must be a number"),
    (_sonication(2, offset_frame="lps"), "sonication entry 3: offset_frame must be one of acpc, ras (got 'lps')"),
    (_spec(grid={"spacing_mm": 0}), "grid.spacing_mm must be > 0 (got 0)"),
    (_spec(grid={"spacing_mm": 6}), "grid.spacing_mm must be <= 5 (got 6)"),
    (_spec(grid={"extent_mm": 5}), "grid.extent_mm must be >= 10 (got 5)"),
    (_spec(grid={"extent_mm": 400}), "grid.extent_mm must be <= 150 (got 400)"),
    (_spec(grid={"spacing_mm": 0.1, "extent_mm": 40}), "grid has 401^3"),
    (_spec(grid={"spacing_mm": 2.5, "extent_mm": 20}), "grid.extent_mm must span at least 11 voxels"),
    (_spec(grid={"spacing": 0.5}), "unknown key grid.spacing"),
    (_spec(grid=[0.5, 40]), "grid must be a mapping (got a list of 2)"),
    (_spec(thresholds_cem43=[]), "thresholds_cem43 must be a non-empty list"),
    (_spec(thresholds_cem43=[17, -1]), "thresholds_cem43[1] must be > 0 (got -1)"),
    (_spec(thresholds_cem43=[17, 17]), "thresholds_cem43 has repeated values"),
    (_spec(thermometry={"voxel_mm": [1, 1], "frame_s": 3}), "thermometry.voxel_mm must be a list of 3 numbers"),
    (_spec(thermometry={"voxel_mm": [1, 1, 3], "frame_s": 0}), "thermometry.frame_s must be > 0 (got 0)"),
    (_spec(thermometry={"voxel_mm": [1, 1, 3]}), "missing required key thermometry.frame_s"),
    (_spec(tissue={"preset": "brain", "colour": 3}), "tissue.colour"),
    (_spec(tissue=5), "tissue must be a preset name or a mapping (got 5)"),
    (_spec(transducer={"model": "hemispherical_array", "frequency_khz": -1}), "transducer.frequency_khz"),
    (_spec(transducer={"modle": "gaussian"}), "transducer.modle"),
    (_spec(transducer="array"), "transducer must be a mapping (got 'array')"),
])
def test_invalid_protocols_name_the_key(spec, message):
    with pytest.raises(FusplanInputError) as info:
        load_protocol(spec)
    text = str(info.value)
    assert message in text
    assert text.startswith("protocol: ") and "\n" not in text


def test_error_names_the_file(tmp_path):
    path = tmp_path / "clt.yaml"
    path.write_text(yaml.safe_dump(_sonication(2, duration_s=0)))
    with pytest.raises(FusplanInputError, match=r"^.*clt\.yaml: sonication entry 3: duration_s must be > 0 \(got 0\)$"):
        load_protocol(path)


@pytest.mark.parametrize("name, text, message", [
    ("bad.yaml", "name: [unclosed\n", "bad.yaml: not valid YAML (line"),
    ("dup.yaml", "name: a\nname: b\n", "dup.yaml: not valid YAML (key 'name' given twice (line 2))"),
    ("bad.json", "{\"name\": }", "bad.json: not valid JSON (line 1"),
    ("list.yaml", "- 1\n- 2\n", "list.yaml: a protocol must be a mapping of keys (got a list of 2)"),
    ("empty.yaml", "", "empty.yaml: a protocol must be a mapping of keys (got null)"),
])
def test_unreadable_files(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(FusplanInputError, match="^.*" + _escape(message)):
        load_protocol(tmp_path / name)


def _escape(text):
    import re

    return re.escape(text)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(FusplanInputError, match="missing.yaml: protocol file not found"):
        load_protocol(tmp_path / "missing.yaml")
    with pytest.raises(FusplanInputError, match="protocol must be a file path or a mapping"):
        load_protocol(42)


def test_spec_is_a_read_only_copy():
    protocol = load_protocol(BASE)
    spec = protocol.spec
    spec["name"] = "changed"
    assert protocol.spec["name"] == "test"
    assert load_protocol(protocol.spec) == load_protocol(BASE)


def test_override_bare_key_means_treatment():
    protocol = override_protocol(load_protocol(BASE), {"peak_c": 57, "duration_s": 20})
    treatment = [s for s in protocol.sonications if s.stage == "treatment"]
    assert all(s.peak_c == 57 and s.duration_s == 20 for s in treatment)
    assert protocol.sonications[1].peak_c == 50 and protocol.sonications[1].duration_s == 12
    assert protocol.sonications[0].power_w == 100


def test_override_selectors_and_power_mode_switch():
    base = load_protocol(BASE)
    protocol = override_protocol(base, {"verification.peak_c": 48, "sonications[0].peak_c": 43,
                                        "sonications.cooling_s": 30, "treatment.repeat": 3})
    assert [s.stage for s in protocol.sonications].count("treatment") == 3
    assert protocol.sonications[0].peak_c == 43 and protocol.sonications[0].power_w is None
    assert protocol.sonications[1].peak_c == 48
    assert all(s.cooling_s == 30 for s in protocol.sonications)
    assert base.sonications[0].power_w == 100  # the original is untouched
    switched = override_protocol(base, {"treatment.power_w": 300})
    assert all(s.power_w == 300 and s.peak_c is None for s in switched.sonications if s.stage == "treatment")


def test_override_sections():
    base = load_protocol(BASE)
    protocol = override_protocol(base, {
        "transducer.skull_transmission": 0.35,
        "tissue.perfusion_ml_min_kg": 0,
        "grid.spacing_mm": 0.25,
        "thresholds_cem43": [240],
        "thermometry": None,
        "name": "sweep",
    })
    assert protocol.transducer.skull_transmission == 0.35
    assert protocol.tissue.perfusion_ml_min_kg == 0
    assert protocol.tissue.conductivity_w_m_k == base.tissue.conductivity_w_m_k
    assert protocol.spacing_mm == 0.25 and protocol.extent_mm == 40
    assert protocol.thresholds_cem43 == (240.0,) and protocol.thermometry is None
    assert protocol.name == "sweep"
    assert override_protocol(base, {"thermometry.frame_s": 2.0}).thermometry.frame_s == 2.0
    assert override_protocol(base, {}) == base


@pytest.mark.parametrize("overrides, message", [
    ({"peak": 55}, "override 'peak' is not a known key"),
    ({"grid.size": 3}, "override 'grid.size' is not a known key"),
    ({"treatment.stage": "alignment"}, "override 'treatment.stage' is not a known key"),
    ({"sonications[9].peak_c": 50}, "override 'sonications[9].peak_c': the protocol has no such sonication"),
    ({"transducer.colour": 1}, "transducer.colour"),
    ({"peak_c": 150}, "protocol (with overrides): sonication entry 3: peak_c must be <= 100 (got 150)"),
])
def test_override_errors(overrides, message):
    with pytest.raises(FusplanInputError) as info:
        override_protocol(load_protocol(BASE), overrides)
    assert message in str(info.value)


def test_override_stage_absent():
    base = load_protocol(_spec(sonications=[BASE["sonications"][2]]))
    with pytest.raises(FusplanInputError, match="'verification.peak_c': the protocol has no such sonication"):
        override_protocol(base, {"verification.peak_c": 50})


def test_overridden_file_protocol_names_the_file():
    with pytest.raises(FusplanInputError, match=r"clt\.yaml \(with overrides\): grid\.spacing_mm must be > 0"):
        override_protocol(load_protocol("clt"), {"grid.spacing_mm": 0})


def test_parse_override():
    assert parse_override("treatment.peak_c=56") == ("treatment.peak_c", 56)
    assert parse_override("thermometry.voxel_mm=[1, 1, 2]") == ("thermometry.voxel_mm", [1, 1, 2])
    assert parse_override(" name = sweep a ") == ("name", "sweep a")
    with pytest.raises(FusplanInputError, match="must look like key=value"):
        parse_override("peak_c")


def test_bundled_files_are_documented():
    for name in BUNDLED_PROTOCOLS:
        text = Path(default_protocol_path(name)).read_text()
        assert text.count("\n#") >= 5 and ("Sources" in text or "Huang" in text)


def test_messages_count_sonication_entries_from_1_everywhere():
    """Validation and titration messages name the same entry, counted from 1 like the plugin's rows (issue 20.9)."""
    from fusplan.planner import sonication_keys
    from fusplan.protocol.checker import shown

    assert shown("sonications[0].peak_c") == "sonication entry 1: peak_c" and shown("grid.spacing_mm") == "grid.spacing_mm"
    spec = _spec(sonications=[dict(BASE["sonications"][0]), dict(BASE["sonications"][2], repeat=2)])
    names = sonication_keys(load_protocol(spec))
    assert [n.split(": ", 1)[1] for n in names] == ["sonication entry 1", "sonication entry 2", "sonication entry 2"]
    with pytest.raises(FusplanInputError, match="sonication entry 2: duration_s"):
        load_protocol(_spec(sonications=[dict(BASE["sonications"][0]), dict(BASE["sonications"][2], duration_s=0)]))
