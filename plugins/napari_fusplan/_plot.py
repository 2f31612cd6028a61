"""Focus temperature and dose versus time, one panel per side, as a Qt canvas for a napari dock."""
from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QWidget


class FocusPlot(QWidget):
    """:func:`fusplan.figures.focus_figure` (the ``fusplan demo`` plot) per side, with a time cursor.

    Each panel shows the temperature of that side's hottest point against time with the
    stages shaded and the accumulated CEM43 dose at the focus on a log axis. The cursor
    is blitted over a saved background, so moving the time slider does not redraw the
    figure.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.canvases: list = []
        self.cursors: list = []
        self._backgrounds: dict = {}

    def show_result(self, document: dict, sides) -> None:
        """Draw the focus curves of a JSON report (``SimulationResult.to_dict()``) for ``sides``."""
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        from fusplan.figures import focus_figure
        from fusplan.results import regions_from_report
        from fusplan.timeline import Timeline

        self.clear()
        for side in sides:
            thresholds = [region.threshold_cem43 for region in regions_from_report(document, side)]
            figure = focus_figure(Timeline.from_report(document, side), thresholds,
                                  title=f"{side} side" if side else "phantom",
                                  annotate_peaks=False)  # the Results tab lists the peaks; the dock is small
            figure.set_size_inches(8 / max(len(sides), 1) + 2, 3.6)
            canvas = FigureCanvasQTAgg(figure)
            canvas.setMinimumHeight(260)
            self.layout_.addWidget(canvas)
            axes = figure.axes[0]
            cursor = axes.axvline(axes.get_xlim()[0], color="#1f77b4", lw=1.2, animated=True)
            canvas.mpl_connect("draw_event", lambda _, canvas=canvas, cursor=cursor: self._saved(canvas, cursor))
            self.cursors.append(cursor)
            self.canvases.append(canvas)
            canvas.draw_idle()

    def _saved(self, canvas, cursor) -> None:
        self._backgrounds[id(canvas)] = canvas.copy_from_bbox(canvas.figure.bbox)
        cursor.axes.draw_artist(cursor)

    def clear(self) -> None:
        """No result: no curves."""
        for canvas in self.canvases:
            self.layout_.removeWidget(canvas)
            canvas.deleteLater()
        self.canvases, self.cursors, self._backgrounds = [], [], {}

    def set_time(self, time_s: float) -> None:
        """Move the cursor lines to ``time_s``."""
        for canvas, cursor in zip(self.canvases, self.cursors):
            cursor.set_xdata([time_s, time_s])
            background = self._backgrounds.get(id(canvas))
            if background is None:
                canvas.draw_idle()
                continue
            canvas.restore_region(background)
            cursor.axes.draw_artist(cursor)
            canvas.blit(canvas.figure.bbox)
