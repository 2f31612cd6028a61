"""Camera and overlay helpers: axial view centred on a point, the time/position overlay, 3D looks."""
from __future__ import annotations

import numpy as np

from ._movie import time_label


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def axial(viewer, centre_mm=None, field_of_view_mm: float | None = None) -> None:
    """Axial slices, anterior up, subject's right on the right, centred on ``centre_mm`` (RAS mm).

    ``field_of_view_mm`` zooms so that about this many mm fill the canvas.
    """
    ndim = viewer.dims.ndim
    if ndim < 3:
        return
    viewer.dims.order = tuple(range(ndim - 3)) + (ndim - 1, ndim - 2, ndim - 3)
    camera(viewer).orientation2d = ("up", "right")
    if centre_mm is None:
        return
    for axis, value in zip(range(ndim - 3, ndim), centre_mm):
        viewer.dims.set_point(axis, float(value))
    if field_of_view_mm is not None:
        viewer.reset_view()
        extent = np.asarray(viewer.layers.extent.world)[:, -3:]
        camera(viewer).zoom = camera(viewer).zoom * float(np.ptp(extent[:, :2], axis=0).max()) / field_of_view_mm
    camera(viewer).center = (float(centre_mm[1]), float(centre_mm[0]))


#: Room around the foci in the 2D view of a result (mm): the lesion (2-5 mm across) fills a good part of it.
RESULT_MARGIN_MM, RESULT_MIN_FIELD_MM = 8.0, 20.0


def result_field_of_view_mm(foci_mm) -> float:
    """Field of view (mm) of the 2D view of a result: every focus plus :data:`RESULT_MARGIN_MM` around it.

    One side: 20 mm, so a 2.5 mm lesion is ~1/8 of the canvas (at 60 mm it was a few pixels).
    """
    foci = np.atleast_2d(np.asarray(foci_mm, dtype=float))
    spread = float(np.ptp(foci[:, :2], axis=0).max()) if len(foci) > 1 else 0.0
    return max(RESULT_MIN_FIELD_MM, spread + 2 * RESULT_MARGIN_MM)


def three_d(viewer, centre_mm=None, angles=(-20.0, 35.0, 120.0), zoom: float = 8.0) -> None:
    """3D display seen from the front-left-above, centred on ``centre_mm`` (RAS mm)."""
    viewer.dims.ndisplay = 3
    camera(viewer).angles = angles
    if centre_mm is not None:
        camera(viewer).center = tuple(float(v) for v in np.asarray(centre_mm)[::-1])  # displayed axes S, A, R
        camera(viewer).zoom = zoom


def slice_position_text(viewer) -> str:
    """The slice position of the 2D view in mm (napari's slider shows a step index)."""
    if viewer.dims.ndisplay != 2 or viewer.dims.ndim < 3:
        return ""
    axis = viewer.dims.order[0] if viewer.dims.ndim == 3 else viewer.dims.order[1]
    label = viewer.dims.axis_labels[axis]
    name = label.split(" ")[0]
    return f"\nslice {name} = {float(viewer.dims.point[axis]):.1f} mm"


def overlay_text(viewer, document: dict, time_s: float, sides) -> str:
    """Time, stage and focus temperature of every side, and the slice position in mm."""
    return time_label(document, time_s, sides) + slice_position_text(viewer)


def three_d_look(viewer, scan_layers, own_layers) -> None:
    """Readable 3D: the head as a faint see-through volume, nuclei as translucent surfaces, no skull.

    The skull layers (CT, element entry points) surround the target on every side, so
    in 3D they hide it whatever the camera angle: they are hidden (2D shows them). A grey
    MIP of a whole head at its 2D contrast is a white block in front of everything; an attenuated
    MIP at low opacity keeps its outline without hiding
    the lesion, and translucent nuclei do not cover it.
    """
    for layer in scan_layers:
        layer.rendering = "attenuated_mip"
        layer.attenuation = 0.05
        layer.opacity = 0.35
    for role, layer in own_layers:
        if role == "nuclei":
            layer.opacity = 0.2
            layer.blending = "translucent_no_depth"
        elif role.startswith("temperature"):
            layer.blending = "additive"
        elif role.startswith("skull"):  # the skull lies between the camera and the target: it would cover it
            layer.visible = False


def two_d_look(viewer, scan_layers, own_layers) -> None:
    """Undo :func:`three_d_look` for 2D slices."""
    for layer in scan_layers:
        layer.opacity = 1.0
    for role, layer in own_layers:
        if role == "nuclei":
            layer.opacity = 0.35
            layer.blending = "translucent"
        elif role.startswith("skull"):
            layer.visible = True
