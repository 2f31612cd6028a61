"""Teaching script: the stages of a focused ultrasound thalamotomy, figure by figure.

For teachers and students. By default it runs the same demo as ``fusplan demo``:
registers the atlas to the bundled Colin27 head, locates the left CLp target,
simulates the bundled staged CLT protocol and writes the plan, three figures, an
animation and ``demo.md`` (what each stage does, with this run's numbers).

    python examples/teaching_demo.py --out demo-out             # the full demo (~1-2 min)
    python examples/teaching_demo.py --out demo-out --phantom   # no scan: tissue phantom
    python examples/teaching_demo.py --out demo-out --quick     # seconds: small gaussian phantom

``--phantom`` shows the same physics without anatomy: it is the place to change the
protocol and see what happens (e.g. ``--peak 58`` titrates every treatment
sonication to 58 C).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from fusplan.demo import run_demo, write_teaching_figures
from fusplan.planner import simulate
from fusplan.protocol import load_protocol, override_protocol
from fusplan.teaching import demo_markdown

QUICK_PROTOCOL = {
    "name": "quick staged gaussian (example)",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [2.0, 2.0, 4.0]},
    "grid": {"spacing_mm": 1.0, "extent_mm": 20},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 6, "cooling_s": 10},
        {"stage": "verification", "peak_c": 49, "duration_s": 8, "cooling_s": 15},
        {"stage": "treatment", "peak_c": 56, "duration_s": 10, "cooling_s": 15, "repeat": 2},
    ],
    "thresholds_cem43": [17, 240],
}


def say(fraction: float, message: str) -> None:
    """Progress as one line per step: ``progress(fraction, message)``, the signature every fusplan step uses."""
    print(f"{100 * fraction:3.0f}% {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-out", help="output folder")
    parser.add_argument("--phantom", action="store_true", help="homogeneous tissue phantom instead of the sample head")
    parser.add_argument("--quick", action="store_true",
                        help="small gaussian phantom, few frames (also FUSPLAN_EXAMPLE_QUICK=1)")
    parser.add_argument("--peak", type=float, default=None, help="titrate every treatment sonication to this peak (C)")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("FUSPLAN_EXAMPLE_QUICK") == "1"
    out = Path(args.out)
    start = time.perf_counter()

    if quick:
        protocol = load_protocol(QUICK_PROTOCOL)
    else:
        protocol = load_protocol("clt")  # the bundled staged CLT protocol
    if args.peak is not None:
        protocol = override_protocol(protocol, {"treatment.peak_c": args.peak})

    if args.phantom or quick:
        # The same figures for a phantom run: no registration, the focus at the grid centre.
        result = simulate(protocol)
        written = write_teaching_figures(result, out, animation_frames=12 if quick else 90, progress=say)
        snapshots = written.pop("snapshots")
        notes = demo_markdown(result, None, snapshots, {"total_s": time.perf_counter() - start})
        (out / "demo.md").write_text(notes, encoding="utf-8")
        written["demo.md"] = out / "demo.md"
    else:
        written = run_demo(out, protocol=protocol, progress=say)

    print(f"done in {time.perf_counter() - start:.0f} s")
    for name, path in sorted(written.items()):
        print(f"  {name}: {path}")
    print(f"Open {out / 'demo.md'} first; it explains every stage and figure.")


if __name__ == "__main__":
    main()
