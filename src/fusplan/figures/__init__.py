"""Teaching figures of a planned procedure: focus curve, stage slices, animation.

Every function takes plain data (the JSON report of a simulation, arrays on the
planning :class:`~fusplan.grid.Grid`, planes of a scan resampled in world
coordinates) and returns a matplotlib Figure, or writes a GIF. matplotlib is
imported inside the functions with the Agg backend, so importing this module is
cheap and needs no display.

One module per kind of figure: :mod:`.focus` (focus curve, dose and stages over time),
:mod:`.planes` (the three planes through the target), :mod:`.slices` (lesion and
stage slice figures), :mod:`.animation` (the GIF), :mod:`.focal` (the focal spot of a
heat source); :mod:`.style` holds the shared colours. Plane conventions are described
in :mod:`fusplan.figures.planes`.
"""
from .animation import animation_times, write_animation
from .focal import focal_figure
from .focus import cumulative_dose, focus_curve, focus_figure, sonication_windows, stage_at, stage_peaks
from .planes import AXIS_LETTERS, PLANES, Plane, field_planes, label_plane_axes, plane_grid, scan_planes
from .slices import isotherm_levels, lesion_figure, stage_slices_figure
from .style import DOSE_COLOURS, OVERLAY_RISE_C, STAGE_COLOURS

__all__ = [
    "AXIS_LETTERS", "DOSE_COLOURS", "OVERLAY_RISE_C", "PLANES", "STAGE_COLOURS", "Plane", "animation_times",
    "cumulative_dose", "field_planes", "focal_figure", "focus_curve", "focus_figure", "isotherm_levels",
    "label_plane_axes", "lesion_figure", "plane_grid", "scan_planes", "sonication_windows", "stage_at",
    "stage_peaks", "stage_slices_figure", "write_animation",
]
