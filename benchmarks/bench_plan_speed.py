"""`fusplan plan` on the sample head now against the sources before issue 17, in the same run.

Issue 17, item 7: the whole ``fusplan plan`` with the skull may take at most 1.5x what it
took before the issue. This benchmark unpacks the project's sources at the commit before
the issue (``git archive``, default :data:`BASELINE_COMMIT`) and runs, alternately and
``--repeats`` times each, as separate processes on the same registration:

- ``before``: ``fusplan plan ch2`` with that commit's sources (its default ``clt``: one focus);
- ``now``: the same command with this checkout's sources (the default ``clt`` of five sub-units);
- ``now clt_single``: this checkout with ``--protocol clt_single`` (the single-point protocol).

Every run uses the population skull, writes its full output folder (maps, figures, report)
and reuses one atlas registration (written first by this checkout's ``fusplan target``), so
registration time is out of the comparison. The CPU time (user + system of the child
process, all threads) is the measure: it moves less than wall time with the machine's load.
Medians are reported with the ratios to ``before``.

Usage::

    python benchmarks/bench_plan_speed.py [--repeats 3] [--baseline COMMIT] [--json]

Needs the project's git history (a clone, not an unpacked archive).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The last commit of main before issue 17's work (its ``clt`` treated one point).
BASELINE_COMMIT = "b356197"
#: The bound of issue 17, item 7.
LIMIT = 1.5
SCAN = ROOT / "sample_data" / "colin27" / "ch2.nii.gz"


def unpack_sources(commit: str, folder: Path) -> Path:
    """The ``src`` tree and bundled data of ``commit``, unpacked under ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src", "atlases"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return folder / "src"


def timed(command: list[str], source: Path) -> tuple[float, float]:
    """CPU time (user + system, s) and wall time of ``command`` run with ``source`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(source), MPLBACKEND="Agg")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="commit before issue 17 (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_src = unpack_sources(args.baseline, tmp / "before")
        new_src = ROOT / "src"
        subprocess.run([sys.executable, "-m", "fusplan", "target", str(SCAN), "--out", str(tmp / "registration")],
                       check=True, env=dict(os.environ, PYTHONPATH=str(new_src)), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        registration = tmp / "registration" / "registration.npz"

        def plan(name: str, *extra: str) -> list[str]:
            return [sys.executable, "-m", "fusplan", "plan", str(SCAN), "--registration", str(registration),
                    "--out", str(tmp / name), *extra]

        cases = {"before": (plan("before"), old_src), "now": (plan("now"), new_src),
                 "now clt_single": (plan("single", "--protocol", "clt_single"), new_src)}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeats):  # alternate, so a change of load hits every case alike
            for name, (command, source) in cases.items():
                times[name].append(timed(command, source))
    rows = {name: {"cpu_s": round(statistics.median(c for c, _ in runs), 2),
                   "wall_s": round(statistics.median(w for _, w in runs), 2)} for name, runs in times.items()}
    for row in rows.values():
        row["cpu_ratio_to_before"] = round(row["cpu_s"] / rows["before"]["cpu_s"], 2)
    result = {"baseline_commit": args.baseline, "repeats": args.repeats, "cases": rows, "limit": LIMIT,
              "within_limit": rows["now"]["cpu_ratio_to_before"] <= LIMIT}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, row in rows.items():
        print(f"{name:>15}: {row['cpu_s']:6.2f} s CPU, {row['wall_s']:6.2f} s wall, x{row['cpu_ratio_to_before']} of before")
    print(f"fusplan plan now / before issue 17 (CPU): x{rows['now']['cpu_ratio_to_before']} (limit x{LIMIT})")


if __name__ == "__main__":
    main()
