"""Batch manifests with a ``ct`` column: checked per row, part of the run id, used by the worker."""
import shutil
from dataclasses import replace

import numpy as np
import yaml

from fusplan.atlas import sample_scan_path
from fusplan.batch import plan_runs
from fusplan.batch.tasks import simulate_runs
from fusplan.io import load_scan
from fusplan.registration import scan_fingerprint
from fusplan.skull import CtRegistration, load_ct
from fusplan.skull.registration import ct_fingerprint
from test_cli_skull import inputs  # noqa: F401 - module fixture: sample head, its CT and registrations
from test_skull_population import identity_registration

PROTOCOL = {
    "name": "batch skull", "transducer": {"model": "hemispherical_array"},
    "grid": {"spacing_mm": 1.0, "extent_mm": 10},
    "sonications": [{"stage": "treatment", "peak_c": 55, "duration_s": 10, "cooling_s": 0}],
}


def test_ct_column_problems_stay_row_problems_and_change_the_run_id(tmp_path, inputs):  # noqa: F811
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PROTOCOL))
    shutil.copy(inputs["ct"], tmp_path / "ct.nii.gz")
    shutil.copy(sample_scan_path("ch2"), tmp_path / "ch2.nii.gz")
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan,side,protocol,ct\nch2.nii.gz,left,p.yaml,ct.nii.gz\nch2.nii.gz,left,p.yaml,\n"
                        "ch2.nii.gz,left,p.yaml,missing.nii.gz\n,,p.yaml,ct.nii.gz\n")
    runs = [spec for spec, _ in plan_runs([manifest])]
    with_ct, without, missing, phantom = runs
    assert with_ct.problem is None and with_ct.ct_path == str((tmp_path / "ct.nii.gz").resolve())
    assert without.ct_path is None and "ct" not in without.describe() and with_ct.describe()["ct"] == with_ct.ct_path
    assert with_ct.run_id != without.run_id
    assert "no such CT" in missing.problem and "missing.nii.gz" in missing.problem
    assert "ct needs a scan" in phantom.problem


def test_worker_traces_the_rows_ct(tmp_path, inputs):  # noqa: F811
    """The worker loads the row's CT, reuses the cached CT -> MR registration and reports skull.source ct."""
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PROTOCOL))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"scan,side,protocol,ct\n{sample_scan_path('ch2')},left,p.yaml,{inputs['ct']}\n")
    items = plan_runs([manifest])
    scan = load_scan(sample_scan_path("ch2"))
    registration_path = replace(identity_registration(), scan_fingerprint=scan_fingerprint(scan)).save(
        tmp_path / "atlas.npz")
    ct = load_ct(inputs["ct"])
    cache = tmp_path / "out" / "registration" / f"ct-{ct_fingerprint(ct)[:16]}-{scan_fingerprint(scan)[:16]}.npz"
    CtRegistration(np.eye(4), ct_fingerprint(ct), scan_fingerprint(scan), 0.0, 0.0).save(cache)
    rows = simulate_runs(str(tmp_path / "out"), items, str(registration_path))
    assert rows[0]["status"] == "ok", rows[0]
    report = (tmp_path / "out" / "runs" / f"{items[0][0].run_id}.json").read_text()
    assert '"source": "ct"' in report and '"ct": ' in report


def test_batch_ct_flag_gives_the_one_scan_its_ct_and_refuses_ambiguity(tmp_path, inputs):  # noqa: F811
    import pytest

    from fusplan.errors import FusplanInputError

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PROTOCOL))
    shutil.copy(inputs["ct"], tmp_path / "ct.nii.gz")
    scan = tmp_path / "ch2.nii.gz"
    shutil.copy(sample_scan_path("ch2"), scan)
    (spec, _), = plan_runs([scan], protocol=tmp_path / "p.yaml", ct=tmp_path / "ct.nii.gz")
    assert spec.problem is None and spec.ct_path == str((tmp_path / "ct.nii.gz").resolve())
    shutil.copy(scan, tmp_path / "other.nii.gz")
    with pytest.raises(FusplanInputError, match="exactly one scan"):
        plan_runs([scan, tmp_path / "other.nii.gz"], protocol=tmp_path / "p.yaml", ct=tmp_path / "ct.nii.gz")
    with pytest.raises(FusplanInputError, match="no such CT"):
        plan_runs([scan], protocol=tmp_path / "p.yaml", ct=tmp_path / "missing.nii.gz")
