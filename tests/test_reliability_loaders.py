"""Issue 14 loader rules: YAML as users type it, output-folder checks, warnings, registration files."""
import re
from pathlib import Path

import numpy as np
import pytest

from fusplan.errors import FusplanInputError
from fusplan.io import load_scan
from fusplan.outputs import check_output_dir
from fusplan.protocol import (BUNDLED_PROTOCOLS, MAX_CONSOLE_ACOUSTIC_POWER_W, MAX_POWER_W, PLAUSIBLE_RANGES,
                              load_protocol)
from fusplan.registration import Registration, load_registration
from fusplan.registration_file import FORMAT_VERSION
from fusplan.textfile import MAX_DEPTH, parse_json, parse_yaml, parse_yaml_value
from make_corpus import PROTOCOL, _data, _nii_bytes

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plausible_ranges.md"


@pytest.mark.parametrize("text, value", [
    ("1e9", 1e9), ("1.0e9", 1e9), ("-2.5E-3", -2.5e-3), (".5", 0.5), ("1_000", 1000), ("0x1F", 31),
    ("12", 12), ("1.5", 1.5), ("yes", True), ("null", None), ("'1e9'", "1e9"), ("1e", "1e"),
])
def test_yaml_numbers_follow_what_users_type(text, value):
    assert parse_yaml_value(text) == value
    assert type(parse_yaml_value(text)) is type(value)


def test_merge_keys_work_and_duplicates_are_still_refused():
    text = "base: &b {spacing_mm: 1.0, extent_mm: 20}\ngrid:\n  <<: *b\n  extent_mm: 30\n"
    assert parse_yaml(text)["grid"] == {"spacing_mm": 1.0, "extent_mm": 30}
    with pytest.raises(FusplanInputError, match="given twice"):
        parse_yaml("grid:\n  <<: {a: 1}\n  b: 2\n  b: 3\n")


def test_json_duplicates_depth_and_constants():
    assert parse_json('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    with pytest.raises(FusplanInputError, match="given twice"):
        parse_json('{"a": 1, "a": 2}', label="m.json")
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(FusplanInputError, match="nested deeper"):
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(FusplanInputError, match="Infinity is not a JSON number"):
        parse_json('{"a": Infinity}')
    assert parse_json('{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\""}')  # brackets in strings do not count


def test_protocol_with_exponent_numbers_and_merge_keys_loads(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROTOCOL.replace("duration_s: 4", "duration_s: 4e0").replace("extent_mm: 20", "extent_mm: 2e1"))
    protocol = load_protocol(path)
    assert protocol.sonications[0].duration_s == 4.0 and protocol.extent_mm == 20.0


def test_plausible_ranges_page_lists_every_range():
    text = DOCS.read_text()
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^\| `([a-z_0-9.\[\]]+)` \| ([-0-9.e+]+) \| ([-0-9.e+]+) \|", text, re.M)}
    for key, (low, high, _unit) in PLAUSIBLE_RANGES.items():
        shown = key.replace("sonications.", "sonications[i].").replace("thresholds_cem43", "thresholds_cem43[i]")
        assert rows.get(shown) == (low, high), key
    assert MAX_POWER_W == MAX_CONSOLE_ACOUSTIC_POWER_W and f"{MAX_CONSOLE_ACOUSTIC_POWER_W:g} W" in text


def test_every_bundled_protocol_value_is_plausible():
    for name in BUNDLED_PROTOCOLS:
        load_protocol(name)


def test_check_output_dir(tmp_path):
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_output_dir(tmp_path) == tmp_path
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for bad, reason in [("", "empty output folder name"), ("  ", "empty output folder name"),
                        (tmp_path / "file", "not a folder"), (tmp_path / "file" / "sub", "is a file"),
                        (tmp_path / "dangling", "dangling")]:
        with pytest.raises(FusplanInputError, match=reason):
            check_output_dir(bad)


def test_nibabel_complaints_go_to_scan_warnings_not_stderr(tmp_path, capfd):
    path = tmp_path / "qfac.nii"
    path.write_bytes(_nii_bytes(_data(), pixdim=[0.5, 2, 2, 2, 1, 1, 1, 1]))  # qfac must be +-1
    scan = load_scan(path)
    assert capfd.readouterr().err == ""
    assert any(w.startswith("nibabel: ") and "qfac" in w for w in scan.warnings), scan.warnings


def test_registration_round_trip_checks_the_scan(tmp_path):
    scan = load_scan(_write(tmp_path / "a.nii", _nii_bytes(_data())))
    other = load_scan(_write(tmp_path / "b.nii", _nii_bytes(_data() + 1)))
    from fusplan.registration import scan_fingerprint

    empty = np.zeros((0, 0, 0, 3), np.float32)
    registration = Registration(atlas="morel", affine_mm=np.diag([1.1, 0.9, 1.0, 1.0]), field_shape=(0, 0, 0),
                                field_affine=np.eye(4), forward_mm=empty, backward_mm=empty, method="m", time_s=1.0,
                                similarity=0.9, affine_similarity=0.8, contrast="T1",
                                scan_fingerprint=scan_fingerprint(scan), settings={"levels": [1, 2]})
    path = registration.save(tmp_path / "reg.npz")
    loaded = load_registration(path, scan=scan)
    np.testing.assert_array_equal(loaded.affine_mm, registration.affine_mm)
    assert loaded.facts() == registration.facts() and loaded.settings == {"levels": [1, 2]}
    with pytest.raises(FusplanInputError, match=r"reg\.npz: registration was computed for another scan"):
        load_registration(path, scan=other)
    assert FORMAT_VERSION == 2


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path
