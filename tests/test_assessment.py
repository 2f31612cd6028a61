"""Issue 12 in the outputs: clinical regions in the report, calibration and band through the CLI and summary."""
import json
from pathlib import Path

import pytest
import yaml

import fusplan
from fusplan.assessment import assess
from fusplan.cli import main
from fusplan.report import summary_markdown

from test_cli_plan import write_protocol

#: Alignment then treatment on a Gaussian source, with no thresholds: the default regions
#: (17, 100, 200, 240 CEM43) apply, as for a user's protocol that lists none.
GAUSSIAN_PROTOCOL = {
    "name": "cli gaussian",
    "transducer": {"model": "gaussian", "fwhm_mm": [1.5, 1.5, 3.0]},
    "grid": {"spacing_mm": 0.5, "extent_mm": 16},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 5, "cooling_s": 10},
        {"stage": "treatment", "peak_c": 56, "duration_s": 10, "cooling_s": 20},
    ],
}

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "clinical_alignment.yaml"


def _measurements(folder, mapping):
    path = folder / "measured.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_report_labels_regions_and_adds_isotherms_and_the_lesion_model(gaussian_protocol):
    doc = fusplan.simulate(gaussian_protocol).to_dict()
    by_level = {e["threshold_cem43"]: e for e in doc["lesions"]}
    assert by_level[240]["corresponds_to"].startswith("necrotic core") and "Sapareto" in by_level[240]["source"]
    assert by_level[17]["corresponds_to"].startswith("outer edge")
    assert [e["max_temperature_c"] for e in doc["isotherms"]] == [51.0, 54.0]
    assert all("Bond" in e["source"] for e in doc["isotherms"])
    # a hotter contour is inside a cooler one
    assert doc["isotherms"][0]["equivalent_diameter_mm"] > doc["isotherms"][1]["equivalent_diameter_mm"] > 0
    assert doc["lesion_model"]["default_comparison"] == "cem43_200"
    text = summary_markdown(doc)
    assert "| 240 | necrotic core" in text and "## Maximum-temperature isotherms" in text
    assert "Default comparison: day-1 T1 lesion" in text


def test_a_threshold_outside_the_table_has_no_correspondence(gaussian_spec):
    gaussian_spec["thresholds_cem43"] = [30, 200]
    doc = fusplan.simulate(fusplan.load_protocol(gaussian_spec)).to_dict()
    assert "corresponds_to" not in doc["lesions"][0]
    assert doc["lesions"][1]["corresponds_to"] == "day-1 T1 lesion (Huang 2018)"


def test_simulate_with_thermometry_reports_calibration_and_prediction(tmp_path, capsys):
    protocol = write_protocol(tmp_path, GAUSSIAN_PROTOCOL)
    measured = _measurements(tmp_path, {"measured": [{"sonication": 1, "peak_c": 44.5,
                                                      "spot_fwhm_mm": [2.6, 2.6, 4.2]}]})
    out = tmp_path / "out"
    assert main(["simulate", str(protocol), "--thermometry", str(measured), "--json", "--no-progress",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    calibration = report["calibration"]
    assert calibration["heating_efficiency"] > 1 and calibration["focal_spread"] >= 1
    assert set(calibration["fitted"]) == {"heating_efficiency", "focal_spread"}
    assert calibration["uncertainty"]["heating_efficiency"] > 0 and calibration["residual_c"] >= 0
    prediction = report["prediction"]
    assert {"focus_ras_mm", "steering_offset_ras_mm", "sonications", "lesions", "isotherms",
            "lesion_model"} <= set(prediction)
    assert prediction["sonications"][0]["power_w"] == pytest.approx(report["sonications"][0]["power_w"])
    t1 = {e["threshold_cem43"]: e for e in prediction["lesions"]}[200]
    assert t1["corresponds_to"].startswith("day-1 T1")
    order = [e["threshold_cem43"] for e in report["lesions"]]
    assert [e["threshold_cem43"] for e in prediction["lesions"]] == order == sorted(order)  # one order (issue 20.9)
    summary = (out / "summary.md").read_text()
    assert "## Calibration on measured thermometry" in summary and "steering offset back on target" in summary
    assert json.loads((out / "report.json").read_text())["calibration"] == calibration


@pytest.mark.parametrize("entry, needle", [
    ({"sonication": 1, "peak_c": 44, "colour": "red"}, "measured[1]"),
    ({"sonication": 9, "peak_c": 44}, "measured[1].sonication"),
    ({"sonication": 1}, "measured[1]"),
])
def test_bad_thermometry_exits_2_naming_the_key_before_any_scan_is_read(tmp_path, capsys, entry, needle):
    measured = _measurements(tmp_path, {"measured": [entry]})
    # the scan does not exist: the thermometry file is refused first
    assert main(["plan", str(tmp_path / "no_scan.nii.gz"), "--thermometry", str(measured), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "no_scan" not in err and "Traceback" not in err


def test_implausible_fit_exits_2_without_writing(tmp_path, capsys):
    protocol = write_protocol(tmp_path, GAUSSIAN_PROTOCOL)
    measured = _measurements(tmp_path, {"measured": [{"sonication": 1, "peak_c": 90.0}]})
    out = tmp_path / "out"
    assert main(["simulate", str(protocol), "--thermometry", str(measured), "--out", str(out),
                 "--no-progress"]) == 2
    assert "heating efficiency" in capsys.readouterr().err
    assert not (out / "report.json").exists()


def test_uncertainty_band_goes_on_the_day1_t1_lesion(tmp_path, capsys):
    protocol = write_protocol(tmp_path, GAUSSIAN_PROTOCOL)
    assert main(["simulate", str(protocol), "--uncertainty", "16", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    band = {e["threshold_cem43"]: e for e in report["lesions"]}[200]["uncertainty"]
    d = band["equivalent_diameter_mm"]
    assert d["p5"] <= d["p50"] <= d["p95"] and 0 <= band["target_coverage_probability"] <= 1
    assert "uncertainty" not in {e["threshold_cem43"]: e for e in report["lesions"]}[240]
    assert report["uncertainty"][0]["samples"] == 16 and not report["uncertainty"][0]["calibrated"]
    assert "5-95 %" in summary_markdown(report)


@pytest.mark.parametrize("option", [["--uncertainty", "1"], ["--uncertainty", "x"], ["--workers", "0"]])
def test_bad_band_options_are_usage_errors(option, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["simulate", "clt", *option])
    assert stop.value.code == 2 and option[0] in capsys.readouterr().err


def test_calibrated_band_is_put_on_the_prediction():
    result = fusplan.simulate(fusplan.load_protocol(GAUSSIAN_PROTOCOL))
    assessment = assess(result, {"measured": [{"sonication": 1, "peak_c": 44.5}]}, uncertainty_samples=8)
    assert result.assessment == assessment.blocks()  # plain data: the result never calls this step
    doc = result.to_dict()
    assert doc["uncertainty"][0]["calibrated"]
    predicted = {e["threshold_cem43"]: e for e in doc["prediction"]["lesions"]}
    assert predicted[200]["uncertainty"] == assessment.bands[0].lesion_uncertainty()
    assert all("uncertainty" not in e for e in doc["lesions"])  # the plan's own lesions are uncalibrated


def test_clinical_alignment_example_broadens_and_heats_the_clt_focus(capsys):
    """examples/clinical_alignment.yaml (Pulkkinen 2014 ratios) on the CLT protocol in the phantom."""
    assert main(["simulate", "clt", "--thermometry", str(EXAMPLE), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    calibration = report["calibration"]
    assert calibration["heating_efficiency"] > 1.24 and calibration["focal_spread"] > 1.2
    plain = {e["threshold_cem43"]: e for e in report["lesions"]}[200]
    calibrated = {e["threshold_cem43"]: e for e in report["prediction"]["lesions"]}[200]
    assert calibrated["equivalent_diameter_mm"] > plain["equivalent_diameter_mm"] + 0.3


def test_band_on_worker_processes_equals_the_band_in_this_process(tmp_path, capsys):
    protocol = write_protocol(tmp_path, GAUSSIAN_PROTOCOL)
    bands = []
    for extra in ([], ["--workers", "2"]):
        assert main(["simulate", str(protocol), "--uncertainty", "16", "--json", "--no-progress", *extra]) == 0
        bands.append(json.loads(capsys.readouterr().out)["uncertainty"])
    assert bands[0] == bands[1]
