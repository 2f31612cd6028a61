"""The Teaching tab: step through the stages of the result shown, one text per stage."""
from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

EMPTY_TEXT = ("Simulate first: the steps then walk through alignment, verification and treatment at the peak of "
              "each stage, with this simulation's numbers.")


class TeachingTab(QWidget):
    """Steps from :func:`napari_fusplan._teaching.teaching_steps`; ``step_chosen(time_s)`` moves the slider."""

    step_chosen = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.steps: list[dict] = []
        self.index = -1
        self.title = QLabel("<b>Teaching mode</b>")
        self.text = QLabel(EMPTY_TEXT)
        self.text.setWordWrap(True)
        self.previous_button = QPushButton("< Previous")
        self.previous_button.clicked.connect(lambda: self.show_step(self.index - 1))
        self.next_button = QPushButton("Next >")
        self.next_button.clicked.connect(lambda: self.show_step(self.index + 1))
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.set_steps([])

    def set_steps(self, steps: list[dict], belongs_to: str = "") -> None:
        """New steps (``[]``: none, the text says so)."""
        self.steps, self.index = list(steps), -1
        self.title.setText(f"<b>Teaching mode</b> {belongs_to}")
        self.text.setText(EMPTY_TEXT if not steps else "Press Next to walk through the stages.")
        self.previous_button.setEnabled(bool(steps))
        self.next_button.setEnabled(bool(steps))

    def show_step(self, index: int) -> None:
        """Go to step ``index`` (wraps) and explain it."""
        if not self.steps:
            return
        self.index = index % len(self.steps)
        step = self.steps[self.index]
        self.title.setText(f"<b>{self.index + 1}/{len(self.steps)}: {step['title']}</b> (t = {step['time_s']:.1f} s)")
        self.text.setText(step["text"])
        self.step_chosen.emit(step["time_s"])
