"""Bounded property-based fuzzing of the inputs of issue 19: CT NIfTI and DICOM series, the CT
registration file, thermometry series and the numeric options.

Property: any input gives a valid object or a one-line FusplanInputError naming the file (or the
option), never another exception and never output on stderr; a damaged file that loads at all
holds exactly what was written. FUSPLAN_FUZZ_EXAMPLES=2000 runs a longer randomised search.
"""
import argparse
import gzip
import json
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from corpus_base import flip_bytes
from corpus_inputs import CT_AFFINE, head_ct_hu, write_dicom_series
from fusplan.batch.engines import check_scheduler_address
from fusplan.cli.assessment import _samples, _workers
from fusplan.errors import FusplanInputError
from fusplan.measured import ThermometrySeries, load_series
from fusplan.protocol import parse_override
from fusplan.registration_file import CT_REGISTRATION, write_checked_npz
from fusplan.skull.ct import SkullCT, load_ct
from fusplan.skull.dicom import read_dicom_series
from fusplan.skull.registration import CtRegistration, load_ct_registration

EXAMPLES = os.environ.get("FUSPLAN_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(EXAMPLES or 60), deadline=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WORK = Path(tempfile.mkdtemp(prefix="fusplan-fuzz-inputs-"))
HU = head_ct_hu()


def _ct_bytes(header_edits=()) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(HU, CT_AFFINE)
    header = image.header
    header.set_data_offset(352)
    block = bytearray(header.binaryblock)
    for fmt, offset, values in header_edits:
        struct.pack_into(fmt, block, offset, *values)
    return bytes(block) + b"\0" * 4 + HU.tobytes(order="F")


GOOD_CT_GZ = gzip.compress(_ct_bytes(), compresslevel=1, mtime=0)
FIELDS = [("<8h", 40, 8), ("<h", 70, 1), ("<h", 72, 1), ("<8f", 76, 8), ("<f", 108, 1), ("<f", 112, 1),
          ("<f", 116, 1), ("<h", 252, 1), ("<h", 254, 1), ("<6f", 256, 6), ("<12f", 280, 12)]
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
SHORTS = st.integers(-(2**15), 2**15 - 1)
ODD = st.sampled_from([math.nan, math.inf, -math.inf])


def _floats(low, high):
    """Floats in [low, high], or NaN / +-Inf."""
    return st.floats(low, high) | ODD


@st.composite
def header_edits(draw):
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        fmt, offset, count = draw(st.sampled_from(FIELDS))
        element = SHORTS if fmt.endswith("h") else FLOATS
        edits.append((fmt, offset, draw(st.lists(element, min_size=count, max_size=count))))
    return edits


def _clean(call, path, capfd, expected_type, name=None):
    try:
        result = call(path)
    except FusplanInputError as error:
        message = str(error)
        assert "\n" not in message and (name or Path(path).name) in message, message
        result = None
    else:
        assert isinstance(result, expected_type)
    out, err = capfd.readouterr()
    assert out == "" and err == "", err
    return result


@FUZZ
@given(edits=header_edits())
def test_fuzzed_ct_headers_load_or_refuse_cleanly(edits, capfd):
    path = WORK / "ct.nii.gz"
    path.write_bytes(gzip.compress(_ct_bytes(edits), compresslevel=1, mtime=0))
    ct = _clean(load_ct, path, capfd, SkullCT)
    if ct is not None:  # what loads is a finite head CT in HU
        assert np.all(np.isfinite(ct.data)) and np.all(np.isfinite(ct.affine))


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(10, len(GOOD_CT_GZ) - 1), st.integers(1, 255)), min_size=1,
                      max_size=3))
def test_damaged_ct_gzip_never_loads_changed_voxels(flips, capfd):
    path = WORK / "ct_flip.nii.gz"
    path.write_bytes(flip_bytes(GOOD_CT_GZ, flips))
    ct = _clean(load_ct, path, capfd, SkullCT)
    if ct is not None:
        np.testing.assert_array_equal(ct.data, HU)


def _registration_file(matrix) -> Path:
    path = WORK / "ct_registration.npz"
    write_checked_npz(path, CT_REGISTRATION, {"mr_to_ct_mm": np.asarray(matrix, float)},
                      {"ct_fingerprint": "a" * 40, "scan_fingerprint": "", "metric": -0.5, "time_s": 1.0})
    return path


GOOD_REGISTRATION = _registration_file(np.eye(4)).read_bytes()


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(GOOD_REGISTRATION) - 1), st.integers(1, 255)), min_size=1,
                      max_size=4), cut=st.one_of(st.none(), st.integers(0, len(GOOD_REGISTRATION))))
def test_damaged_ct_registration_is_refused_or_unchanged(flips, cut, capfd):
    data = flip_bytes(GOOD_REGISTRATION, flips)
    path = WORK / "ct_registration_damaged.npz"
    path.write_bytes(data if cut is None else data[:cut])
    registration = _clean(load_ct_registration, path, capfd, CtRegistration)
    if registration is not None:  # a change zip ignores (a comment, a timestamp) may load, then unchanged
        np.testing.assert_array_equal(registration.mr_to_ct_mm, np.eye(4))


@FUZZ
@given(matrix=st.lists(_floats(-1e6, 1e6), min_size=16, max_size=16),
       rigid_part=st.booleans(), angle=st.floats(-math.pi, math.pi), shift=st.floats(-2000, 2000))
def test_ct_registration_loads_only_rigid_finite_maps(matrix, rigid_part, angle, shift, capfd):
    values = np.array(matrix, float).reshape(4, 4)
    if rigid_part:  # often a rotation, so both sides of the check are reached
        values[:3, :3] = [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
        values[3] = [0, 0, 0, 1]
        values[0, 3] = shift
    registration = _clean(load_ct_registration, _registration_file(values), capfd, CtRegistration)
    if registration is not None:
        rotation = registration.mr_to_ct_mm[:3, :3]
        assert np.abs(rotation.T @ rotation - np.eye(3)).max() <= 1e-4 and np.linalg.det(rotation) > 0
        assert np.linalg.norm(registration.mr_to_ct_mm[:3, 3]) <= 1000


DICOM_DATA = HU[::4, ::4, ::4]  # 12 slices of 12 x 12 at 16 mm
DICOM_AFFINE = np.array([[16.0, 0, 0, -94.0], [0, 16.0, 0, -94.0], [0, 0, 16.0, -94.0], [0, 0, 0, 1]])
DICOM_TAGS = {
    "PixelSpacing": st.lists(_floats(-100, 100), min_size=0, max_size=3),
    "ImageOrientationPatient": st.lists(_floats(-2, 2), min_size=0, max_size=7),
    "ImagePositionPatient": st.lists(_floats(-1e4, 1e4), min_size=0, max_size=4),
    "Rows": st.integers(0, 70000), "Columns": st.integers(0, 70000),
    "RescaleSlope": st.floats(allow_nan=True, allow_infinity=True), "SamplesPerPixel": st.integers(0, 4),
}


@settings(FUZZ, max_examples=int(EXAMPLES or 25))  # each example writes a 12-slice series
@given(slice_index=st.integers(0, DICOM_DATA.shape[2] - 1), tag=st.sampled_from(sorted(DICOM_TAGS)),
       data=st.data())
def test_fuzzed_dicom_tags_load_or_refuse_cleanly(slice_index, tag, data, capfd):
    import shutil

    value = data.draw(DICOM_TAGS[tag])
    folder = WORK / "dicom"
    shutil.rmtree(folder, ignore_errors=True)

    def edit(k, ds):
        if k == slice_index:
            try:
                setattr(ds, tag, value)
            except (ValueError, OverflowError, TypeError):
                pass  # pydicom refuses to write this value: the slice keeps its own

    try:
        write_dicom_series(folder, DICOM_DATA, DICOM_AFFINE, edit=edit)
    except Exception:  # noqa: BLE001 - pydicom cannot write this value at all: nothing to read
        assume(False)
    try:
        volume, affine = read_dicom_series(folder, max_voxels=512**3)
    except FusplanInputError as error:
        assert "\n" not in str(error) and "dicom" in str(error)
    else:
        assert np.all(np.isfinite(volume)) and np.all(np.isfinite(affine))
    out, err = capfd.readouterr()
    assert out == "" and err == "", err


TIME_UNITS = {"unknown": 0, "sec": 8, "msec": 16, "usec": 24, "hz": 32, "ppm": 40, "rads": 48}


@FUZZ
@given(unit=st.sampled_from(sorted(TIME_UNITS)), step=_floats(-10, 1e4),
       toffset=_floats(-1e4, 1e4), frames=st.integers(1, 8),
       sidecar=st.one_of(st.none(), st.lists(_floats(-4000, 4000), max_size=9)))
def test_fuzzed_thermometry_time_axis_loads_or_refuses_cleanly(unit, step, toffset, frames, sidecar, capfd):
    import nibabel as nib

    image = nib.Nifti1Image(np.full((6, 6, 3, frames), 37.0, np.float32), np.diag([1.1, 1.1, 3.0, 1.0]))
    image.header.set_xyzt_units("mm", unit)
    image.header["pixdim"][4] = step
    image.header["toffset"] = toffset
    path = WORK / "series.nii.gz"
    nib.save(image, path)
    (WORK / "series.json").unlink(missing_ok=True)
    if sidecar is not None:
        (WORK / "series.json").write_text(json.dumps({"frame_times_s": sidecar}))
    series = _clean(load_series, path, capfd, ThermometrySeries, name="series.")
    if series is not None:  # frame times are seconds: finite, increasing, frames of 0-30 s
        assert np.all(np.isfinite(series.frame_times_s)) and np.all(np.diff(series.frame_times_s) > 0)
        assert 0 < series.frame_s <= 30
        assert unit in ("sec", "msec", "usec") or sidecar is not None


@FUZZ
@given(text=st.one_of(st.text(max_size=60), st.builds(lambda s, h, p: f"{s}://{h}:{p}",
                      st.sampled_from(["tcp", "tls", "gopher", "", "inproc"]), st.text(max_size=10),
                      st.text(max_size=8))))
def test_fuzzed_scheduler_addresses_are_checked_or_refused(text):
    try:
        address = check_scheduler_address(text)
    except FusplanInputError as error:
        assert "\n" not in str(error) and "--scheduler" in str(error)
    else:
        assert address.strip()


@FUZZ
@given(text=st.text(max_size=40))
def test_fuzzed_override_text_parses_or_refuses_cleanly(text):
    try:
        key, value = parse_override(text)
    except FusplanInputError as error:
        assert "\n" not in str(error)
    else:
        assert key and "=" in text


@FUZZ
@given(text=st.one_of(st.text(max_size=30), st.integers(-10**30, 10**30).map(str)))
def test_fuzzed_option_numbers_are_bounded(text):
    for parse, low, high in ((_samples, 0, 2000), (_workers, 1, 256)):
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as error:
            assert "\n" not in str(error)
        else:
            assert low <= value <= high


def teardown_module():
    import shutil

    shutil.rmtree(WORK, ignore_errors=True)


pytestmark = pytest.mark.filterwarnings("ignore")
