"""Benchmark: fast bioheat engine vs plain k-space time stepping (k-Wave scheme), side by side.

Runs the bundled staged CLT protocol (7 sonications, 492 s, thermometry-titrated
peaks) in the brain phantom with the hemispherical-array heat source:

- fast: :func:`fusplan.bioheat.simulate_pulses` (titration + focus curve + adaptive
  CEM43 on the hot voxels, superposition of per-sonication responses);
- reference: :func:`fusplan.bioheat.kspace_stepping` at dt = 0.1 s with the powers the
  fast engine titrated (FFT, exact propagation by dt with the source held constant,
  inverse FFT and CEM43 on the whole grid every step), on the same padded grid.

Prints timings (median of ``--repeats`` fast runs, one reference run), their ratio,
and the agreement: per-sonication peak temperature, focus curve, and lesion extents
(17 and 240 CEM43) measured with :func:`fusplan.lesion.measure_lesion`.
Timings on a shared machine are noisy: compare the ratio, measured in the same run.

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_bioheat.py [--repeats 5] [--threads 2] [--json out.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from fusplan.bioheat import Pulse, SpectralBioheat, SteppingResult, kspace_stepping, simulate_pulses
from fusplan.grid import Grid
from fusplan.lesion import measure_lesion
from fusplan.planner import _heat_source
from fusplan.protocol import default_protocol_path, load_protocol
from fusplan.threads import resolve_threads


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dt", type=float, default=0.1, help="reference time step (s)")
    parser.add_argument("--threads", type=int, default=None, help="FFT worker threads (default: fusplan's rule)")
    parser.add_argument("--json", help="write the numbers to this file")
    parser.add_argument("--reference-cache", help="npz file: reuse the reference run if its powers match (its "
                                                   "time is then the cached one), else run and save it")
    args = parser.parse_args()
    threads = resolve_threads(args.threads)

    protocol = load_protocol(default_protocol_path("clt_single"))
    grid = Grid.centred((0, 0, 0), protocol.extent_mm, protocol.spacing_mm)
    t0 = time.perf_counter()
    source = _heat_source(protocol.transducer, grid, np.zeros(3), protocol.tissue, np.zeros(3), grid.axes[:, 2], threads)
    source_s = time.perf_counter() - t0
    pulses, start = [], 0.0
    for s in protocol.sonications:
        pulses.append(Pulse(start, s.duration_s, "focus", s.power_w, s.peak_c, s.cooling_s))
        start += s.duration_s + s.cooling_s
    th = protocol.thermometry

    fast_times, history = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        solver = SpectralBioheat(grid.shape, grid.spacing_mm, protocol.tissue, duration_s=start, threads=threads)
        history = simulate_pulses(solver, {"focus": source}, pulses,
                                  thermometry_voxel_mm=th.voxel_mm, thermometry_frame_s=th.frame_s)
        fast_times.append(time.perf_counter() - t0)
    fast_s = statistics.median(fast_times)

    powers = np.array([p.power_w for p in history.pulses])
    cache = args.reference_cache
    if cache and os.path.exists(cache) and np.allclose(np.load(cache)["powers"], powers, rtol=1e-12):
        data = np.load(cache)
        reference = SteppingResult(data["times"], data["focus"], data["peak"], data["dose"], data["peak"])
        reference_s = float(data["seconds"])
    else:
        t0 = time.perf_counter()
        reference = kspace_stepping(solver, {"focus": source}, history.pulses, dt_s=args.dt)
        reference_s = time.perf_counter() - t0
        if cache:
            np.savez(cache, powers=powers, times=reference.times_s, focus=reference.focus_temperature_c,
                     peak=reference.peak_temperature_c, dose=reference.dose_cem43, seconds=reference_s)

    peaks = []
    for p, res in zip(history.pulses, history.results):
        window = (reference.times_s >= p.start_s) & (reference.times_s <= p.start_s + p.duration_s + p.cooling_s)
        peaks.append((res.peak_temperature_c, float(reference.focus_temperature_c[window].max())))
    focus_ref = np.interp(history.focus_time_s, reference.times_s, reference.focus_temperature_c)
    lesions = {}
    for threshold in protocol.thresholds_cem43:
        a = measure_lesion(history.dose_cem43, grid, threshold)
        b = measure_lesion(reference.dose_cem43, grid, threshold)
        lesions[threshold] = {k: (getattr(a, k), getattr(b, k)) for k in ("lr_mm", "ap_mm", "si_mm", "volume_mm3")}
    out = {
        "cpu_count": os.cpu_count(),
        "threads": solver.threads,
        "load_average": os.getloadavg(),
        "grid": list(grid.shape), "padded": list(solver.padded_shape),
        "heat_source_s": source_s,
        "fast_s_median": fast_s, "fast_s_all": fast_times,
        "fast_breakdown_s": {**history.stats["seconds"], "tables": history.stats["table_seconds"]},
        "reference_s": reference_s, "reference_steps": int(reference.times_s.size - 1),
        "speedup": reference_s / fast_s,
        "powers_w": [r.power_w for r in history.results],
        "thermometry_peaks_c": [r.thermometry_peak_c for r in history.results],
        "peak_c_fast_vs_reference": peaks,
        "max_peak_difference_c": max(abs(a - b) for a, b in peaks),
        "max_focus_curve_difference_c": float(np.abs(history.focus_temperature_c - focus_ref).max()),
        "max_peak_map_difference_c": float(np.abs(history.peak_temperature_c - reference.peak_temperature_c).max()),
        "lesions_fast_vs_reference": lesions,
        "max_extent_difference_mm": max(abs(a - b) for v in lesions.values() for k, (a, b) in v.items() if k != "volume_mm3"),
        "stats": {k: v for k, v in history.stats.items() if k != "seconds"},
    }
    print(f"grid {grid.shape} (padded {solver.padded_shape}), load average {out['load_average']}")
    print(f"heat source: {source_s:.2f} s (computed once, not part of either timing)")
    print(f"fast engine: median {fast_s:.2f} s of {args.repeats} ({', '.join(f'{t:.2f}' for t in fast_times)})")
    print(f"  breakdown: {out['fast_breakdown_s']}")
    print(f"k-space stepping dt={args.dt} s: {reference_s:.1f} s for {out['reference_steps']} steps")
    print(f"speedup: {out['speedup']:.1f}x")
    print("peak temperature per sonication (fast / reference): "
          + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in peaks))
    print(f"max |peak difference| {out['max_peak_difference_c']:.4f} C, focus curve {out['max_focus_curve_difference_c']:.4f} C, "
          f"peak map {out['max_peak_map_difference_c']:.4f} C")
    for threshold, v in lesions.items():
        print(f"lesion {threshold:g} CEM43: " + ", ".join(f"{k} {a:.3f}/{b:.3f}" for k, (a, b) in v.items()))
    print(f"max |extent difference| {out['max_extent_difference_mm']:.4f} mm")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return out


if __name__ == "__main__":
    main()
