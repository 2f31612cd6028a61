"""Output folders hold one consistent result set; titrated power is bounded by the console.

Simulations use the Gaussian test protocol of ``conftest.py`` in the phantom.
"""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from fusplan.cli import main
from fusplan.outputs import OUTPUTS_MANIFEST, record_outputs
from fusplan.protocol import MAX_CONSOLE_ACOUSTIC_POWER_W


def _simulate(tmp_path, spec, out, name="gaussian.yaml") -> int:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return main(["simulate", str(path), "--out", str(out), "--no-progress"])


def test_a_new_report_removes_the_outputs_of_the_previous_one(tmp_path, gaussian_spec, capsys):
    out = tmp_path / "out"
    gaussian_spec["thresholds_cem43"] = [17, 100]
    assert _simulate(tmp_path, gaussian_spec, out) == 0
    assert (out / "lesion_17cem43.nii.gz").is_file()
    (out / "notes.txt").write_text("the user's own file")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".fusplan-staging-{dead.pid}-k1ll3d"  # a write killed midway
    stale.mkdir()
    (stale / "report.json").write_text("half")
    gaussian_spec["thresholds_cem43"] = [100]
    assert _simulate(tmp_path, gaussian_spec, out) == 0
    capsys.readouterr()
    assert not (out / "lesion_17cem43.nii.gz").exists()  # of the earlier run: gone
    assert not stale.exists()
    assert (out / "lesion_100cem43.nii.gz").is_file() and (out / "notes.txt").read_text() == "the user's own file"
    report = json.loads((out / "report.json").read_text())
    assert [lesion["threshold_cem43"] for lesion in report["lesions"]] == [100]
    listed = json.loads((out / OUTPUTS_MANIFEST).read_text())["report"]
    assert sorted(listed) == sorted(p.name for p in out.iterdir() if p.suffix in (".json", ".md", ".gz", ".png")
                                    and p.name != OUTPUTS_MANIFEST)


def test_only_unchanged_files_of_the_same_writer_are_removed(tmp_path):
    out = tmp_path
    for name in ("a.nii.gz", "b.nii.gz", "edited.nii.gz", "targets.json"):
        (out / name).write_text(name)
    record_outputs(out, "report", [out / "a.nii.gz", out / "b.nii.gz", out / "edited.nii.gz"])
    record_outputs(out, "targets", [out / "targets.json"])
    (out / "edited.nii.gz").write_text("changed by the user since")
    removed = record_outputs(out, "report", [out / "a.nii.gz"])
    assert removed == [out / "b.nii.gz"]
    assert (out / "edited.nii.gz").exists() and (out / "targets.json").exists()  # changed, or another writer's
    manifest = json.loads((out / OUTPUTS_MANIFEST).read_text())
    assert sorted(manifest) == ["report", "targets"] and sorted(manifest["report"]) == ["a.nii.gz"]


def test_a_damaged_or_hostile_output_list_deletes_nothing(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("a")
    (out / OUTPUTS_MANIFEST).write_text(json.dumps({"report": {"../outside.txt": {"size": 4}, "a.txt": 5}}))
    assert record_outputs(out, "report", []) == []
    assert outside.read_text() == "keep" and (out / "a.txt").exists()
    (out / OUTPUTS_MANIFEST).write_text("{not json")
    assert record_outputs(out, "report", []) == []


def test_titration_over_the_console_maximum_is_refused_naming_file_and_key(tmp_path, gaussian_spec, capsys):
    """A 0.5 s sonication to 95 C with a 15 x 15 x 30 mm Gaussian focus needs more than the console gives.

    The first entry is repeated, so the failing sonication is the third of the
    expanded list but entry 1 of the file, named as validation errors name it.
    """
    assert MAX_CONSOLE_ACOUSTIC_POWER_W == 1500.0
    gaussian_spec["transducer"]["fwhm_mm"] = [15.0, 15.0, 30.0]
    gaussian_spec["sonications"] = [
        {"stage": "alignment", "absorbed_power_w": 0.1, "duration_s": 6, "cooling_s": 10, "repeat": 2},
        {"stage": "treatment", "peak_c": 95, "duration_s": 0.5, "cooling_s": 16},
    ]
    assert _simulate(tmp_path, gaussian_spec, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "gaussian.yaml: sonication entry 2: peak_c 95 C is not reachable with max_power_w 1500 W" in err
    assert not (tmp_path / "out" / "report.json").exists()
