"""Issue 14 and 19 corpus: every bad input exits 2 with one stderr line naming the file; valid odd inputs load.

The corpus is built in a temporary folder by tests/make_corpus.py (no binary files in git)
and run through ``fusplan.cli.main`` in-process; ``capfd`` captures file descriptors 1 and
2, so anything nibabel, numpy or logging would print reaches the assertions too.
"""
import json
import os

import pytest

from fusplan.cli import main
from fusplan.textfile import display_path
from make_corpus import CASES

IDS = [f"{case.category}: {case.name}" for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_corpus_case(case, tmp_path, capfd):
    path = case.build(tmp_path)
    try:
        status = main(case.command(path))
    except SystemExit as stop:  # argparse refuses a bad option value by exiting
        status = stop.code
    out, err = capfd.readouterr()
    if case.expect_ok:
        assert status == 0, err
        assert err == ""
        if "--json" in case.command(path):
            assert json.loads(out)["file"] == display_path(path)
        return
    lines = err.strip().splitlines()
    assert status == 2, err
    assert out == ""
    assert len(lines) == 1, err
    assert "Traceback" not in err
    if case.names_file:
        assert display_path(path) in lines[0], lines[0]
    assert case.reason in lines[0], lines[0]


def test_corpus_covers_every_category():
    categories = {case.category for case in CASES}
    assert categories == {"nifti", "registration", "protocol", "ct", "dicom", "ct_registration", "thermometry",
                          "options"}
    assert len({(case.category, case.name) for case in CASES}) == len(CASES)


def test_corrupted_gzip_is_refused_where_nibabel_reads_changed_voxels(tmp_path):
    """The danger the check removes: nibabel alone returns the damaged voxels without a word."""
    import nibabel as nib
    import numpy as np

    from make_corpus import NIFTI_CASES

    case = next(c for c in NIFTI_CASES if c.name == "gzip stored data changed")
    path = case.build(tmp_path)
    try:
        damaged = np.asarray(nib.load(path).dataobj)
    except Exception:  # noqa: BLE001 - a nibabel that verifies the CRC itself is fine too
        return
    original = np.random.default_rng(0).random((12, 13, 14)) * 100
    assert np.any(damaged != original.astype(np.float32))


def test_non_utf8_name_in_an_error_line_is_escaped(tmp_path, capfd):
    name = os.fsdecode(bytes(tmp_path) + b"/absent-\xff.nii")
    assert main(["info", name]) == 2
    err = capfd.readouterr().err
    assert "\\xff" in err and len(err.strip().splitlines()) == 1
