"""The planning dock widget: a thin Qt shell over :class:`~napari_fusplan._model.PlanSession`.

The tabs (:mod:`._plan_tab`, :mod:`._protocol_editor`, :mod:`._results_tab`,
:mod:`._teaching_tab`) edit inputs and show results; the session keeps them
consistent (a result never outlives its inputs); :mod:`._runner` runs the library
calls (:func:`fusplan.locate_targets`, :func:`fusplan.simulate`,
:func:`fusplan.report.write_report`) in a worker with progress and cancel.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTabWidget, QVBoxLayout, QWidget

from fusplan import FusplanInputError
from fusplan import default_protocol_path

from . import _jobs as jobs
from . import _view as view
from ._layers import (
    add_layer, check_target_name, is_scan_candidate, nuclei_layer, own_layer, points_layers, remove_layers,
)
from ._model import PlanSession
from ._plan_tab import PlanTab
from ._protocol_editor import ProtocolEditor
from ._result_view import ResultView
from ._results_tab import ResultsTab
from ._runner import Cancelled, JobRunner
from ._teaching import teaching_steps
from ._teaching_tab import TeachingTab

TARGET_ROLES = ("reslice", "nuclei", "landmarks", "targets")
SIMULATE_TITLE = "simulating"


class PlanningWidget(QWidget):
    """Dock widget: Plan, Protocol, Results and Teaching tabs over one :class:`PlanSession`."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = PlanSession()
        self.result_view = ResultView(napari_viewer)
        self.last_error: str | None = None
        self.notice: str | None = None  # what the last action did ("plan written to ..."), shown until the next one
        self.timings_s: dict[str, float] = {}
        self._closed = self._docked = False
        self.runner = JobRunner(self._on_progress, self._on_error, self._on_finished)
        # the lesion over time of the result shown, integrated behind it (the result is usable meanwhile)
        self.lesion_runner = JobRunner(lambda *_: None, self._on_lesion_error, self._update)

        self.plan = PlanTab()
        self.editor = ProtocolEditor()
        self.results = ResultsTab()
        self.teaching = TeachingTab()
        self.tabs = QTabWidget()
        for tab, title in ((self.plan, "Plan"), (self.editor, "Protocol"), (self.results, "Results"),
                           (self.teaching, "Teaching")):
            self.tabs.addTab(tab, title)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel()
        self.status.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addLayout(bottom)
        layout.addWidget(self.status)
        self.setMinimumWidth(self.editor.minimumWidth() + 40)

        self.plan.locate_button.clicked.connect(self.locate)
        self.plan.simulate_button.clicked.connect(self.simulate)
        self.plan.export_button.clicked.connect(self._export_dialog)
        self.plan.save_registration_button.clicked.connect(self._save_registration_dialog)
        self.plan.changed.connect(self._form_changed)
        self.plan.assessment_changed.connect(self._assessment_changed)
        self.editor.changed.connect(self._protocol_changed)
        self.teaching.step_chosen.connect(self.set_time)
        self.session.subscribe(self._session_changed)
        self.viewer.layers.events.inserted.connect(self._refresh_scans)
        self.viewer.layers.events.removed.connect(self._refresh_scans)
        self.viewer.dims.events.current_step.connect(self.result_view.on_dims)
        self.viewer.dims.events.ndisplay.connect(self.result_view.apply_look)
        self.editor.load(default_protocol_path("clt"))
        self._refresh_scans()
        self._form_changed()

    # ================================================================== state -> screen
    @property
    def busy(self) -> bool:
        return self.runner.busy

    @property
    def drawing(self) -> bool:
        """The lesion over time of the result shown is still being integrated."""
        return self.lesion_runner.busy

    @property
    def result(self):
        return self.session.result

    @property
    def found(self):
        return self.session.found

    @property
    def document(self) -> dict | None:
        return None if self.session.result is None else self.result_view.document

    @property
    def frame_times_s(self) -> np.ndarray:
        """Times (s) of the time slider's frames."""
        return self.result_view.frame_times_s

    def scan_names(self) -> list[str]:
        return [layer.name for layer in self.viewer.layers if is_scan_candidate(layer)]

    def _refresh_scans(self, *_) -> None:
        names = self.scan_names()
        self.plan.set_scans(names)
        self.session.scans_changed(names)
        self._update()

    def _form_changed(self, *_) -> None:
        self.session.set_form(self.plan.form())
        self._update()

    def _assessment_changed(self) -> None:
        self.session.set_assessment(*self.plan.assessment_inputs())
        self._update()

    def _protocol_changed(self) -> None:
        self.session.set_protocol(self.editor.protocol)
        self._update()

    def simulate_blocker(self) -> str | None:
        """Why Simulate is greyed out (None when it is not)."""
        if self.busy:
            return f"{self.runner.title} is running"
        return self.session.simulate_blocker(has_scan=bool(self.scan_names()))

    def _update(self) -> None:
        """Buttons and the reason line from the session; the status line when idle."""
        idle = not self.busy
        blocker = self.simulate_blocker()
        self.plan.locate_button.setEnabled(idle and bool(self.scan_names()))
        self.plan.simulate_button.setEnabled(blocker is None)
        self.plan.simulate_button.setToolTip(blocker or "")
        self.plan.export_button.setEnabled(idle and self.session.result is not None)
        self.plan.save_registration_button.setEnabled(idle and self.session.found is not None)
        self.cancel_button.setEnabled(not idle)
        self.plan.reason.setText("" if blocker is None or not idle else f"Simulate: {blocker}")
        if idle:
            self.status.setText(self._idle_status())

    def _idle_status(self) -> str:
        if self.last_error == "cancelled":
            return f"{self.runner.title}: cancelled"
        if self.last_error:
            return f"error: {self.last_error}"
        if self.notice:
            return self.notice
        drawing = "; the lesion over time is being drawn..." if self.drawing else ""
        return self.session.next_step(has_scan=bool(self.scan_names())) + drawing

    def _tell(self, notice: str) -> None:
        """Show what an action did (or why it did nothing) until the next action or state change."""
        self.notice = notice
        self._update()

    def _session_changed(self, what: str) -> None:
        self.notice = None
        if what == "targets" and self.session.found is None:
            remove_layers(self.viewer, lambda role: role in TARGET_ROLES)
            self.plan.show_targets(None)
        elif what == "moved":
            self.plan.show_targets(self.session.found)
            if self.session.preview is not None:
                self.result_view.move_preview(self.session.preview.shifts_mm(self.session.found))
        elif what == "result" and self.session.result is None:
            self.lesion_runner.cancel()
            if self.session.preview is not None:
                self.result_view.start_preview()
            else:
                self.result_view.clear()
            self.results.clear()
            self.teaching.set_steps([])
        self._update()

    # ================================================================== workers
    def _start(self, title: str, job, on_done) -> None:
        self.last_error = self.notice = None
        self._progress_bar = None
        self.progress.setValue(0)
        self._shown_s = 0.0
        self.runner.start(title, job, on_done)
        self.status.setText(f"{title}...")
        self._update()

    def cancel(self) -> None:
        """Stop the running job at its next progress report."""
        self.runner.cancel()
        self.status.setText(f"cancelling {self.runner.title}...")

    def _on_progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        value = int(round(100 * min(max(fraction, 0.0), 1.0)))
        if now - self._shown_s < 0.25 and value < 100:  # each repaint is slow on software OpenGL
            return
        self._shown_s = now
        self.progress.setValue(value)
        elapsed = now - self.runner.started_s
        self.status.setText(f"{self.runner.title}: {message} ({value} %, {elapsed:.0f} s)")

    def _on_error(self, text: str) -> None:
        self.last_error = text

    def _on_lesion_error(self, text: str) -> None:
        if text != "cancelled":  # cancelled: its result went, nothing is missing
            self.last_error = f"lesion over time: {text}"

    def _on_finished(self) -> None:
        self.progress.setValue(0 if self.last_error else 100)
        self._update()

    # ================================================================== locate
    def locate(self) -> None:
        """Check the inputs (cheap), then register the atlas and locate the target(s) in a worker."""
        form = self.plan.form()
        layer = next((layer for layer in self.viewer.layers if is_scan_candidate(layer) and layer.name == form.scan),
                     None)
        if layer is None:
            self.last_error = "no scan layer: open a scan first"
            self._update()
            return
        try:
            check_target_name(form.atlas, form.target, form.sides) if form.acpc_mm is None else None
        except FusplanInputError as error:
            self.last_error = str(error)
            self._update()
            return
        options = form.locate_options()
        reuse = self.session.reusable_registration(form)
        if reuse is not None:
            options["registration"] = reuse  # same scan and atlas: only the targets move

        self._start("locating target", jobs.locate(layer, options, form.scan, form.ct),
                    lambda value: self._located(form, *value))

    def _located(self, form, scan, found, reslice, skull_ct=None) -> None:
        if not self.session.set_targets(scan, found, form, skull_ct):
            self.last_error = "the form changed while locating: Locate again"
            return
        remove_layers(self.viewer, lambda role: role in TARGET_ROLES)
        if reslice is not None:
            add_layer(self.viewer, reslice)
        add_layer(self.viewer, nuclei_layer(found))
        landmarks, targets = points_layers(found)
        add_layer(self.viewer, landmarks)
        layer = add_layer(self.viewer, targets)
        layer.events.data.connect(self._on_targets_moved)
        layer.mode = "select"
        layer.mouse_drag_callbacks.append(self._drag_preview)  # after select's, which moves the point
        self.plan.show_targets(found)
        view.axial(self.viewer, np.asarray(found.targets[0].ras_mm, dtype=float), field_of_view_mm=70.0)

    def _on_targets_moved(self, event=None) -> None:
        """A target point was moved (a drag ended, or the data was set): follow it and re-plan there."""
        if getattr(event, "action", "changed") not in ("changed", "added", "removed"):
            return
        if self._follow_targets(self.own_layer("targets")) and self.session.preview is not None and (
                not self.busy or self.runner.title == SIMULATE_TITLE):
            self.simulate(replace_running=True)  # the full re-plan, in the background

    def _drag_preview(self, layer, event):
        """napari drag callback of the targets layer: the preview follows every mouse move.

        napari sends no data event while a point is dragged (only when it is released).
        """
        yield
        while event.type == "mouse_move":
            self._follow_targets(layer)
            yield

    def _follow_targets(self, layer) -> bool:
        """The session's targets follow the points of ``layer`` (False if they cannot)."""
        found = self.session.found
        if found is None or layer is None:
            return False
        data = np.array(layer.data, dtype=float)  # a copy: napari moves a dragged point's data in place
        if len(data) != len(found.targets):
            self.last_error = "the targets layer must keep one point per target: undo the change"
            self._update()
            return False
        for index, point in enumerate(data):
            self.session.move_target(index, point)
        return True

    def save_registration(self, path) -> Path:
        """Write the current registration (``.npz``, :meth:`fusplan.registration.Registration.save`)."""
        path = self.session.found.registration.save(path)
        self._tell(f"registration saved to {path}: give it under 'reuse' to skip registering again")
        return path

    def _save_registration_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save registration", "registration.npz", "Registrations (*.npz)")
        if path:
            self.save_registration(path)

    # ================================================================== simulate
    def simulate(self, replace_running: bool = False) -> None:
        """Run the protocol at the located target(s); in the phantom only when no scan is open.

        ``replace_running``: cancel a simulation still running (a re-plan after another drag).
        """
        replace = replace_running and self.busy and self.runner.title == SIMULATE_TITLE
        blocker = self.session.simulate_blocker(has_scan=bool(self.scan_names())) if replace else \
            self.simulate_blocker()
        if blocker is not None:
            self._tell(f"Simulate: {blocker}")
            return
        session = self.session
        protocol, scan, found, provenance = session.protocol, session.scan, session.found, session.provenance_now()
        try:
            measurements = session.measurements()  # cheap check before the simulation
        except FusplanInputError as error:
            self._tell(f"Simulate: {error}")
            return
        self._start(SIMULATE_TITLE, jobs.simulate(protocol, scan, found, self.timings_s, measurements,
                                                session.uncertainty_samples, session.skull_ct),
                    lambda display: self._simulated(provenance, display))

    def _simulated(self, provenance, display: jobs.SimulationDisplay) -> None:
        if not self.session.set_result(display.result, provenance):
            self.last_error = "the inputs changed while simulating: Simulate again"
            return
        # the lesion over time (the slow part of the display) is integrated behind the result
        self.lesion_runner.start("drawing the lesion over time", jobs.lesion_over_time(display.movies, self.timings_s),
                                 lambda layers: self._lesion_drawn(display.result, layers))
        belongs_to = provenance.describe()
        self.result_view.draw(display, belongs_to)
        self.results.show(display.document, provenance)
        self.teaching.set_steps(teaching_steps(display.document, self.result_view.sides), f"({belongs_to})")
        steps = self.teaching.steps
        self.set_time(steps[-1]["time_s"] if steps else self.frame_times_s[-1])

    def _lesion_drawn(self, result, layers: dict) -> None:
        """The lesion over time of ``result`` is ready: drawn if ``result`` is still the one shown."""
        if self.session.result is result:
            self.result_view.draw_lesions(layers)

    # ================================================================== export
    def export_plan(self, directory) -> None:
        """Write the JSON report, NIfTI maps and figures of the current result (:func:`fusplan.report.write_report`)."""
        result, scan, directory = self.session.result, self.session.scan, Path(directory)
        if result is None:
            self._tell("Export: no current result (the inputs changed): Simulate first")
            return
        self._start("exporting plan", jobs.export(result, directory, scan),
                    lambda _: setattr(self, "notice", f"plan written to {directory}"))

    def _export_dialog(self) -> None:
        directory = QFileDialog.getExistingDirectory(self, "Export plan to folder")
        if directory:
            self.export_plan(directory)

    # ================================================================== time
    def current_frame(self) -> int:
        """Index of the frame the time slider shows."""
        return self.result_view.current_frame()

    def set_time(self, time_s: float) -> None:
        """Move the time slider to the frame nearest ``time_s``."""
        self.result_view.set_time(time_s)

    def show_step(self, index: int) -> None:
        """Teaching mode: go to step ``index`` and show the Teaching tab."""
        self.teaching.show_step(index)
        self.tabs.setCurrentWidget(self.teaching)

    # ================================================================== 2D / 3D
    def show_3d(self) -> None:
        """3D view around the focus (or the first target)."""
        found, focus_mm = self.session.found, self.result_view.focus_mm
        centre = focus_mm if focus_mm is not None else (
            None if found is None else np.asarray(found.targets[0].ras_mm, dtype=float))
        view.three_d(self.viewer, centre)

    def show_2d(self) -> None:
        """Back to axial slices."""
        self.viewer.dims.ndisplay = 2

    def own_layer(self, role: str):
        """The layer this plugin added for ``role`` (``"targets"``, ``"temperature left"``...), or None."""
        return own_layer(self.viewer, role)

    # ================================================================== closing
    def shutdown(self) -> None:
        """Stop the running job and stop listening to the viewer (the dock is closing)."""
        if self._closed:
            return
        self._closed = True
        self.runner.shutdown()
        self.lesion_runner.shutdown()
        for emitter, callback in ((self.viewer.layers.events.inserted, self._refresh_scans),
                                  (self.viewer.layers.events.removed, self._refresh_scans),
                                  (self.viewer.dims.events.current_step, self.result_view.on_dims),
                                  (self.viewer.dims.events.ndisplay, self.result_view.apply_look)):
            emitter.disconnect(callback)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        super().closeEvent(event)

    def event(self, event) -> bool:
        """napari removes a closed dock's widget by un-parenting it: stop then."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:
                self.shutdown()
        return super().event(event)


__all__ = ["Cancelled", "PlanningWidget"]
