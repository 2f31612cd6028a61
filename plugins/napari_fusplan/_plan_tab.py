"""The Plan tab: scan, atlas, side and target form; Locate, Simulate and Export; the target readout."""
from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from fusplan import ATLASES, SIDE_CHOICES

from ._layers import atlas_target_names, target_label
from ._model import TargetingForm

REGISTRATION_SETTINGS = ("standard", "fast")


class Triple(QWidget):
    """Three spin boxes for an (x, y, z) position in mm."""

    changed = Signal()

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
            box.setSuffix(" mm")
            box.setValue(v)
            box.valueChanged.connect(self.changed)
            layout.addWidget(box)
            self.boxes.append(box)

    def value(self) -> tuple[float, float, float]:
        return tuple(float(b.value()) for b in self.boxes)

    def setValue(self, value) -> None:  # noqa: N802 (Qt naming)
        for box, v in zip(self.boxes, value):
            box.setValue(float(v))


class PlanTab(QWidget):
    """The targeting form; ``changed`` fires on every edit of it, ``assessment_changed`` on calibration inputs."""

    changed = Signal()
    assessment_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        form = QFormLayout()
        self.scan_combo = QComboBox()
        self.atlas_combo = QComboBox()
        self.atlas_combo.addItems(ATLASES)
        self.side_combo = QComboBox()
        self.side_combo.addItems(SIDE_CHOICES)
        self.target_combo = QComboBox()
        self.target_combo.setEditable(True)
        self.use_acpc = QCheckBox("target at AC-PC mm (x mirrored on the left)")
        self.acpc_target = Triple((12.0, -8.0, 1.0), low=-60, high=60)
        self.settings_combo = QComboBox()
        self.settings_combo.addItems(REGISTRATION_SETTINGS)
        self.settings_combo.setToolTip("standard: planning quality; fast: quicker preview, less accurate")
        self.registration_file = QLineEdit()
        self.registration_file.setPlaceholderText("optional: a saved registration (.npz)")
        browse = QPushButton("Open...")
        browse.clicked.connect(self._browse_registration)
        self.save_registration_button = QPushButton("Save...")
        self.save_registration_button.setToolTip("Save the current registration (.npz) to reuse it later")
        registration_row = QHBoxLayout()
        for widget in (self.registration_file, browse, self.save_registration_button):
            registration_row.addWidget(widget)
        self.ct_file = QLineEdit()
        self.ct_file.setPlaceholderText("optional: head CT in HU (NIfTI or DICOM folder); empty: population skull")
        self.ct_file.setToolTip("Registered to the scan when locating; the plan then traces the patient's skull")
        self.manual_acpc = QCheckBox("AC and PC given by hand (RAS mm)")
        self.ac_input = Triple()
        self.pc_input = Triple()
        self.use_acpc.toggled.connect(self.acpc_target.setEnabled)
        self.manual_acpc.toggled.connect(self.ac_input.setEnabled)
        self.manual_acpc.toggled.connect(self.pc_input.setEnabled)
        for widget in (self.acpc_target, self.ac_input, self.pc_input):
            widget.setEnabled(False)
        for label, widget in (("scan", self.scan_combo), ("atlas", self.atlas_combo),
                              ("registration", self.settings_combo), ("reuse", registration_row),
                              ("side", self.side_combo), ("target", self.target_combo), ("skull CT", self.ct_file)):
            form.addRow(label, widget)
        form.addRow(self.use_acpc)
        form.addRow("AC-PC x, y, z", self.acpc_target)
        form.addRow(self.manual_acpc)
        form.addRow("AC", self.ac_input)
        form.addRow("PC", self.pc_input)
        self.thermometry_file = QLineEdit()
        self.thermometry_file.setPlaceholderText("optional: measured thermometry (.yaml/.json) to calibrate on")
        self.band_samples = QSpinBox()
        self.band_samples.setRange(0, 1000)
        self.band_samples.setToolTip("samples of the lesion's uncertainty band (0: none; 200 take ~20 s)")
        form.addRow("thermometry", self.thermometry_file)
        form.addRow("band samples", self.band_samples)
        self.thermometry_file.textChanged.connect(self.assessment_changed)
        self.band_samples.valueChanged.connect(self.assessment_changed)

        self.locate_button = QPushButton("Locate target")
        self.simulate_button = QPushButton("Simulate")
        self.export_button = QPushButton("Export plan...")
        buttons = QHBoxLayout()
        for button in (self.locate_button, self.simulate_button, self.export_button):
            buttons.addWidget(button)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: #f4a259;")
        self.target_info = QLabel("No target yet.")
        self.target_info.setWordWrap(True)
        self.target_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.reason)
        layout.addWidget(self.target_info)
        layout.addStretch(1)
        self.refresh_labels()
        for combo in (self.scan_combo, self.side_combo, self.target_combo, self.settings_combo):
            combo.currentTextChanged.connect(self.changed)
        self.atlas_combo.currentTextChanged.connect(self.refresh_labels)
        self.atlas_combo.currentTextChanged.connect(self.changed)
        self.registration_file.textChanged.connect(self.changed)
        self.ct_file.textChanged.connect(self.changed)
        for box in (self.use_acpc, self.manual_acpc):
            box.toggled.connect(self.changed)
        for triple in (self.acpc_target, self.ac_input, self.pc_input):
            triple.changed.connect(self.changed)

    def refresh_labels(self, *_) -> None:
        """Offer the chosen atlas's targets only (CLp first where the atlas has CL)."""
        names = atlas_target_names(self.atlas_combo.currentText())
        current = self.target_combo.currentText()
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        self.target_combo.addItems(names)
        self.target_combo.setCurrentText(current if current in names else names[0])
        self.target_combo.blockSignals(False)

    def set_scans(self, names: list[str]) -> None:
        """List these scan layers, keeping the choice when it is still there."""
        current = self.scan_combo.currentText()
        self.scan_combo.blockSignals(True)
        self.scan_combo.clear()
        self.scan_combo.addItems(names)
        if current in names:
            self.scan_combo.setCurrentText(current)
        self.scan_combo.blockSignals(False)
        if self.scan_combo.currentText() != current:
            self.changed.emit()

    def assessment_inputs(self) -> tuple[str | None, int]:
        """The thermometry file (None when empty) and the band's samples."""
        return self.thermometry_file.text().strip() or None, self.band_samples.value()

    def form(self) -> TargetingForm:
        """The form's inputs."""
        return TargetingForm(
            scan=self.scan_combo.currentText() or None,
            atlas=self.atlas_combo.currentText(),
            sides=SIDE_CHOICES[self.side_combo.currentText()],
            target=self.target_combo.currentText().strip(),
            settings=self.settings_combo.currentText(),
            registration=self.registration_file.text().strip() or None,
            acpc_mm=self.acpc_target.value() if self.use_acpc.isChecked() else None,
            ac_mm=self.ac_input.value() if self.manual_acpc.isChecked() else None,
            pc_mm=self.pc_input.value() if self.manual_acpc.isChecked() else None,
            ct=self.ct_file.text().strip() or None,
        )

    def show_targets(self, found) -> None:
        """Targets and landmarks in RAS and AC-PC mm (or the hint when there are none)."""
        if found is None:
            self.target_info.setText("No target yet.")
            return
        lines = []
        for target in found.targets:
            ras = ", ".join(f"{v:.1f}" for v in target.ras_mm)
            acpc = ", ".join(f"{v:.1f}" for v in target.acpc_mm)
            lines.append(f"<b>{target_label(target)}</b>: RAS ({ras}) mm, AC-PC ({acpc}) mm")
        for name, position in found.landmarks.items():
            lines.append(f"{name}: RAS ({', '.join(f'{v:.1f}' for v in position)}) mm")
        registration = found.registration
        lines.append(f"registration: {registration.method}, similarity {registration.similarity:.2f}")
        self.target_info.setText("<br>".join(lines))

    def _browse_registration(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Saved registration", "", "Registrations (*.npz)")
        if path:
            self.registration_file.setText(path)
