"""Issue 19 rules beyond the corpus: output folders, killed writes, the Dask scheduler and
scratch space, the CT registration file and the good inputs of the new readers."""
import os
from pathlib import Path

import numpy as np
import pytest

from corpus_inputs import CT_AFFINE, DICOM_AFFINE, head_ct_hu, write_dicom_series
from fusplan.errors import FusplanInputError
from fusplan.outputs import LOCK_NAME, check_output_dir, staged_result_set
from fusplan.skull.ct import load_ct
from fusplan.skull.registration import CtRegistration, load_ct_registration


def test_an_out_folder_that_cannot_be_created_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(FusplanInputError, match="/proc/fusplan-x: cannot create or write the output folder"):
        check_output_dir(Path("/proc/fusplan-x"))
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # the probe leaves the file system as it was


def test_a_write_killed_between_renames_leaves_no_old_report_beside_new_maps(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    (out / "dose.nii.gz").write_text("old map")
    moved = []
    real_replace = os.replace

    def killed_after_first(source, target):
        if moved:
            raise KeyboardInterrupt  # what SIGKILL right after the first rename leaves behind
        moved.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", killed_after_first)
    written = []
    with pytest.raises(KeyboardInterrupt):
        with staged_result_set(out, written) as staging:
            for name in ("report.json", "dose.nii.gz", "peak.nii.gz"):
                (staging / name).write_text("new")
    assert moved == ["dose.nii.gz"]  # the report moves last
    assert not (out / "report.json").exists()  # the old one is gone: the folder holds no complete result
    monkeypatch.setattr(os, "replace", real_replace)
    with staged_result_set(out, written) as staging:
        (staging / "report.json").write_text("new")
    assert (out / "report.json").read_text() == "new"


def test_a_batch_that_cannot_reach_its_scheduler_leaves_nothing_behind(tmp_path):
    pytest.importorskip("dask.distributed")
    from fusplan.batch import run_batch
    from make_corpus import PROTOCOL

    protocol = tmp_path / "p.yaml"
    protocol.write_text(PROTOCOL)
    out = tmp_path / "out"
    with pytest.raises(FusplanInputError, match="cannot connect to the Dask scheduler"):
        run_batch([], out, protocol=protocol, phantom=True, scheduler="tcp://127.0.0.1:9", progress=False)
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")  # a folder that existed is never removed
    with pytest.raises(FusplanInputError, match="--scheduler"):
        run_batch([], out, protocol=protocol, phantom=True, scheduler="", progress=False)
    assert (out / "keep.txt").exists() and not (out / LOCK_NAME).exists()  # refused before the lock


def test_dask_scratch_space_is_removed_on_close(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    import tempfile

    from fusplan.batch.engines import DaskEngine

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # the system temp folder of this test
    engine = DaskEngine(None, 1)
    try:
        scratch = Path(engine.scratch)
        assert scratch.parent == temp and scratch.is_dir()
        assert engine.submit(abs, -3).result() == 3
    finally:
        engine.close()
    assert list(temp.iterdir()) == []  # no dask-scratch-space, no lock files left behind


def _ct_file(tmp_path, data=None):
    import nibabel as nib

    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(head_ct_hu() if data is None else data, CT_AFFINE), path)
    return path


def test_the_corpus_head_ct_and_its_dicom_series_load_in_the_same_world(tmp_path):
    ct = load_ct(_ct_file(tmp_path))
    data = head_ct_hu()[::2, ::2, ::2]
    dicom = load_ct(write_dicom_series(tmp_path / "dicom", data, DICOM_AFFINE))
    index = np.array([[12, 12, 21], [16, 9, 12], [12, 12, 12], [2, 3, 4]])  # shell, brain, centre, air
    world = index @ DICOM_AFFINE[:3, :3].T + DICOM_AFFINE[:3, 3]  # DICOM voxel centres are NIfTI voxel centres
    assert np.allclose(dicom.sample_hu(world), ct.sample_hu(world), atol=0.51)  # stored as whole numbers


def test_ct_registration_round_trip_and_refusals_name_the_registration_file(tmp_path):
    from fusplan.skull.registration import ct_fingerprint

    ct = load_ct(_ct_file(tmp_path))
    rotation = np.eye(4)
    rotation[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    rotation[:3, 3] = [3.0, -2.0, 1.0]
    saved = CtRegistration(rotation, ct_fingerprint(ct), "", -0.4, 2.0).save(tmp_path / "reg.npz")
    loaded = load_ct_registration(saved, ct=ct)
    assert np.array_equal(loaded.mr_to_ct_mm, rotation) and loaded.metric == -0.4
    other = load_ct(_ct_file(tmp_path, head_ct_hu() + 1))
    with pytest.raises(FusplanInputError, match=r"reg.npz: CT registration was computed for another CT"):
        load_ct_registration(saved, ct=other)
    nan = CtRegistration(np.full((4, 4), np.nan), ct_fingerprint(ct), "", 0.0, 0.0).save(tmp_path / "nan.npz")
    with pytest.raises(FusplanInputError, match=r"nan.npz: CT registration mr_to_ct_mm contains NaN"):
        load_ct_registration(nan, ct=ct)


def test_a_ct_in_raw_scanner_units_is_refused_but_padding_alone_is_not_a_problem(tmp_path):
    padded = head_ct_hu()
    corner = np.linalg.norm(np.indices(padded.shape) - 23.5, axis=0) > 26
    padded[corner] = -2000.0  # HU with field-of-view padding: a valid CT
    assert load_ct(_ct_file(tmp_path, padded)).data.min() == -2000.0
    raw = padded + 1024.0
    raw[corner] = -2000.0
    with pytest.raises(FusplanInputError, match="raw scanner units"):
        load_ct(_ct_file(tmp_path, raw))


def test_36_distinct_foci_are_refused_when_the_protocol_is_read(tmp_path):
    from fusplan.protocol import load_protocol
    from fusplan.protocol.limits import MAX_DISTINCT_FOCI
    from make_corpus import PROTOCOL

    foci = "".join(f"  - {{stage: verification, absorbed_power_w: 0.5, duration_s: 1, offset_mm: [{x}, {y}, 0]}}\n"
                   for x in range(-3, 3) for y in range(-3, 3))
    path = tmp_path / "foci.yaml"
    path.write_text(PROTOCOL + foci)
    with pytest.raises(FusplanInputError, match=rf"foci.yaml: .*offset_mm give 37 distinct foci, more than the "
                                                rf"{MAX_DISTINCT_FOCI}"):
        load_protocol(path)
    path.write_text(PROTOCOL + "".join(foci.splitlines(keepends=True)[:MAX_DISTINCT_FOCI - 1]))
    assert len(load_protocol(path).sonications) == MAX_DISTINCT_FOCI


def test_tilt_within_45_deg_in_total_loads_and_beyond_is_refused_naming_the_key(tmp_path):
    from fusplan.acoustics import transducer_from_spec

    assert transducer_from_spec({"tilt_deg": [45, 0]}).tilt_deg == (45.0, 0.0)
    assert transducer_from_spec({"tilt_deg": [30, 30]}).tilt_deg == (30.0, 30.0)  # 41.4 deg in total
    with pytest.raises(FusplanInputError, match=r"transducer.tilt_deg \[45, 45\] tilts the array axis 60.0 deg"):
        transducer_from_spec({"tilt_deg": [45, 45]})
    with pytest.raises(FusplanInputError, match="transducer.tilt_deg must be two numbers"):
        transducer_from_spec({"tilt_deg": [10**400, 0]})
