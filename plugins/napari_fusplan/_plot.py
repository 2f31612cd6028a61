"""Focus temperature and dose versus time, as a Qt canvas for a napari dock."""
from __future__ import annotations

from qtpy.QtWidgets import QVBoxLayout, QWidget


class FocusPlot(QWidget):
    """:func:`fusplan.figures.focus_figure` (the ``fusplan demo`` plot) with a time cursor.

    The figure shows the temperature of the hottest point against time with the
    stages shaded and the accumulated CEM43 dose at the focus on a log axis.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.canvas = None
        self.cursor = None

    def show_result(self, document: dict, side: str | None = None) -> None:
        """Draw the focus curve of a JSON report (``SimulationResult.to_dict()``)."""
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        from fusplan.figures import focus_figure

        figure = focus_figure(document, side=side)
        figure.set_size_inches(8, 3.2)
        canvas = FigureCanvasQTAgg(figure)
        canvas.setMinimumHeight(220)
        if self.canvas is not None:
            self.layout_.removeWidget(self.canvas)
            self.canvas.deleteLater()
        self.canvas = canvas
        self.layout_.addWidget(canvas)
        axes = figure.axes[0]
        self.cursor = axes.axvline(axes.get_xlim()[0], color="#1f77b4", lw=1.2)
        canvas.draw_idle()

    def set_time(self, time_s: float) -> None:
        """Move the cursor line to ``time_s``."""
        if self.cursor is not None:
            self.cursor.set_xdata([time_s, time_s])
            self.canvas.draw_idle()
