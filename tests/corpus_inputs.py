"""Issue 19 corpus: the inputs added since issue 14 (CT NIfTI and DICOM series, CT registration
file, thermometry series, numeric options), each case built from scratch.

Every case must end handled: exit 2 with one stderr line naming the file (or the option)
and the problem, before any registration or simulation. Imported by tests/make_corpus.py,
which runs and tabulates them with the earlier categories.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import struct
from pathlib import Path
from collections.abc import Callable

import nibabel as nib
import numpy as np

from corpus_base import SAMPLE, Case, _data, _header, _nii_bytes, _write

# ------------------------------------------------------------------------------------ CT

#: A synthetic head CT: 48^3 voxels of 4 mm (192 mm), RAS, a 7 mm skull shell of radius 80 mm
#: around brain (40 HU) in air (-1000 HU); its top slice is air (the cap is covered).
CT_SHAPE = (48, 48, 48)
CT_AFFINE = np.array([[4.0, 0, 0, -94.0], [0, 4.0, 0, -94.0], [0, 0, 4.0, -94.0], [0, 0, 0, 1]])


def head_ct_hu(shape=CT_SHAPE, affine=CT_AFFINE) -> np.ndarray:
    """HU of the synthetic head (float32, storage order of ``affine``)."""
    index = np.indices(shape).reshape(3, -1).T
    world = index @ affine[:3, :3].T + affine[:3, 3]
    radius = np.linalg.norm(world, axis=1).reshape(shape)
    hu = np.full(shape, -1000.0, np.float32)
    hu[radius < 80.0] = 1200.0
    hu[radius < 73.0] = 40.0
    return hu + np.random.default_rng(7).normal(0, 4, shape).astype(np.float32)


def _nifti_payload(values: np.ndarray, affine: np.ndarray, *, gz: bool, transform, fields: dict,
                   header_edit: Callable[[object], None] | None = None) -> bytes:
    """A NIfTI-1 file of ``values`` (data at 352), its header fields set, gzipped and transformed."""
    header = nib.Nifti1Image(values, affine).header
    header.set_data_offset(352)
    if header_edit is not None:
        header_edit(header)
    for key, value in fields.items():
        header[key] = value
    payload = header.binaryblock + b"\0" * 4 + np.asarray(values).tobytes(order="F")
    if gz:
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    return payload if transform is None else transform(payload)


def _ct_file(name: str, data: np.ndarray | None = None, affine=CT_AFFINE, *, qform_only=False, no_xform=False,
             gz=True, transform: Callable[[bytes], bytes] | None = None, **fields) -> Callable[[Path], Path]:
    def xforms(header) -> None:
        if qform_only or no_xform:
            header.set_sform(None, code=0)
        if no_xform:
            header.set_qform(None, code=0)

    return lambda folder: _write(folder, name, _nifti_payload(head_ct_hu() if data is None else data, affine, gz=gz,
                                                              transform=transform, fields=fields, header_edit=xforms))


def _raw_units() -> np.ndarray:
    hu = head_ct_hu() + 1024.0  # stored without the rescale intercept
    corner = np.linalg.norm(np.indices(CT_SHAPE) - 23.5, axis=0) > 26  # outside the reconstruction circle
    hu[corner] = -2000.0
    return hu


def _with(change: Callable[[np.ndarray], None]) -> np.ndarray:
    hu = head_ct_hu()
    change(hu)
    return hu


def _flip_crc(payload: bytes) -> bytes:
    crc = struct.unpack("<I", payload[-8:-4])[0] ^ 0xFFFFFFFF
    return payload[:-8] + struct.pack("<I", crc) + payload[-4:]


def _flip_middle_byte(payload: bytes) -> bytes:
    body = bytearray(payload)
    body[len(body) // 2] ^= 0x40
    return bytes(body)


def _ct_gzip_bomb(folder: Path) -> Path:
    header = _header(np.zeros((40, 40, 40), np.float32))  # declares 256 kB of voxels
    stream = header.binaryblock + b"\0" * 4 + b"\0" * (96 << 20)  # holds 96 MB
    return _write(folder, "ct_bomb.nii.gz", gzip.compress(stream, compresslevel=9, mtime=0))


def _sparse_ct(folder: Path) -> Path:
    header = _header(np.zeros((2, 2, 2), np.float32))
    header.set_data_shape((1000, 1000, 1000))
    return _write(folder, "ct_sparse.nii", header.binaryblock + b"\0" * 4096)


def _cropped_ct() -> np.ndarray:
    return head_ct_hu()[:, :, :26].copy()  # ends 10 mm above the centre: the cap is cut off


def _ct_command(path: Path) -> list[str]:
    return ["plan", str(SAMPLE), "--ct", os.fsdecode(path), "--no-progress"]


def _half_nan(hu: np.ndarray) -> None:
    hu[:, :, 36:] = np.nan  # a NaN slab over the skull cap


CT_CASES = [
    Case("ct", "raw scanner units (HU + 1024) with -2000 padding", _ct_file("raw.nii.gz", _raw_units()), _ct_command,
         "raw scanner units"),
    Case("ct", "MR passed as CT", _ct_file("mr.nii.gz", np.abs(head_ct_hu()) / 4), _ct_command,
         "not a CT in Hounsfield units"),
    Case("ct", "+inf voxels", _ct_file("inf.nii.gz", _with(lambda hu: hu.__setitem__((3, 3, 3), np.inf))),
         _ct_command, "NaN or Inf"),
    Case("ct", "-inf voxels", _ct_file("minf.nii.gz", _with(lambda hu: hu.__setitem__((3, 3, 3), -np.inf))),
         _ct_command, "NaN or Inf"),
    Case("ct", "NaN slab over the skull cap", _ct_file("nan_cap.nii.gz", _with(_half_nan)), _ct_command, "NaN or Inf"),
    Case("ct", "gzip CRC wrong", _ct_file("crc.nii.gz", transform=_flip_crc), _ct_command, "gzip stream is corrupt"),
    Case("ct", "gzip bit flipped", _ct_file("flip.nii.gz", transform=_flip_middle_byte), _ct_command, "corrupt"),
    Case("ct", "vox_offset 0", _ct_file("off0.nii", gz=False, vox_offset=0), _ct_command, "vox_offset 0"),
    Case("ct", "no sform and no qform", _ct_file("noxform.nii.gz", no_xform=True), _ct_command,
         "neither an sform nor a qform"),
    Case("ct", "qform only, pixdim 0", _ct_file("qpix0.nii.gz", qform_only=True, pixdim=[1, 0, 0, 0, 1, 1, 1, 1]),
         _ct_command, "pixdim"),
    Case("ct", "500 mm voxels", _ct_file("vox500.nii.gz", affine=np.diag([500.0, 500, 500, 1])), _ct_command,
         "voxel size"),
    Case("ct", "field of view of 1.5 m (wrong voxel size)",
         _ct_file("wide.nii.gz", affine=np.diag([19.0, 19.0, 19.0, 1]) @ np.eye(4)), _ct_command, "field of view"),
    Case("ct", "sparse 1000^3 header", _sparse_ct, _ct_command, "more than the"),
    Case("ct", "gzip bomb", _ct_gzip_bomb, _ct_command, "decompresses to more than"),
    Case("ct", "skull cap cropped away", _ct_file("cropped.nii.gz", _cropped_ct()), _ct_command, "skull cap"),
    Case("ct", "no bone", _ct_file("soft.nii.gz", np.minimum(head_ct_hu(), 80.0)), _ct_command, "no bone"),
    Case("ct", "constant", _ct_file("const.nii.gz", np.full(CT_SHAPE, -1000.0, np.float32)), _ct_command, "CT"),
    Case("ct", "4D with 2 volumes", _ct_file("4d.nii.gz", np.stack([head_ct_hu()] * 2, axis=-1)), _ct_command,
         "volumes"),
    Case("ct", "RGB datatype", lambda folder: _write(folder, "rgb.nii", _nii_bytes(_data(), datatype=128, bitpix=24)),
         _ct_command, "RGB24"),
    Case("ct", "not a NIfTI name", lambda folder: _write(folder, "ct.mha", b"ObjectType = Image\n"), _ct_command,
         "not a NIfTI file name"),
    Case("ct", "empty file", lambda folder: _write(folder, "empty.nii", b""), _ct_command, "not a readable NIfTI"),
    Case("ct", "missing", lambda folder: folder / "absent.nii.gz", _ct_command, "no such CT"),
]


# --------------------------------------------------------------------------------- DICOM

def write_dicom_series(folder: Path, data: np.ndarray, affine: np.ndarray, *, slope=1.0, intercept=-1024.0,
                       shuffle=False, edit: Callable[[int, object], None] | None = None) -> Path:
    """One file per slice of ``data`` (rows, columns, slices; the volume's axes in DICOM LPS)
    placed by ``affine`` (RAS); ``shuffle`` writes the files out of slice order;
    ``edit(k, dataset)`` changes slice ``k`` before it is written."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    col_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    series = "1.2.826.0.1.3680043.8.498.1"
    stored = np.round((data - intercept) / slope).astype(np.uint16)
    order = np.random.default_rng(0).permutation(data.shape[2]) if shuffle else range(data.shape[2])
    for k in order:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(k)])
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality = series, "CT"
        ds.Rows, ds.Columns = data.shape[0], data.shape[1]
        ds.ImageOrientationPatient = [*(row_step / np.linalg.norm(row_step)), *(col_step / np.linalg.norm(col_step))]
        ds.PixelSpacing = [float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))]
        ds.ImagePositionPatient = [float(v) for v in lps[:3, 3] + k * slice_step]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(stored[:, :, k]).tobytes()
        if edit is not None:
            edit(k, ds)
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)
    return folder


#: The DICOM corpus series: the synthetic head at 8 mm (24 slices of 24 x 24).
DICOM_AFFINE = np.array([[8.0, 0, 0, -94.0], [0, 8.0, 0, -94.0], [0, 0, 8.0, -94.0], [0, 0, 0, 1]])


def _dicom(name: str, edit=None, after: Callable[[Path], None] | None = None) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        series = write_dicom_series(folder / name, head_ct_hu()[::2, ::2, ::2], DICOM_AFFINE, edit=edit)
        if after is not None:
            after(series)
        return series

    return build


def _on_slice(k0: int, change: Callable[[object], None]) -> Callable[[int, object], None]:
    def edit(k: int, ds) -> None:
        if k == k0:
            change(ds)

    return edit


def _delete(tag: str) -> Callable[[object], None]:
    return lambda ds: delattr(ds, tag)


def _jpeg2000_garbage(ds) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # a codestream start, then nothing


def _truncate_one(series: Path) -> None:
    victim = sorted(series.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:900])


def _drop_one(series: Path) -> None:
    sorted(series.iterdir())[7].unlink()


def _duplicate_one(series: Path) -> None:
    first = sorted(series.iterdir())[3]
    (series / "copy.dcm").write_bytes(first.read_bytes())


def _deflate_bomb(series: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    import pydicom

    victim = sorted(series.iterdir())[0]
    ds = pydicom.dcmread(victim)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    bomb = Dataset()
    bomb.file_meta = meta
    bomb.update(ds)
    bomb.PixelData = b"\0" * (100 << 20)  # inflates to 100 MB
    bomb.save_as(victim, enforce_file_format=True)


def _second_series(ds) -> None:
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"


def _dicom_raw(k: int, ds) -> None:
    ds.RescaleIntercept = 0.0  # stored HU + 1024 read as HU


def _huge_rows(k: int, ds) -> None:
    ds.Rows, ds.Columns = 60000, 60000


def _first_two_slices(series: Path) -> None:
    for path in sorted(series.iterdir())[1:]:
        path.unlink()


DICOM_CASES = [
    Case("dicom", "slices of differing pixel spacing", _dicom("spacing", _on_slice(4, lambda ds: setattr(
        ds, "PixelSpacing", [7.0, 7.0]))), _ct_command, "PixelSpacing"),
    Case("dicom", "slices of differing orientation", _dicom("orient", _on_slice(4, lambda ds: setattr(
        ds, "ImageOrientationPatient", [0.9950042, 0.0998334, 0, -0.0998334, 0.9950042, 0]))), _ct_command,
        "ImageOrientationPatient differs"),
    Case("dicom", "slices of differing row counts", _dicom("rows", _on_slice(4, lambda ds: (
        setattr(ds, "Rows", 20), setattr(ds, "PixelData", ds.PixelData[: 20 * 24 * 2])))), _ct_command, "pixels"),
    Case("dicom", "missing PixelSpacing", _dicom("nospacing", _on_slice(2, _delete("PixelSpacing"))), _ct_command,
         "missing DICOM tag PixelSpacing"),
    Case("dicom", "missing ImageOrientationPatient", _dicom("noiop", _on_slice(2, _delete("ImageOrientationPatient"))),
         _ct_command, "missing DICOM tag ImageOrientationPatient"),
    Case("dicom", "JPEG 2000 that cannot be decoded", _dicom("j2k", _on_slice(3, _jpeg2000_garbage)), _ct_command,
         "cannot be decoded"),
    Case("dicom", "truncated slice", _dicom("truncated", after=_truncate_one), _ct_command, "slice"),
    Case("dicom", "a slice missing (uneven spacing)", _dicom("gap", after=_drop_one), _ct_command, "unevenly spaced"),
    Case("dicom", "a slice duplicated", _dicom("dup", after=_duplicate_one), _ct_command, "duplicated"),
    Case("dicom", "deflated slice of 100 MB", _dicom("deflate", after=_deflate_bomb), _ct_command, "deflate bomb"),
    Case("dicom", "two series in one folder", _dicom("two", _on_slice(5, _second_series)), _ct_command,
         "2 DICOM series"),
    Case("dicom", "raw scanner units (no rescale intercept)", _dicom("raw", _dicom_raw), _ct_command,
         "raw scanner units"),
    Case("dicom", "60000 x 60000 pixels declared", _dicom("huge", _huge_rows), _ct_command, "more than the"),
    Case("dicom", "one slice", _dicom("one", after=_first_two_slices), _ct_command, "at least 2 slices"),
    Case("dicom", "no DICOM file", lambda folder: (folder / "notes").mkdir() or _write(folder / "notes", "a.txt", b"x")
         .parent, _ct_command, "no DICOM image slices"),
]


# ----------------------------------------------------------------------- CT registration

def _good_ct(folder: Path) -> Path:
    path = folder / "reg_ct.nii.gz"
    if not path.exists():
        _ct_file("reg_ct.nii.gz")(folder)
    return path


def _ct_reg_command(path: Path) -> list[str]:
    return ["plan", str(SAMPLE), "--ct", str(_good_ct(path.parent)), "--ct-registration", os.fsdecode(path),
            "--no-progress"]


def _rigid(angle_deg=0.0, shift=(0.0, 0.0, 0.0), scale=1.0) -> np.ndarray:
    a = math.radians(angle_deg)
    matrix = np.eye(4)
    matrix[:3, :3] = scale * np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    matrix[:3, 3] = shift
    return matrix


def _ct_registration(name: str, matrix=None, *, edit: Callable[[Path], None] | None = None,
                     ct_fingerprint: str | None = None, meta_changes=None) -> Callable[[Path], Path]:
    """A CT registration of the corpus CT (written by fusplan), then changed by ``edit``."""
    def build(folder: Path) -> Path:
        from fusplan.registration_file import CT_REGISTRATION, write_checked_npz
        from fusplan.skull import load_ct
        from fusplan.skull.registration import ct_fingerprint as fingerprint

        ct = load_ct(_good_ct(folder))
        meta = {"ct_fingerprint": ct_fingerprint or fingerprint(ct), "scan_fingerprint": "", "metric": -0.5,
                "time_s": 3.0, **(meta_changes or {})}
        path = folder / name
        write_checked_npz(path, CT_REGISTRATION, {"mr_to_ct_mm": _rigid() if matrix is None else matrix}, meta)
        if edit is not None:
            edit(path)
        return path

    return build


def _replace_matrix(matrix: np.ndarray) -> Callable[[Path], None]:
    """Swap the matrix and keep the original metadata (what a hand edit does)."""
    def edit(path: Path) -> None:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["mr_to_ct_mm"] = matrix
        np.savez_compressed(path, **arrays)

    return edit


def _set_meta(text: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["meta"] = np.array(text)
        np.savez_compressed(path, **arrays)

    return edit


def _format_1(path: Path) -> None:
    """The file fusplan wrote before checksums (format 1)."""
    with np.load(path) as data:
        matrix = data["mr_to_ct_mm"]
        meta = json.loads(str(data["meta"]))
    old = {"format_version": 1, "ct_fingerprint": meta["ct_fingerprint"], "scan_fingerprint": "",
           "metric": -0.5, "time_s": 3.0}
    np.savez_compressed(path, mr_to_ct_mm=matrix, meta=np.array(json.dumps(old)))


def _bytes_edit(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(change(path.read_bytes()))


def _as_npy(folder: Path) -> Path:
    path = folder / "ct_reg.npy"
    np.save(path, _rigid())
    return path


def _atlas_registration(folder: Path) -> Path:
    from fusplan.registration_file import write_registration_file

    path = folder / "atlas_registration.npz"
    field = np.zeros((2, 2, 2, 3), np.float32)
    write_registration_file(path, {"affine_mm": np.eye(4), "field_affine": np.eye(4), "forward_mm": field,
                                   "backward_mm": field},
                            {"atlas": "morel", "field_shape": [2, 2, 2], "method": "x", "time_s": 1.0,
                             "similarity": 0.9, "affine_similarity": 0.9, "contrast": "T1", "scan_fingerprint": "",
                             "settings": {}})
    return path


def _in_out_folder(folder: Path) -> Path:
    out = folder / "out_with_reg"
    out.mkdir(exist_ok=True)
    return _ct_registration("ct_registration.npz", edit=_replace_matrix(_rigid(shift=(25.0, 0, 0))))(out)


def _out_command(path: Path) -> list[str]:
    return ["plan", str(SAMPLE), "--ct", str(_good_ct(path.parent.parent)), "--out", str(path.parent),
            "--no-progress"]


CT_REGISTRATION_CASES = [
    Case("ct_registration", "matrix shifted 25 mm, metadata kept",
         _ct_registration("shift.npz", edit=_replace_matrix(_rigid(shift=(25.0, 0, 0)))), _ct_reg_command,
         "checksum does not match"),
    Case("ct_registration", "matrix rotated 20 deg, metadata kept",
         _ct_registration("rot.npz", edit=_replace_matrix(_rigid(20.0))), _ct_reg_command, "checksum does not match"),
    Case("ct_registration", "matrix scaled x2, metadata kept",
         _ct_registration("scale.npz", edit=_replace_matrix(_rigid(scale=2.0))), _ct_reg_command,
         "checksum does not match"),
    Case("ct_registration", "shifted file picked up from --out", _in_out_folder, _out_command,
         "checksum does not match"),
    Case("ct_registration", "scaled x2 with a valid checksum", _ct_registration("scale_ok.npz", _rigid(scale=2.0)),
         _ct_reg_command, "not rigid"),
    Case("ct_registration", "mirrored with a valid checksum",
         _ct_registration("mirror.npz", np.diag([-1.0, 1, 1, 1])), _ct_reg_command, "not rigid"),
    Case("ct_registration", "translation of 5 m", _ct_registration("far.npz", _rigid(shift=(5000.0, 0, 0))),
         _ct_reg_command, "translation"),
    Case("ct_registration", "NaN matrix", _ct_registration("nan.npz", np.full((4, 4), np.nan)), _ct_reg_command,
         "contains NaN or Inf"),
    Case("ct_registration", "zero matrix", _ct_registration("zero.npz", np.zeros((4, 4))), _ct_reg_command,
         "last row"),
    Case("ct_registration", "3x3 matrix", _ct_registration("m33.npz", np.eye(3)), _ct_reg_command,
         "has shape (3, 3)"),
    Case("ct_registration", "empty file", lambda folder: _write(folder, "empty.npz", b""), _ct_reg_command,
         "not an .npz archive"),
    Case("ct_registration", "truncated", _ct_registration("cut.npz", edit=_bytes_edit(lambda b: b[: len(b) // 2])),
         _ct_reg_command, "CT registration"),
    Case("ct_registration", "bit flipped", _ct_registration("flip.npz", edit=_bytes_edit(_flip_middle_byte)),
         _ct_reg_command, "CT registration"),
    Case("ct_registration", "an .npy array", _as_npy, _ct_reg_command, "not an .npz archive"),
    Case("ct_registration", "metadata not JSON", _ct_registration("meta.npz", edit=_set_meta("{not json")),
         _ct_reg_command, "meta is not JSON"),
    Case("ct_registration", "metadata field missing", _ct_registration("nometric.npz", edit=_set_meta(json.dumps(
        {"format_version": 2, "sha256": "0"}))), _ct_reg_command, "CT registration meta."),
    Case("ct_registration", "format 1 (no checksum)", _ct_registration("v1.npz", edit=_format_1), _ct_reg_command,
         "has no checksum"),
    Case("ct_registration", "an atlas registration.npz", _atlas_registration, _ct_reg_command,
         "not a fusplan CT registration file"),
    Case("ct_registration", "computed for another CT", _ct_registration("other.npz", ct_fingerprint="0" * 40),
         _ct_reg_command, "another CT"),
    Case("ct_registration", "missing", lambda folder: folder / "absent.npz", _ct_reg_command,
         "no such CT registration file"),
]


# --------------------------------------------------------------------------- thermometry

THERMOMETRY_PROTOCOL = """\
name: thermometry corpus
transducer: {model: gaussian, fwhm_mm: [2, 2, 4]}
grid: {spacing_mm: 1.0, extent_mm: 20}
sonications:
  - {stage: alignment, absorbed_power_w: 0.5, duration_s: 10}
"""


def _series(name: str, data: np.ndarray | None = None, *, units=("mm", "sec"), pixdim4=3.5, sidecar=None,
            gz=True, transform: Callable[[bytes], bytes] | None = None, **fields) -> Callable[[Path], Path]:
    def time_axis(header) -> None:
        header.set_xyzt_units(*units)
        header["pixdim"][4] = pixdim4

    def build(folder: Path) -> Path:
        values = np.full((8, 8, 4, 6), 37.0, np.float32) if data is None else data
        path = _write(folder, name, _nifti_payload(values, np.diag([1.1, 1.1, 3.0, 1.0]), gz=gz, transform=transform,
                                                   fields=fields, header_edit=time_axis))
        if sidecar is not None:
            (folder / (name.split(".")[0] + ".json")).write_text(json.dumps(sidecar))
        return path

    return build


def _thermometry_command(path: Path) -> list[str]:
    protocol = path.parent / "thermometry_protocol.yaml"
    protocol.write_text(THERMOMETRY_PROTOCOL)
    measured = path.parent / f"measured_{path.name.split('.')[0]}.yaml"
    measured.write_text(f"measured:\n  - {{sonication: 1, thermometry: {json.dumps(path.name)}}}\n")
    return ["simulate", str(protocol), "--thermometry", str(measured), "--no-progress"]


def _series_bomb(folder: Path) -> Path:
    header = _header(np.zeros((8, 8, 4, 6), np.float32))
    header.set_xyzt_units("mm", "sec")
    stream = header.binaryblock + b"\0" * 4 + b"\0" * (96 << 20)
    return _write(folder, "series_bomb.nii.gz", gzip.compress(stream, compresslevel=9, mtime=0))


def _series_huge(folder: Path) -> Path:
    header = _header(np.zeros((2, 2, 2, 2), np.float32))
    header.set_data_shape((256, 256, 64, 400))
    return _write(folder, "series_huge.nii", header.binaryblock + b"\0" * 4096)


def _time_on_axis_2() -> np.ndarray:
    rise = np.linspace(0.0, 6.0, 6)
    return (37.0 + rise[None, None, :, None] * np.ones((8, 8, 6, 4))).astype(np.float32)


THERMOMETRY_CASES = [
    Case("thermometry", "time unit Hz, no sidecar", _series("hz.nii.gz", units=("mm", "hz")), _thermometry_command,
         "is not a time"),
    Case("thermometry", "time on axis 2, no sidecar", _series("axis2.nii.gz", _time_on_axis_2(),
         units=("mm", "unknown"), pixdim4=1.0), _thermometry_command, "is not a time"),
    Case("thermometry", "time on axis 2, with a sidecar", _series("axis2s.nii.gz", _time_on_axis_2(),
         sidecar={"frame_times_s": [3, 6, 9, 12, 15, 18]}), _thermometry_command,
         "axis2s.json: frame_times_s has 6 times for 4 frames (axis 3 has 6: is time stored on a spatial axis?)",
         names_file=False),
    Case("thermometry", "frame step 60 s", _series("slow.nii.gz", pixdim4=60.0), _thermometry_command,
         "longer than"),
    Case("thermometry", "gzip bomb", _series_bomb, _thermometry_command, "decompresses to more than"),
    Case("thermometry", "27 G values declared", _series_huge, _thermometry_command, "more than the"),
    Case("thermometry", "gzip CRC wrong", _series("crc.nii.gz", transform=_flip_crc), _thermometry_command,
         "gzip stream is corrupt"),
    Case("thermometry", "NaN frame", _series("nan.nii.gz", np.where(np.arange(6) == 3, np.nan, 37.0)
         * np.ones((8, 8, 4, 6), np.float32)), _thermometry_command, "NaN or Inf"),
    Case("thermometry", "3D, not a series", _series("3d.nii.gz", np.full((8, 8, 4), 37.0, np.float32)),
         _thermometry_command, "4D"),
    Case("thermometry", "Kelvin", _series("kelvin.nii.gz", np.full((8, 8, 4, 6), 310.0, np.float32)),
         _thermometry_command, "temperatures in C"),
    Case("thermometry", "vox_offset 0", _series("off0.nii", gz=False, vox_offset=0), _thermometry_command,
         "vox_offset 0"),
    Case("thermometry", "pixdim 0", _series("pix0.nii.gz", pixdim=[1, 0, 1.1, 3, 3.5, 1, 1, 1]), _thermometry_command,
         "pixdim"),
    Case("thermometry", "missing", lambda folder: folder / "absent.nii.gz", _thermometry_command, "not found"),
]


# ------------------------------------------------------------------------------- options

def _protocol_text(name: str, text: str) -> Callable[[Path], Path]:
    return lambda folder: _write(folder, name, text.encode())


def _simulate_file(path: Path) -> list[str]:
    return ["simulate", os.fsdecode(path), "--no-progress"]


def _phantom_with(*options: str) -> Callable[[Path], list[str]]:
    return lambda path: ["simulate", os.fsdecode(path), "--no-progress", *options]


def _batch_with(*options: str) -> Callable[[Path], list[str]]:
    return lambda path: ["batch", "--phantom", "--protocol", os.fsdecode(path), "--out",
                         str(path.parent / "batch_out"), "--no-progress", *options]


ARRAY_PROTOCOL = """\
name: options corpus
transducer: {model: hemispherical_array, tilt_deg: TILT}
grid: {spacing_mm: 1.0, extent_mm: 30}
sonications:
  - {stage: treatment, peak_c: 55, duration_s: 10}
"""
#: Each value inside its documented range; together the titration would need a 147 C true peak.
COARSE_THERMOMETRY = """\
name: coarse thermometry
transducer: {model: gaussian, fwhm_mm: [2, 2, 4]}
grid: {spacing_mm: 0.5, extent_mm: 30}
thermometry: {voxel_mm: [5, 5, 5], frame_s: 10}
sonications:
  - {stage: treatment, peak_c: 58, duration_s: 12}
"""
_FOCI = "".join(f"  - {{stage: verification, absorbed_power_w: 0.5, duration_s: 1, offset_mm: [{x}, {y}, 0]}}\n"
                for x in range(-3, 3) for y in range(-3, 3))

OPTION_CASES = [
    Case("options", "--uncertainty 1000000000", _protocol_text("u.yaml", THERMOMETRY_PROTOCOL),
         _phantom_with("--uncertainty", "1000000000"), "--uncertainty", names_file=False),
    Case("options", "--uncertainty 1", _protocol_text("u1.yaml", THERMOMETRY_PROTOCOL),
         _phantom_with("--uncertainty", "1"), "--uncertainty", names_file=False),
    Case("options", "--workers 0", _protocol_text("w0.yaml", THERMOMETRY_PROTOCOL), _phantom_with("--workers", "0"),
         "--workers", names_file=False),
    Case("options", "--workers 100000", _protocol_text("wbig.yaml", THERMOMETRY_PROTOCOL),
         _phantom_with("--workers", "100000"), "--workers", names_file=False),
    Case("options", "--workers of 400 digits", _protocol_text("w400.yaml", THERMOMETRY_PROTOCOL),
         _phantom_with("--workers", "9" * 400), "--workers", names_file=False),
    Case("options", "tilt_deg of a 400-digit integer",
         _protocol_text("tilt400.yaml", ARRAY_PROTOCOL.replace("TILT", f"[{'9' * 400}, 0]")), _simulate_file,
         "tilt_deg"),
    Case("options", "tilt_deg [45, 45] (60 deg in total)",
         _protocol_text("tilt45.yaml", ARRAY_PROTOCOL.replace("TILT", "[45, 45]")), _simulate_file,
         "transducer.tilt_deg"),
    Case("options", "thermometry 5 mm voxels, 10 s frames: coarser than the focus",
         _protocol_text("coarse.yaml", COARSE_THERMOMETRY), _simulate_file, "coarser than the focus"),
    Case("options", "absorbed_power_w 20 W: a 1000 C focus", _protocol_text("hot.yaml", THERMOMETRY_PROTOCOL.replace(
        "absorbed_power_w: 0.5", "absorbed_power_w: 20")), _simulate_file, "tissue boils"),
    Case("options", "36 distinct foci", _protocol_text("foci.yaml", THERMOMETRY_PROTOCOL + _FOCI), _simulate_file,
         "offset_mm"),
    Case("options", "batch --set peak_c=!!binary", _protocol_text("bin.yaml", THERMOMETRY_PROTOCOL),
         _batch_with("--set", "peak_c=!!binary aGVsbG8="), "override peak_c", names_file=False),
    Case("options", "batch --scheduler ''", _protocol_text("s0.yaml", THERMOMETRY_PROTOCOL),
         _batch_with("--scheduler", ""), "--scheduler", names_file=False),
    Case("options", "batch --scheduler garbage", _protocol_text("sg.yaml", THERMOMETRY_PROTOCOL),
         _batch_with("--scheduler", "not an address at all"), "--scheduler", names_file=False),
    Case("options", "batch --scheduler of an unknown scheme", _protocol_text("ss.yaml", THERMOMETRY_PROTOCOL),
         _batch_with("--scheduler", "gopher://localhost:70"), "unknown scheme", names_file=False),
    Case("options", "--out under /proc", lambda folder: Path("/proc/fusplan-corpus/out"),
         lambda path: ["simulate", "clt", "--no-progress", "--out", str(path)], "cannot create or write"),
]

INPUT_CASES = CT_CASES + DICOM_CASES + CT_REGISTRATION_CASES + THERMOMETRY_CASES + OPTION_CASES
