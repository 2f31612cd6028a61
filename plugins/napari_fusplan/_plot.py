"""Focus temperature and dose versus time, one panel per side, as a Qt canvas for a napari dock.

:func:`focus_panels` draws the figures (Qt-free, pyplot-free: a worker may call it);
:class:`FocusPlot` shows them with a time cursor.
"""
from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QWidget

#: Height of the dock's canvases (px): room for the peak labels above the curve and the legend below.
PANEL_HEIGHT_PX = 300
#: Font size (pt) of the dock's peak labels and legend.
SMALL_FONT_PT = 7
#: Head room above the curves for the three-line peak labels, as a fraction of the temperature axis.
PEAK_LABEL_ROOM = 0.6


def focus_panels(document: dict, sides) -> list:
    """:func:`fusplan.figures.focus_figure` per side, laid out for a short dock.

    The figure keeps its peak labels (true and thermometry peak, power) with room above
    the curves for them (the title goes: the y label names the side); the two y-axis
    labels are shortened so they fit beside panels ~100 px high (the long ones ran into
    each other), and the legend wraps onto two rows instead of running off both edges.
    """
    from fusplan import focus_figure
    from fusplan import regions_from_report
    from fusplan import Timeline

    figures = []
    for side in sides:
        thresholds = [region.threshold_cem43 for region in regions_from_report(document, side)]
        figure = focus_figure(Timeline.from_report(document, side), thresholds, annotate_peaks=True)
        temperature_ax, dose_ax = figure.axes[:2]
        temperature_ax.set_title("")  # the peak labels need the room; the y label names the side
        temperature_ax.set_ylabel(f"{side or 'phantom'}: focus (°C)")
        dose_ax.set_ylabel("dose\n(CEM43 min)")
        for text in temperature_ax.texts:
            text.set_fontsize(SMALL_FONT_PT)
        low, high = temperature_ax.get_ylim()
        temperature_ax.set_ylim(low, high + PEAK_LABEL_ROOM * (high - low))
        for legend in list(figure.legends):  # a legend lays out once: make it again, on 3 columns
            handles, labels = legend.legend_handles, [text.get_text() for text in legend.get_texts()]
            legend.remove()
            figure.legend(handles, labels, loc="outside lower center", fontsize=SMALL_FONT_PT, ncols=3,
                          frameon=False)
        figures.append(figure)
    return figures


class FocusPlot(QWidget):
    """The ``fusplan demo`` focus plot per side, with a time cursor.

    Each panel shows the temperature of that side's hottest point against time with the
    stages shaded and the peaks labelled, and the accumulated CEM43 dose at the focus on
    a log axis. The cursor is blitted over a saved background, so moving the time slider
    does not redraw the figure.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.canvases: list = []
        self.cursors: list = []
        self._backgrounds: dict = {}

    def show_figures(self, figures) -> None:
        """Show :func:`focus_panels` figures (replacing any shown)."""
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        self.clear()
        for figure in figures:
            canvas = FigureCanvasQTAgg(figure)
            canvas.setMinimumHeight(PANEL_HEIGHT_PX)
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
