"""Benchmark: the cost of the issue-14 checks in ``fusplan.io.load_scan``.

Compares ``load_scan`` (raw header checks, verified and size-bounded gzip decompression,
constant check on the stored dtype, float32 conversion) with bare nibabel
(``np.asarray(nib.load(path).dataobj, dtype=np.float32)``, no checks) on the bundled
sample scan (.nii.gz, 181 x 217 x 181) and on an uncompressed copy, in the same run;
prints the ratios.

Usage: ``PYTHONPATH=src python benchmarks/bench_load_scan.py [--repeat 5]``
"""
from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from fusplan.io import load_scan
from fusplan.atlas import sample_scan_path


def best_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    compressed = Path(sample_scan_path("ch2"))
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "ch2.nii"
        plain.write_bytes(gzip.decompress(compressed.read_bytes()))
        for path in (compressed, plain):
            checked = best_time(lambda path=path: load_scan(path), args.repeat)
            bare = best_time(lambda path=path: np.asarray(nib.load(path).dataobj, dtype=np.float32), args.repeat)
            print(f"{path.name:12s} load_scan {checked:.3f} s, bare nibabel {bare:.3f} s, ratio {checked / bare:.2f}")


if __name__ == "__main__":
    main()
