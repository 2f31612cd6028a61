"""Batch planning: inputs -> runs, run ids, resume, error rows, summary, executors.

Simulations use the homogeneous phantom with a gaussian source on a 1 mm grid of
21^3 voxels, so each run takes a fraction of a second.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from fusplan.batch import (
    RUNS_DIR,
    SUMMARY_NAME,
    expand_sweeps,
    group_tasks,
    parse_sweep,
    plan_runs,
    read_manifest,
    run_batch,
)
from fusplan.errors import FusplanInputError


@pytest.fixture()
def protocol_file(staged_protocol_file) -> Path:
    """The three-stage Gaussian protocol file of conftest.py (``gaussian.yaml``, named in manifests)."""
    return staged_protocol_file


def _summary(out: Path) -> list[dict]:
    with open(out / SUMMARY_NAME, newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ inputs -> runs


def test_parse_sweep_values_and_aliases():
    assert parse_sweep("peak_c=54,56,58") == ("peak_c", [54, 56, 58])
    assert parse_sweep("skull_transmission=0.2,0.3") == ("transducer.skull_transmission", [0.2, 0.3])
    assert parse_sweep("treatment.offset_mm=[0,0,0],[1, 0, 0]") == ("treatment.offset_mm", [[0, 0, 0], [1, 0, 0]])
    for bad in ("peak_c", "=1,2", "peak_c=", "peak_c=1,,2"):
        with pytest.raises(FusplanInputError, match="sweep"):
            parse_sweep(bad)


def test_expand_sweeps_is_the_cartesian_product_in_order():
    points = expand_sweeps([("peak_c", [54, 56]), ("duration_s", [10, 12, 14])])
    assert len(points) == 6
    assert points[0] == {"peak_c": 54, "duration_s": 10}
    assert points[-1] == {"peak_c": 56, "duration_s": 14}
    assert expand_sweeps(None) == [{}]
    with pytest.raises(FusplanInputError, match="twice"):
        expand_sweeps([("skull_transmission", [0.2]), ("transducer.skull_transmission", [0.3])])


def test_run_ids_are_stable_and_distinct(protocol_file, staged_gaussian_spec):
    first = plan_runs(phantom=True, protocol=protocol_file, sweeps={"peak_c": [54, 56]})
    again = plan_runs(phantom=True, protocol=str(protocol_file), sweeps={"peak_c": [54, 56]})
    ids = [spec.run_id for spec, _ in first]
    assert ids == [spec.run_id for spec, _ in again]
    assert len(set(ids)) == 2 and all(i.startswith("phantom-") for i in ids)
    # The id follows the protocol's content, not its file name.
    changed = {**staged_gaussian_spec, "name": "another name"}
    protocol_file.write_text(yaml.safe_dump(changed))
    changed = plan_runs(phantom=True, protocol=protocol_file, sweeps={"peak_c": [54, 56]})
    assert not set(ids) & {spec.run_id for spec, _ in changed}


def test_manifest_rows_sides_and_overrides(tmp_path, protocol_file):
    (tmp_path / "scans").mkdir()
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "scan,side,protocol,peak_c,skull_transmission\n"
        "scans/a.nii.gz,both,gaussian.yaml,56,\n"
        "scans/b.nii.gz,right,gaussian.yaml,,0.3\n"
        ",,gaussian.yaml,57,\n"
    )
    runs = plan_runs([manifest])
    described = [(s.scan, s.side, s.overrides) for s, _ in runs]
    assert described == [
        ("scans/a.nii.gz", "left", (("peak_c", 56),)),
        ("scans/a.nii.gz", "right", (("peak_c", 56),)),
        ("scans/b.nii.gz", "right", (("transducer.skull_transmission", 0.3),)),
        ("", None, (("peak_c", 57),)),
    ]
    assert runs[0][0].scan_path == str((tmp_path / "scans" / "a.nii.gz").resolve())
    assert all(protocol is not None and spec.problem is None for spec, protocol in runs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("side,protocol\nleft,clt\n", "no 'scan' column"),
        ("scan,scan\na.nii,b.nii\n", "given twice"),
        ("scan\n", "no rows"),
        ("scan,side\na.nii,left,extra\n", "row 2 has 3 cells"),
    ],
)
def test_malformed_manifest_is_a_batch_error(tmp_path, text, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(FusplanInputError, match=message):
        read_manifest(manifest)


def test_batch_level_input_errors(tmp_path, protocol_file):
    with pytest.raises(FusplanInputError, match="no input"):
        plan_runs([])
    with pytest.raises(FusplanInputError, match="--phantom takes no scans"):
        plan_runs(["a.nii.gz"], phantom=True)
    with pytest.raises(FusplanInputError, match="no .nii"):
        plan_runs([tmp_path])  # a folder without scans
    with pytest.raises(FusplanInputError, match="side"):
        plan_runs(["a.nii.gz"], sides="up")
    with pytest.raises(FusplanInputError, match="manifest not found"):
        plan_runs([tmp_path / "missing.csv"])


def test_command_mistakes_are_input_errors_listed_together(tmp_path, protocol_file):
    """A sweep key typo, a bad sweep value or an unreadable --protocol stop the batch before any run."""
    with pytest.raises(FusplanInputError, match=r"'peak' is not a known key .*\(with peak=54; peak=56\)$"):
        plan_runs(phantom=True, protocol=protocol_file, sweeps={"peak": [54, 56]})
    with pytest.raises(FusplanInputError) as info:  # two typos, one in --sweep and one in --set: both named
        plan_runs(phantom=True, protocol=protocol_file, sweeps={"peak": [54, 56]}, overrides={"treatment.duraton_s": 5})
    assert "'peak' is not a known key" in str(info.value) and "'treatment.duraton_s' is not a known key" in str(info.value)
    with pytest.raises(FusplanInputError, match="duration_s must be > 0"):
        plan_runs(phantom=True, protocol=protocol_file, sweeps={"treatment.duration_s": [5, 0]})
    with pytest.raises(FusplanInputError, match="protocol file not found"):
        plan_runs(phantom=True, protocol=tmp_path / "nope.yaml")


def test_missing_inputs_are_listed_together(tmp_path):
    with pytest.raises(FusplanInputError) as raised:
        plan_runs([tmp_path / "scans/", tmp_path / "a.nii.gz", tmp_path / "b.nii"])
    message = str(raised.value)
    assert "scans: no such folder" in message and "a.nii.gz: no such file" in message and "b.nii" in message
    with pytest.raises(FusplanInputError, match="s4.nii: no such file; and 3 more$"):
        plan_runs([tmp_path / f"s{i}.nii" for i in range(8)])  # five listed, then "and 3 more"


def test_a_bad_manifest_cell_stays_a_row_problem(tmp_path, protocol_file):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan,protocol,treatment.duration_s\n,gaussian.yaml,5\n,gaussian.yaml,0\n")
    problems = [spec.problem for spec, _ in plan_runs([manifest])]
    assert problems[0] is None and "duration_s must be > 0" in problems[1]


def test_group_tasks_keeps_one_target_together_and_feeds_every_worker(protocol_file):
    runs = plan_runs(phantom=True, protocol=protocol_file, sweeps={"peak_c": [53, 54, 55, 56, 57, 58, 59, 60]})
    assert [len(t) for t in group_tasks(runs, workers=1)] == [4, 4]
    assert [len(t) for t in group_tasks(runs, workers=2)] == [2, 2, 2, 2]
    assert [len(t) for t in group_tasks(runs, workers=2, reuse=False)] == [1] * 8
    spacing = plan_runs(phantom=True, protocol=protocol_file, sweeps={"grid.spacing_mm": [1.0, 0.8]})
    assert [len(t) for t in group_tasks(spacing, workers=1)] == [1, 1]  # different grids never share a task


# ------------------------------------------------------------------- running


def test_phantom_sweep_writes_reports_and_a_sorted_summary(tmp_path, protocol_file):
    out = tmp_path / "out"
    result = run_batch(out_dir=out, phantom=True, protocol=protocol_file,
                       sweeps={"peak_c": [58, 56], "treatment.duration_s": [10, 15]}, workers=1, progress=False)
    assert (result.n_runs, result.n_failed, result.n_resumed) == (4, 0, 0)
    rows = _summary(out)
    assert [(r["param:peak_c"], r["param:treatment.duration_s"]) for r in rows] == [
        ("56", "10"), ("56", "15"), ("58", "10"), ("58", "15")]
    for row in rows:
        report = json.loads((out / RUNS_DIR / f"{row['run_id']}.json").read_text())
        assert report["run"]["run_id"] == row["run_id"]
        assert row["status"] == "ok" and row["error"] == ""
        # The titrated treatment peak is the swept value (planner titrates within 0.05 C).
        assert float(row["peak_temperature_c"]) == pytest.approx(float(row["param:peak_c"]), abs=0.06)
        assert float(row["lesion17_volume_mm3"]) >= float(row["lesion240_volume_mm3"]) > 0
    longer = [float(r["lesion240_volume_mm3"]) for r in rows if r["param:treatment.duration_s"] == "15"]
    assert longer[1] > longer[0]  # 58 C makes a bigger lesion than 56 C
    assert float(rows[1]["lesion240_volume_mm3"]) > float(rows[0]["lesion240_volume_mm3"])  # so do 15 s vs 10 s
    assert "elapsed" not in ",".join(rows[0])  # timings stay out of the summary


def test_errors_become_rows_and_the_rest_completes(tmp_path, protocol_file):
    bad_scan = tmp_path / "broken.nii.gz"
    bad_scan.write_bytes(b"not a nifti file")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "scan,protocol,treatment.duration_s\n"
        ",gaussian.yaml,5\n"
        ",gaussian.yaml,0\n"
        "broken.nii.gz,gaussian.yaml,\n"
        "missing.nii.gz,gaussian.yaml,\n"
        ",missing.yaml,\n"
    )
    out = tmp_path / "out"
    result = run_batch([manifest], out, workers=1, progress=False)
    assert (result.n_runs, result.n_failed) == (5, 4)
    rows = _summary(out)
    errors = {r["scan"] + "|" + r["parameters"] + "|" + r["protocol"]: r["error"] for r in rows if r["status"] == "error"}
    assert any("duration_s must be > 0" in e for e in errors.values())
    assert any("broken.nii.gz" in e and "NIfTI" in e for e in errors.values())
    assert any("missing.nii.gz" in e and "no such file" in e for e in errors.values())
    assert any("protocol file not found" in e for e in errors.values())
    assert len(list((out / RUNS_DIR).glob("*.json"))) == 1


def test_resume_skips_finished_runs_and_summary_is_byte_identical(tmp_path, protocol_file):
    out = tmp_path / "out"
    sweeps = {"peak_c": [54, 56, 58]}
    first = run_batch(out_dir=out, phantom=True, protocol=protocol_file, sweeps=sweeps, workers=1, progress=False)
    summary = (out / SUMMARY_NAME).read_bytes()
    # Simulate an interruption: one report is lost, the others are kept.
    lost = out / RUNS_DIR / f"{first.rows[1]['run_id']}.json"
    kept = out / RUNS_DIR / f"{first.rows[0]['run_id']}.json"
    lost.unlink()
    kept_mtime = kept.stat().st_mtime_ns
    second = run_batch(out_dir=out, phantom=True, protocol=protocol_file, sweeps=sweeps, workers=1, progress=False)
    assert (second.n_runs, second.n_resumed, second.n_failed) == (3, 2, 0)
    assert lost.is_file() and kept.stat().st_mtime_ns == kept_mtime
    assert (out / SUMMARY_NAME).read_bytes() == summary
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no half-written files left behind


def test_process_pool_gives_the_same_summary_as_in_process(tmp_path, protocol_file):
    sweeps = {"peak_c": [54, 56], "treatment.duration_s": [4, 5]}
    run_batch(out_dir=tmp_path / "one", phantom=True, protocol=protocol_file, sweeps=sweeps, workers=1, progress=False)
    calls = []
    result = run_batch(out_dir=tmp_path / "two", phantom=True, protocol=protocol_file, sweeps=sweeps, workers=2,
                       threads=1, progress=lambda fraction, message: calls.append((fraction, message)))
    assert result.n_failed == 0
    assert (tmp_path / "one" / SUMMARY_NAME).read_bytes() == (tmp_path / "two" / SUMMARY_NAME).read_bytes()
    fractions = [fraction for fraction, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert calls[-1][1] == "simulated 4 of 4 runs"


def test_dask_local_cluster(tmp_path, protocol_file):
    pytest.importorskip("dask.distributed")
    result = run_batch(out_dir=tmp_path / "dask", phantom=True, protocol=protocol_file,
                       sweeps={"peak_c": [54, 56]}, workers=1, dask=True, progress=False)
    assert (result.n_runs, result.n_failed) == (2, 0)


def test_cli_exit_status_and_stderr(tmp_path, protocol_file, capsys):
    from fusplan.cli import main

    base = ["batch", "--phantom", "--protocol", str(protocol_file), "--workers", "1", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--sweep", "peak_c=54,56", "--json"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["runs"] == 2 and "2 of 2 runs succeeded" in err
    row = document["rows"][0]
    assert row["param:peak_c"] == 54 and isinstance(row["peak_temperature_c"], float)
    assert isinstance(row["lesion240_volume_mm3"], float) and isinstance(row["sonication_peaks_c"], list)
    assert row["status"] == "ok" and row["thermometry_peak_c"] is None  # empty cells are null, not ""
    # A sweep key typo is a usage error before any run: nothing is written.
    assert main([*base, "--out", str(tmp_path / "b"), "--sweep", "peak=54,56"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "not a known key" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    # A folder that does not exist is a usage error too.
    assert main(["batch", str(tmp_path / "scans/"), "--out", str(tmp_path / "e"), "--no-progress"]) == 2
    assert "no such folder" in capsys.readouterr().err and not (tmp_path / "e").exists()
    # A failing run (a bad manifest cell) exits 1 and lists the failure.
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"scan,protocol,treatment.duration_s\n,{protocol_file},5\n,{protocol_file},0\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "f"), "--workers", "1", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "1 run(s) failed" in err and "duration_s must be > 0" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("side\nleft\n")
    assert main(["batch", str(bad), "--out", str(tmp_path / "c")]) == 2
    out, err = capsys.readouterr()
    assert "no 'scan' column" in err and len(err.strip().splitlines()) <= 2
    assert main(["batch", "--phantom", "--sweep", "peak_c", "--out", str(tmp_path / "d")]) == 2
    assert "must look like key=v1,v2" in capsys.readouterr().err


@pytest.mark.slow
def test_scans_are_registered_once_and_the_registration_is_reused(tmp_path, protocol_file):
    """Both sides and two sweep points of one scan: one registration, cached; a re-run registers nothing."""
    from fusplan.atlas import sample_scan_path

    scan = tmp_path / "head.nii.gz"
    scan.symlink_to(sample_scan_path("ch2"))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"scan,side,protocol\nhead.nii.gz,both,{protocol_file.name}\n")
    out = tmp_path / "out"
    quick = {"registration_preset": "affine"}  # the quickest preset keeps the test short
    result = run_batch([manifest], out, sweeps={"peak_c": [56, 58]}, workers=1, progress=False, **quick)
    assert (result.n_runs, result.n_failed) == (4, 0), [r["error"] for r in result.rows]
    [cache] = (out / "registration").glob("*.npz")
    assert cache.name.endswith("-morel-affine.npz")
    written = cache.stat()
    rows = _summary(out)
    assert [(r["side"], r["param:peak_c"]) for r in rows] == [("left", "56"), ("left", "58"), ("right", "56"),
                                                              ("right", "58")]
    left, right = rows[0], rows[2]
    assert float(left["acpc_x_mm"]) < 0 < float(right["acpc_x_mm"])  # the subject's left is x < 0
    assert left["target_r_mm"] == rows[1]["target_r_mm"]  # same target for every sweep point
    # A new sweep point on the same scan reuses the cached registration.
    again = run_batch([manifest], out, sweeps={"peak_c": [56, 58, 60]}, workers=1, progress=False, **quick)
    assert (again.n_runs, again.n_resumed, again.n_failed) == (6, 4, 0)
    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # not rewritten
    # The preset is an input of the runs: the standard preset would not resume the affine runs.
    standard = {spec.run_id for spec, _ in plan_runs([manifest], sweeps={"peak_c": [56, 58, 60]})}
    assert standard.isdisjoint(row["run_id"] for row in again.rows)


def test_missing_dask_is_a_clear_input_error(tmp_path, protocol_file, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if not installed
    with pytest.raises(FusplanInputError, match="pip install 'fusplan\\[dask\\]'"):
        run_batch(out_dir=tmp_path, phantom=True, protocol=protocol_file, dask=True, progress=False)


def test_collect_scans_from_files_folders_and_globs(tmp_path):
    from fusplan.batch import collect_scans

    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("b.nii.gz", "a.nii", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert collect_scans([folder]) == [str(folder / "a.nii"), str(folder / "b.nii.gz")]
    assert collect_scans([str(folder / "*.nii.gz"), str(folder / "b.nii.gz")]) == [str(folder / "b.nii.gz")]
    with pytest.raises(FusplanInputError, match="missing.nii: no such file"):
        collect_scans(["elsewhere/missing.nii"])
    with pytest.raises(FusplanInputError, match="matches no"):
        collect_scans([str(folder / "*.mgz")])
