"""Teaching figures of a planned procedure: focus curve, stage slices, animation.

Every function takes typed data (a :class:`fusplan.timeline.Timeline`, arrays on the
planning :class:`~fusplan.grid.Grid`, planes of a scan resampled in world
coordinates) and returns a matplotlib Figure, or writes a GIF. matplotlib is
imported inside the functions with the Agg backend, so importing this module is
cheap and needs no display.

One module per kind of figure: :mod:`.focus` (focus curve, dose and stages over time),
:mod:`.planes` (the three planes through the target), :mod:`.slices` (lesion and
stage slice figures), :mod:`.animation` (the GIF), :mod:`.focal` (the focal spot of a
heat source); :mod:`.style` holds the shared colours and the dose-contour drawing
(threshold colours and names: :mod:`fusplan.thresholds`). Plane conventions are
described in :mod:`fusplan.figures.planes`.
"""
from .animation import animation_times, write_animation
from .focal import focal_figure
from .focus import focus_figure
from .planes import AXIS_LETTERS, PLANES, Plane, field_planes, label_plane_axes, plane_grid, scan_planes
from .slices import isotherm_levels, lesion_figure, stage_slices_figure
from .style import OVERLAY_RISE_C, STAGE_COLOURS, dose_legend, draw_dose_contours

__all__ = [
    "AXIS_LETTERS", "OVERLAY_RISE_C", "PLANES", "STAGE_COLOURS", "Plane", "animation_times", "dose_legend",
    "draw_dose_contours", "field_planes", "focal_figure", "focus_figure", "isotherm_levels", "label_plane_axes",
    "lesion_figure", "plane_grid", "scan_planes", "stage_slices_figure", "write_animation",
]
