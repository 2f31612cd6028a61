"""A table editor for the sonications of a protocol, validated as you type.

Errors name the table row (1-based, as shown) and colour the offending cell.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fusplan import FusplanInputError
from fusplan import BUNDLED_PROTOCOLS, POWER_KEYS, STAGES, default_protocol_path, load_protocol

#: Table columns: stage, which power key, its value, duration, cooling, repeat, offset.
COLUMNS = ("stage", "power by", "value", "duration_s", "cooling_s", "repeat", "offset_mm")
#: Header texts (units shown) and widths (px) of the columns, so all fit without scrolling.
HEADERS = ("stage", "power by", "value", "on (s)", "cool (s)", "repeat", "offset (mm)")
WIDTHS = (112, 108, 52, 50, 56, 50, 78)
#: What the value column holds for each power key, with its unit.
VALUE_UNITS = {"power_w": "W", "absorbed_power_w": "W absorbed", "peak_c": "°C peak"}
#: Power choices as shown, with units.
POWER_LABELS = {"power_w": "power (W)", "absorbed_power_w": "absorbed (W)", "peak_c": "peak (°C)"}
#: Protocol key of an error -> table column.
KEY_COLUMNS = {**{key: "value" for key in POWER_KEYS}, "duration_s": "duration_s", "cooling_s": "cooling_s",
               "repeat": "repeat", "offset_mm": "offset_mm", "stage": "stage"}
BAD_CELL = QColor("#8b1e2d")
_ERROR_PATTERN = re.compile(r"sonication entry (\d+)(?:: (\w+))?")


class ProtocolEditor(QWidget):
    """Load, edit, validate and save a protocol; sonications in a table.

    Every edit rebuilds the protocol mapping (the loaded file's other keys plus the
    table's sonications) and validates it with :func:`fusplan.protocol.load_protocol`.
    ``protocol`` is the last valid :class:`~fusplan.protocol.Protocol` or None, and the
    line under the table shows the validation error, naming the key.
    """

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.protocol = None
        self.error = None
        self._base: dict = {}
        self._origin = "a new protocol"
        self._loading = False

        self.bundled = QComboBox()
        self.bundled.addItems(BUNDLED_PROTOCOLS)
        load_bundled = QPushButton("Load bundled")
        load_bundled.clicked.connect(lambda: self.load(default_protocol_path(self.bundled.currentText())))
        load_file = QPushButton("Open...")
        load_file.clicked.connect(self._open_dialog)
        save_file = QPushButton("Save as...")
        save_file.clicked.connect(self._save_dialog)
        top = QHBoxLayout()
        for widget in (self.bundled, load_bundled, load_file, save_file):
            top.addWidget(widget)

        self.name_label = QLabel()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        for column, width in enumerate(WIDTHS):
            self.table.setColumnWidth(column, width)
        self.table.setMinimumWidth(sum(WIDTHS) + self.table.verticalHeader().sizeHint().width() + 8)
        self.setMinimumWidth(self.table.minimumWidth() + 24)
        self.bad_cell: tuple[int, str] | None = None
        self.table.itemChanged.connect(self._validate)
        add_row = QPushButton("Add sonication")
        add_row.clicked.connect(self.add_row)
        remove_row = QPushButton("Remove selected")
        remove_row.clicked.connect(self.remove_selected)
        rows = QHBoxLayout()
        rows.addWidget(add_row)
        rows.addWidget(remove_row)
        self.status = QLabel()
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.name_label)
        layout.addWidget(self.table)
        layout.addLayout(rows)
        layout.addWidget(self.status)

    # ------------------------------------------------------------------ load/save
    def load(self, path_or_mapping) -> None:
        """Fill the editor from a protocol file or mapping (validated first)."""
        protocol = load_protocol(path_or_mapping)
        self._base, self._origin = protocol.spec, protocol.source or "a protocol mapping"
        self._loading = True
        self.table.setRowCount(0)
        for entry in self._base.get("sonications", []):
            self._append(entry)
        self._loading = False
        source = f" ({Path(protocol.source).name})" if protocol.source else ""
        self.name_label.setText(f"<b>{protocol.name}</b>{source}")
        self._validate()

    def mapping(self) -> dict:
        """The protocol mapping: the loaded keys with the table's sonications."""
        spec = {k: v for k, v in self._base.items() if k != "sonications"}
        spec["sonications"] = [self._row_mapping(row) for row in range(self.table.rowCount())]
        return spec

    def _source(self) -> str:
        """Where the edited protocol came from (a report's ``provenance.protocol.source``)."""
        edited = self.mapping() != self._base
        return f"{self._origin}, edited in the napari protocol editor" if edited else self._origin

    def save(self, path) -> Path:
        """Write the edited protocol (YAML, or JSON for ``.json``) after validating it."""
        spec = self.mapping()
        load_protocol(spec)
        path = Path(path)
        text = json.dumps(spec, indent=2) if path.suffix.lower() == ".json" else yaml.safe_dump(spec, sort_keys=False)
        path.write_text(text)
        return path

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open protocol", "", "Protocols (*.yaml *.yml *.json)")
        if path:
            try:
                self.load(path)
            except FusplanInputError as error:
                self._show_error(str(error))

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save protocol", "protocol.yaml", "Protocols (*.yaml *.json)")
        if path:
            try:
                self.save(path)
                self.status.setText(f"saved {path}")
            except FusplanInputError as error:
                self._show_error(str(error))

    # ------------------------------------------------------------------ table
    def add_row(self, entry: dict | None = None) -> None:
        """Append a sonication (default: a treatment sonication titrated to 55 C)."""
        entry = entry or {"stage": "treatment", "peak_c": 55, "duration_s": 14, "cooling_s": 60}
        self._append(entry)
        self._validate()

    def remove_selected(self) -> None:
        """Delete the selected rows."""
        for row in sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)
        self._validate()

    def set_cell(self, row: int, column: str, value) -> None:
        """Set one cell (as a user would) and validate."""
        col = COLUMNS.index(column)
        widget = self.table.cellWidget(row, col)
        if isinstance(widget, QComboBox) and widget.findData(value) >= 0:
            widget.setCurrentIndex(widget.findData(value))
        elif isinstance(widget, QComboBox):
            widget.setCurrentText(str(value))
        else:
            self.table.item(row, col).setText(str(value))

    def _append(self, entry: dict) -> None:
        row = self.table.rowCount()
        was_loading, self._loading = self._loading, True
        self.table.insertRow(row)
        stage = QComboBox()
        stage.addItems(STAGES)
        stage.setCurrentText(str(entry.get("stage", "treatment")))
        stage.currentTextChanged.connect(self._validate)
        self.table.setCellWidget(row, 0, stage)
        power_key = next((k for k in POWER_KEYS if k in entry), "peak_c")
        power = QComboBox()
        for key in POWER_KEYS:
            power.addItem(POWER_LABELS[key], key)
        power.setCurrentIndex(POWER_KEYS.index(power_key))
        power.currentIndexChanged.connect(self._validate)
        self.table.setCellWidget(row, 1, power)
        offset = entry.get("offset_mm")
        texts = [_text(entry.get(power_key)), _text(entry.get("duration_s")), _text(entry.get("cooling_s", 0)),
                 _text(entry.get("repeat", 1)), ", ".join(_text(v) for v in offset) if offset else ""]
        for col, text in enumerate(texts, start=2):
            self.table.setItem(row, col, QTableWidgetItem(text))
        self._loading = was_loading
        self._show_units(row)

    def _show_units(self, row: int) -> None:
        """The value cell's tooltip and the row's header name the unit of the chosen power key."""
        item = self.table.item(row, 2)
        if item is not None:
            item.setToolTip(VALUE_UNITS[self.table.cellWidget(row, 1).currentData()])

    def _row_mapping(self, row: int) -> dict:
        entry = {"stage": self.table.cellWidget(row, 0).currentText()}
        entry[self.table.cellWidget(row, 1).currentData()] = _parse(self.table.item(row, 2).text())
        entry["duration_s"] = _parse(self.table.item(row, 3).text())
        entry["cooling_s"] = _parse(self.table.item(row, 4).text())
        repeat = self.table.item(row, 5).text().strip()
        if repeat and repeat != "1":
            entry["repeat"] = _parse(repeat)
        offset = self.table.item(row, 6).text().strip()
        if offset:
            entry["offset_mm"] = [_parse(v) for v in offset.replace(";", ",").split(",")]
        return entry

    def _validate(self, *_) -> None:
        if self._loading:
            return
        self._highlight(None)
        for row in range(self.table.rowCount()):
            self._show_units(row)
        try:
            protocol = load_protocol(self.mapping(), source=self._source())
        except FusplanInputError as error:
            self.protocol = None
            self._show_error(self._table_error(str(error)))
        else:
            self.protocol, self.error = protocol, None
            self.status.setStyleSheet("color: #3fb950;")
            self.status.setText(f"valid: {len(protocol.sonications)} sonications, {protocol.total_time_s:.0f} s in all")
        self.changed.emit()

    def _table_error(self, message: str) -> str:
        """``sonication entry 3: repeat ...`` -> ``row 3, repeat: ...`` with that cell coloured (both from 1)."""
        match = _ERROR_PATTERN.search(message)
        if match is None or not 1 <= int(match.group(1)) <= self.table.rowCount():
            return message
        row, key = int(match.group(1)) - 1, match.group(2)
        self._highlight((row, KEY_COLUMNS.get(key, "stage")))
        where = f"row {row + 1}" + (f", {key}" if key else "")
        return f"{where}: " + message[match.end():].lstrip(" .:") if message.startswith("protocol: ") else \
            message.replace(match.group(0), where)

    def _highlight(self, cell: tuple[int, str] | None) -> None:
        """Colour the bad cell (and un-colour the previous one)."""
        for target, brush in ((self.bad_cell, QBrush()), (cell, QBrush(BAD_CELL))):
            if target is None:
                continue
            item = self.table.item(target[0], COLUMNS.index(target[1]))
            if item is not None:
                self._loading, was = True, self._loading
                item.setBackground(brush)
                self._loading = was
            else:
                widget = self.table.cellWidget(target[0], COLUMNS.index(target[1]))
                if widget is not None:
                    bad = brush.style() != Qt.BrushStyle.NoBrush
                    widget.setStyleSheet(f"background: {BAD_CELL.name()};" if bad else "")
        self.bad_cell = cell

    def _show_error(self, message: str) -> None:
        self.error = message
        self.status.setStyleSheet("color: #ff6b6b;")
        self.status.setText(message)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse(text: str):
    """A number if the cell holds one, else the text (load_protocol then names the key)."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text if text else None
