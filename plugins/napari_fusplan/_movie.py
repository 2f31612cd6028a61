"""Qt-free display data of a simulation: lazy temperature movie, lesion over time, dose.

Display values are the model's values: maps are cropped to the region that ever
heats, and shown on the simulation grid itself with its affine, or - when that grid
is oblique to the world axes (napari slices 2D views of such layers inexactly) -
sampled *nearest* onto a RAS grid of the same spacing, so every displayed voxel holds
one model voxel's value (no smoothing of the peak).

Temperature frames are computed on demand (:class:`LazyMovie`, which napari slices
like an array), so a simulation is on screen as soon as the library returns. The
lesion layer follows time: frame ``k`` shows the region whose dose accumulated up to
frame ``k``'s time reaches each threshold (:func:`lesion_timeline`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fusplan import threshold_styles
from fusplan import Timeline
from fusplan import resample

from ._layers import is_oblique, mark, world_aligned_box
from ._reader import AXIS_LABELS

#: World axes of a time-resolved layer: frame index (the overlay shows its time), then RAS mm.
MOVIE_AXIS_LABELS = ("frame", *AXIS_LABELS)

#: Frames of the temperature movie, as `fusplan demo`'s animation (plus one at every sonication's peak).
MOVIE_FRAMES = 90

def movie_times(timeline: Timeline, n_frames: int = MOVIE_FRAMES) -> np.ndarray:
    """Frame times (s): :func:`fusplan.figures.animation_times` plus every stage's peak."""
    from fusplan import animation_times

    peaks = [peak.time_s for peak in timeline.stage_peaks()]
    return np.unique(np.concatenate([animation_times(timeline, n_frames), peaks]))


def time_label(document: dict, time_s: float, sides) -> str:
    """Clock, stage and focus temperature at ``time_s`` for every side (the viewer's text overlay)."""
    from fusplan import formatting as fmt

    parts = []
    for side in sides:
        timeline = Timeline.from_report(document, side)
        focus_c = float(np.interp(time_s, timeline.focus.time_s, timeline.focus.temperature_c))
        name = f"{side}: " if side else ""
        parts.append(f"{name}{timeline.stage_at(time_s)}, focus {fmt.temperature(focus_c)} °C")
    return f"t = {time_s:5.1f} s\n" + "\n".join(parts)


def temperature_limits(result, baseline_c: float) -> tuple[float, float]:
    """Colour range (°C): body temperature to the hottest sonication peak of any side."""
    peaks = [record.peak_temperature_c for part in result.sides.values() for record in part.sonications]
    return float(baseline_c), float(max([baseline_c + 1.0, *peaks]))


#: Below this focus temperature (°C) no voxel gains dose worth showing (rate <= 4**-4 CEM43/min).
DOSE_FLOOR_C = 39.0


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


class DisplayGrid:
    """Where the display of one side's maps lives: a crop of the model grid, maybe resliced nearest.

    ``show(volume)`` maps a model-grid volume to the display grid (``affine``, ``shape``).
    """

    def __init__(self, grid, peak_temperature_c: np.ndarray):
        self.box = crop_box(np.asarray(peak_temperature_c))
        shift = np.eye(4)
        shift[:3, 3] = [s.start for s in self.box]
        self.crop_affine = np.asarray(grid.affine, dtype=float) @ shift
        self.crop_shape = tuple(s.stop - s.start for s in self.box)
        self.resliced = is_oblique(self.crop_affine)
        self._nearest = None  # display voxel -> flat index of its nearest crop voxel (-1: outside the crop)
        if self.resliced:
            self.affine, self.shape = world_aligned_box(self.crop_affine, self.crop_shape, grid.spacing_mm)
            index = np.arange(np.prod(self.crop_shape), dtype=float).reshape(self.crop_shape)
            self._nearest = resample(index, self.crop_affine, self.shape, self.affine, order=0, cval=-1).astype(np.int64)
        else:
            self.affine, self.shape = self.crop_affine, self.crop_shape

    def show(self, volume: np.ndarray, cval: float = 0.0) -> np.ndarray:
        """A model-grid volume on the display grid."""
        return self.show_cropped(np.asarray(volume)[self.box], cval)

    def show_cropped(self, cropped: np.ndarray, cval: float = 0.0) -> np.ndarray:
        """A volume already cropped to ``box`` on the display grid (nearest voxel: the index map of
        :func:`fusplan.spatial.resample` ``order=0``, computed once)."""
        if not self.resliced:
            return cropped
        cropped = np.asarray(cropped)
        out = cropped.ravel()[np.maximum(self._nearest, 0)]
        out[self._nearest < 0] = cval
        return out


class LazyMovie:
    """A (time, x, y, z) array-like whose frames are computed when napari asks for them.

    napari accepts any object with ``shape``, ``dtype``, ``ndim`` and ``__getitem__``
    for a layer's data; it asks for one frame at a time. Computed (or :meth:`store`-d)
    frames are kept (the last ``keep`` of them, all by default: display crops are small).
    """

    def __init__(self, frame: Callable[[float], np.ndarray], times_s: np.ndarray, shape, dtype=np.float32,
                 keep: int | None = None):
        self._frame = frame
        self.times_s = np.asarray(times_s, dtype=float)
        self.shape = (len(self.times_s), *shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._cache: dict[int, np.ndarray] = {}
        self._keep = keep if keep is not None else len(self.times_s)

    def store(self, index: int, frame: np.ndarray) -> None:
        """Keep an already computed frame (e.g. from the lesion integration)."""
        self._cache[int(index)] = np.asarray(frame, dtype=self.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, index: int) -> np.ndarray:
        index = int(index) % self.shape[0]
        if index not in self._cache:
            if len(self._cache) >= self._keep:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = np.asarray(self._frame(float(self.times_s[index])), dtype=self.dtype)
        return self._cache[index]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            return self.frame(first)[rest]
        indices = np.arange(self.shape[0])[first]
        return np.stack([self.frame(i) for i in np.atleast_1d(indices)])[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        out = np.stack([self.frame(i) for i in range(self.shape[0])])
        return out if dtype is None else out.astype(dtype)


def lesion_timeline(side_result, display: DisplayGrid, times_s: np.ndarray, thresholds, focus_history,
                    progress=None, keep_frame: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Lesion regions at every frame time: ``(n_frames, *display.shape)`` int8, 0 or threshold rank.

    The dose of the cropped voxels is integrated from 0 over the frame times, exactly
    for a temperature linear between frames (:func:`fusplan.dose.cem43_step`), so the
    region at ``t`` is the one whose dose accumulated up to ``t`` reaches a threshold,
    and only voxels of the final region can be in it. The last frame is the library's
    final lesion (``dose_cem43 >= threshold``). Against steps of 0.25 s, this marks
    52 of 10,033 voxel-frames differently on the bundled CLT protocol (0.5 %, at most
    10 voxels in one frame) for 1/18 of the work. Steps while the focus (the hottest
    point, ``focus_history = (time_s, temperature_c)``) stays below
    :data:`DOSE_FLOOR_C` are skipped: their dose rate is below 0.004 CEM43 per minute.
    The cropped temperatures computed on the way go to ``keep_frame(frame_index, cropped)``.
    """
    from fusplan import cem43_step

    frames = np.asarray(times_s, dtype=float)
    nodes = np.unique(np.concatenate([[0.0], frames]))
    warm = np.interp(nodes, *focus_history) >= DOSE_FLOOR_C
    needed = warm | np.r_[warm[1:], False] | np.r_[False, warm[:-1]]  # both ends of every warm step
    box = display.box
    dose = np.zeros(display.crop_shape)
    shown = display.show_cropped(dose)
    out = np.zeros((len(frames), *display.shape), dtype=np.int8)
    final_masks = [display.show(np.asarray(side_result.dose_cem43) >= t) for t in thresholds]
    done, total = 0, int(needed.sum())
    previous, frame_index = None, 0
    for index in range(len(nodes)):
        current = None
        if needed[index]:  # one time per call: batches of times are slower per time on large grids
            current = np.asarray(side_result.temperature_at([nodes[index]]))[0][box]
            frame = int(np.searchsorted(frames, nodes[index]))
            if keep_frame is not None and frame < len(frames) and frames[frame] == nodes[index]:
                keep_frame(frame, current)
            done += 1
            if progress is not None:
                progress(done / total, "lesion over time")
        if current is not None and previous is not None:
            dose += cem43_step(previous, current, nodes[index] - nodes[index - 1])
            shown = display.show_cropped(dose)
        previous = current
        while frame_index < len(frames) and frames[frame_index] <= nodes[index] + 1e-9:
            for rank, (threshold, final) in enumerate(zip(thresholds, final_masks), start=1):
                region = final if frame_index == len(frames) - 1 else (shown >= threshold) & final
                out[frame_index][region] = rank
            frame_index += 1
    return out


def side_layers(result, side, times: np.ndarray) -> dict:
    """Layer data of one side of a simulation: temperature movie (lazy), dose; the lesion over time to come.

    Returns
    -------
    dict
        ``time_s`` (frame times), ``focus_mm`` (hottest voxel, world RAS), ``layers``
        (role -> layer data tuple, every one marked with its role) and ``lesion``:
        ``lesion(progress) -> (role, layer data)`` of the lesion over time, the slow part
        (:func:`lesion_timeline`), run apart so that the rest is on screen meanwhile.
    """
    part = result.sides[side]
    suffix = f" {side}" if side else ""
    baseline_c = float(result.protocol.tissue.baseline_temperature_c)
    display = DisplayGrid(part.grid, part.peak_temperature_c)
    thresholds = sorted(part.thresholds_cem43)
    frames = LazyMovie(lambda t: display.show(part.temperature_at([t])[0], cval=baseline_c), times, display.shape)
    time_axis = np.eye(5)  # frame index, then the display grid's affine
    time_axis[1:, 1:] = display.affine
    dose_log = display.show(np.log10(np.maximum(np.asarray(part.dose_cem43), 1e-3)), cval=-3.0)
    labels = [f">= {t:g} CEM43" for t in thresholds]
    peak = np.asarray(part.peak_temperature_c)
    hottest = np.unravel_index(int(np.argmax(peak)), peak.shape)
    sampling = "nearest model voxel" if display.resliced else "model grid"
    layers = {
        f"temperature{suffix}": (
            frames,
            {"name": f"temperature °C{suffix}", "affine": time_axis, "colormap": "inferno",
             "axis_labels": MOVIE_AXIS_LABELS,
             "contrast_limits": temperature_limits(result, baseline_c), "blending": "additive",
             "interpolation2d": "nearest", "rendering": "mip",
             "metadata": {"time_s": times.tolist(), "units": "°C", "sampling": sampling}},
            "image",
        ),
        f"dose{suffix}": (
            dose_log,
            {"name": f"dose log10(CEM43){suffix}", "affine": display.affine, "colormap": "magma",
             "axis_labels": AXIS_LABELS, "contrast_limits": (0.0, 3.0), "blending": "additive", "visible": False,
             "interpolation2d": "nearest", "metadata": {"units": "log10 CEM43 min", "sampling": sampling}},
            "image",
        ),
    }

    def lesion(progress=None) -> tuple[str, tuple]:
        regions = lesion_timeline(part, display, times, thresholds, (part.focus_time_s, part.focus_temperature_c),
                                  progress,
                                  lambda index, cropped: frames.store(index, display.show_cropped(cropped, baseline_c)))
        kwargs = {"name": f"lesion CEM43 so far{suffix}", "affine": time_axis, "opacity": 0.9,
                  "blending": "translucent", "axis_labels": MOVIE_AXIS_LABELS,
                  "features": {"index": list(range(len(thresholds) + 1)), "region": ["", *labels]},
                  "colormap": {None: "transparent", 0: "transparent",
                               **{i + 1: style.colour for i, style in enumerate(threshold_styles(thresholds))}}}
        return f"lesion{suffix}", mark((regions, kwargs, "labels"), f"lesion{suffix}")

    return {"side": side, "time_s": times, "focus_mm": part.grid.index_to_world(np.asarray(hottest)),
            "layers": {role: mark(data, role) for role, data in layers.items()}, "lesion": lesion}


def simulation_layers(result) -> list[dict]:
    """:func:`side_layers` for every side of ``result``."""
    sides = list(result.sides)
    times = np.unique(np.concatenate([movie_times(result.timeline(side)) for side in sides]))  # one time axis
    return [side_layers(result, side, times) for side in sides]


def lesion_layers(movies: list[dict], progress=None) -> dict[str, tuple]:
    """Role -> layer data of every side's lesion over time (``progress(fraction, message)``)."""
    out = {}
    for number, movie in enumerate(movies):
        def report(fraction, message, number=number, side=movie["side"]):
            if progress is not None:
                progress((number + fraction) / len(movies), f"{message} {side}" if side else message)
        role, data = movie["lesion"](report)
        out[role] = data
    return out
