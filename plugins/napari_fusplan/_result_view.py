"""What the viewer shows of a simulation: its layers, the time overlay, the focus dock, 2D/3D, a preview.

:class:`ResultView` draws a :class:`._jobs.SimulationDisplay` (prepared off the GUI
thread), follows the time slider, turns the drawing into a marked preview while a
target is dragged (:mod:`._preview`) and clears it all when the result goes. The
planning widget decides *when*; this class only draws.
"""
from __future__ import annotations

import numpy as np

from . import _preview as preview
from . import _view as view
from ._layers import add_layer, is_scan_candidate, remove_layers, role_of

#: Roles (prefixes) of the layers of a result.
RESULT_ROLE_PREFIXES = ("temperature", "dose", "lesion", "skull")


class ResultView:
    """The drawing of one result (or of none) in ``viewer``."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.frame_times_s = np.zeros(0)
        self.sides: list = []
        self.document: dict | None = None  # the report drawn (None: no result, or a preview)
        self.focus_mm = None
        self.plot = self.plot_dock = None
        self.affines: dict = {}  # role -> affine of the layers a preview moves

    # ------------------------------------------------------------ drawing
    def draw(self, display, belongs_to: str) -> None:
        """Layers, focus dock and camera of a :class:`._jobs.SimulationDisplay` (its lesion comes later)."""
        movies = display.movies
        remove_layers(self.viewer, lambda role: role.startswith(RESULT_ROLE_PREFIXES))
        self.document, self.sides = display.document, [movie["side"] for movie in movies]
        self.frame_times_s = movies[0]["time_s"]
        for number, movie in enumerate(movies):
            for layer_data in movie["layers"].values():
                layer = add_layer(self.viewer, layer_data)
                if role_of(layer).startswith("temperature") and hasattr(layer, "colorbar"):
                    layer.colorbar.visible = number == 0
        for layer_data in display.skull:
            add_layer(self.viewer, layer_data)
        self._show_plot(display.figures, belongs_to)
        self.viewer.text_overlay.visible = True
        foci = np.array([movie["focus_mm"] for movie in movies], dtype=float)
        self.focus_mm = foci.mean(axis=0)
        view.axial(self.viewer, self.focus_mm, field_of_view_mm=view.result_field_of_view_mm(foci))
        self.affines = preview.base_affines(self.viewer)
        self.apply_look()  # in 3D, the look hides the new skull layers

    def draw_lesions(self, layers: dict) -> None:
        """The lesion over time of the drawn result (contours in 2D); the active layer stays the user's."""
        active = self.viewer.layers.selection.active
        for layer_data in layers.values():
            add_layer(self.viewer, layer_data).contour = 1
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active
        self.affines = preview.base_affines(self.viewer)
        self.apply_look()

    def _show_plot(self, figures, belongs_to: str) -> None:
        from ._plot import FocusPlot

        if self.plot is None:
            self.plot = FocusPlot()
            window = getattr(self.viewer, "window", None)
            if window is not None:
                self.plot_dock = window.add_dock_widget(self.plot, name="Focus temperature", area="bottom")
        self.plot.show_figures(figures)
        self.plot.setToolTip(f"Focus temperature and dose of {belongs_to}")
        if self.plot_dock is not None:
            self.plot_dock.show()

    def clear_plot(self) -> None:
        """No curves, and no empty dock keeping a third of the window."""
        if self.plot is not None:
            self.plot.clear()
        if self.plot_dock is not None:
            self.plot_dock.hide()

    def clear(self) -> None:
        """No result drawn: its layers, overlay and curves go."""
        remove_layers(self.viewer, lambda role: role.startswith(RESULT_ROLE_PREFIXES))
        self.frame_times_s, self.focus_mm, self.document = np.zeros(0), None, None
        self.viewer.text_overlay.text = ""
        self.clear_plot()

    # ------------------------------------------------------------ preview
    def start_preview(self) -> None:
        """The drawing becomes a preview: layers marked (the skull's removed), no curves, no time overlay."""
        preview.start_preview(self.viewer)
        self.document = None
        self.clear_plot()

    def move_preview(self, shifts_mm: dict) -> None:
        """Every side's layers moved by its ``shifts_mm`` (RAS mm); the overlay says it is a preview."""
        preview.move_preview(self.viewer, self.affines, shifts_mm)
        self.viewer.text_overlay.text = preview.preview_text(shifts_mm)

    # ------------------------------------------------------------ time
    def on_dims(self, *_) -> None:
        """The overlay and the dock's cursor follow the time slider."""
        if self.document is None or not len(self.frame_times_s):
            return
        time_s = float(self.frame_times_s[self.current_frame()])
        self.viewer.text_overlay.text = view.overlay_text(self.viewer, self.document, time_s, self.sides)
        if self.plot is not None:
            self.plot.set_time(time_s)

    def current_frame(self) -> int:
        """Index of the frame the time slider shows."""
        if self.viewer.dims.ndim < 4 or not len(self.frame_times_s):
            return 0
        return int(np.clip(self.viewer.dims.current_step[0], 0, len(self.frame_times_s) - 1))

    def set_time(self, time_s: float) -> None:
        """Move the time slider to the frame nearest ``time_s``."""
        if len(self.frame_times_s):
            self.viewer.dims.set_current_step(0, int(np.argmin(np.abs(self.frame_times_s - time_s))))
            self.on_dims()

    # ------------------------------------------------------------ 2D / 3D
    def apply_look(self, *_) -> None:
        """The 2D or 3D look (:func:`._view.three_d_look`) of every layer, for the current display."""
        scans = [layer for layer in self.viewer.layers if is_scan_candidate(layer)]
        own = [(role_of(layer), layer) for layer in self.viewer.layers if role_of(layer) is not None]
        look = view.three_d_look if self.viewer.dims.ndisplay == 3 else view.two_d_look
        look(self.viewer, scans, own)
        self.on_dims()  # the overlay names the slice in 2D only
