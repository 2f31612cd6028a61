"""The Results tab: what the result belongs to, sonication / lesion / nucleus tables, the JSON report."""
from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QGroupBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ._tables import Table, clinical_text, nuclei_rows, table

EMPTY_TEXT = "No result: Simulate to see one. A result is dropped as soon as its scan, target or protocol changes."


class ResultsTab(QScrollArea):
    """Shows one result (``show``) or none (``clear``)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        inner = QWidget()
        self.setWidget(inner)
        self.summary = QLabel(EMPTY_TEXT)
        self.summary.setWordWrap(True)
        self.clinical = QLabel()
        self.clinical.setWordWrap(True)
        self.tables = {name: _table() for name in ("lesions", "isotherms", "prediction", "nuclei", "sonications")}
        self.notes: dict = {}  # table -> the label of its notes
        self.json_view = QPlainTextEdit()
        self.json_view.setReadOnly(True)
        self.json_view.setMinimumHeight(160)
        layout = QVBoxLayout(inner)
        layout.addWidget(self.summary)
        layout.addWidget(self.clinical)
        for title, widget in (("Lesions", self.tables["lesions"]),
                              ("Maximum-temperature isotherms", self.tables["isotherms"]),
                              ("Calibrated prediction (lesions before steering)", self.tables["prediction"]),
                              ("Nucleus overlap", self.tables["nuclei"]),
                              ("Sonications", self.tables["sonications"]),
                              ("JSON report (as the CLI prints it)", self.json_view)):
            box = QGroupBox(title)
            inside = QVBoxLayout(box)
            inside.addWidget(widget)
            if widget in self.tables.values():
                note = self.notes[widget] = QLabel()
                note.setWordWrap(True)
                inside.addWidget(note)
            layout.addWidget(box)

    def show(self, document: dict, provenance) -> None:  # noqa: A003 (Qt-style name)
        from fusplan import dumps_json

        for name, rows in (("sonications", document["sonications"]), ("lesions", document.get("lesions", [])),
                           ("isotherms", document.get("isotherms", [])),
                           ("prediction", (document.get("prediction") or {}).get("lesions", [])),
                           ("nuclei", nuclei_rows(document))):
            self._fill(self.tables[name], table(rows))
        self.json_view.setPlainText(dumps_json(document))
        from ._skull import skull_summary

        self.clinical.setText(clinical_text(document))
        skull = skull_summary(document)
        self.summary.setText(f"<b>Result of {provenance.describe()}</b>: {_sonication_count(document)}"
                             + (f"<br>{skull}" if skull else ""))

    def clear(self) -> None:
        for widget in self.tables.values():
            self._fill(widget, Table([], [], []))
        self.json_view.setPlainText("")
        self.clinical.setText("")
        self.summary.setText(EMPTY_TEXT)

    def cells(self, name: str) -> Table:
        """Header, row labels and cell texts of a table (``"sonications"``, ``"lesions"``, ``"isotherms"``,
        ``"prediction"``, ``"nuclei"``)."""
        widget = self.tables[name]
        note = self.notes[widget].text()
        return Table([widget.horizontalHeaderItem(c).text() for c in range(widget.columnCount())],
                     [widget.verticalHeaderItem(r).text() for r in range(widget.rowCount())],
                     [[widget.item(r, c).text() for c in range(widget.columnCount())] for r in range(widget.rowCount())],
                     note.split("\n") if note else [])

    def _fill(self, widget: QTableWidget, table: Table) -> None:
        _fill(widget, table)
        self.notes[widget].setText("\n".join(table.notes))
        self.notes[widget].setVisible(bool(table.notes))


def _table() -> QTableWidget:
    widget = QTableWidget(0, 0)
    widget.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    widget.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return widget


def _fill(widget: QTableWidget, table: Table) -> None:
    """Show ``table``: row labels stay at the left when it scrolls sideways, numbers right-aligned."""
    widget.clear()
    widget.setColumnCount(len(table.header))
    widget.setRowCount(len(table.cells))
    widget.setHorizontalHeaderLabels(table.header)
    widget.setVerticalHeaderLabels(table.row_labels)
    for r, row in enumerate(table.cells):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if _is_number(text):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            widget.setItem(r, c, item)
    header = widget.horizontalHeader()
    height = header.height() + sum(widget.rowHeight(r) for r in range(len(table.cells)))
    widget.setMinimumHeight(min(height + 2 * widget.frameWidth() + 20, 320))


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _sonication_count(document: dict) -> str:
    """``"7 sonications"``, or ``"7 sonications per side"`` when the report lists them per side."""
    entries = document["sonications"]
    sides = {entry.get("side") for entry in entries}
    per_side = len(entries) // max(len(sides), 1)
    return f"{per_side} sonications" + (" per side" if len(sides) > 1 else "")
