"""Instant preview while a target is dragged: the last result's maps move with it (no Qt).

Near the focus the plan is linear and translation invariant, so a target moved by a
few mm carries its temperature, dose and lesion with it (:class:`._model.Preview`).
Moving a layer is a change of its affine, not of its data: an update costs what
napari needs to redraw, far below a re-plan. Every layer of the previewed result is
renamed ``"... (PREVIEW)"`` (the skull's, traced for the old focus, also hidden) and the
overlay says so until the re-plan replaces them.
"""
from __future__ import annotations

import numpy as np

from ._layers import own_layer, role_of

#: Suffix of a previewed layer's name.
PREVIEW_SUFFIX = " (PREVIEW)"
#: Roles of the layers that move with their side's target; the skull's (traced for the old focus) are hidden.
MOVING_ROLES, HIDDEN_ROLES = ("temperature", "dose", "lesion"), ("skull",)


def shifted_affine(affine: np.ndarray, shift_mm) -> np.ndarray:
    """``affine`` (4x4, or 5x5 with a leading time axis) followed by a translation of ``shift_mm`` (RAS mm)."""
    out = np.array(affine, dtype=float)
    out[-4:-1, -1] += np.asarray(shift_mm, dtype=float)
    return out


def side_of(role: str) -> str | None:
    """``"temperature left"`` -> ``"left"``; ``"temperature"`` (the phantom) -> None."""
    return role.partition(" ")[2] or None


def base_affines(viewer) -> dict[str, np.ndarray]:
    """Role -> affine of the moving layers of a result just drawn (what a preview shifts from)."""
    return {role_of(layer): np.asarray(layer.affine.affine_matrix, dtype=float) for layer in viewer.layers
            if (role_of(layer) or "").startswith(MOVING_ROLES)}


def start_preview(viewer) -> None:
    """Mark the result layers as a preview: the moving ones renamed, the skull ones hidden (cheaper than
    removing them: the first move of a drag stays quick; the re-plan replaces them)."""
    for layer in viewer.layers:
        role = role_of(layer) or ""
        if role.startswith(HIDDEN_ROLES):
            layer.visible = False
        if role.startswith(MOVING_ROLES + HIDDEN_ROLES) and not layer.name.endswith(PREVIEW_SUFFIX):
            layer.name = layer.name + PREVIEW_SUFFIX


def move_preview(viewer, affines: dict[str, np.ndarray], shifts_mm: dict) -> None:
    """Move every side's layers by that side's ``shifts_mm`` (RAS mm) from their ``affines``."""
    for role, affine in affines.items():
        layer, shift = own_layer(viewer, role), shifts_mm.get(side_of(role))
        if layer is not None and shift is not None:
            layer.affine = shifted_affine(affine, shift)


def preview_text(shifts_mm: dict) -> str:
    """The overlay of a preview: what it is and how far each side moved."""
    moved = ", ".join(f"{side + ' ' if side else ''}{np.linalg.norm(shift):.1f} mm" for side, shift in shifts_mm.items())
    return f"PREVIEW: the last result moved with the target ({moved})\nnot a plan: re-planning at the new position"
