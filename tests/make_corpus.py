"""Build the bad-input corpus of issues 14 and 19 programmatically (no binary files are committed).

Categories: ``nifti``, ``registration`` and ``protocol`` (issue 14, here) and ``ct``,
``dicom``, ``ct_registration``, ``thermometry`` and ``options`` (issue 19,
tests/corpus_inputs.py).

Every case is a small file made from scratch and the command line that must refuse it
(exit 2, one stderr line naming the file and the problem) or read it correctly (exit 0).
The tests build the corpus in a temporary folder (tests/test_reliability_corpus.py); run
this script to build it in a folder of your choice and print the "tried / handled" table
(each case through ``python -m fusplan`` in a subprocess)::

    PYTHONPATH=src python tests/make_corpus.py /tmp/corpus [OTHER_FUSPLAN_SRC]
"""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from collections.abc import Callable

import numpy as np

from corpus_base import Case, _data, _header, _nii_bytes, _write, info, info_json, simulate, target_with
from corpus_inputs import INPUT_CASES

def _nii(name: str, data=None, **fields) -> Callable[[Path], Path]:
    return lambda folder: _write(folder, name, _nii_bytes(_data() if data is None else data, **fields))


def _gz(name: str, transform: Callable[[bytes], bytes], compresslevel: int = 6) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        payload = gzip.compress(_nii_bytes(_data()), compresslevel=compresslevel, mtime=0)
        return _write(folder, name, transform(payload))

    return build


def _flip_crc(payload: bytes) -> bytes:
    crc = struct.unpack("<I", payload[-8:-4])[0] ^ 0xFFFFFFFF
    return payload[:-8] + struct.pack("<I", crc) + payload[-4:]


def _wrong_isize(payload: bytes) -> bytes:
    size = struct.unpack("<I", payload[-4:])[0] + 4
    return payload[:-4] + struct.pack("<I", size)


def _flip_voxel_byte(payload: bytes) -> bytes:
    # compresslevel 0 stores the data: flipping one byte changes one voxel and nothing else
    body = bytearray(payload)
    body[len(body) // 2] ^= 0x40
    return bytes(body)


def _two_members(payload: bytes) -> bytes:
    raw = gzip.decompress(payload)
    return gzip.compress(raw[:1000], mtime=0) + gzip.compress(raw[1000:], mtime=0)


def _gzip_bomb(folder: Path) -> Path:
    header = _header(_data((20, 20, 20)))  # declares 32 kB of voxels
    stream = header.binaryblock + b"\0" * 4 + b"\0" * (64 << 20)  # holds 64 MB
    return _write(folder, "bomb.nii.gz", gzip.compress(stream, compresslevel=9, mtime=0))


def _constant_int16(folder: Path) -> Path:
    data = np.full((64, 64, 64), 7, np.int16)
    return _write(folder, "constant_int16.nii.gz", gzip.compress(_nii_bytes(data), mtime=0))


def _non_utf8_name(folder: Path) -> Path:
    path = Path(os.fsdecode(bytes(folder) + b"/scan-\xff\xfe.nii"))
    path.write_bytes(_nii_bytes(_data()))
    return path


def _newline_name(folder: Path) -> Path:
    return folder / "two\nlines.nii"  # does not exist: the one error line must stay one line


def _float64_overflow(folder: Path) -> Path:
    data = _data(dtype=np.float64)
    data[2, 2, 2] = 1e300  # finite in float64, inf in float32
    return _write(folder, "overflow.nii", _nii_bytes(data))


def _slope_overflow(folder: Path) -> Path:
    return _write(folder, "slope.nii", _nii_bytes(_data(dtype=np.int16), scl_slope=1e38, scl_inter=0))


NIFTI_CASES = [
    Case("nifti", "gzip CRC wrong", _gz("crc.nii.gz", _flip_crc), info, "gzip stream is corrupt"),
    Case("nifti", "gzip length (ISIZE) wrong", _gz("isize.nii.gz", _wrong_isize), info, "gzip stream is corrupt"),
    Case("nifti", "gzip stored data changed", _gz("changed.nii.gz", _flip_voxel_byte, 0), info, "corrupt"),
    Case("nifti", "gzip truncated", _gz("cut.nii.gz", lambda p: p[: len(p) - 500]), info, "truncated"),
    Case("nifti", "gzip trailing garbage", _gz("garbage.nii.gz", lambda p: p + b"garbage!"), info, "not gzip data"),
    Case("nifti", "gzip bomb within the voxel limit", _gzip_bomb, info, "decompresses to more than"),
    Case("nifti", "vox_offset 0", _nii("offset0.nii", vox_offset=0), info, "vox_offset 0 points inside"),
    Case("nifti", "vox_offset 100 (inside header)", _nii("offset100.nii", vox_offset=100), info, "inside the header"),
    Case("nifti", "vox_offset beyond the file", _nii("offset_far.nii", vox_offset=10**7), info, "beyond the end"),
    Case("nifti", "bitpix disagrees with datatype", _nii("bitpix.nii", bitpix=8), info, "bitpix 8 disagrees"),
    Case("nifti", "pixdim zero", _nii("pix0.nii", pixdim=[1, 0, 2, 2, 1, 1, 1, 1]), info, "pixdim"),
    Case("nifti", "pixdim negative", _nii("pixneg.nii", pixdim=[1, 2, -2, 2, 1, 1, 1, 1]), info, "pixdim"),
    Case("nifti", "pixdim NaN", _nii("pixnan.nii", pixdim=[1, 2, 2, np.nan, 1, 1, 1, 1]), info, "pixdim"),
    Case("nifti", "pixdim infinite", _nii("pixinf.nii", pixdim=[1, np.inf, 2, 2, 1, 1, 1, 1]), info, "pixdim"),
    Case("nifti", "RGB24", _nii("rgb.nii", datatype=128, bitpix=24), info, "RGB24 is not a scalar"),
    Case("nifti", "RGBA32", _nii("rgba.nii", datatype=2304, bitpix=32), info, "RGBA32 is not a scalar"),
    Case("nifti", "complex64", _nii("complex.nii", datatype=32, bitpix=64), info, "complex64 is not a scalar"),
    Case("nifti", "constant int16 image", _constant_int16, info, "constant"),
    Case("nifti", "float64 value overflows float32", _float64_overflow, info, "NaN or Inf"),
    Case("nifti", "scl_slope overflows float32", _slope_overflow, info, "NaN or Inf"),
    Case("nifti", "file name with a newline", _newline_name, info, "no such file"),
    Case("nifti", "file name too long", lambda folder: folder / ("a" * 300 + ".nii"), info, "File name too long"),
    Case("nifti", "FIFO with a NIfTI name", lambda folder: _fifo(folder / "fifo.nii"), info, "not a regular file"),
    Case("nifti", "folder with a NIfTI name", lambda folder: _folder(folder / "folder.nii.gz"), info, "is a folder"),
    Case("nifti", "gzip of two members (valid)", _gz("members.nii.gz", _two_members), info, "", expect_ok=True),
    Case("nifti", "gzip with zero padding (valid)", _gz("padded.nii.gz", lambda p: p + b"\0" * 512), info, "",
         expect_ok=True),
    Case("nifti", "non-UTF-8 file name, --json (valid)", _non_utf8_name, info_json, "", expect_ok=True),
]


# ---------------------------------------------------------------------------- registration

def _good_arrays(affine=None, forward=None, backward=None) -> dict[str, np.ndarray]:
    field = np.zeros((4, 4, 4, 3), np.float32)
    return {
        "affine_mm": np.eye(4) if affine is None else affine,
        "field_affine": np.diag([4.0, 4.0, 4.0, 1.0]),
        "forward_mm": field if forward is None else forward,
        "backward_mm": field if backward is None else backward,
    }


def _good_meta(**changes) -> dict:
    meta = {"atlas": "morel", "field_shape": [4, 4, 4], "method": "test", "time_s": 1.0, "similarity": 0.9,
            "affine_similarity": 0.8, "contrast": "T1", "scan_fingerprint": "", "settings": {}}
    return {**meta, **changes}


def _registration(name: str, arrays=None, meta=None, edit: Callable[[Path], None] | None = None):
    def build(folder: Path) -> Path:
        from fusplan.registration_file import write_registration_file

        path = folder / name
        write_registration_file(path, arrays or _good_arrays(), meta or _good_meta())
        if edit is not None:
            edit(path)
        return path

    return build


def _rewrite_meta(**changes) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays["meta"]))
        meta.update(changes)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(path, **arrays)

    return edit


def _changed_array(path: Path) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["affine_mm"] = arrays["affine_mm"] + np.array([[0, 0, 0, 1.44], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.savez(path, **arrays)


def _drop_member(path: Path) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "backward_mm"}
    np.savez(path, **arrays)


def _random_bytes(folder: Path) -> Path:
    return _write(folder, "random.npz", np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _truncated_zip(folder: Path) -> Path:
    good = _registration("full.npz")(folder)
    return _write(folder, "truncated.npz", good.read_bytes()[: good.stat().st_size // 2])


def _foreign_npz(folder: Path) -> Path:
    path = folder / "foreign.npz"
    np.savez(path, x=np.arange(5))
    return path


def _zip_bomb(folder: Path) -> Path:
    path = folder / "zipbomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ("affine_mm", "field_affine", "forward_mm", "backward_mm", "meta"):
            archive.writestr(f"{name}.npy", b"\0" * (300 << 20) if name == "forward_mm" else b"\0", compresslevel=1)
    return path


def _nan_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[0, 3] = np.nan
    return affine


def _singular_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[2, :3] = affine[1, :3]
    return affine


REGISTRATION_CASES = [
    Case("registration", "random bytes", _random_bytes, target_with, "not an .npz archive"),
    Case("registration", "truncated zip", _truncated_zip, target_with, "not an .npz archive"),
    Case("registration", "foreign .npz", _foreign_npz, target_with, "not a fusplan registration file"),
    Case("registration", "member missing", _registration("missing.npz", edit=_drop_member), target_with,
         "not a fusplan registration file"),
    Case("registration", "array changed after saving (CLp moved 1.44 mm)",
         _registration("edited.npz", edit=_changed_array), target_with, "checksum does not match"),
    Case("registration", "meta edited after saving", _registration("meta.npz", edit=_rewrite_meta(atlas="x")),
         target_with, "checksum does not match"),
    Case("registration", "format 1 (no checksum)", _registration("v1.npz", edit=_rewrite_meta(format_version=1)),
         target_with, "re-run fusplan target"),
    Case("registration", "unknown format", _registration("v99.npz", edit=_rewrite_meta(format_version=99)),
         target_with, "format 99 is not supported"),
    Case("registration", "meta field missing",
         _registration("nometa.npz", meta={k: v for k, v in _good_meta().items() if k != "contrast"}),
         target_with, "meta.contrast is missing"),
    Case("registration", "affine of wrong shape", _registration("shape.npz", arrays=_good_arrays(np.eye(3))),
         target_with, "affine_mm has shape (3, 3)"),
    Case("registration", "NaN in the affine", _registration("nan.npz", arrays=_good_arrays(_nan_affine())),
         target_with, "contains NaN or Inf"),
    Case("registration", "singular affine", _registration("singular.npz", arrays=_good_arrays(_singular_affine())),
         target_with, "singular"),
    Case("registration", "displacement of wrong shape",
         _registration("field.npz", arrays=_good_arrays(forward=np.zeros((3, 4, 4, 3), np.float32))),
         target_with, "do not match field_shape"),
    Case("registration", "computed for another scan",
         _registration("other.npz", meta=_good_meta(scan_fingerprint="0" * 40)), target_with, "another scan"),
    Case("registration", "zip bomb member", _zip_bomb, target_with, "expands to more than"),
    Case("registration", "file name too long", lambda folder: folder / ("r" * 300 + ".npz"), target_with,
         "File name too long"),
    Case("registration", "missing file", lambda folder: folder / "absent.npz", target_with, "no such registration"),
]


# -------------------------------------------------------------------------------- protocol

PROTOCOL = """\
name: corpus
transducer: {model: gaussian, fwhm_mm: [2, 2, 4]}
grid: {spacing_mm: 1.0, extent_mm: 20}
sonications:
  - {stage: treatment, absorbed_power_w: 1.0, duration_s: 4}
"""


def _text(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return build


def _protocol_with(name: str, old: str, new: str) -> Callable[[Path], Path]:
    assert old in PROTOCOL, old
    return _text(name, PROTOCOL.replace(old, new))


_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)

PROTOCOL_CASES = [
    Case("protocol", "billion laughs (aliases)", _text("laughs.yaml", _LAUGHS), simulate, "alias bomb"),
    Case("protocol", "recursive alias", _text("loop.yaml", "a: &a [1, *a]\n"), simulate, "refers to itself"),
    Case("protocol", "deep nesting YAML", _text("deep.yaml", "a: " + "[" * 3000 + "]" * 3000), simulate,
         "nested deeper"),
    Case("protocol", "deep nesting JSON", _text("deep.json", '{"a": ' + "[" * 100000 + "]" * 100000 + "}"),
         simulate, "nested deeper"),
    Case("protocol", "file over 1 MiB", _text("big.yaml", "# " + "x" * (2 << 20)), simulate, "more than"),
    Case("protocol", "unhashable key", _text("unhash.yaml", "? [a, b]\n: 1\n"), simulate, "not a text key"),
    Case("protocol", "numeric key", _text("numkey.yaml", "1: 2\n"), simulate, "not a text key"),
    Case("protocol", "duplicate YAML key", _text("dup.yaml", PROTOCOL + "name: again\n"), simulate, "given twice"),
    Case("protocol", "duplicate JSON key", _text("dup.json", '{"name": "a", "name": "b"}'), simulate, "given twice"),
    Case("protocol", "JSON NaN", _text("nan.json", '{"name": NaN}'), simulate, "not a JSON number"),
    Case("protocol", "integer of 5000 digits", _protocol_with("huge.yaml", "duration_s: 4", "duration_s: " + "9" * 5000),
         simulate, "more digits"),
    Case("protocol", "integer of 400 digits", _protocol_with("big_int.yaml", "duration_s: 4", "duration_s: " + "9" * 400),
         simulate, "duration_s must be finite"),
    Case("protocol", "1e400 overflows", _protocol_with("inf.yaml", "duration_s: 4", "duration_s: 1e400"), simulate,
         "duration_s must be finite"),
    Case("protocol", "not UTF-8", _text("latin.yaml", "name: caf\xe9\n".encode("latin-1")), simulate, "not UTF-8"),
    Case("protocol", "NUL character", _text("nul.yaml", "name: a\0b\n"), simulate, "not valid YAML"),
    Case("protocol", "radius 1e300", _text("radius.yaml", PROTOCOL.replace(
        "{model: gaussian, fwhm_mm: [2, 2, 4]}", "{model: hemispherical_array, radius_mm: 1e300}")), simulate,
        "transducer.radius_mm must be between"),
    Case("protocol", "density 1e-300",
         _protocol_with("density.yaml", "name: corpus", "name: x\ntissue: {density_kg_m3: 1e-300}"), simulate,
         "tissue.density_kg_m3 must be between"),
    Case("protocol", "perfusion 1e300",
         _protocol_with("perf.yaml", "name: corpus", "name: x\ntissue: {perfusion_ml_min_kg: 1e300}"), simulate,
         "tissue.perfusion_ml_min_kg must be between"),
    Case("protocol", "frequency 0.001 kHz (1 Hz)", _text("freq.yaml", PROTOCOL.replace(
        "{model: gaussian, fwhm_mm: [2, 2, 4]}", "{model: hemispherical_array, frequency_khz: 0.001}")), simulate,
        "transducer.frequency_khz must be between"),
    Case("protocol", "1 ns sonication", _protocol_with("ns.yaml", "duration_s: 4", "duration_s: 1e-9"), simulate,
         "duration_s must be between 0.1"),
    Case("protocol", "denormal duration", _protocol_with("denormal.yaml", "duration_s: 4", "duration_s: 5e-324"),
         simulate, "duration_s must be between 0.1"),
    Case("protocol", "denormal grid spacing", _protocol_with("spacing.yaml", "spacing_mm: 1.0", "spacing_mm: 5e-324"),
         simulate, "grid.spacing_mm must be between"),
    Case("protocol", "thermometry voxel 10 mm", _protocol_with("thermo.yaml", "name: corpus",
         "name: x\nthermometry: {voxel_mm: [10, 10, 10], frame_s: 3}"), simulate, "thermometry.voxel_mm[0]"),
    Case("protocol", "power 5000 W", _text("power.yaml", PROTOCOL.replace(
        "{model: gaussian, fwhm_mm: [2, 2, 4]}", "{}").replace("absorbed_power_w: 1.0", "power_w: 5000")), simulate,
        "power_w must be <= 1500"),
    Case("protocol", "file name too long", lambda folder: folder / ("p" * 300 + ".yaml"), simulate,
         "File name too long"),
    Case("protocol", "FIFO instead of a file", lambda folder: _fifo(folder / "fifo.yaml"), simulate,
         "not a regular file"),
]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


CASES = NIFTI_CASES + REGISTRATION_CASES + PROTOCOL_CASES + INPUT_CASES


def run_case(case: Case, folder: Path, fusplan_path: str | None = None) -> tuple[bool, str]:
    """Build ``case`` in ``folder`` and run it through ``python -m fusplan``; (handled, detail).

    ``fusplan_path`` (a ``src`` folder) runs another copy of fusplan, e.g. an older
    version for a before/after table; the corpus is always built with this one.
    """
    path = case.build(folder)
    from fusplan.textfile import display_path

    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    if fusplan_path:
        env["PYTHONPATH"] = fusplan_path
    try:
        result = subprocess.run([sys.executable, "-m", "fusplan", *case.command(path)], capture_output=True,
                                timeout=120, env=env)
    except subprocess.TimeoutExpired:
        return False, "no answer within 120 s"
    err = result.stderr.decode("utf-8", "replace")
    if case.expect_ok:
        ok = result.returncode == 0
        if ok and "--json" in case.command(path):
            json.loads(result.stdout)  # must be one valid JSON document
        return ok, f"exit {result.returncode}"
    lines = err.strip().splitlines()
    ok = (result.returncode == 2 and len(lines) == 1 and case.reason in lines[0] and "Traceback" not in err
          and (not case.names_file or display_path(path) in lines[0]))
    return ok, lines[0] if len(lines) == 1 else f"exit {result.returncode}, {len(lines)} lines: {err[:200]!r}"


def main(argv: list[str]) -> int:
    """``make_corpus.py FOLDER [FUSPLAN_SRC]``: build, run and tabulate the corpus."""
    folder = Path(argv[0] if argv else "corpus")
    fusplan_path = argv[1] if len(argv) > 1 else None
    folder.mkdir(parents=True, exist_ok=True)
    tried, handled = Counter(), Counter()
    for case in CASES:
        ok, detail = run_case(case, folder, fusplan_path)
        tried[case.category] += 1
        handled[case.category] += ok
        print(f"{'ok  ' if ok else 'FAIL'} {case.category:12s} {case.name}: {detail}")
    print("\n| category | tried | handled |\n|---|---|---|")
    for category in tried:
        print(f"| {category} | {tried[category]} | {handled[category]} |")
    return 0 if tried == handled else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
