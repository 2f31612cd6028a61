"""Benchmark: 1024-element heat source on the default planning grid (81^3, 0.5 mm).

Compares ``fusplan.acoustics.heat_source`` (blockwise separable expansion + exact
float32 Rayleigh sum wherever the intensity exceeds 7e-4 of the peak) with a
straightforward vectorised numpy Rayleigh sum (complex128, ``np.exp(-1j k r)``,
scipy ``j1`` directivity), measured in the same run. The baseline is timed on a
subset of the grid (``--baseline-planes`` planes of 81 x 81 voxels) and scaled
linearly to the full grid (its cost is exactly proportional to the number of voxels).
Accuracy: the fast field is compared with the exact sum on every voxel (``--no-accuracy``
to skip, it takes ~10-20 s), and the exact float32 kernel with the complex128 baseline
on the subset.

Usage: ``PYTHONPATH=src python benchmarks/bench_acoustics.py [--threads 2]``
"""
from __future__ import annotations

import argparse
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=2, help="BLAS and worker threads (default 2)")
parser.add_argument("--baseline-planes", type=int, default=4)
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--no-accuracy", action="store_true")
args = parser.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import j1  # noqa: E402

from fusplan import acoustics  # noqa: E402
from fusplan.acoustics.field import _sources  # noqa: E402
from fusplan.acoustics.rayleigh import exact_sum  # noqa: E402
from fusplan.grid import Grid  # noqa: E402

BRAIN = SimpleNamespace(density_kg_m3=1046.0, sound_speed_m_s=1546.0, attenuation_np_m=4.0)


def baseline_pressure(points_mm, src, k, alpha, chunk=512):
    """Straightforward vectorised numpy Rayleigh sum (float64/complex128)."""
    pts = np.asarray(points_mm, float) * 1e-3
    out = np.empty(len(pts), complex)
    ka = k * src.piston_radius_m
    for i in range(0, len(pts), chunk):
        v = pts[i:i + chunk, None, :] - src.centres_m[None]
        r = np.linalg.norm(v, axis=-1)
        cos = np.einsum("pej,ej->pe", v, src.normals) / r
        x = ka * np.sqrt(np.clip(1 - cos**2, 0, None))
        d = np.where(x > 1e-8, 2 * j1(x) / np.where(x > 1e-8, x, 1), 1.0)
        mean = 0.5 * (r + np.sqrt(r**2 + src.piston_radius_m**2))  # exact on-axis piston response
        d *= np.sinc(k * src.piston_radius_m**2 / (4 * mean) / np.pi)
        out[i:i + chunk] = (src.weights * d * np.exp(-alpha * r - 1j * k * mean) / mean).sum(1)
    return out


def main() -> int:
    t = acoustics.Transducer()
    focus = np.array([-12.0, -18.0, 6.0])
    grid = Grid.centred(focus, extent_mm=40, spacing_mm=0.5)
    print(f"grid {grid.shape} ({np.prod(grid.shape)} voxels), {t.elements} elements, threads {args.threads}")

    times, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        q = acoustics.heat_source(t, grid, focus, BRAIN, threads=args.threads)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    fast_s = min(times)

    src, k, alpha = _sources(t, focus, None, grid.axes[:, 2], BRAIN)
    world = grid.world_coordinates()
    planes = world[:, :, :: max(1, grid.shape[2] // args.baseline_planes)][:, :, : args.baseline_planes].reshape(-1, 3)
    start, start_cpu = time.perf_counter(), time.process_time()
    p_base = baseline_pressure(planes, src, k, alpha)
    base_subset_s = time.perf_counter() - start
    base_cpu_s = (time.process_time() - start_cpu) * np.prod(grid.shape) / len(planes)
    base_s = base_subset_s * np.prod(grid.shape) / len(planes)
    p_exact32 = exact_sum(planes * 1e-3, src, k, alpha, grid.centre_mm * 1e-3, threads=args.threads)
    kernel_err = np.abs(p_exact32 - p_base).max() / np.abs(p_base).max()

    print(f"fast heat_source: {fast_s:.2f} s (min of {args.repeat}: {', '.join(f'{x:.2f}' for x in times)})")
    print(
        f"baseline numpy Rayleigh sum: {base_subset_s:.2f} s on {len(planes)} voxels "
        f"-> {base_s:.1f} s scaled to the full grid"
    )
    print(f"speed-up ratio baseline / fast: {base_s / fast_s:.1f}x (wall), {base_cpu_s / min(cpu):.1f}x (CPU time)")
    load = os.getloadavg()[0]
    print(f"CPU time of the fast heat_source: {min(cpu):.2f} s; load average {load:.1f} on {os.cpu_count()} cores")
    print(f"float32 exact kernel vs complex128 baseline: max |dp| = {kernel_err:.2e} of peak pressure (subset)")

    if not args.no_accuracy:
        start = time.perf_counter()
        p_exact = acoustics.pressure_field(t, grid, focus, BRAIN, method="exact", threads=args.threads)
        exact_s = time.perf_counter() - start
        q_exact = 2 * alpha * np.abs(p_exact).astype(float) ** 2 / (2 * BRAIN.density_kg_m3 * BRAIN.sound_speed_m_s)
        peak = q_exact.max()
        above = q_exact > 1e-3 * peak
        err = np.abs(q - q_exact) / peak
        print(f"exact float32 sum on every voxel: {exact_s:.1f} s (ratio exact / fast {exact_s / fast_s:.1f}x)")
        print(
            f"voxels with Q > 1e-3 peak: {above.mean():.1%}; max |Q_fast - Q_exact| there "
            f"{err[above].max():.1e} of peak; elsewhere {err[~above].max():.1e} of peak"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
