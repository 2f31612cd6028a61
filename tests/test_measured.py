"""Measured thermometry input: numbers file and 4D NIfTI series, and their errors."""
import json

import nibabel as nib
import numpy as np
import pytest

from fusplan.errors import FusplanInputError
from fusplan.measured import load_measurements, load_series

GOOD = """
side: left
measured:
  - sonication: 1
    power_w: 60.0
    peak_c: 44.2
    spot_ras_mm: [-9.1, -20.3, 9.8]
    spot_fwhm_mm: [3.1, 3.4, 5.2]
  - sonication: 2
    peak_c: 47.5
"""


def test_numbers_file_yaml_and_json(tmp_path):
    path = tmp_path / "th.yaml"
    path.write_text(GOOD)
    m = load_measurements(path, n_sonications=7)
    assert m.side == "left" and [s.sonication for s in m.measured] == [1, 2]
    first = m.measured[0]
    assert first.power_w == 60.0 and first.peak_c == 44.2
    assert first.spot_ras_mm == (-9.1, -20.3, 9.8) and first.spot_fwhm_mm == (3.1, 3.4, 5.2)
    assert m.measured[1].power_w is None and m.measured[1].spot_ras_mm is None
    as_json = tmp_path / "th.json"
    as_json.write_text(json.dumps(m.to_dict() | {"side": "left"}, default=list).replace('"source": null, ', ""))
    raw = json.loads(as_json.read_text())
    raw.pop("source", None)
    as_json.write_text(json.dumps(raw))
    assert load_measurements(as_json).measured == m.measured


@pytest.mark.parametrize("text, needle", [
    ("measured: []", "measured"),
    ("measured:\n  - {sonication: 1, peak_c: 44, colour: red}", "unknown key measured[1].colour"),
    ("measured:\n  - {sonication: 1}", "needs exactly one of peak_c or thermometry"),
    ("measured:\n  - {sonication: 0, peak_c: 44}", "measured[1].sonication"),
    ("measured:\n  - {sonication: 9, peak_c: 44}", "measured[1].sonication"),
    ("measured:\n  - {sonication: 1, peak_c: 144}", "measured[1].peak_c"),
    ("measured:\n  - {sonication: 1, peak_c: 44, power_w: -3}", "measured[1].power_w"),
    ("measured:\n  - {sonication: 1, peak_c: 44, spot_ras_mm: [1, 2]}", "measured[1].spot_ras_mm"),
    ("measured:\n  - {sonication: 1, peak_c: 44, spot_fwhm_mm: [1, 0, 2]}", "measured[1].spot_fwhm_mm[1]"),
    ("measured:\n  - {sonication: 1, peak_c: 44}\n  - {sonication: 1, peak_c: 45}", "measured[2].sonication"),
    ("side: middle\nmeasured:\n  - {sonication: 1, peak_c: 44}", "side"),
    ("measured:\n  - {sonication: 1, thermometry: missing.nii.gz}", "missing.nii.gz"),
    ("measured:\n  - {sonication: 1, peak_c: [1", "not valid YAML"),
])
def test_bad_numbers_files_are_refused_naming_the_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(FusplanInputError) as error:
        load_measurements(path, n_sonications=7)
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FusplanInputError, match="nope.yaml: thermometry file not found"):
        load_measurements(tmp_path / "nope.yaml")


def _series(tmp_path, affine=None, frames=5, zooms_t=3.5, data=None, name="series.nii.gz"):
    data = np.full((4, 5, 3, frames), 37.0) if data is None else data
    image = nib.Nifti1Image(data.astype(np.float32), np.diag([1.1, 1.1, 3.0, 1.0]) if affine is None else affine)
    image.header.set_xyzt_units("mm", "sec")
    zooms = list(image.header.get_zooms())
    zooms[3] = zooms_t
    image.header.set_zooms(zooms)
    path = tmp_path / name
    nib.save(image, str(path))
    return path


def test_series_frame_times_from_pixdim_or_sidecar(tmp_path):
    path = _series(tmp_path)
    series = load_series(path)
    assert series.temperature_c.shape == (4, 5, 3, 5)
    np.testing.assert_allclose(series.frame_times_s, 3.5 * np.arange(1, 6))
    assert series.frame_s == pytest.approx(3.5)
    np.testing.assert_allclose(series.voxel_mm, [1.1, 1.1, 3.0], rtol=1e-6)
    (tmp_path / "series.json").write_text(json.dumps({"frame_times_s": [-3, 0, 3, 6, 9]}))
    series = load_series(path)
    np.testing.assert_allclose(series.frame_times_s, [-3, 0, 3, 6, 9])
    assert series.frame_s == pytest.approx(3.0)


def test_series_keeps_a_flipped_oblique_affine(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[-1.1 * c, -3.0 * s, 0, 10], [0, 0, 1.1, -20], [-1.1 * s, 3.0 * c, 0, 5], [0, 0, 0, 1]])
    series = load_series(_series(tmp_path, affine=affine))
    np.testing.assert_allclose(series.affine, affine, atol=1e-5)
    np.testing.assert_allclose(sorted(series.voxel_mm), [1.1, 1.1, 3.0], rtol=1e-5)


@pytest.mark.parametrize("case, needle", [
    ("3d", "4D"),
    ("nan", "finite"),
    ("kelvin", "temperatures in C"),
    ("sidecar_length", "frame_times_s has 3 times for 5 frames"),
    ("sidecar_order", "frame_times_s must increase"),
    ("no_times", "no frame times"),
])
def test_bad_series_are_refused(tmp_path, case, needle):
    data = np.full((4, 5, 3, 5), 37.0)
    if case == "3d":
        path = tmp_path / "series.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((4, 5, 3), np.float32), np.eye(4)), str(path))
    elif case == "nan":
        data[0, 0, 0, 0] = np.nan
        path = _series(tmp_path, data=data)
    elif case == "kelvin":
        path = _series(tmp_path, data=data + 273.15)
    elif case == "no_times":
        path = _series(tmp_path, zooms_t=0.0)
    else:
        path = _series(tmp_path)
        times = [1, 2, 3] if case == "sidecar_length" else [1, 3, 2, 4, 5]
        (tmp_path / "series.json").write_text(json.dumps({"frame_times_s": times}))
    with pytest.raises(FusplanInputError) as error:
        load_series(path)
    assert needle in str(error.value) and "series." in str(error.value)


def test_series_entry_resolves_relative_to_the_file(tmp_path):
    _series(tmp_path)
    path = tmp_path / "th.yaml"
    path.write_text("measured:\n  - {sonication: 2, power_w: 40, thermometry: series.nii.gz}\n")
    m = load_measurements(path, n_sonications=3)
    assert m.measured[0].series is not None and m.measured[0].power_w == 40
    path.write_text("measured:\n  - {sonication: 2, thermometry: series.nii.gz, spot_ras_mm: [0, 0, 0]}\n")
    with pytest.raises(FusplanInputError, match="spot_ras_mm"):
        load_measurements(path)
