"""The whole plan with and without the skull on the sample head (issue 11, items 6 and 10).

Runs the bundled single-point CLT protocol (`clt_single`: 0.5 mm grid, 40 mm box, 7 sonications) on the
sample head (Colin27, ch2; the atlas registration is the identity, ch2 being in MNI space,
so both runs share the same targets and the timing compares only what the skull adds):

1. ``skull: none`` (the old ``skull_transmission: 0.2`` energy factor);
2. the default on a scan: the population skull (``phase_correction: ct``);
3. the population skull with ``phase_correction: none`` (uncorrected focus).

For each (after one warm-up run without skull): wall and CPU time of ``simulate`` +
``write_report`` (figures included, one thread), the CPU-time ratio to the run without
skull, and the energies per sonication (power titrated through the skull x duration), with the
acoustic energy absorbed in the bone. Compare with the clinical range
of 3.3-36 kJ per ablative sonication (McDannold 2019) and the 5.7 kJ mean to reach 50 C
reported for SDR ~0.5 thalamotomies. Since issue 17 the population skull has a diploe
restored at the median patient SDR (Tsai 2021), and the report gives the energy band over
the patients' SDR (p10 / p50 / p90, ``skull.sdr_band``) and the focal FWHM with and without
the residual phase error (``skull.focal_fwhm``); both are printed here.

Speed (issue 17, item 7): the plan with the skull may take at most 1.5x what it took before
issue 17. Absolute times move with the machine's load, so the comparison is of the CPU-time
ratio to the no-skull run of the same process: :data:`BASELINE_RATIO_TO_NO_SKULL` was
measured with this benchmark run on the sources of main at b356197 (before issue 17).

Usage::

    python benchmarks/bench_skull_plan.py [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from fusplan.atlas import sample_scan_path
from fusplan.io import load_scan
from fusplan.planner import simulate
from fusplan.protocol import default_protocol_path, load_protocol, override_protocol
from fusplan.report import write_report
from fusplan.targeting import locate_targets

from bench_skull import identity_registration

#: ``ratio_to_no_skull`` of the population skull (phase correction ct) before issue 17
#: (this benchmark run on the sources of main at b356197: 5.17 s / 2.72 s CPU; wall 4.37 s / 2.11 s when idle).
BASELINE_RATIO_TO_NO_SKULL = 1.90


def run(protocol, scan, targets) -> tuple[dict, float, float]:
    """Report, wall time and CPU time (this process, all threads) of simulate + write_report."""
    start, cpu = time.perf_counter(), time.process_time()
    result = simulate(protocol, scan=scan, targets=targets, threads=1)
    with tempfile.TemporaryDirectory() as folder:
        write_report(result, folder)
    return result.to_dict(), time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    scan = load_scan(sample_scan_path("ch2"))
    registration = identity_registration()
    targets = locate_targets(scan, atlas="morel", sides=("left",), registration=registration)
    clt = load_protocol(default_protocol_path("clt_single"))
    cases = {
        "no skull (skull_transmission 0.2)": override_protocol(clt, {"transducer.skull": "none"}),
        "population skull, phase correction ct": clt,
        "population skull, phase correction none": override_protocol(clt, {"transducer.phase_correction": "none"}),
    }
    run(cases["no skull (skull_transmission 0.2)"], scan, targets)  # warm-up: imports, FFT plans, caches
    rows = []
    reference = None
    for name, protocol in cases.items():
        doc, wall, cpu = run(protocol, scan, targets)
        reference = reference or cpu
        rows.append({
            "case": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "ratio_to_no_skull": round(cpu / reference, 2),
            "skull": {k: doc["skull"][k] for k in ("sdr", "active_elements", "mean_incidence_deg", "mean_thickness_mm",
                                                   "energy_transmission", "energy_absorbed_in_skull")}
            if "skull" in doc else None,
            "sdr_band": doc.get("skull", {}).get("sdr_band"),
            "focal_fwhm": doc.get("skull", {}).get("focal_fwhm"),
            "sonications": [{"stage": s["stage"], "peak_c": None, "power_w": round(s["power_w"], 1),
                             "energy_kj": round(s["energy_j"] / 1e3, 2),
                             "skull_absorbed_kj": None if "skull_absorbed_energy_j" not in s
                             else round(s["skull_absorbed_energy_j"] / 1e3, 2)}
                            for s in doc["sonications"]],
        })
        for entry, sonication in zip(rows[-1]["sonications"], protocol.sonications):
            entry["peak_c"] = sonication.peak_c
    ratio = rows[1]["ratio_to_no_skull"] / BASELINE_RATIO_TO_NO_SKULL
    speed = {"ratio_to_no_skull_before_issue_17": BASELINE_RATIO_TO_NO_SKULL,
             "ratio_to_no_skull_now": rows[1]["ratio_to_no_skull"],
             "plan_with_skull_now_over_before": round(ratio, 2), "within_1_5": ratio <= 1.5}
    if args.json:
        print(json.dumps({"cases": rows, "speed": speed}, indent=2))
        return
    for row in rows:
        print(f"{row['case']}: {row['wall_s']} s wall, {row['cpu_s']} s CPU (x{row['ratio_to_no_skull']} of no skull); "
              f"skull {row['skull']}")
        for s in row["sonications"]:
            absorbed = "" if s["skull_absorbed_kj"] is None else f", {s['skull_absorbed_kj']} kJ absorbed in bone"
            print(f"  {s['stage']:<12} {s['peak_c']} C: {s['power_w']} W, {s['energy_kj']} kJ{absorbed}")
        if row["sdr_band"]:
            print(f"  SDR band: {json.dumps(row['sdr_band']['percentiles'])}")
        if row["focal_fwhm"]:
            print(f"  focal FWHM: {json.dumps(row['focal_fwhm'])}")
    print("clinical: 3.3-36 kJ per ablative sonication (McDannold 2019); 5.7 kJ mean to reach 50 C at SDR ~0.5")
    print(f"speed: {speed}")


if __name__ == "__main__":
    main()
