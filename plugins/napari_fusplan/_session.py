"""Qt-free glue between fusplan results and napari layers, tables and teaching text.

Everything here converts what the library returns (``TargetingResult``,
``SimulationResult`` and its ``to_dict()``) into layer-data tuples and plain rows.
No planning happens here: targets, temperatures, doses and lesions all come from
the library, exactly as the command line gets them.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from fusplan.grid import Grid
from fusplan.io import Scan, corners_world_mm, resample, scan_from_array

from ._reader import AXIS_LABELS

#: World axes of a temperature movie: frame index, then RAS mm.
MOVIE_AXIS_LABELS = ("frame", *AXIS_LABELS)

#: Fixed colour scale of the temperature layers, degrees C.
TEMPERATURE_LIMITS_C = (37.0, 60.0)


# ----------------------------------------------------------------------------- scan


def scan_from_layer(layer) -> Scan:
    """The :class:`~fusplan.io.Scan` an Image layer shows, with its world RAS mm affine.

    A layer read by this plugin keeps the file path in its metadata and is reloaded
    with :func:`fusplan.io.load_scan` (same data, same affine, same validation as the
    CLI); any other 3D image layer is used with its data -> world transform.
    """
    from fusplan.io import load_scan

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
    return (data, kwargs, "image")


# ------------------------------------------------------------------------ targeting


def points_layers(found) -> list[tuple]:
    """AC/PC/MCP and the target(s) as Points layers in world RAS mm (identity transform)."""
    names = list(found.landmarks)
    landmarks = np.array([found.landmarks[n] for n in names], dtype=float)
    text = {"string": "{name}", "color": "white", "size": 10, "anchor": "center", "translation": (0.0, 3.0, 0.0)}
    landmark_layer = (
        landmarks,
        {"name": "AC-PC landmarks", "features": {"name": names}, "text": text, "size": 2.5,
         "face_color": "#4cc9f0", "border_color": "white", "symbol": "diamond", "projection_mode": "all",
         "axis_labels": AXIS_LABELS},
        "points",
    )
    labels = [target_label(t) for t in found.targets]
    targets = np.array([np.asarray(t.ras_mm, dtype=float) for t in found.targets])
    target_layer = (
        targets,
        {"name": "targets", "features": {"name": labels}, "text": {**text, "color": "#ffd166"}, "size": 3.0,
         "face_color": "#ffd166", "border_color": "#ffd166", "symbol": "ring", "projection_mode": "all",
         "axis_labels": AXIS_LABELS},
        "points",
    )
    return [landmark_layer, target_layer]


def target_label(target) -> str:
    """``"CLp left"``."""
    return f"{target.name} {target.side}" if target.side else str(target.name)


def nuclei_grid(found, spacing_mm: float = 0.5, margin_mm: float = 15.0) -> Grid:
    """A world-axis-aligned box around the target(s) for the nuclei Labels layer."""
    targets = np.array([np.asarray(t.ras_mm, dtype=float) for t in found.targets])
    spread_mm = float(np.ptp(targets, axis=0).max()) if len(targets) > 1 else 0.0
    return Grid.centred(targets.mean(axis=0), extent_mm=spread_mm + 2 * margin_mm, spacing_mm=spacing_mm)


def nuclei_layer(found) -> tuple:
    """Thalamic nuclei near the target(s) as a Labels layer, named on hover (``features``)."""
    grid = nuclei_grid(found)
    labels = np.asarray(found.labels_on_grid(grid))
    names, hemispheres = found.label_names, found.label_hemispheres
    present = sorted(int(v) for v in np.unique(labels) if v != 0)
    features = {"index": [0, *present], "nucleus": ["", *[str(names.get(v, v)) for v in present]],
                "hemisphere": ["", *[str(hemispheres.get(v, "")) for v in present]]}
    kwargs = {"name": f"nuclei ({found.atlas})", "affine": grid.affine, "features": features, "opacity": 0.45,
              "blending": "translucent", "axis_labels": AXIS_LABELS}
    return (labels.astype(np.int32), kwargs, "labels")


def move_target(found, index: int, ras_mm: Sequence[float]):
    """A copy of ``found`` whose target ``index`` sits at ``ras_mm`` (its ``acpc_mm`` follows)."""
    ras_mm = np.asarray(ras_mm, dtype=float)
    targets = list(found.targets)
    targets[index] = dataclasses.replace(targets[index], ras_mm=ras_mm, acpc_mm=np.asarray(found.frame.to_acpc(ras_mm)))
    return dataclasses.replace(found, targets=targets)


# ----------------------------------------------------------------------- simulation

#: Frames of the temperature movie (plus one at the peak of each stage).
MOVIE_FRAMES = 120


def movie_times(document: dict, side: str | None = None, n_frames: int = MOVIE_FRAMES) -> np.ndarray:
    """Frame times (s): :func:`fusplan.figures.animation_times` plus each stage's peak."""
    from fusplan.figures import animation_times, stage_peaks

    peaks = [peak["time_s"] for peak in stage_peaks(document, side)]
    return np.unique(np.concatenate([animation_times(document, n_frames, side), peaks]))


def time_label(document: dict, time_s: float, side: str | None = None) -> str:
    """Clock, stage and focus temperature at ``time_s`` (the viewer's text overlay)."""
    from fusplan.figures import focus_curve, stage_at

    time_axis, temperature_c = focus_curve(document, side)
    focus_c = float(np.interp(time_s, time_axis, temperature_c))
    return f"t = {time_s:5.1f} s   {stage_at(document, time_s, side)}   focus {focus_c:.1f} °C"


def crop_box(peak_temperature_c: np.ndarray, above_c: float = 38.0, margin: int = 3) -> tuple[slice, slice, slice]:
    """Index box of the region that ever rises above ``above_c``, plus a margin (display only)."""
    hot = np.argwhere(peak_temperature_c > above_c)
    if hot.size == 0:
        centre = np.asarray(peak_temperature_c.shape) // 2
        low, high = centre - margin, centre + margin + 1
    else:
        low, high = hot.min(axis=0) - margin, hot.max(axis=0) + margin + 1
    low = np.maximum(low, 0)
    high = np.minimum(high, peak_temperature_c.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def cropped_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Affine of the sub-block ``box`` of a grid with ``affine``."""
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    return np.asarray(affine, dtype=float) @ shift


def world_aligned_box(affine: np.ndarray, shape, spacing_mm: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A RAS-aligned grid of ``spacing_mm`` voxels covering the box ``(affine, shape)``.

    napari slices a 2D view exactly only for layers whose axes follow the world axes;
    maps on the (AC-PC aligned) planning grid are resampled onto this grid for display.
    """
    world = corners_world_mm(affine, shape)
    low, high = world.min(axis=0), world.max(axis=0)
    out_shape = tuple(int(n) for n in np.floor((high - low) / spacing_mm + 1e-6) + 1)
    out = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    out[:3, 3] = low
    return out, out_shape


def time_affine(affine: np.ndarray) -> np.ndarray:
    """5x5 affine of a (frame, i, j, k) movie: frames unscaled, space by ``affine``."""
    out = np.eye(5)
    out[1:, 1:] = affine
    return out


# --------------------------------------------------------------------------- tables


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Column names (every scalar key, in first-seen order) and formatted cells of JSON rows."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k, v in row.items() if k not in columns and not isinstance(v, (dict, list)))
    return columns, [[_fmt(row.get(c)) for c in columns] for row in rows]


def nuclei_rows(document: dict) -> list[dict]:
    """One row per lesion entry and nucleus: side, threshold, nucleus, fractions."""
    rows = []
    for lesion in document.get("lesions", []):
        for nucleus, fractions in (lesion.get("nuclei") or {}).items():
            rows.append({"side": lesion.get("side"), "threshold_cem43": lesion["threshold_cem43"],
                         "nucleus": nucleus, **fractions})
    return rows


# ------------------------------------------------------------------------- teaching

_TEACHING = {
    "alignment": (
        "Alignment: {sonications} at {power} reached {peak}. The clinician checks on MR "
        "thermometry that the hot spot sits on the planned target in all three planes and corrects "
        "the focus if it is off; the dose stays far below damage ({dose})."
    ),
    "verification": (
        "Verification: {sonications} at {power} reached {peak}, reversible heating. The clinician "
        "re-checks the position and asks the patient about effects (pain relief, paraesthesia, "
        "side effects) before any permanent lesion is made ({dose})."
    ),
    "treatment": (
        "Treatment: {sonications} at up to {power} reached up to {peak}. The clinician watches the "
        "peak temperature and the accumulated dose contours; here the 240 CEM43 lesion measures {lesion}."
    ),
}


def teaching_steps(document: dict, side: str | None = None) -> list[dict]:
    """One step per stage present: title, time of its peak and a text with this simulation's numbers.

    Peaks, windows and the focus dose come from :mod:`fusplan.figures` (the same
    timeline as ``fusplan demo``).
    """
    from fusplan.figures import cumulative_dose, focus_curve, sonication_windows, stage_peaks

    windows = sonication_windows(document, side)
    time_s, temperature_c = focus_curve(document, side)
    dose = cumulative_dose(time_s, temperature_c)
    steps = []
    for peak in stage_peaks(document, side):
        stage = peak["stage"]
        members = [w for w in windows if w["stage"] == stage]
        hottest = next(w for w in members if w["index"] == peak["sonication"])
        power_key = "power_w" if any(w.get("power_w") for w in members) else "absorbed_power_w"
        power = max(w.get(power_key) or 0.0 for w in members)
        power_text = f"{power:.3g} W" + (" absorbed" if power_key == "absorbed_power_w" else "")
        peak_text = f"{hottest['peak_temperature_c']:.1f} °C at the focus"
        if hottest.get("thermometry_peak_c") is not None:
            peak_text += f" ({hottest['thermometry_peak_c']:.1f} °C on thermometry)"
        end_s = max(w["end_s"] for w in members)
        dose_text = f"focus dose {float(np.interp(end_s, time_s, dose)):.3g} CEM43 by the end of this stage"
        text = _TEACHING.get(stage, "{sonications}: {peak}").format(
            sonications=_sonications_text([w["index"] for w in members]), power=power_text, peak=peak_text,
            dose=dose_text, lesion=_lesion_text(document, side))
        steps.append({"stage": stage, "title": stage.capitalize(), "time_s": float(peak["time_s"]), "text": text})
    return steps


def _sonications_text(indices: list[int]) -> str:
    return f"sonication {indices[0]}" if len(indices) == 1 else f"sonications {indices[0]}-{indices[-1]}"


def _lesion_text(document: dict, side: str | None = None) -> str:
    lesions = [entry for entry in document.get("lesions", []) if float(entry["threshold_cem43"]) == 240.0
               and (side is None or entry.get("side") in (None, side))]
    if not lesions:
        return "nothing (no 240 CEM43 threshold in this protocol)"
    entry = lesions[0]
    if entry["volume_mm3"] <= 0:
        return "nothing: no tissue reached 240 CEM43"
    text = (f"{entry['lr_mm']:.1f} x {entry['ap_mm']:.1f} x {entry['si_mm']:.1f} mm (LR x AP x SI), "
            f"{entry['volume_mm3']:.1f} mm3")
    nuclei = entry.get("nuclei") or {}
    if nuclei:
        name, fractions = max(nuclei.items(), key=lambda item: item[1]["fraction_of_lesion"])
        text += f", {100 * fractions['fraction_of_lesion']:.0f}% of it in {name}"
    return text



# ------------------------------------------------------------------- simulation layers

#: Number of time points per ``temperature_at`` call (bounds the memory of one call).
FRAMES_PER_CALL = 16


def simulation_movies(result, progress=None) -> list[dict]:
    """Layer data of a simulation, per side: temperature movie, dose, lesion regions.

    For display only, maps are cropped to the box where the peak temperature ever
    exceeds 38 C and resampled (linear; nearest for lesion regions) onto a RAS-aligned
    grid of the planning spacing that covers it (:func:`world_aligned_box`), so 2D
    slices in napari are exact; every layer's affine places it in world RAS mm.

    Returns
    -------
    list of dict
        One per side: ``side``, ``time_s`` (frame times), ``focus_mm`` (hottest voxel, world RAS) and ``layers`` (key -> layer data tuple).
    """
    document = result.to_dict()
    movies = []
    for number, (side, part) in enumerate(result.sides.items()):
        suffix = f" {side}" if side else ""
        times = movie_times(document, side)
        peak_c, dose = np.asarray(part.peak_temperature_c), np.asarray(part.dose_cem43)
        box = crop_box(peak_c)
        crop_affine = cropped_affine(part.grid.affine, box)
        crop_shape = tuple(b.stop - b.start for b in box)
        affine, shape = world_aligned_box(crop_affine, crop_shape, part.grid.spacing_mm)

        def display(volume, order=1, cval=0.0):
            return resample(np.asarray(volume)[box], crop_affine, shape, affine, order=order, cval=cval)

        baseline_c = float(result.protocol.tissue.baseline_temperature_c)
        frames = np.empty((len(times), *shape), dtype=np.float32)
        for start in range(0, len(times), FRAMES_PER_CALL):
            chunk = np.asarray(result.temperature_at(times[start:start + FRAMES_PER_CALL], side=side))
            for offset, volume in enumerate(chunk):
                frames[start + offset] = display(volume, cval=baseline_c)
            if progress is not None:
                done = min(start + FRAMES_PER_CALL, len(times)) / len(times)
                progress((number + done) / len(result.sides), f"temperature frames{suffix}")
        hottest = np.unravel_index(int(np.argmax(peak_c)), peak_c.shape)
        masks = part.lesion_masks
        thresholds = sorted(masks)
        lesion = np.zeros(shape, dtype=np.int32)
        for level, threshold in enumerate(thresholds, start=1):  # nested regions: higher dose wins
            lesion[display(masks[threshold].astype(np.uint8), order=0) > 0] = level
        names = [f">= {t:g} CEM43" for t in thresholds]
        colours = ["#ffd166", "#ef476f", "#8338ec", "#06d6a0"]
        layers = {
            f"temperature{suffix}": (
                frames,
                {"name": f"temperature (°C){suffix}", "affine": time_affine(affine), "colormap": "inferno",
                 "axis_labels": MOVIE_AXIS_LABELS,
                 "contrast_limits": TEMPERATURE_LIMITS_C, "blending": "additive", "interpolation2d": "linear",
                 "metadata": {"time_s": times.tolist(), "units": "degrees C"}},
                "image",
            ),
            f"dose{suffix}": (
                display(np.log10(np.maximum(dose, 1e-3)), cval=-3.0),
                {"name": f"dose log10(CEM43){suffix}", "affine": affine, "colormap": "magma", "axis_labels": AXIS_LABELS,
                 "contrast_limits": (0.0, 3.0), "blending": "additive", "visible": False},
                "image",
            ),
            f"lesion{suffix}": (
                lesion,
                {"name": f"lesion CEM43{suffix}", "affine": affine, "opacity": 0.9, "blending": "translucent",
                 "axis_labels": AXIS_LABELS,
                 "features": {"index": list(range(len(thresholds) + 1)), "region": ["", *names]},
                 "colormap": {None: "transparent", 0: "transparent",
                              **{i + 1: colours[i % len(colours)] for i in range(len(thresholds))}}},
                "labels",
            ),
        }
        movies.append({"side": side, "time_s": times,
                       "focus_mm": part.grid.index_to_world(np.asarray(hottest)), "layers": layers})
    return movies
