"""Regenerate the plugin screenshots of the README (docs/images/plugin_*.png).

Run it explicitly (tests never write tracked files)::

    xvfb-run -a python scripts/make_readme_images.py            # bundled CLT protocol
    xvfb-run -a python scripts/make_readme_images.py --out /tmp/shots --fast

It opens the bundled Colin27 head, locates CLp on both sides with an identity
registration (the sample is in MNI space, so none is needed), simulates, and saves
the key states: located targets, protocol editor, verification and treatment steps,
results, 3D lesion.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

#: A small, fast protocol for previews and tests (Gaussian source, 16 mm box).
FAST_PROTOCOL = {
    "name": "Gaussian-source three-stage demo",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [2.5, 2.5, 5.0]},
    "grid": {"spacing_mm": 0.5, "extent_mm": 16},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 5, "cooling_s": 10},
        {"stage": "verification", "peak_c": 49, "duration_s": 6, "cooling_s": 15},
        {"stage": "treatment", "peak_c": 58, "duration_s": 12, "cooling_s": 20},
    ],
    "thresholds_cem43": [17, 240],
}
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def identity_registration(folder: Path) -> Path:
    """A saved identity registration of the MNI-space sample to the Morel atlas."""
    import numpy as np

    from fusplan.registration import Registration

    empty = np.zeros((0, 0, 0, 3), dtype=np.float32)
    return Registration(
        atlas="morel", affine_mm=np.eye(4), field_shape=(0, 0, 0), field_affine=np.eye(4), forward_mm=empty,
        backward_mm=empty, method="identity (sample already in MNI space)", time_s=0.0, similarity=1.0,
        affine_similarity=1.0, contrast="T1").save(Path(folder) / "identity.npz")


def capture(viewer, widget, folder, wait, registration, protocol) -> dict[str, Path]:
    """Drive ``widget`` through the key states and screenshot each into ``folder``.

    ``wait(action)`` starts a widget action and returns when its worker is done.
    """
    from qtpy.QtWidgets import QApplication

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shots: dict[str, Path] = {}

    def shot(name: str, canvas_only: bool = False) -> None:
        for _ in range(5):
            QApplication.processEvents()
            time.sleep(0.05)
        shots[name] = folder / f"plugin_{name}.png"
        viewer.screenshot(str(shots[name]), canvas_only=canvas_only)

    viewer.open_sample("fusplan", "ch2")
    widget.plan.registration_file.setText(str(registration))
    widget.plan.side_combo.setCurrentText("both")
    wait(widget.locate)
    shot("locate")
    widget.editor.load(protocol)
    widget.tabs.setCurrentWidget(widget.editor)
    shot("protocol")
    wait(widget.simulate)
    widget.show_step(1)  # verification: the lesion layer shows the dose so far, not the final lesion
    shot("verification")
    widget.show_step(len(widget.teaching.steps) - 1)
    shot("teaching")
    widget.tabs.setCurrentWidget(widget.results)
    shot("results")
    widget.show_3d()
    shot("lesion_3d", canvas_only=True)
    widget.show_2d()
    return shots


def main(argv=None) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder for the PNGs (default docs/images)")
    parser.add_argument("--fast", action="store_true", help="a small Gaussian-source protocol instead of CLT")
    args = parser.parse_args(argv)
    from fusplan.protocol import default_protocol_path

    viewer = napari.Viewer()
    viewer.window.resize(1600, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("fusplan", "Thalamotomy planner")

    def wait(action):
        action()
        while widget.busy or widget.drawing:
            QApplication.processEvents()
            time.sleep(0.05)
        if widget.last_error:
            raise SystemExit(f"error: {widget.last_error}")

    with tempfile.TemporaryDirectory() as tmp:
        shots = capture(viewer, widget, args.out, wait, identity_registration(Path(tmp)),
                        FAST_PROTOCOL if args.fast else default_protocol_path("clt"))
    for path in shots.values():
        print(path)
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
