"""Report writers: JSON, markdown and NIfTI maps, atomic and deterministic."""
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fusplan import report as report_module
from fusplan.grid import Grid
from fusplan.lesion import measure_lesion
from fusplan.report import dumps_json, summary_markdown, threshold_label, write_report

THRESHOLDS = (17.0, 240.0)


class _Protocol:
    name = "CLT staged default"
    source = None
    thresholds_cem43 = THRESHOLDS

    def to_dict(self):
        return {"name": self.name}


@dataclass
class _Side:
    side: str | None
    grid: Grid
    peak_temperature_c: np.ndarray
    dose_cem43: np.ndarray


class _Result:
    """Stands in for a SimulationResult: the attributes write_report reads, without simulating."""

    def __init__(self, sides):
        self.sides = {s.side: s for s in sides}
        self.protocol = _Protocol()
        self.scan = self.targets = None
        self._sides = sides

    def to_dict(self):
        lesions = []
        for s in self._sides:
            for threshold in THRESHOLDS:
                lesions.append(measure_lesion(s.dose_cem43, s.grid, threshold, labels=_labels(s.grid),
                                              label_names={3: "CL"}, side=s.side).to_dict())
        return {
            "fusplan_version": "0.1.0",
            "protocol": "CLT staged default",
            "targets": [{"name": "CLp", "side": s.side, "ras_mm": s.grid.centre_mm, "acpc_mm": np.array([-6.0, -18.0, 6.0])}
                        for s in self._sides if s.side],
            "landmarks": {"AC": np.array([0.0, 2.5, -5.0]), "PC": [0.0, -25.0, -2.0], "MCP": (0.0, -11.25, -3.5)},
            "sonications": [{"index": 1, "stage": "treatment", "power_w": np.float32(412.3456), "absorbed_power_w": 0.812345,
                             "duration_s": 14, "cooling_s": 60, "energy_j": 5772.8, "peak_temperature_c": 55.01234567,
                             "thermometry_peak_c": 53.9}],
            "focus": {"time_s": np.arange(4) * 0.5, "temperature_c": np.array([37.0, 45.2, 52.123456789, 40.0])},
            "lesions": lesions,
        }


def _labels(grid):
    labels = np.zeros(grid.shape, dtype=np.int16)
    labels[: grid.shape[0] // 2] = 3
    return labels


def _side(side, centre, axes=None):
    grid = Grid.centred(centre, extent_mm=12.0, spacing_mm=0.5, axes=axes)
    x, y, z = grid.local_coordinates_mm()
    peak = 37 + 20 * np.exp(-(x**2 + y**2) / (2 * 1.2**2) - z**2 / (2 * 2.5**2))
    dose = 240 * 2.0 ** (peak - 54)
    return _Side(side, grid, peak, dose)


def _rotation_about_z(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.fixture
def bilateral():
    return _Result([_side("left", (-7.0, -19.0, 8.0), _rotation_about_z(10)), _side("right", (8.0, -19.0, 8.0))])


def test_write_report_files_and_affines(tmp_path, bilateral):
    written = write_report(bilateral, tmp_path / "out", figures=False)
    names = sorted(written)
    expected = ["report.json", "summary.md"] + [
        f"{kind}_{side}.nii.gz" for side in ("left", "right")
        for kind in ("peak_temperature_c", "dose_cem43", "lesion_17cem43", "lesion_240cem43")
    ]
    assert names == sorted(expected)
    on_disk = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert on_disk == sorted([*expected, ".fusplan-outputs.json"])  # no staging left; the output list
    for side, s in bilateral.sides.items():
        image = nib.load(tmp_path / "out" / f"peak_temperature_c_{side}.nii.gz")
        np.testing.assert_allclose(image.affine, s.grid.affine, atol=1e-5)
        np.testing.assert_allclose(image.get_fdata(), s.peak_temperature_c, rtol=1e-6)
        mask = nib.load(tmp_path / "out" / f"lesion_240cem43_{side}.nii.gz")
        assert mask.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asarray(mask.dataobj), s.dose_cem43 >= 240)
        # world position of the hottest voxel is the target, whatever the grid rotation
        hottest = np.unravel_index(np.argmax(image.get_fdata()), image.shape)
        np.testing.assert_allclose(nib.affines.apply_affine(image.affine, hottest), s.grid.centre_mm, atol=1e-4)


def test_report_json_round_trip(tmp_path, bilateral):
    write_report(bilateral, tmp_path, figures=False)
    loaded = json.loads((tmp_path / "report.json").read_text())
    expected = json.loads(dumps_json({**bilateral.to_dict(), "provenance": report_module.provenance(bilateral)}))
    assert loaded == expected
    assert list(loaded) == ["fusplan_version", "protocol", "targets", "landmarks", "sonications", "focus", "lesions",
                            "provenance"]
    assert loaded["sonications"][0]["peak_temperature_c"] == 55.0123
    assert loaded["focus"]["temperature_c"][2] == 52.1235
    assert loaded["landmarks"]["MCP"] == [0.0, -11.25, -3.5]
    lesion = loaded["lesions"][1]
    assert lesion["side"] == "left" and lesion["threshold_cem43"] == 240
    assert 0 < lesion["volume_mm3"] and set(lesion["nuclei"]) == {"CL"}


def test_phantom_report_has_no_side_suffix(tmp_path):
    written = write_report(_Result([_side(None, (0.0, 0.0, 0.0))]), tmp_path, figures=False)
    assert "dose_cem43.nii.gz" in written and "lesion_240cem43.nii.gz" in written


def test_output_is_byte_identical(tmp_path, bilateral):
    write_report(bilateral, tmp_path / "a", figures=False)
    write_report(bilateral, tmp_path / "b", figures=False)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_failed_write_leaves_no_files(tmp_path, bilateral, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("previous run\n")
    calls = []

    def failing_save(data, affine, path, **options):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(data, affine, path, **options)

    original = report_module.save_nifti
    monkeypatch.setattr(report_module, "save_nifti", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_report(bilateral, out, figures=False)
    assert [p.name for p in out.iterdir()] == ["report.json"]  # no staging dir, no new files
    assert (out / "report.json").read_text() == "previous run\n"  # previous report untouched


def test_out_dir_that_is_a_file(tmp_path, bilateral):
    from fusplan.errors import FusplanInputError

    (tmp_path / "f").write_text("x")
    with pytest.raises(FusplanInputError, match="exists and is not a directory"):
        write_report(bilateral, tmp_path / "f", figures=False)


def test_figures(tmp_path):
    from fusplan.io import Scan

    scan = Scan(data=np.random.default_rng(0).random((30, 30, 30), dtype=np.float32),
                affine=np.diag([2.0, 2.0, 2.0, 1.0]) @ np.array([[1, 0, 0, -15], [0, 1, 0, -25], [0, 0, 1, -7], [0, 0, 0, 1.0]]))
    written = write_report(_Result([_side("left", (-7.0, -19.0, 8.0))]), tmp_path, scan=scan)
    assert written["figure_left.png"].read_bytes()[:4] == b"\x89PNG"


def test_summary_markdown(bilateral):
    text = summary_markdown(json.loads(dumps_json(bilateral.to_dict())))
    assert text.startswith("# fusplan report: CLT staged default")
    assert "| CLp | left | (-7.0, -19.0, 8.0) | (-6.0, -18.0, 6.0) |" in text
    assert "| 1 | treatment | 14.0 | 60.0 | 412.3 | 0.81 | 5773 | 55.0 | 53.9 |" in text
    assert "## Lesions" in text and "| left | 240 |" in text and "CL " in text


def test_dumps_json_conversions():
    class WithDict:
        def to_dict(self):
            return {"a": 1}

    text = dumps_json({"f": np.float64(1 / 3), "i": np.int64(7), "b": np.bool_(True), "nan": float("nan"),
                       "inf": np.inf, "neg0": -0.0, "arr": np.array([[1.23456789, 2]]), "t": (1, 2), "p": Path("x/y"),
                       "small": 1.234567891e-7, 5: "int key", "obj": WithDict(), "set": {3, 1}})
    assert json.loads(text) == {"f": 0.333333, "i": 7, "b": True, "nan": None, "inf": None, "neg0": 0.0,
                                "arr": [[1.23457, 2]], "t": [1, 2], "p": "x/y", "small": 1.23457e-07,
                                "5": "int key", "obj": {"a": 1}, "set": [1, 3]}
    assert text.endswith("}\n")
    with pytest.raises(TypeError, match="cannot write object"):
        dumps_json({"x": object()})


def test_threshold_label():
    assert threshold_label(240.0) == "240" and threshold_label(17.5) == "17p5"


def test_maps_keep_the_scans_xform_codes_and_carry_units(tmp_path, bilateral):
    from fusplan.io import load_scan

    affine = np.diag([2.0, 2.0, 2.0, 1.0]) + np.c_[np.zeros((4, 3)), [-60, -60, -60, 0]]
    image = nib.Nifti1Image(np.random.default_rng(0).random((60, 60, 60), dtype=np.float32), affine)
    image.set_sform(image.affine, code=4)
    image.set_qform(image.affine, code=1)
    nib.save(image, tmp_path / "scan.nii.gz")
    bilateral.scan = load_scan(tmp_path / "scan.nii.gz")
    write_report(bilateral, tmp_path / "out", figures=False)
    for name, unit in (("peak_temperature_c_left", "degC"), ("dose_cem43_right", "CEM43"), ("lesion_240cem43_left", "CEM43")):
        header = nib.load(tmp_path / "out" / f"{name}.nii.gz").header
        assert (int(header["sform_code"]), int(header["qform_code"])) == (4, 1)
        assert unit in header["descrip"].tobytes().decode()
        assert header.get_xyzt_units() == ("mm", "sec")


def test_provenance_has_the_same_shape_in_the_phantom_and_on_a_scan(tmp_path, bilateral):
    phantom = report_module.provenance(_Result([_side(None, (0.0, 0.0, 0.0))]))
    assert phantom["sides"] == [] and phantom["scan"] is None and phantom["registration"] is None
    assert phantom["protocol"]["spec"] == {"name": "CLT staged default"}
    sided = report_module.provenance(bilateral)
    assert list(sided) == list(phantom) and sided["sides"] == ["left", "right"]


def test_lesion_figure_has_orientation_letters_and_a_labelled_colour_bar(bilateral):
    s = bilateral.sides["left"]
    figure = report_module.lesion_figure(s.grid, s.peak_temperature_c, s.dose_cem43, THRESHOLDS)
    texts = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert {"L", "R", "P", "A", "I", "S"} <= texts
    assert "peak temperature (°C)" in {ax.get_ylabel() for ax in figure.axes}


def test_summary_writes_both_sides_with_the_same_digits_and_the_skull_watts():
    """Issue 20.9: one side read 171 W and the other 175.3 W; skull-absorbed watts were only in the JSON."""
    def sonication(side, power_w, absorbed_w, skull_w):
        return {"index": 1, "stage": "treatment", "side": side, "power_w": power_w, "absorbed_power_w": absorbed_w,
                "duration_s": 14.0, "cooling_s": 60.0, "energy_j": power_w * 14, "peak_temperature_c": 60.0,
                "transmitted_power_w": 0.1 * power_w, "skull_absorbed_power_w": skull_w}

    def skull(transmission, incidence_deg):
        return {"source": "population template", "sdr": 1.0, "active_elements": 1024, "elements": 1024,
                "mean_incidence_deg": incidence_deg, "mean_thickness_mm": 7.1, "energy_transmission": transmission,
                "energy_absorbed_in_skull": 0.5, "phase_correction": "ct"}

    report = {"protocol": "p", "sonications": [sonication("left", 171.0, 3.0, 90.0),
                                               sonication("right", 175.34, 3.1049, 91.25)],
              "skull": skull(0.089, 10.0), "skull_by_side": {"left": skull(0.089, 10.0), "right": skull(0.1, 8.93)}}
    text = summary_markdown(report)
    assert "absorbed in skull W" in text
    assert "| 1 | left | treatment | 14.0 | 60.0 | 171.0 | 3.00 | 2394 | 60.0 | 90.0 |" in text
    assert "| 1 | right | treatment | 14.0 | 60.0 | 175.3 | 3.10 | 2455 | 60.0 | 91.2 |" in text
    assert "| left | population template | 1.00 | 1024/1024 | 10.0 | 7.10 | 0.089 | 0.500 | ct |" in text
    assert "| right | population template | 1.00 | 1024/1024 | 8.9 | 7.10 | 0.100 | 0.500 | ct |" in text


def test_provenance_records_resolved_paths(tmp_path, monkeypatch):
    """A scan and a protocol named relative to the working folder are recorded absolute (issue 20.9)."""
    import nibabel as nib

    from fusplan.io import load_scan
    from fusplan.protocol import load_protocol

    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((12, 12, 12)).astype(np.float32), np.eye(4)),
             tmp_path / "head.nii.gz")
    (tmp_path / "p.json").write_text(json.dumps({"name": "p", "transducer": {"model": "gaussian",
                                                                           "fwhm_mm": [2, 2, 4]},
                                                 "sonications": [{"stage": "alignment", "duration_s": 5,
                                                                  "absorbed_power_w": 0.5}]}))
    monkeypatch.chdir(tmp_path)
    result = _Result([_side(None, (0.0, 0.0, 0.0))])
    result.scan = load_scan("head.nii.gz")
    assert load_protocol("p.json").source == str(tmp_path.resolve() / "p.json")
    assert report_module.provenance(result)["scan"]["path"] == str(tmp_path.resolve() / "head.nii.gz")
