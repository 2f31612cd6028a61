"""Benchmark: the demo's figure step against the simulation it draws, in the same run.

Plans the demo (bundled staged CLT protocol, left CLp on the bundled sample head, the
population skull), then times each part of the figure step of ``fusplan demo``: the
plan's own files (:func:`fusplan.report.write_report`: report, NIfTI maps,
``figure_left.png``, ``skull_left.png``), ``focus.png``, the stage snapshots (the
field and the dose so far at each stage's peak), ``stages.png`` and ``procedure.gif``.
Prints seconds and each as a ratio to the simulation (``fusplan.planner.simulate``)
timed in the same run, so the numbers compare across machines and loads.

Usage: ``PYTHONPATH=src python benchmarks/bench_figures.py [--registration FILE] [--repeat 2]``
(``--registration``: a saved registration of the sample head, e.g. the demo's
``registration.npz``, to skip registering).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def best_time(function, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    from fusplan import demo
    from fusplan.atlas import sample_scan_path
    from fusplan.io import load_scan
    from fusplan.planner import simulate
    from fusplan.protocol import default_protocol_path, load_protocol
    from fusplan.registration import load_registration
    from fusplan.report import write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registration", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    scan = load_scan(sample_scan_path("ch2"))
    protocol = load_protocol(default_protocol_path("clt"))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        registration = None if args.registration is None else load_registration(args.registration)
        found = demo.locate_demo_target(scan, "left", out / "registration.npz", "standard", lambda f, m: None,
                                        registration=registration)
        sim_s, result = best_time(lambda: simulate(protocol, scan=scan, targets=found), args.repeat)
        grid = result.sides["left"].grid
        background = demo._background(scan, grid)
        steps = {
            "plan files (write_report)": lambda: write_report(result, out, scan=scan),
            "focus.png": lambda: demo._focus(result, out, "left"),
            "stage snapshots": lambda: demo.stage_snapshots(result, "left"),
        }
        timed = {name: best_time(step, args.repeat) for name, step in steps.items()}
        snapshots = timed["stage snapshots"][1]
        more = {
            "stages.png": lambda: demo._stages(snapshots, grid, protocol, background, out, "left"),
            "procedure.gif": lambda: demo._animation(result, grid, background, "left", demo.ANIMATION_FRAMES, out),
        }
        timed.update({name: best_time(step, args.repeat) for name, step in more.items()})
    print(f"simulation (baseline)        {sim_s:6.2f} s")
    total = 0.0
    for name, (seconds, _) in timed.items():
        total += seconds
        print(f"{name:28s} {seconds:6.2f} s  {seconds / sim_s:5.2f}x the simulation")
    print(f"{'figure step in all':28s} {total:6.2f} s  {total / sim_s:5.2f}x the simulation")


if __name__ == "__main__":
    main()
