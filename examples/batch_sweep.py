"""Parameter sweep for researchers: how do peak temperature and skull transmission
change the predicted lesion?

Runs ``fusplan.batch.run_batch`` (the Python side of ``fusplan batch``) over the
cartesian product of treatment peak temperatures and skull transmissions, in the
homogeneous tissue phantom, in parallel, then reads ``summary.csv`` and prints the
240 CEM43 lesion diameter for each point. Re-running the script skips the runs
already done (resume).

    python examples/batch_sweep.py --out sweep-out             # bundled CLT protocol
    python examples/batch_sweep.py --out sweep-out --scans     # on the bundled sample heads
    python examples/batch_sweep.py --out sweep-out --quick     # seconds: small grid, gaussian source

The same sweep from the command line::

    fusplan batch --phantom --sweep peak_c=54,56,58 --sweep skull_transmission=0.15,0.25 --out sweep-out
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
from pathlib import Path

from fusplan.atlas import sample_scan_path
from fusplan.batch import run_batch

QUICK_PROTOCOL = """\
name: quick gaussian (example)
tissue: brain
transducer: {model: gaussian, fwhm_mm: [1.5, 1.5, 3.0]}
grid: {spacing_mm: 1.0, extent_mm: 20}
sonications:
  - {stage: verification, peak_c: 48, duration_s: 4, cooling_s: 6}
  - {stage: treatment, peak_c: 55, duration_s: 5, cooling_s: 6}
thresholds_cem43: [17, 240]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sweep-out", help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="small gaussian phantom and two sweep points (also FUSPLAN_EXAMPLE_QUICK=1)")
    parser.add_argument("--scans", action="store_true",
                        help="plan on the bundled sample heads (a manifest, both sides) instead of the phantom")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default min(2, CPUs))")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("FUSPLAN_EXAMPLE_QUICK") == "1"
    out = Path(args.out)

    if quick:
        protocol = Path(tempfile.mkdtemp()) / "quick.yaml"
        protocol.write_text(QUICK_PROTOCOL)
        sweeps = {"peak_c": [54, 57], "treatment.duration_s": [4, 6]}
    else:
        protocol = "clt"  # the bundled staged CLT protocol
        sweeps = {"peak_c": [54, 56, 58], "skull_transmission": [0.15, 0.25]}

    if args.scans:
        # A manifest: one row per scan; paths are relative to the manifest's folder.
        out.mkdir(parents=True, exist_ok=True)
        manifest = out / "manifest.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["scan", "side", "protocol"])
            for name in ("ch2", "ch2_clinical"):
                writer.writerow([os.path.relpath(sample_scan_path(name), out), "both", str(Path(protocol).resolve())
                                 if quick else protocol])
        result = run_batch([manifest], out, sweeps=sweeps, workers=args.workers)
    else:
        result = run_batch(out_dir=out, phantom=True, protocol=protocol, sweeps=sweeps, workers=args.workers)

    print(f"{result.n_runs} runs ({result.n_resumed} resumed, {result.n_failed} failed) "
          f"in {result.elapsed_s:.1f} s -> {result.summary_path}")
    with open(result.summary_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = sorted(k for k in rows[0] if k.startswith("param:"))
    header = ["scan", "side", *[k[len("param:"):] for k in keys], "peak C", "240 CEM43 diameter mm", "volume mm3"]
    print(" | ".join(header))
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['run_id']}: {row['error']}")
            continue
        print(" | ".join([Path(row["scan"]).name or "phantom", row["side"] or "-", *[row[k] for k in keys],
                          row["peak_temperature_c"], row["lesion240_diameter_mm"], row["lesion240_volume_mm3"]]))
    raise SystemExit(1 if result.n_failed else 0)


if __name__ == "__main__":
    main()
