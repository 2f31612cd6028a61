"""The planning dock widget: locate the target, edit the protocol, simulate, read, teach.

A thin shell over the same library calls as the command line
(:func:`fusplan.targeting.locate_targets`, :func:`fusplan.planner.simulate`,
:func:`fusplan.report.write_report`); long calls run in a napari ``thread_worker``
with a progress bar and a cancel button, so the viewer stays responsive.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from fusplan.errors import FusplanInputError
from fusplan.protocol import default_protocol_path

from . import _session as session
from ._protocol_editor import ProtocolEditor

ATLASES = ("morel", "najdenovska")
REGISTRATION_SETTINGS = ("standard", "fast")
SIDES = {"left": ("left",), "right": ("right",), "both": ("left", "right")}
DEFAULT_TARGET = "CLp"


class Cancelled(Exception):
    """Raised inside a worker's progress callback when the user pressed Cancel."""


class _Signals(QObject):
    progressed = Signal(float, str)


class Triple(QWidget):
    """Three spin boxes for an (x, y, z) position in mm."""

    def __init__(self, value=(0.0, 0.0, 0.0), low=-300.0, high=300.0, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.boxes = []
        for v in value:
            box = QDoubleSpinBox()
            box.setRange(low, high)
            box.setDecimals(1)
            box.setSingleStep(0.5)
            box.setValue(v)
            layout.addWidget(box)
            self.boxes.append(box)

    def value(self) -> tuple[float, float, float]:
        return tuple(float(b.value()) for b in self.boxes)

    def setValue(self, value) -> None:  # noqa: N802 (Qt naming)
        for box, v in zip(self.boxes, value):
            box.setValue(float(v))


class PlanningWidget(QWidget):
    """Dock widget: scan, atlas, side and target; protocol; simulation; results; teaching.

    Attributes
    ----------
    found : TargetingResult or None
        The current targets (updated when a target point is dragged).
    scan : fusplan.io.Scan or None
    result : SimulationResult or None
    document : dict or None
        ``result.to_dict()``, the same JSON the CLI prints; the results panel shows it.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.found = None
        self.scan = None
        self.result = None
        self.document = None
        self.steps: list[dict] = []
        self.frame_times_s = np.zeros(0)
        self.time_side = None
        self.busy = False
        self.last_error: str | None = None
        self._worker = None
        self._progress_bar = None
        self._cancel = threading.Event()
        self._signals = _Signals()
        self._signals.progressed.connect(self._on_progress)
        self._layers: dict[str, object] = {}
        self._plot = None
        self._plot_dock = None
        self._step_index = -1

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_plan_tab(), "Plan")
        self.editor = ProtocolEditor()
        self.editor.changed.connect(self._update_buttons)
        self.tabs.addTab(self.editor, "Protocol")
        self.tabs.addTab(self._build_results_tab(), "Results")
        self.tabs.addTab(self._build_teaching_tab(), "Teaching")

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("Open a scan (File > Open, or File > Open Sample > fusplan).")
        self.status.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addLayout(bottom)
        layout.addWidget(self.status)

        self.viewer.layers.events.inserted.connect(self._refresh_scans)
        self.viewer.layers.events.removed.connect(self._refresh_scans)
        self.viewer.dims.events.current_step.connect(self._on_dims)
        self._refresh_scans()
        self.editor.load(default_protocol_path("clt"))
        self._update_buttons()

    # ================================================================== building
    def _build_plan_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout()
        self.scan_combo = QComboBox()
        self.atlas_combo = QComboBox()
        self.atlas_combo.addItems(ATLASES)
        self.atlas_combo.currentTextChanged.connect(self._refresh_labels)
        self.side_combo = QComboBox()
        self.side_combo.addItems(SIDES)
        self.target_combo = QComboBox()
        self.target_combo.setEditable(True)
        self.use_acpc = QCheckBox("target at AC-PC mm (x mirrored on the left)")
        self.acpc_target = Triple((12.0, -8.0, 1.0), low=-60, high=60)
        self.settings_combo = QComboBox()
        self.settings_combo.addItems(REGISTRATION_SETTINGS)
        self.settings_combo.setToolTip("standard: planning quality; fast: quicker preview, less accurate")
        self.registration_file = QLineEdit()
        self.registration_file.setPlaceholderText("optional: saved registration (.npz from fusplan target --out)")
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse_registration)
        registration_row = QHBoxLayout()
        registration_row.addWidget(self.registration_file)
        registration_row.addWidget(browse)
        self.manual_acpc = QCheckBox("AC and PC given by hand (RAS mm)")
        self.ac_input = Triple()
        self.pc_input = Triple()
        self.use_acpc.toggled.connect(self.acpc_target.setEnabled)
        self.manual_acpc.toggled.connect(self.ac_input.setEnabled)
        self.manual_acpc.toggled.connect(self.pc_input.setEnabled)
        for widget in (self.acpc_target, self.ac_input, self.pc_input):
            widget.setEnabled(False)
        form.addRow("scan", self.scan_combo)
        form.addRow("atlas", self.atlas_combo)
        form.addRow("registration", self.settings_combo)
        form.addRow("reuse", registration_row)
        form.addRow("side", self.side_combo)
        form.addRow("target", self.target_combo)
        form.addRow(self.use_acpc)
        form.addRow("AC-PC x, y, z", self.acpc_target)
        form.addRow(self.manual_acpc)
        form.addRow("AC", self.ac_input)
        form.addRow("PC", self.pc_input)

        self.locate_button = QPushButton("Locate target")
        self.locate_button.clicked.connect(self.locate)
        self.simulate_button = QPushButton("Simulate")
        self.simulate_button.clicked.connect(self.simulate)
        self.export_button = QPushButton("Export plan...")
        self.export_button.clicked.connect(self._export_dialog)
        buttons = QHBoxLayout()
        for button in (self.locate_button, self.simulate_button, self.export_button):
            buttons.addWidget(button)
        self.target_info = QLabel("No target yet. Without a target, Simulate runs the tissue phantom.")
        self.target_info.setWordWrap(True)
        self.target_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(tab)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.target_info)
        layout.addStretch(1)
        self._refresh_labels()
        return tab

    def _build_results_tab(self) -> QWidget:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        tab = QWidget()
        scroll.setWidget(tab)
        self.summary = QLabel("Run Simulate to see results.")
        self.summary.setWordWrap(True)
        self.sonication_table = _table()
        self.lesion_table = _table()
        self.nuclei_table = _table()
        self.json_view = QPlainTextEdit()
        self.json_view.setReadOnly(True)
        self.json_view.setMinimumHeight(160)
        layout = QVBoxLayout(tab)
        layout.addWidget(self.summary)
        for title, widget in (("Sonications", self.sonication_table), ("Lesions", self.lesion_table),
                              ("Nucleus overlap", self.nuclei_table), ("JSON report (as the CLI prints it)",
                                                                      self.json_view)):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            inner.addWidget(widget)
            layout.addWidget(box)
        return scroll

    def _build_teaching_tab(self) -> QWidget:
        tab = QWidget()
        self.step_title = QLabel("<b>Teaching mode</b>")
        self.step_text = QLabel("Simulate first: the steps then walk through alignment, verification and treatment "
                                "at the peak of each stage, with this simulation's numbers.")
        self.step_text.setWordWrap(True)
        self.previous_button = QPushButton("< Previous")
        self.previous_button.clicked.connect(lambda: self.show_step(self._step_index - 1))
        self.next_button = QPushButton("Next >")
        self.next_button.clicked.connect(lambda: self.show_step(self._step_index + 1))
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout(tab)
        layout.addWidget(self.step_title)
        layout.addWidget(self.step_text)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return tab

    # ================================================================== state
    def _scan_layers(self) -> list:
        from napari.layers import Image

        ours = set(map(id, self._layers.values()))
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and layer.ndim == 3 and id(layer) not in ours
                and not layer.rgb]

    def _refresh_scans(self, *_) -> None:
        current = self.scan_combo.currentText()
        names = [layer.name for layer in self._scan_layers()]
        self.scan_combo.blockSignals(True)
        self.scan_combo.clear()
        self.scan_combo.addItems(names)
        if current in names:
            self.scan_combo.setCurrentText(current)
        self.scan_combo.blockSignals(False)
        self._update_buttons()

    def _refresh_labels(self, *_) -> None:
        from fusplan.atlas import load_atlas

        atlas = load_atlas(self.atlas_combo.currentText())
        names = sorted({label.abbreviation for label in atlas.label_table})
        current = self.target_combo.currentText() or DEFAULT_TARGET
        self.target_combo.clear()
        self.target_combo.addItems([DEFAULT_TARGET] + [n for n in names if n != DEFAULT_TARGET])
        self.target_combo.setCurrentText(current)

    def _update_buttons(self) -> None:
        idle = not self.busy
        self.locate_button.setEnabled(idle and self.scan_combo.count() > 0)
        self.simulate_button.setEnabled(idle and self.editor.protocol is not None)
        self.export_button.setEnabled(idle and self.result is not None)
        self.cancel_button.setEnabled(self.busy)
        has_steps = bool(self.steps)
        self.previous_button.setEnabled(has_steps)
        self.next_button.setEnabled(has_steps)

    def select_scan(self, name: str) -> None:
        """Choose the scan layer by name."""
        self.scan_combo.setCurrentText(name)

    # ================================================================== workers
    def _run(self, title: str, function, on_done) -> None:
        """Run ``function(callback)`` in a thread worker; ``on_done(value)`` in the GUI thread."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._cancel.clear()
        self.busy = True
        self.last_error = None
        self._update_buttons()
        self.progress.setValue(0)
        self.status.setText(f"{title}...")
        self._progress_bar = progress(total=100, desc=title)
        self._bar_time_s = self._shown_time_s = time.monotonic()
        cancel, signals = self._cancel, self._signals

        def callback(fraction: float, message: str = "") -> None:
            if cancel.is_set():
                raise Cancelled(title)
            signals.progressed.emit(float(fraction), str(message))

        self._worker = create_worker(
            function, callback, _start_thread=True,
            _connect={"returned": on_done, "errored": self._on_error, "finished": self._on_finished})

    def cancel(self) -> None:
        """Ask the running job to stop at its next progress report."""
        self._cancel.set()
        self.status.setText("cancelling...")

    def _on_progress(self, fraction: float, message: str) -> None:
        value = int(round(100 * min(max(fraction, 0.0), 1.0)))
        now = time.monotonic()
        # every widget change recomposes the window (slow on software OpenGL): a few updates a second
        if now - self._shown_time_s < 0.5 and value < 100:
            return
        self._shown_time_s = now
        self.progress.setValue(value)
        if message:
            self.status.setText(message)
        bar = self._progress_bar
        # napari's activity bar repaints the whole window on every change: update it sparingly
        if bar is not None and value >= bar.n + 25 and now - self._bar_time_s > 5.0:
            bar.update(value - bar.n)
            self._bar_time_s = now

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, Cancelled):
            self.last_error = "cancelled"
            self.status.setText(f"{error}: cancelled")
        elif isinstance(error, FusplanInputError):
            self.last_error = str(error)
            self.status.setText(f"error: {error}")
        else:
            self.last_error = f"{type(error).__name__}: {error}"
            self.status.setText(f"internal error: {self.last_error}")

    def _on_finished(self) -> None:
        if self._progress_bar is not None:
            self._progress_bar.close()
            self._progress_bar = None
        self.busy = False
        self._worker = None
        self._update_buttons()

    # ================================================================== locate
    def targeting_options(self) -> dict:
        """Keyword arguments of :func:`fusplan.targeting.locate_targets` from the form."""
        options = {
            "atlas": self.atlas_combo.currentText(),
            "sides": SIDES[self.side_combo.currentText()],
            "target": self.target_combo.currentText().strip() or DEFAULT_TARGET,
            "settings": self.settings_combo.currentText(),
        }
        if self.registration_file.text().strip():
            options["registration"] = self.registration_file.text().strip()
        if self.use_acpc.isChecked():
            options["acpc_mm"] = self.acpc_target.value()
        if self.manual_acpc.isChecked():
            options["ac_mm"] = self.ac_input.value()
            options["pc_mm"] = self.pc_input.value()
        return options

    def locate(self) -> None:
        """Register the atlas to the chosen scan and locate the target(s) (in a worker)."""
        layer = self._current_scan_layer()
        if layer is None:
            self.status.setText("no scan layer: open a scan first")
            return
        options = self.targeting_options()
        previous = self.found if (self.scan is not None and self._scan_layer_name == layer.name) else None

        def job(callback):
            from fusplan.targeting import locate_targets

            scan = session.scan_from_layer(layer)
            if "registration" not in options and previous is not None and previous.atlas == options["atlas"]:
                options["registration"] = previous.registration  # same scan: only the targets change
            found = locate_targets(scan, progress=callback, **options)
            return scan, found, session.resliced_scan_layer(scan, layer.name)

        self._scan_layer_name = layer.name
        self._run("locating target", job, self._located)

    _scan_layer_name: str | None = None

    def _browse_registration(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Saved registration", "", "Registrations (*.npz)")
        if path:
            self.registration_file.setText(path)

    def _current_scan_layer(self):
        name = self.scan_combo.currentText()
        return next((layer for layer in self._scan_layers() if layer.name == name), None)

    def _located(self, value) -> None:
        self.scan, found, reslice = value
        self.found = found
        self._clear_simulation()
        old = self._layers.pop("reslice", None)
        if old is not None and old in self.viewer.layers:
            self.viewer.layers.remove(old)
        if reslice is not None:
            self._set_layer("reslice", reslice)
        self._set_layer("nuclei", session.nuclei_layer(found))
        landmarks, targets = session.points_layers(found)
        self._set_layer("landmarks", landmarks)
        layer = self._set_layer("targets", targets)
        layer.events.data.connect(self._on_targets_moved)
        layer.mode = "select"
        self._show_target_info()
        self._axial_view(np.asarray(found.targets[0].ras_mm, dtype=float), field_of_view_mm=70.0)
        self.status.setText("target located: drag the target point to move it; Simulate runs the protocol there")

    def _on_targets_moved(self, event=None) -> None:
        if getattr(event, "action", "changed") not in ("changed", "added", "removed"):
            return
        layer = self._layers.get("targets")
        if self.found is None or layer is None:
            return
        data = np.asarray(layer.data, dtype=float)
        if len(data) != len(self.found.targets):
            self.status.setText("the targets layer must keep one point per target: undo the change")
            return
        found = self.found
        for index, point in enumerate(data):
            if not np.allclose(point, found.targets[index].ras_mm, atol=1e-6):
                found = session.move_target(found, index, point)
        if found is not self.found:
            self.found = found
            self._show_target_info()
            self.status.setText("target moved: Simulate to update the plan")

    def _show_target_info(self) -> None:
        lines = []
        for target in self.found.targets:
            ras = ", ".join(f"{v:.1f}" for v in target.ras_mm)
            acpc = ", ".join(f"{v:.1f}" for v in target.acpc_mm)
            lines.append(f"<b>{session.target_label(target)}</b>: RAS ({ras}) mm, AC-PC ({acpc}) mm")
        for name, position in self.found.landmarks.items():
            lines.append(f"{name}: RAS ({', '.join(f'{v:.1f}' for v in position)}) mm")
        self.target_info.setText("<br>".join(lines))

    # ================================================================== simulate
    def simulate(self) -> None:
        """Run the edited protocol at the current target(s), or in the phantom without one."""
        protocol = self.editor.protocol
        if protocol is None:
            self.status.setText(f"protocol not valid: {self.editor.error}")
            return
        scan, found = (self.scan, self.found) if self.found is not None else (None, None)

        def job(callback):
            from fusplan.planner import simulate

            def simulation_progress(fraction, message=""):
                callback(0.85 * fraction, message)

            result = simulate(protocol, scan=scan, targets=found, progress=simulation_progress)
            movies = session.simulation_movies(result, lambda f, m: callback(0.85 + 0.15 * f, m))
            return result, movies

        self._run("simulating", job, self._simulated)

    def _simulated(self, value) -> None:
        result, movies = value
        self.result = result
        self.document = result.to_dict()
        self._clear_simulation()
        self.frame_times_s = movies[0]["time_s"] if movies else np.zeros(0)
        for movie in movies:
            for key, layer_data in movie["layers"].items():
                self._set_layer(key, layer_data)
        self._show_results(self.document)
        self.time_side = movies[0]["side"] if movies else None
        self._show_plot(self.document)
        self.steps = session.teaching_steps(self.document, self.time_side)
        self._step_index = -1
        self.viewer.text_overlay.visible = True
        centre = movies[0]["focus_mm"] if movies else None
        self._axial_view(centre, field_of_view_mm=60.0 if centre is not None else None)
        if self.steps:
            self.set_time(self.steps[-1]["time_s"])
        self._update_buttons()
        self.status.setText("simulation done: step through time with the slider, or use the Teaching tab")

    def _clear_simulation(self) -> None:
        for key in [k for k in self._layers if k.startswith(("temperature", "dose", "lesion"))]:
            layer = self._layers.pop(key)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.steps = []

    # ================================================================== results
    def _show_results(self, document: dict) -> None:
        from fusplan.report import dumps_json

        columns, rows = session.table(document["sonications"])
        _fill(self.sonication_table, columns, rows)
        columns, rows = session.table(document.get("lesions", []))
        _fill(self.lesion_table, columns, rows)
        columns, rows = session.table(session.nuclei_rows(document))
        _fill(self.nuclei_table, columns, rows)
        self.json_view.setPlainText(dumps_json(document))
        targets = ", ".join(session.target_label(t) for t in self.found.targets) if self.found else "phantom"
        self.summary.setText(f"<b>{document.get('protocol', '')}</b> at {targets}: "
                             f"{len(document['sonications'])} sonications")

    def results_table(self, name: str) -> tuple[list[str], list[list[str]]]:
        """Header and cell texts of the ``"sonications"``, ``"lesions"`` or ``"nuclei"`` table."""
        widget = {"sonications": self.sonication_table, "lesions": self.lesion_table,
                  "nuclei": self.nuclei_table}[name]
        header = [widget.horizontalHeaderItem(c).text() for c in range(widget.columnCount())]
        cells = [[widget.item(r, c).text() for c in range(widget.columnCount())] for r in range(widget.rowCount())]
        return header, cells

    def _show_plot(self, document: dict) -> None:
        from ._plot import FocusPlot

        if self._plot is None:
            self._plot = FocusPlot()
            window = getattr(self.viewer, "window", None)
            if window is not None:
                self._plot_dock = window.add_dock_widget(self._plot, name="Focus temperature", area="bottom")
        self._plot.show_result(document, self.time_side)

    def export_plan(self, directory) -> None:
        """Write the JSON report, NIfTI maps and figures with :func:`fusplan.report.write_report` (worker)."""
        result, scan, directory = self.result, self.scan, Path(directory)

        def job(callback):
            from fusplan.report import write_report

            callback(0.0, f"writing {directory}")
            written = write_report(result, directory, scan=scan)
            callback(1.0, f"written to {directory}")
            return written

        self._run("exporting plan", job, lambda _: self.status.setText(f"plan written to {directory}"))

    def _export_dialog(self) -> None:
        directory = QFileDialog.getExistingDirectory(self, "Export plan to folder")
        if directory:
            self.export_plan(directory)

    # ================================================================== time and teaching
    def _on_dims(self, *_) -> None:
        if not len(self.frame_times_s) or self.document is None:
            return
        time_s = float(self.frame_times_s[self.current_frame()])
        self.viewer.text_overlay.text = session.time_label(self.document, time_s, self.time_side)
        if self._plot is not None:
            self._plot.set_time(time_s)

    def current_frame(self) -> int:
        """Index of the temperature frame the time slider shows."""
        if self.viewer.dims.ndim < 4:
            return 0
        return int(np.clip(self.viewer.dims.current_step[0], 0, len(self.frame_times_s) - 1))

    def set_time(self, time_s: float) -> None:
        """Move the time slider to the frame nearest ``time_s``."""
        frame = int(np.argmin(np.abs(self.frame_times_s - time_s)))
        self.viewer.dims.set_current_step(0, frame)

    def show_step(self, index: int) -> None:
        """Teaching mode: go to step ``index`` (wraps), move the slider to its peak and explain it."""
        if not self.steps:
            return
        self._step_index = index % len(self.steps)
        step = self.steps[self._step_index]
        self.set_time(step["time_s"])
        self.step_title.setText(f"<b>{self._step_index + 1}/{len(self.steps)}: {step['title']}</b> "
                                f"(t = {step['time_s']:.1f} s)")
        self.step_text.setText(step["text"])
        self.tabs.setCurrentIndex(3)

    # ================================================================== layers and view
    def _set_layer(self, key: str, layer_data: tuple):
        """Add a layer (replacing the one this widget added under ``key``)."""
        data, kwargs, kind = layer_data
        old = self._layers.pop(key, None)
        if old is not None and old in self.viewer.layers:
            self.viewer.layers.remove(old)
        layer = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        if key.startswith("temperature") and hasattr(layer, "colorbar"):
            layer.colorbar.visible = not any(k.startswith("temperature") for k in self._layers)
        if key.startswith("lesion"):
            layer.contour = 1
        self._layers[key] = layer
        self._refresh_scans()  # the layer was listed as a scan while it was being inserted
        return layer

    def layer(self, key: str):
        """A layer this widget added: ``"nuclei"``, ``"landmarks"``, ``"targets"``, ``"temperature left"``..."""
        return self._layers[key]

    @property
    def layer_keys(self) -> list[str]:
        return list(self._layers)

    def _axial_view(self, centre_mm=None, field_of_view_mm: float | None = None) -> None:
        """Axial slices, anterior up, subject's right on the right, centred on ``centre_mm``.

        ``field_of_view_mm`` zooms so that about this many mm fill the canvas.
        """
        ndim = self.viewer.dims.ndim
        if ndim < 3:
            return
        self.viewer.dims.order = tuple(range(ndim - 3)) + (ndim - 1, ndim - 2, ndim - 3)
        _camera(self.viewer).orientation2d = ("up", "right")
        if centre_mm is not None:
            for axis, value in zip(range(ndim - 3, ndim), centre_mm):
                self.viewer.dims.set_point(axis, float(value))
            camera = _camera(self.viewer)
            if field_of_view_mm is not None:
                self.viewer.reset_view()
                extent = np.asarray(self.viewer.layers.extent.world)[:, -3:]
                camera.zoom = camera.zoom * float(np.ptp(extent[:, :2], axis=0).max()) / field_of_view_mm
            camera.center = (float(centre_mm[1]), float(centre_mm[0]))


def _table() -> QTableWidget:
    widget = QTableWidget(0, 0)
    widget.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    widget.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return widget


def _fill(widget: QTableWidget, columns, rows) -> None:
    widget.clear()
    widget.setColumnCount(len(columns))
    widget.setRowCount(len(rows))
    widget.setHorizontalHeaderLabels(columns)
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            widget.setItem(r, c, QTableWidgetItem(text))
    widget.resizeColumnsToContents()
    height = widget.horizontalHeader().height() + sum(widget.rowHeight(r) for r in range(len(rows)))
    widget.setMinimumHeight(min(height + 2 * widget.frameWidth() + 20, 320))


__all__ = ["Cancelled", "PlanningWidget"]


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
