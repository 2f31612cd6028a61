"""`fusplan info`, the bad-input corpus (exit 2, one clear line, no traceback) and packaging smoke tests."""
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from fusplan.cli import main
from fusplan.io import MAX_VOXELS, load_scan

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "sample_data", "colin27", "ch2.nii.gz")


def nifti(path, data=None, affine=None, **header):
    data = np.random.default_rng(0).random((12, 13, 14)).astype(np.float32) if data is None else data
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine)
    for key, value in header.items():
        image.header[key] = value
    nib.save(image, path)
    return path


def make_missing(tmp):
    return tmp / "absent.nii.gz"


def make_wrong_extension(tmp):
    path = tmp / "scan.txt"
    path.write_text("hello")
    return path


def make_text_with_nifti_name(tmp):
    path = tmp / "notes.nii"
    path.write_text("this is not an image\n" * 40)
    return path


def make_random_bytes_gz(tmp):
    path = tmp / "random.nii.gz"
    path.write_bytes(np.random.default_rng(1).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    return path


def make_truncated_gz(tmp):
    good = nifti(tmp / "good.nii.gz", np.random.default_rng(2).random((40, 40, 40)).astype(np.float32))
    path = tmp / "truncated.nii.gz"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return path


def make_truncated_nii(tmp):
    good = nifti(tmp / "good.nii", np.random.default_rng(3).random((40, 40, 40)).astype(np.float32))
    path = tmp / "truncated.nii"
    path.write_bytes(good.read_bytes()[:2000])
    return path


def make_nan(tmp):
    data = np.random.default_rng(4).random((12, 13, 14)).astype(np.float32)
    data[3, 4, 5] = np.nan
    return nifti(tmp / "nan.nii.gz", data)


def make_inf(tmp):
    data = np.random.default_rng(5).random((12, 13, 14)).astype(np.float32)
    data[1, 1, 1] = np.inf
    return nifti(tmp / "inf.nii.gz", data)


def make_constant(tmp):
    return nifti(tmp / "constant.nii.gz", np.full((12, 13, 14), 7.0, np.float32))


def make_all_zero(tmp):
    return nifti(tmp / "empty.nii.gz", np.zeros((12, 13, 14), np.float32))


def make_zero_voxel_size(tmp):
    # nibabel refuses to build such an affine, so write the header bytes ourselves
    data = np.random.default_rng(12).random((12, 13, 14)).astype(np.float32)
    header = nib.Nifti1Image(data, np.eye(4)).header
    header["srow_y"] = [0.0, 0.0, 0.0, 0.0]
    header["sform_code"], header["qform_code"] = 1, 0
    header.set_data_offset(352)
    path = tmp / "zero_voxel.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + data.tobytes(order="F"))
    return path


def make_absurd_voxel_size(tmp):
    return nifti(tmp / "huge_voxel.nii.gz", affine=np.diag([1.0, 1.0, 150.0, 1.0]))


def make_tiny_voxel_size(tmp):
    return nifti(tmp / "tiny_voxel.nii.gz", affine=np.diag([0.001, 1.0, 1.0, 1.0]))


def make_singular_affine(tmp):
    affine = np.eye(4)
    affine[:3, :3] = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    return nifti(tmp / "singular.nii.gz", affine=affine)


def make_no_sform_no_qform(tmp):
    path = tmp / "noaffine.nii.gz"
    image = nib.Nifti1Image(np.random.default_rng(6).random((12, 13, 14)).astype(np.float32), np.eye(4))
    image.set_sform(None, code=0)
    image.set_qform(None, code=0)
    nib.save(image, path)
    return path


def make_4d(tmp):
    return nifti(tmp / "fmri.nii.gz", np.random.default_rng(7).random((10, 10, 10, 3)).astype(np.float32))


def make_2d(tmp):
    return nifti(tmp / "slice.nii.gz", np.random.default_rng(8).random((30, 30)).astype(np.float32))


def make_huge_header(tmp):
    path = tmp / "huge.nii"
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    header = image.header
    header.set_data_shape((30000, 30000, 30000))
    with open(path, "wb") as handle:
        handle.write(header.binaryblock)
        handle.write(b"\0" * 4 + b"\1" * 64)
    return path


def make_directory(tmp):
    path = tmp / "folder.nii"
    path.mkdir()
    return path


BAD_INPUTS = {
    "missing file": (make_missing, "no such file"),
    "wrong extension": (make_wrong_extension, "not a NIfTI file name"),
    "text with a NIfTI name": (make_text_with_nifti_name, "not a readable NIfTI"),
    "random bytes .nii.gz": (make_random_bytes_gz, "not a readable NIfTI"),
    "truncated .nii.gz": (make_truncated_gz, "truncated or corrupt"),
    "truncated .nii": (make_truncated_nii, "truncated or corrupt"),
    "NaN voxel": (make_nan, "NaN or Inf"),
    "Inf voxel": (make_inf, "NaN or Inf"),
    "constant image": (make_constant, "constant"),
    "empty (all zero) image": (make_all_zero, "constant"),
    "zero voxel size": (make_zero_voxel_size, "voxel size"),
    "absurd voxel size": (make_absurd_voxel_size, "voxel size"),
    "tiny voxel size": (make_tiny_voxel_size, "voxel size"),
    "non-invertible affine": (make_singular_affine, "not invertible"),
    "no sform and no qform": (make_no_sform_no_qform, "neither an sform nor a qform"),
    "4D with several volumes": (make_4d, "3 volumes"),
    "2D image": (make_2d, "not a 3D volume"),
    "header declares too many voxels": (make_huge_header, "voxels"),
    "directory with a NIfTI name": (make_directory, "is a folder"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_clear_line(case, tmp_path, capsys):
    make, reason = BAD_INPUTS[case]
    path = make(tmp_path)
    status = main(["info", str(path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert path.name in lines[0] and reason in lines[0], lines[0]


def test_header_size_is_checked_before_allocation(tmp_path):
    path = make_huge_header(tmp_path)
    assert 30000**3 > MAX_VOXELS
    with pytest.raises(ValueError, match="more than"):
        load_scan(path)  # would need 27e12 voxels if it tried to read them


def test_single_volume_4d_and_qform_only_are_accepted(tmp_path):
    data = np.random.default_rng(9).random((10, 11, 12, 1)).astype(np.float32)
    scan = load_scan(nifti(tmp_path / "one_volume.nii.gz", data))
    assert scan.shape == (10, 11, 12)
    image = nib.Nifti1Image(data[..., 0], np.diag([-1.0, 1.0, 1.0, 1.0]))
    image.set_sform(None, code=0)
    image.set_qform(np.diag([-1.0, 1.0, 1.5, 1.0]), code=1)
    nib.save(image, tmp_path / "qform.nii")
    scan = load_scan(tmp_path / "qform.nii")
    assert scan.affine_source == "qform" and scan.orientation == "LAS"
    assert "no sform: using the qform" in scan.warnings


def test_nifti2_is_accepted(tmp_path):
    data = np.random.default_rng(10).random((10, 11, 12)).astype(np.float32)
    path = tmp_path / "two.nii"
    nib.save(nib.Nifti2Image(data, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    np.testing.assert_array_equal(load_scan(path).data, data)


def test_sform_is_preferred_over_qform(tmp_path):
    image = nib.Nifti1Image(np.random.default_rng(11).random((8, 9, 10)).astype(np.float32), np.eye(4))
    image.set_qform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    sform = np.diag([-2.0, 2.0, 2.0, 1.0])
    image.set_sform(sform, code=2)
    nib.save(image, tmp_path / "both.nii.gz")
    scan = load_scan(tmp_path / "both.nii.gz")
    assert scan.affine_source == "sform"
    np.testing.assert_allclose(scan.affine, sform)


def test_info_on_the_sample_scan(capsys):
    assert main(["info", SAMPLE, "--json"]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert info["shape"] == [181, 217, 181]
    assert info["voxel_size_mm"] == [1.0, 1.0, 1.0]
    assert info["orientation"] == "RAS"
    assert info["intensity_range"][1] > info["intensity_range"][0]
    assert main(["info", SAMPLE]) == 0
    out, _ = capsys.readouterr()
    assert "orientation: RAS" in out and "181 x 217 x 181" in out


@pytest.mark.parametrize("argv", [["bogus"], ["info"], ["info", SAMPLE, "--nope"], ["target", SAMPLE, "--side", "middle"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err


def run_cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "fusplan", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_help_does_not_import_napari_or_qt():
    code = ("import sys; from fusplan.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'PySide6', 'vispy')]\n"
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]"), result.stdout


def test_python_m_fusplan_and_exit_codes(tmp_path):
    result = run_cli("info", SAMPLE, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["orientation"] == "RAS"
    result = run_cli("info", str(tmp_path / "missing.nii"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    result = run_cli("--version")
    assert result.returncode == 0 and "fusplan" in result.stdout


def test_core_import_does_not_import_napari():
    code = ("import sys, fusplan, fusplan.io, fusplan.atlas, fusplan.cli\n"
            "print([m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'vispy')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
