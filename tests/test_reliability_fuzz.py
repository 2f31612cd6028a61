"""Bounded property-based fuzzing of the NIfTI and protocol loaders (issue 14).

Property: any input gives a valid object or a one-line FusplanInputError naming the file,
never another exception and never output on stderr; a damaged .nii.gz that loads at all
holds exactly the original voxels. About 20 s in total (max_examples is small on purpose).
"""
import gzip
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusplan.errors import FusplanInputError
from fusplan.io import Scan, load_scan
from fusplan.protocol import Protocol, load_protocol
from corpus_base import flip_bytes
from make_corpus import PROTOCOL, _data, _nii_bytes

# FUSPLAN_FUZZ_EXAMPLES=2000 runs a longer, randomised search (about 2 minutes per test)
EXAMPLES = os.environ.get("FUSPLAN_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(EXAMPLES or 120), deadline=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
GOOD = _nii_bytes(_data())
ORIGINAL = _data()
WORK = Path(tempfile.mkdtemp(prefix="fusplan-fuzz-"))

# header fields (name, offset, struct format) of the NIfTI-1 header
FIELDS = [
    ("sizeof_hdr", 0, "<i"), ("dim", 40, "<8h"), ("datatype", 70, "<h"), ("bitpix", 72, "<h"),
    ("pixdim", 76, "<8f"), ("vox_offset", 108, "<f"), ("scl_slope", 112, "<f"), ("scl_inter", 116, "<f"),
    ("qform_code", 252, "<h"), ("sform_code", 254, "<h"), ("quatern", 256, "<6f"), ("srow", 280, "<12f"),
    ("magic", 344, "<4s"),
]
SHORTS = st.integers(-(2**15), 2**15 - 1)
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)


def _field_value(fmt):
    count = int(fmt[1:-1] or 1)
    kind = fmt[-1]
    if kind == "s":
        return st.binary(min_size=4, max_size=4).map(lambda b: (b,))
    element = {"h": SHORTS, "i": st.integers(-(2**31), 2**31 - 1), "f": FLOATS}[kind]
    return st.lists(element, min_size=count, max_size=count)


@st.composite
def damaged_headers(draw):
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        name, offset, fmt = draw(st.sampled_from(FIELDS))
        values = draw(_field_value(fmt))
        struct.pack_into(fmt, data, offset, *values)
    if draw(st.booleans()):  # a few raw byte changes anywhere in the header
        for position, value in draw(st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), max_size=4)):
            data[position] = value
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return bytes(data if cut is None else data[:cut])


def _assert_clean(call, path, capfd, expected_type):
    try:
        result = call(path)
    except FusplanInputError as error:
        message = str(error)
        assert "\n" not in message and str(path.name) in message, message
    else:
        assert isinstance(result, expected_type)
    out, err = capfd.readouterr()
    assert out == "" and err == "", err


@FUZZ
@given(payload=damaged_headers(), gzipped=st.booleans())
def test_fuzzed_nifti_headers_load_or_refuse_cleanly(payload, gzipped, capfd):
    path = WORK / ("fuzz.nii.gz" if gzipped else "fuzz.nii")
    path.write_bytes(gzip.compress(payload, mtime=0) if gzipped else payload)
    _assert_clean(load_scan, path, capfd, Scan)


GOOD_GZ = gzip.compress(GOOD, compresslevel=6, mtime=0)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(10, len(GOOD_GZ) - 1), st.integers(1, 255)), min_size=1, max_size=3))
def test_damaged_gzip_never_loads_changed_voxels(flips, capfd):
    path = WORK / "flip.nii.gz"
    path.write_bytes(flip_bytes(GOOD_GZ, flips))
    try:
        scan = load_scan(path)
    except FusplanInputError as error:
        assert "\n" not in str(error)
    else:  # only a change gzip ignores (e.g. in the header's flag bytes) may load, and then unchanged
        np.testing.assert_array_equal(scan.data, ORIGINAL)
    assert capfd.readouterr().err == ""


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
KEYS = ["name", "tissue", "transducer", "grid", "sonications", "thresholds_cem43", "thermometry"]
SUBKEYS = ["density_kg_m3", "frequency_khz", "radius_mm", "spacing_mm", "extent_mm", "duration_s", "peak_c",
           "power_w", "voxel_mm", "frame_s", "preset", "model", "fwhm_mm", "elements", "stage", "tilt_deg",
           "offset_mm", "repeat"]


@st.composite
def fuzzed_protocols(draw):
    spec = {"name": "fuzz", "transducer": {"model": "gaussian", "fwhm_mm": [2, 2, 4]},
            "grid": {"spacing_mm": 1.0, "extent_mm": 20},
            "sonications": [{"stage": "treatment", "absorbed_power_w": 1.0, "duration_s": 4}]}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()) and isinstance(spec.get(key), dict):
            spec[key][draw(st.sampled_from(SUBKEYS))] = draw(JSON_VALUES)
        elif key == "sonications" and isinstance(spec[key], list) and spec[key] and isinstance(spec[key][0], dict) \
                and draw(st.booleans()):
            spec[key][0][draw(st.sampled_from(SUBKEYS))] = draw(JSON_VALUES)
        else:
            spec[key] = draw(JSON_VALUES)
    return spec


@FUZZ
@given(spec=fuzzed_protocols(), as_json=st.booleans())
def test_fuzzed_protocol_values_load_or_refuse_cleanly(spec, as_json, capfd):
    import yaml

    path = WORK / ("fuzz.json" if as_json else "fuzz.yaml")
    text = json.dumps(spec) if as_json else yaml.safe_dump(spec)
    path.write_text(text, encoding="utf-8")
    _assert_clean(load_protocol, path, capfd, Protocol)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.builds(lambda a, b: PROTOCOL[:a] + b + PROTOCOL[a:],
                                                        st.integers(0, len(PROTOCOL)), st.text(max_size=30))))
def test_fuzzed_protocol_text_loads_or_refuses_cleanly(text, capfd):
    path = WORK / "text.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _assert_clean(load_protocol, path, capfd, Protocol)


def teardown_module():
    import shutil

    shutil.rmtree(WORK, ignore_errors=True)

