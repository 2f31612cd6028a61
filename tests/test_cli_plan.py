"""`fusplan simulate`, `plan` and `target` through the command line: JSON on stdout, files, exit codes."""
import json

import nibabel as nib
import numpy as np
import pytest
import yaml

from fusplan.cli import main

def write_protocol(folder, mapping):
    path = folder / "protocol.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_simulate_phantom_prints_one_json_document_and_writes_outputs(tmp_path, capsys, gaussian_spec):
    protocol = write_protocol(tmp_path, gaussian_spec)
    out = tmp_path / "out"
    assert main(["simulate", str(protocol), "--json", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    report = json.loads(stdout)  # exactly one document: json.loads rejects trailing text
    assert report["protocol"] == "test gaussian"
    assert [s["stage"] for s in report["sonications"]] == ["alignment", "treatment", "treatment"]
    assert report["sonications"][1]["peak_temperature_c"] == pytest.approx(55.0, abs=0.05)
    assert {lesion["threshold_cem43"] for lesion in report["lesions"]} == {17, 240}
    assert all(lesion["corresponds_to"] for lesion in report["lesions"])  # clinical labels (fusplan.clinical)
    assert all("side" not in lesion for lesion in report["lesions"])  # phantom: no side
    written = json.loads((out / "report.json").read_text())
    assert written.pop("provenance")["protocol"]["name"] == "test gaussian"  # report.json = stdout + provenance
    assert written == report
    dose = nib.load(out / "dose_cem43.nii.gz")
    assert dose.shape == (33, 33, 33)
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert hidden == [".fusplan-outputs.json"], "no temporary files left behind, only the list of outputs"


def test_simulate_text_summary(tmp_path, capsys, gaussian_spec):
    protocol = write_protocol(tmp_path, gaussian_spec)
    assert main(["simulate", str(protocol)]) == 0
    text = capsys.readouterr().out
    assert "test gaussian" in text and "240" in text


@pytest.mark.parametrize(
    "change, key",
    [
        ({"colour": "blue"}, "colour"),
        ({"sonications": [{"stage": "treatment", "peak_c": 56, "duration_s": 0}]}, "duration_s"),
        ({"sonications": [{"stage": "treatment", "peak_c": 150, "duration_s": 10}]}, "peak_c"),
        ({"sonications": [{"stage": "warmup", "peak_c": 50, "duration_s": 10}]}, "stage"),
        ({"grid": {"spacing_mm": -1, "extent_mm": 16}}, "spacing_mm"),
        ({"transducer": {"model": "gaussian"}}, "fwhm_mm"),
    ],
)
def test_invalid_protocol_exits_2_naming_the_key(change, key, tmp_path, capsys, gaussian_spec):
    protocol = write_protocol(tmp_path, {**gaussian_spec, **change})
    out = tmp_path / "out"
    assert main(["simulate", str(protocol), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "protocol.yaml" in lines[0], captured.err
    assert captured.out == "" and not out.exists()


def test_missing_protocol_and_bad_output_folder_exit_2(tmp_path, capsys, gaussian_spec):
    assert main(["simulate", str(tmp_path / "nothing.yaml")]) == 2
    protocol = write_protocol(tmp_path, gaussian_spec)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["simulate", str(protocol), "--out", str(a_file)]) == 2
    assert a_file.read_text() == "x"
    assert "Traceback" not in capsys.readouterr().err


def test_target_usage_errors_exit_2(tmp_path, capsys):
    scan = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4)), scan)
    assert main(["target", str(scan), "--ac", "0,2,-4"]) == 2  # AC without PC
    assert main(["target", str(scan), "--registration", str(tmp_path / "none.npz")]) == 2
    with pytest.raises(SystemExit) as raised:
        main(["target", str(scan), "--acpc", "1,2"])
    assert raised.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_plan_on_a_scan_that_is_not_a_head_exits_2(tmp_path, capsys):
    """Random noise must never silently produce a target."""
    noise = tmp_path / "noise.nii.gz"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -90
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random((90, 100, 90)).astype(np.float32), affine), noise)
    out = tmp_path / "out"
    assert main(["plan", str(noise), "--json", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    lines = captured.err.strip().splitlines()
    assert lines and "noise.nii.gz" in lines[-1] and "Traceback" not in captured.err
