"""napari plugin against the command line, in the same run (issue 20, items 1, 2 and 13).

On the bundled sample head (Colin27, ``ch2``) with the bundled CLT protocol, left side:

1. **Locate** (a real ``standard`` registration): the plugin's *Locate target*, from the
   click to the layers drawn, against ``fusplan target ch2.nii.gz`` (a new process,
   as a user runs it).
2. **Another target** on the same scan (``CM``, then both sides): the plugin reuses the
   registration; its time against its own first Locate.
3. **Simulate** (identity registration, the sample being in MNI space): the plugin's
   *Simulate*, from the click until the result is shown (layers, tables, plot; *Export*
   on), and until the lesion over time, integrated behind it, is drawn too, against
   ``fusplan plan ch2.nii.gz --registration identity.npz``. The first round's is the
   session's first simulation.
4. **Drag preview**: a target point dragged in ten mouse moves of 0.5 mm; each move's
   update (napari's drag callbacks: the point and the preview layers moved) and its
   redraw (events processed, the canvas drawn on software OpenGL) are timed.
5. **Re-plan after the drag**: from the release until the new plan is shown, with the
   library's and the display's parts (``timings_s`` of the widget).

CLI and plugin runs alternate (``--repeats`` rounds), so a busy machine slows both;
the ratios are the medians of the rounds. The viewer is hidden while locating (napari
0.9 on llvmpipe crashes redrawing the scan after the labelled target points are replaced by a
second Locate, with or without this plugin's changes) and
shown for the simulations and the drag. Run under a display (``xvfb-run -a``)::

    xvfb-run -a python benchmarks/bench_plugin.py [--repeats 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fusplan.atlas import sample_scan_path

REPO = Path(__file__).resolve().parents[1]


def cli_s(*arguments: str) -> float:
    """Wall time of one ``fusplan`` command in a new process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fusplan", *arguments, "--no-progress"], check=True,
                   capture_output=True)
    return time.perf_counter() - start


class Planner:
    """The plugin docked in a shown viewer, as a user opens it."""

    def __init__(self, show: bool = True):
        import napari

        self.viewer = napari.Viewer(show=show)
        self.viewer.window.resize(1600, 1000)
        _, self.widget = self.viewer.window.add_plugin_dock_widget("fusplan", "Thalamotomy planner")
        self.viewer.open_sample("fusplan", "ch2")

    def events(self) -> None:
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()

    def run(self, action) -> float:
        """Wall time of a widget action until its result is shown (the widget idle again)."""
        return self.run_and_draw(action)[0]

    def run_and_draw(self, action) -> tuple[float, float]:
        """Wall times of a widget action until its result is shown, and until everything is drawn
        (the lesion over time, integrated behind a shown result)."""
        start = time.perf_counter()
        action()
        shown = self.wait(lambda: self.widget.busy) - start
        return shown, self.wait(lambda: self.widget.drawing) - start

    def wait(self, working) -> float:
        """Process events while ``working()``; the time it stopped."""
        while working():
            self.events()
            time.sleep(0.005)
        self.events()
        if self.widget.last_error:
            raise SystemExit(f"plugin error: {self.widget.last_error}")
        return time.perf_counter()

    def close(self) -> None:
        self.viewer.close()


def drag(planner: Planner, moves: int = 10, step_mm: float = 0.5) -> tuple[list, list, float]:
    """Drag the first target ``moves`` times by ``step_mm`` (anterior).

    Returns each move's update time (napari's drag callbacks: the point and the preview
    layers moved), each move's redraw time (events processed: the canvas drawn, llvmpipe
    under Xvfb here) and the wall time from the release to the re-plan shown.
    """
    sys.path.insert(0, str(REPO / "tests"))
    from plugin_support import drag_point

    layer = planner.viewer.layers["targets"]
    start = np.array(layer.data[0], dtype=float)
    path = [start + [0.0, step_mm * (k + 1), 0.0] for k in range(moves)]
    updates, redraws, clock = [], [], [time.perf_counter()]

    def on_move(_):
        moved = time.perf_counter()
        updates.append(moved - clock[0])
        planner.events()  # the queued redraw of the moved layers happens here
        clock[0] = time.perf_counter()
        redraws.append(clock[0] - moved)

    drag_point(planner.viewer, layer, start, path, on_move)
    released = time.perf_counter()
    return updates, redraws, planner.wait(lambda: planner.widget.busy) - released


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="rounds of CLI and plugin runs (default 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from plugin_support import identity_registration

    scan = str(sample_scan_path("ch2"))
    rows: dict[str, list] = {key: [] for key in ("cli_target_s", "plugin_locate_s", "plugin_relocate_s",
                                                 "cli_plan_s", "plugin_simulate_s", "plugin_simulate_drawn_s")}
    with tempfile.TemporaryDirectory() as folder:
        registration = str(identity_registration(Path(folder)))
        cli_s("plan", scan, "--registration", registration)  # warm-up: imports, caches on disk
        # one viewer for everything, hidden while locating: on llvmpipe (Xvfb) napari 0.9 crashes
        # redrawing after the target layers are replaced (a second Locate), whatever the plugin
        planner = Planner(show=False)
        widget = planner.widget
        for _ in range(args.repeats):
            rows["cli_target_s"].append(cli_s("target", scan))
            widget.plan.registration_file.setText("")  # no file: a new registration (none kept)
            widget.plan.target_combo.setCurrentText("CLp")
            widget.plan.side_combo.setCurrentText("left")
            rows["plugin_locate_s"].append(planner.run(widget.locate))
            widget.plan.target_combo.setCurrentText("CM")
            widget.plan.side_combo.setCurrentText("both")
            rows["plugin_relocate_s"].append(planner.run(widget.locate))
            widget.plan.registration_file.setText(registration)
        widget.plan.target_combo.setCurrentText("CLp")
        widget.plan.side_combo.setCurrentText("left")
        planner.run(widget.locate)
        planner.viewer.window.show()  # simulations and the drag are drawn, as a user sees them
        for _ in range(args.repeats):
            rows["cli_plan_s"].append(cli_s("plan", scan, "--registration", registration))
            shown, drawn = planner.run_and_draw(widget.simulate)
            rows["plugin_simulate_s"].append(shown)
            rows["plugin_simulate_drawn_s"].append(drawn)
        timings = dict(widget.timings_s)
        updates_s, redraws_s, replan_s = drag(planner)
        replan_timings = dict(widget.timings_s)
        planner.close()
    median = {key: statistics.median(values) for key, values in rows.items()}
    report = {
        "rounds": args.repeats,
        "seconds": {key: [round(v, 2) for v in values] for key, values in rows.items()},
        "locate_ratio_plugin_to_cli": round(statistics.median(
            p / c for p, c in zip(rows["plugin_locate_s"], rows["cli_target_s"])), 2),
        "relocate_ratio_to_first_locate": round(median["plugin_relocate_s"] / median["plugin_locate_s"], 3),
        "simulate_ratio_plugin_to_cli": round(statistics.median(
            p / c for p, c in zip(rows["plugin_simulate_s"], rows["cli_plan_s"])), 2),
        "simulate_drawn_ratio_plugin_to_cli": round(statistics.median(
            p / c for p, c in zip(rows["plugin_simulate_drawn_s"], rows["cli_plan_s"])), 2),
        "simulate_parts_s": {key: round(value, 2) for key, value in timings.items()},
        "preview_update_s": {"median": round(statistics.median(updates_s), 3), "max": round(max(updates_s), 3),
                             "moves": len(updates_s)},
        "preview_redraw_s": {"median": round(statistics.median(redraws_s), 3), "max": round(max(redraws_s), 3)},
        "replan_after_drag_s": round(replan_s, 2),
        "replan_parts_s": {key: round(value, 2) for key, value in replan_timings.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
