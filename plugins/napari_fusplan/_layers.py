"""Qt-free layer data of a scan and its targets: points, nuclei, the 2D reslice, own-layer marks.

Everything here converts what the library returns (:class:`~fusplan.io.Scan`,
``TargetingResult``) into napari layer-data tuples ``(data, kwargs, kind)`` placed
in world RAS mm. No planning happens here.

Every layer the plugin adds carries ``metadata["fusplan_role"]`` (see :func:`mark`):
the scan list skips such layers. An ``id()`` check cannot do this job, because a
widget docked through ``viewer.window.add_plugin_dock_widget`` sees napari's public
proxies of the layers, never the layer objects themselves.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fusplan import Grid
from fusplan import Scan, corners_world_mm, resample, scan_from_array
from fusplan import CLP_TARGET

from ._reader import AXIS_LABELS

#: Metadata key naming the job of a layer this plugin added (``"nuclei"``, ``"temperature left"``...).
ROLE_KEY = "fusplan_role"

#: Colour of the target rings (no lesion region uses it).
TARGET_COLOUR = "#ffd166"
LANDMARK_COLOUR = "#4cc9f0"


def mark(layer_data: tuple, role: str) -> tuple:
    """``layer_data`` with ``metadata[ROLE_KEY] = role`` added to its keyword arguments."""
    data, kwargs, kind = layer_data
    metadata = {**kwargs.get("metadata", {}), ROLE_KEY: role}
    return data, {**kwargs, "metadata": metadata}, kind


def role_of(layer) -> str | None:
    """The role this plugin gave ``layer`` (None for a user's layer)."""
    return (getattr(layer, "metadata", None) or {}).get(ROLE_KEY)


def is_scan_candidate(layer) -> bool:
    """A user's 3D grey-level image (not one of this plugin's layers)."""
    from napari.layers import Image

    return isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb and role_of(layer) is None


def add_layer(viewer, layer_data: tuple):
    """Add a marked layer to ``viewer``, replacing the one with the same role."""
    data, kwargs, kind = layer_data
    role = kwargs["metadata"][ROLE_KEY]
    remove_layers(viewer, lambda other: other == role)
    return getattr(viewer, f"add_{kind}")(data, **kwargs)


def remove_layers(viewer, which) -> None:
    """Remove the plugin's layers whose role passes ``which(role)`` (by index: proxies compare badly)."""
    for index in reversed(range(len(viewer.layers))):
        role = role_of(viewer.layers[index])
        if role is not None and which(role):
            viewer.layers.pop(index)


def own_layer(viewer, role: str):
    """The plugin's layer with ``role``, or None."""
    return next((layer for layer in viewer.layers if role_of(layer) == role), None)


# ----------------------------------------------------------------------------- scan


def scan_from_layer(layer) -> Scan:
    """The :class:`~fusplan.io.Scan` an Image layer shows, with its world RAS mm affine.

    A layer read by this plugin keeps the file path in its metadata and is reloaded
    with :func:`fusplan.io.load_scan` (same data, same affine, same validation as the
    CLI); any other 3D image layer is used with its data -> world transform.
    """
    from fusplan import load_scan

    path = (layer.metadata or {}).get("fusplan_path")
    if path:
        scan = load_scan(path)
        if scan.shape == tuple(layer.data.shape) and np.allclose(scan.affine, data_to_world_matrix(layer)):
            return scan
    return scan_from_array(np.asarray(layer.data), data_to_world_matrix(layer))


def data_to_world_matrix(layer) -> np.ndarray:
    """4x4 voxel -> world matrix of a 3D layer (its ``affine`` after scale/translate/rotate/shear)."""
    from napari.utils.transforms import Affine

    physical = Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear)
    return layer.affine.affine_matrix @ physical.affine_matrix


#: Largest number of voxels of a display reslice of an oblique scan.
MAX_RESLICE_VOXELS = 256**3


def is_oblique(affine: np.ndarray, tolerance_deg: float = 0.5) -> bool:
    """True if the storage axes of ``affine`` are not (signed) world axes."""
    directions = np.asarray(affine, dtype=float)[:3, :3]
    directions = directions / np.linalg.norm(directions, axis=0)
    return bool(np.degrees(np.arccos(np.clip(np.abs(directions).max(axis=0), 0, 1))).max() > tolerance_deg)


def world_aligned_box(affine: np.ndarray, shape, spacing_mm: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A RAS-aligned grid of ``spacing_mm`` voxels covering the box ``(affine, shape)``.

    napari slices a 2D view exactly only for layers whose axes follow the world axes.
    """
    world = corners_world_mm(affine, shape)
    low, high = world.min(axis=0), world.max(axis=0)
    out_shape = tuple(int(n) for n in np.floor((high - low) / spacing_mm + 1e-6) + 1)
    out = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    out[:3, 3] = low
    return out, out_shape


def resliced_scan_layer(scan: Scan, name: str) -> tuple | None:
    """A RAS-aligned display copy of an oblique scan (None if the scan is not oblique).

    napari draws 2D slices of oblique layers without their out-of-plane rotation, so an
    oblique scan would not line up with the other layers in 2D (3D is exact). The copy
    is resampled (linear) onto a RAS grid of the scan's smallest voxel size covering it.
    """
    if not is_oblique(scan.affine):
        return None
    shape = np.asarray(scan.shape)
    spacing_mm = float(scan.spacing_mm.min())
    while True:
        affine, out_shape = world_aligned_box(scan.affine, shape, spacing_mm)
        if np.prod(out_shape, dtype=float) <= MAX_RESLICE_VOXELS:
            break
        spacing_mm *= 1.25
    data = resample(scan.data, scan.affine, out_shape, affine, order=1)
    low, high = np.percentile(data[::2, ::2, ::2], (0.5, 99.5))
    kwargs = {"name": f"{name} (RAS reslice for 2D)", "affine": affine, "colormap": "gray",
              "contrast_limits": (float(low), float(max(high, low + 1))), "axis_labels": AXIS_LABELS}
    return mark((data, kwargs, "image"), "reslice")


# ------------------------------------------------------------------------ targeting


def target_label(target) -> str:
    """``"CLp left"``."""
    return f"{target.name} {target.side}" if target.side else str(target.name)


def points_layers(found) -> list[tuple]:
    """AC/PC/MCP and the target(s) as Points layers in world RAS mm (identity transform)."""
    names = list(found.landmarks)
    landmarks = np.array([found.landmarks[n] for n in names], dtype=float)
    text = {"string": "{name}", "color": "white", "size": 10, "anchor": "center", "translation": (0.0, 3.0, 0.0)}
    landmark_layer = (
        landmarks,
        {"name": "AC-PC landmarks", "features": {"name": names}, "text": text, "size": 2.5,
         "face_color": LANDMARK_COLOUR, "border_color": "white", "symbol": "diamond", "projection_mode": "all",
         "axis_labels": AXIS_LABELS},
        "points",
    )
    targets = np.array([np.asarray(t.ras_mm, dtype=float) for t in found.targets])
    target_layer = (
        targets,
        {"name": "targets", "features": {"name": [target_label(t) for t in found.targets]},
         "text": {**text, "color": TARGET_COLOUR}, "size": 3.0, "face_color": TARGET_COLOUR,
         "border_color": TARGET_COLOUR, "symbol": "ring", "projection_mode": "all", "axis_labels": AXIS_LABELS},
        "points",
    )
    return [mark(landmark_layer, "landmarks"), mark(target_layer, "targets")]


def nuclei_layer(found, spacing_mm: float = 0.5, margin_mm: float = 15.0) -> tuple:
    """Thalamic nuclei near the target(s) as a Labels layer, named on hover (``features``).

    Drawn translucent and, in 3D, as see-through surfaces so a lesion inside stays visible.
    """
    targets = np.array([np.asarray(t.ras_mm, dtype=float) for t in found.targets])
    spread_mm = float(np.ptp(targets, axis=0).max()) if len(targets) > 1 else 0.0
    grid = Grid.centred(targets.mean(axis=0), extent_mm=spread_mm + 2 * margin_mm, spacing_mm=spacing_mm)
    labels = np.asarray(found.labels_on_grid(grid))
    names, hemispheres = found.label_names, found.label_hemispheres
    present = sorted(int(v) for v in np.unique(labels) if v != 0)
    features = {"index": [0, *present], "nucleus": ["", *[str(names.get(v, v)) for v in present]],
                "hemisphere": ["", *[str(hemispheres.get(v, "")) for v in present]]}
    kwargs = {"name": f"nuclei ({found.atlas})", "affine": grid.affine, "features": features, "opacity": 0.35,
              "blending": "translucent", "axis_labels": AXIS_LABELS}
    return mark((labels.astype(np.int32), kwargs, "labels"), "nuclei")


def move_target(found, index: int, ras_mm: Sequence[float]):
    """A copy of ``found`` whose target ``index`` sits at ``ras_mm`` (its ``acpc_mm`` follows)."""
    ras_mm = np.array(ras_mm, dtype=float)  # a copy: napari moves a dragged point's data in place
    targets = list(found.targets)
    targets[index] = dataclasses.replace(targets[index], ras_mm=ras_mm, acpc_mm=np.asarray(found.frame.to_acpc(ras_mm)))
    return dataclasses.replace(found, targets=targets)


def atlas_target_names(atlas_name: str) -> list[str]:
    """Target names the atlas offers: ``CLp`` first when it has a CL label, then its labels."""
    from fusplan import load_atlas

    names = sorted({label.abbreviation for label in load_atlas(atlas_name).label_table})
    return ([CLP_TARGET] if "CL" in names else []) + names


def check_target_name(atlas_name: str, target: str, sides: Sequence[str]) -> None:
    """Raise :class:`~fusplan.errors.FusplanInputError` unless ``atlas_name`` has ``target`` on ``sides``
    (:func:`fusplan.targeting.check_target`: cheap, so a typo fails before a registration of a minute)."""
    from fusplan import check_target

    check_target(atlas_name, target, sides)
