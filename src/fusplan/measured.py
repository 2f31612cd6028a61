"""Measured MR thermometry of the low-energy sonications: the calibration's input.

Two forms (docs/contract.md, "Thermometry measurements file"), both in one YAML or JSON
file read by :func:`load_measurements`::

    side: left                       # needed when the plan has both sides
    measured:
      - sonication: 1                # 1-based, protocol sonications after `repeat`
        power_w: 60.0                # optional: acoustic power actually given
        peak_c: 44.2                 # peak temperature thermometry displayed
        spot_ras_mm: [-9.1, -20.3, 9.8]   # optional: where that peak was (RAS mm)
        spot_fwhm_mm: [3.1, 3.4, 5.2]     # optional: FWHM of the displayed spot's rise
      - sonication: 2
        thermometry: series.nii.gz   # or a 4D temperature series covering sonication 2

A series (:func:`load_series`) is a 4D NIfTI of temperature in C with a world affine;
its path is relative to the measurements file. Frame ``k`` is the mean temperature over
``[t_k - frame_s, t_k]`` where ``t_k`` (``frame_times_s``) counts seconds from the start of
the covered sonication. The times come from a JSON sidecar (``series.json`` beside
``series.nii.gz``: ``{"frame_times_s": [...], "frame_s": 3.5}``, ``frame_s`` defaulting
to the median spacing) or else from the header: ``t_k = toffset + (k + 1) pixdim[4]``,
``frame_s = pixdim[4]`` (time units from ``xyzt_units``). The FWHM of ``spot_fwhm_mm`` is
the full width at half maximum of the rise above baseline, along the planning grid's
axes (in the phantom LR, AP, SI; on a scan the AC-PC axes).

Bad files raise :class:`~fusplan.errors.FusplanInputError` naming the file and key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping

import numpy as np

from .errors import FusplanInputError
from .protocol.checker import Checker
from .protocol.limits import MAX_FRAME_S
from .textfile import display_path, read_structured_file
from .vocabulary import SIDES

__all__ = ["ThermometrySeries", "MeasuredSonication", "Measurements", "load_measurements", "load_series"]

_SPOT_LIMIT_MM = 500.0
_MAX_FWHM_MM = 50.0
_TEMPERATURE_RANGE_C = (20.0, 100.0)
#: Seconds per NIfTI time unit (``xyzt_units``); "unknown", Hz, ppm and rad/s are not times.
_TIME_SCALE = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
#: Most values (voxels x frames) a series may hold: 64 x 64 x 16 voxels x 256 frames is 16.8 M.
MAX_SERIES_VALUES = 1 << 25


@dataclass(frozen=True)
class ThermometrySeries:
    """A 4D MR thermometry series: ``temperature_c[i, j, k, frame]`` on ``affine`` (RAS mm)."""

    temperature_c: np.ndarray = field(repr=False)
    affine: np.ndarray = field(repr=False)
    frame_times_s: np.ndarray
    frame_s: float
    source: str

    @property
    def voxel_mm(self) -> np.ndarray:
        """Voxel edge lengths (mm) along the series' own axes."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)


@dataclass(frozen=True)
class MeasuredSonication:
    """What thermometry showed for one protocol sonication (``sonication`` is 1-based)."""

    sonication: int
    power_w: float | None = None
    peak_c: float | None = None
    spot_ras_mm: tuple[float, float, float] | None = None
    spot_fwhm_mm: tuple[float, float, float] | None = None
    series: ThermometrySeries | None = None


@dataclass(frozen=True)
class Measurements:
    """A validated measurements file."""

    side: str | None
    measured: tuple[MeasuredSonication, ...]
    source: str | None = None

    def to_dict(self) -> dict:
        out = {"side": self.side, "source": self.source, "measured": []}
        for m in self.measured:
            entry = {"sonication": m.sonication}
            for key in ("power_w", "peak_c", "spot_ras_mm", "spot_fwhm_mm"):
                value = getattr(m, key)
                if value is not None:
                    entry[key] = list(value) if isinstance(value, tuple) else value
            if m.series is not None:
                entry["thermometry"] = m.series.source
            out["measured"].append(entry)
        return out


def load_measurements(path_or_mapping, *, n_sonications: int | None = None,
                      base_dir: str | os.PathLike | None = None) -> Measurements:
    """Read and validate a measurements file (YAML/JSON) or an equivalent mapping.

    Parameters
    ----------
    path_or_mapping : path or mapping
    n_sonications : int, optional
        Number of protocol sonications (after ``repeat``): indices beyond it are refused.
    base_dir : path, optional
        Where series paths of a mapping are resolved (default: the file's folder, or
        the working directory for a mapping).
    """
    if isinstance(path_or_mapping, Mapping):
        raw, label = path_or_mapping, "thermometry"
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(path_or_mapping)
        raw, label = _read(path), str(path)
        folder = Path(base_dir) if base_dir is not None else path.parent
    check = Checker(label)
    top = check.mapping(raw, "protocol", ("side", "measured"), required=("measured",))
    side = top.get("side")
    if side is not None:
        side = check.choice(side, "side", SIDES)
    entries = top["measured"]
    if not isinstance(entries, list) or not entries:
        raise check.error("measured", "must be a non-empty list of sonications")
    measured, seen = [], set()
    for i, entry in enumerate(entries):
        key = f"measured[{i + 1}]"
        m = check.mapping(entry, key, ("sonication", "power_w", "peak_c", "spot_ras_mm", "spot_fwhm_mm",
                                       "thermometry"), required=("sonication",))
        index = check.integer(m["sonication"], f"{key}.sonication", ge=1, le=n_sonications or 10_000)
        if index in seen:
            raise check.error(f"{key}.sonication", f"{index} is given twice")
        seen.add(index)
        power = None if m.get("power_w") is None else check.number(m["power_w"], f"{key}.power_w", gt=0, le=5000)
        has_numbers = "peak_c" in m
        has_series = "thermometry" in m
        if has_numbers == has_series:
            raise check.error(key, "needs exactly one of peak_c or thermometry")
        if has_series:
            for extra in ("spot_ras_mm", "spot_fwhm_mm"):
                if extra in m:
                    raise check.error(f"{key}.{extra}", "is measured from the series: give it without thermometry")
            series_path = m["thermometry"]
            if not isinstance(series_path, str) or not series_path:
                raise check.error(f"{key}.thermometry", "must be the path of a 4D NIfTI series")
            series = load_series(folder / series_path)
            measured.append(MeasuredSonication(index, power, series=series))
            continue
        peak = check.number(m["peak_c"], f"{key}.peak_c", gt=_TEMPERATURE_RANGE_C[0], le=_TEMPERATURE_RANGE_C[1])
        spot = None if m.get("spot_ras_mm") is None else check.vector(
            m["spot_ras_mm"], f"{key}.spot_ras_mm", 3, ge=-_SPOT_LIMIT_MM, le=_SPOT_LIMIT_MM)
        fwhm = None if m.get("spot_fwhm_mm") is None else check.vector(
            m["spot_fwhm_mm"], f"{key}.spot_fwhm_mm", 3, gt=0, le=_MAX_FWHM_MM)
        measured.append(MeasuredSonication(index, power, peak, spot, fwhm))
    measured.sort(key=lambda m: m.sonication)
    return Measurements(side, tuple(measured), None if isinstance(path_or_mapping, Mapping) else label)


def _read(path: Path):
    if not path.is_file():
        raise FusplanInputError(f"{path}: thermometry file not found")
    return read_structured_file(path, what="thermometry file")


def _sidecar(path: Path) -> Path:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_suffix(".json")


def load_series(path: str | os.PathLike) -> ThermometrySeries:
    """Load a 4D temperature series and its frame times (see the module docstring).

    The file goes through every NIfTI check of :func:`fusplan.io.read_nifti` (gzip bombs,
    CRC, header fields, affine, NaN/Inf) with at most :data:`MAX_SERIES_VALUES` values.
    Without a sidecar the header must declare a time unit (``xyzt_units``: s, ms or us;
    Hz, ppm, rad/s or unknown are refused) and a frame duration; with one, a header that
    gives the frame times and must list one per frame of the 4th axis.

    Raises
    ------
    FusplanInputError
        One line naming the series (or its sidecar) and the problem.
    """
    from .io import read_nifti

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FusplanInputError(f"{display_path(path)}: thermometry series not found")
    image = read_nifti(path, what="thermometry series", max_voxels=MAX_SERIES_VALUES, series=True)
    data = image.data
    median = float(np.median(data))
    low, high = _TEMPERATURE_RANGE_C
    if not low <= median <= high or data.max() > high:
        raise FusplanInputError(f"{display_path(path)}: values must be temperatures in C within {low:g}-{high:g} "
                                f"(median {median:.3g}, max {data.max():.3g}); a rise map or Kelvin is not accepted")
    n = data.shape[3]
    header = image.header
    unit = header.get_xyzt_units()[1]
    header_step = float(header["pixdim"][4]) * _TIME_SCALE[unit] if unit in _TIME_SCALE else None
    sidecar = _sidecar(path)
    if sidecar.is_file():
        times, frame = _sidecar_times(sidecar, data.shape)
    else:
        if header_step is None:
            raise FusplanInputError(
                f"{display_path(path)}: time unit {unit!r} (xyzt_units) is not a time and there is no sidecar "
                f"{sidecar.name}: give frame_times_s in the sidecar, or store time on the 4th axis in s")
        if not header_step > 0:
            raise FusplanInputError(f"{display_path(path)}: no frame times: give a sidecar {sidecar.name} with "
                                    "frame_times_s or set pixdim[4] (frame duration)")
        if not header_step <= MAX_FRAME_S:
            raise FusplanInputError(f"{display_path(path)}: frame step {header_step:g} s is longer than "
                                    f"{MAX_FRAME_S:g} s: not a thermometry time axis")
        offset = float(header["toffset"]) * _TIME_SCALE[unit]
        times, frame = offset + header_step * np.arange(1, n + 1), header_step
    return ThermometrySeries(data, image.affine, times, frame, str(path))


def _sidecar_times(sidecar: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    raw = read_structured_file(sidecar, what="thermometry sidecar")
    check = Checker(str(sidecar))
    top = check.mapping(raw, "protocol", ("frame_times_s", "frame_s"), required=("frame_times_s",))
    value = top["frame_times_s"]
    if not isinstance(value, list):
        raise check.error("frame_times_s", "must be a list of times in s")
    times = np.array([check.number(v, f"frame_times_s[{i + 1}]", ge=-3600, le=3600) for i, v in enumerate(value)])
    n_frames = shape[3]
    if times.size != n_frames:
        hint = "" if times.size not in shape[:3] else \
            f" (axis {shape[:3].index(times.size) + 1} has {times.size}: is time stored on a spatial axis?)"
        raise check.error("frame_times_s", f"has {times.size} times for {n_frames} frames{hint}")
    if np.any(np.diff(times) <= 0):
        raise check.error("frame_times_s", "must increase strictly")
    frame = check.number(top["frame_s"], "frame_s", gt=0, le=MAX_FRAME_S) if "frame_s" in top else float(np.median(np.diff(times)))
    return times, frame
