"""Write simulation and targeting results to a directory: JSON, markdown, NIfTI, figures.

Everything is first written into a hidden staging directory inside ``out_dir`` and
only moved into place (one atomic rename per file) once every file has been
written, so a failure never leaves a partial file or a half-written report behind.

Files written by :func:`write_report`:

- ``report.json``: ``result.to_dict()`` (the contract's JSON report), via :func:`dumps_json`,
  plus a ``provenance`` block (:func:`provenance`): how the result was made.
- ``summary.md``: protocol, targets, sonication and lesion tables in plain markdown.
- ``peak_temperature_c[_<side>].nii.gz``, ``dose_cem43[_<side>].nii.gz`` (float32) and
  ``lesion_<threshold>cem43[_<side>].nii.gz`` (uint8, 1 where dose >= threshold), with
  the planning grid's voxel -> world RAS affine: they overlay on the subject's scan in
  any viewer. ``_<side>`` is omitted in the phantom. They keep the input scan's
  sform/qform codes and carry their unit in ``descrip``.
- ``figure[_<side>].png`` (with ``figures=True``, the default): three orthogonal planes through the
  target, the scan (or the peak temperature) with the dose contours.
- with a skull model: ``elements[_<side>].csv``, ``ct.nii.gz`` (the subject-space
  (pseudo-)CT) and ``skull[_<side>].png`` (:mod:`fusplan.skull.outputs`).

:func:`write_target_outputs` writes the files of ``fusplan target --out``.

Both list what they wrote in ``.fusplan-outputs.json`` (:func:`fusplan.outputs.record_outputs`)
and remove the files of their previous result set that the new one did not write again, so
the folder holds one consistent result set; leftovers of a killed earlier write are removed
first (:func:`fusplan.outputs.clean_stale_writes`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import formatting as fmt
from .clinical_summary import clinical_sections, thermometry_columns
from .figures import lesion_figure
from .io import Scan, save_nifti
from .outputs import record_outputs, staged_result_set
from .planner import SimulationResult
from .registration import scan_fingerprint
from .targeting import TargetingResult

#: Significant digits kept for floats in JSON output.
JSON_DIGITS = 6


def dumps_json(obj: Any, *, digits: int = JSON_DIGITS, indent: int = 2) -> str:
    """Serialise ``obj`` to deterministic JSON text (ending with a newline).

    Numpy scalars and arrays, tuples, paths, dataclasses and objects with a
    ``to_dict()`` method are converted; floats are rounded to ``digits`` significant
    digits (so tiny floating-point noise does not change the bytes); NaN and
    infinity become ``null``. Key order is kept as given.
    """
    return json.dumps(_plain(obj, digits), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def _plain(obj: Any, digits: int) -> Any:
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if not math.isfinite(value):
            return None
        rounded = float(f"{value:.{digits}g}")
        return 0.0 if rounded == 0 else rounded  # no "-0.0"
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {str(_plain(k, digits)): _plain(v, digits) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), digits)
    if isinstance(obj, (list, tuple)):
        return [_plain(v, digits) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [_plain(v, digits) for v in sorted(obj)]
    if hasattr(obj, "to_dict"):
        return _plain(obj.to_dict(), digits)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj), digits)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_report(result: SimulationResult, out_dir: str | os.PathLike, *, scan: Scan | None = None,
                 figures: bool = True) -> dict[str, Path]:
    """Write a simulation result to ``out_dir`` (created if needed; files replaced).

    Parameters
    ----------
    result : SimulationResult
    out_dir : path-like
    scan : fusplan.io.Scan, optional
        Background of the figures (resampled onto their planes); default
        ``result.scan``.
    figures : bool
        Also write PNG figures (matplotlib, without pyplot).

    Returns
    -------
    dict
        File name -> final path of every file written.
    """
    scan = result.scan if scan is None else scan
    report = result.to_dict()
    report["provenance"] = provenance(result)
    thresholds = [float(t) for t in result.protocol.thresholds_cem43]
    codes = None if result.scan is None else result.scan.xform_codes
    written: list[Path] = []
    with staged_result_set(out_dir, written) as staging:
        (staging / "report.json").write_text(dumps_json(report), encoding="utf-8")
        (staging / "summary.md").write_text(summary_markdown(report), encoding="utf-8")
        for side, s in result.sides.items():
            suffix = f"_{side}" if side else ""
            affine = np.asarray(s.grid.affine, dtype=float)

            def save(data, name, descrip, affine=affine, suffix=suffix):
                save_nifti(data, affine, staging / f"{name}{suffix}.nii.gz", xform_codes=codes, descrip=descrip)

            save(np.asarray(s.peak_temperature_c, dtype=np.float32), "peak_temperature_c",
                 "peak temperature, degC (fusplan)")
            save(np.asarray(s.dose_cem43, dtype=np.float32), "dose_cem43", "thermal dose, CEM43 min (fusplan)")
            for threshold in thresholds:
                mask = (np.asarray(s.dose_cem43) >= threshold).astype(np.uint8)
                save(mask, f"lesion_{threshold_label(threshold)}cem43", f"1 where dose >= {threshold:g} CEM43 min")
            if figures:
                figure = lesion_figure(s.grid, s.peak_temperature_c, s.dose_cem43, thresholds, scan=scan,
                                       title=_title(report, side))
                figure.savefig(staging / f"figure{suffix}.png", dpi=100)
        _write_skull_files(result, staging, scan, codes, figures)
    record_outputs(out_dir, "report", written)  # removes files of an earlier report not written again
    return {path.name: path for path in written}


def _write_skull_files(result: SimulationResult, staging: Path, scan: Scan | None, codes, figures: bool) -> None:
    """With a skull model: ``elements[_<side>].csv``, ``ct.nii.gz``, ``skull[_<side>].png``
    (:func:`fusplan.skull.outputs.write_skull_outputs`; the CT on the scan's grid)."""
    if getattr(result, "skull_ct", None) is None:
        return
    from .skull.outputs import phantom_ct_grid, scan_ct_grid, write_skull_outputs

    if scan is not None:
        shape, affine = scan_ct_grid(scan.shape, scan.affine, result.skull_ct)
    else:
        shape, affine = phantom_ct_grid(result.first.grid.centre_mm)
    write_skull_outputs({side: s.skull for side, s in result.sides.items()}, result.skull_ct, staging,
                        ct_shape=shape, ct_affine=affine, xform_codes=codes, figures=figures)


def provenance(result: SimulationResult) -> dict:
    """How ``result`` was made: scan, atlas, target rule, registration, protocol, version.

    The same keys in the phantom (scan, atlas, target rule and registration are
    then ``None`` and ``sides`` is empty) as on a scan. File paths are resolved
    (absolute), so the report names the files whatever folder it was made from. The registration's run
    time is left out so the report of a re-run is byte-identical.
    """
    from ._version import __version__

    scan, targets = result.scan, result.targets
    doc = {
        "fusplan_version": __version__,
        "scan": None,
        "atlas": None,
        "target_rule": None,
        "landmark_source": None,
        "registration": None,
        "sides": [side for side in result.sides if side is not None],
        "protocol": {"name": result.protocol.name, "source": result.protocol.source,
                     "spec": result.protocol.to_dict()},
    }
    if scan is not None:
        doc["scan"] = {"path": None if scan.path is None else str(Path(scan.path).resolve()),
                       "fingerprint": scan_fingerprint(scan),
                       "shape": list(scan.shape), "affine_source": scan.affine_source}
    if targets is not None:
        facts = targets.registration.facts()
        facts.pop("time_s")
        doc.update(atlas=targets.atlas, target_rule=dict(targets.rule), landmark_source=targets.landmark_source,
                   registration=facts)
    ct = getattr(result, "skull_ct", None)  # stand-in results (tests, plugin) may lack it
    if ct is not None:  # only with a skull model: reports without one keep their bytes
        doc["skull_ct"] = {"source": ct.source, "path": None if ct.path is None else str(Path(ct.path).resolve())}
    return doc


def write_target_outputs(result: TargetingResult, scan: Scan, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the targeting outputs of ``fusplan target --out DIR``.

    Files (staged, then moved into place with ``targets.json`` last,
    :func:`fusplan.outputs.staged_result_set`):

    - ``targets.json``: contract ``targets`` / ``landmarks`` plus ``acpc_frame``,
      ``atlas``, ``landmark_source`` and ``registration`` (method, time_s,
      similarity, contrast, scale factors).
    - ``atlas_labels.nii.gz``: atlas labels on the scan's grid (nearest neighbour).
    - ``targets_qc.png``: the QC figure (:func:`fusplan.qc.targeting_figure`).

    Returns
    -------
    dict
        ``{"json": path, "labels": path, "figure": path}``.
    """
    from ._version import __version__
    from .qc import targeting_figure

    out = Path(out_dir)
    document = {"fusplan_version": __version__, "atlas": result.atlas}
    document.update(result.to_dict())
    document["acpc_frame"] = result.frame.to_dict()
    document["landmark_source"] = result.landmark_source
    document["registration"] = result.registration.facts()
    if scan.path is not None:
        document["scan"] = str(scan.path)
    paths = {"json": out / "targets.json", "labels": out / "atlas_labels.nii.gz", "figure": out / "targets_qc.png"}
    labels = result.labels_on(scan.shape, scan.affine)
    written: list[Path] = []
    with staged_result_set(out, written, last=paths["json"].name) as staging:  # targets.json last
        save_nifti(labels, scan.affine, staging / paths["labels"].name, xform_codes=scan.xform_codes,
                   descrip=f"{result.atlas} atlas labels")
        targeting_figure(result, scan).savefig(staging / paths["figure"].name, dpi=110, format="png")
        (staging / paths["json"].name).write_text(dumps_json(document), encoding="utf-8")
    record_outputs(out, "targets", written)
    return paths


def threshold_label(threshold_cem43: float) -> str:
    """File-name form of a threshold: ``240`` for 240.0, ``17p5`` for 17.5."""
    return f"{float(threshold_cem43):g}".replace(".", "p")


# ------------------------------------------------------------------------------ markdown


def summary_text(result: SimulationResult) -> str:
    """Human-readable summary of a simulation result (the markdown of ``summary.md``)."""
    return summary_markdown(result.to_dict())


def summary_markdown(report: dict) -> str:
    """Plain-markdown summary of a contract JSON report (numbers written by :mod:`fusplan.formatting`)."""
    lines = [f"# fusplan report: {report.get('protocol', '')}", ""]
    if "fusplan_version" in report:
        lines += [f"fusplan {report['fusplan_version']}", ""]
    targets = report.get("targets") or []
    if targets:
        lines += ["## Targets", "", "| name | side | RAS mm | AC-PC mm |", "|---|---|---|---|"]
        for t in targets:
            lines.append(f"| {t.get('name', '')} | {t.get('side') or ''} | {fmt.vector(t.get('ras_mm'))} | "
                         f"{fmt.vector(t.get('acpc_mm'))} |")
        lines.append("")
    landmarks = report.get("landmarks") or {}
    if landmarks:
        lines += ["## Landmarks (RAS mm)", ""] + [f"- {name}: {fmt.vector(p)}" for name, p in landmarks.items()] + [""]
    sonications = report.get("sonications") or []
    if sonications:
        thermometry = any("thermometry_peak_c" in s for s in sonications)
        skull = any("skull_absorbed_power_w" in s for s in sonications)
        sided = any("side" in s for s in sonications)
        head = ["#"] + (["side"] if sided else []) + [
            "stage", "duration s", "cooling s", "power W", "absorbed W", "energy J", "peak C"
        ] + (["thermometry peak C"] if thermometry else []) + (["absorbed in skull W"] if skull else [])
        lines += ["## Sonications", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in sonications:
            row = [str(s.get("index", ""))] + ([s.get("side") or ""] if sided else []) + [
                str(s.get("stage", "")),
                fmt.duration(s.get("duration_s")),
                fmt.duration(s.get("cooling_s")),
                fmt.power(s.get("power_w")),
                fmt.absorbed_power(s.get("absorbed_power_w")),
                fmt.energy(s.get("energy_j")),
                fmt.temperature(s.get("peak_temperature_c")),
            ] + ([fmt.temperature(s.get("thermometry_peak_c"))] if thermometry else []) + (
                [fmt.power(s.get("skull_absorbed_power_w"))] if skull else [])
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    from .skull.outputs import skull_markdown

    lines += skull_markdown(report)
    lesions = report.get("lesions") or []
    if lesions:
        sided = any("side" in lesion for lesion in lesions)
        head = (["side"] if sided else []) + [
            "threshold CEM43", "corresponds to", "LR mm", "AP mm", "SI mm", "volume mm^3", "diameter mm",
            "on thermometry: LR x AP x SI mm", "on thermometry: diameter mm", "nuclei (% of lesion, % of nucleus)"
        ]
        lines += ["## Lesions", "", "Sizes on the true field, and on the simulated MR thermometry (voxel and frame "
                  "averaged; the basis the clinical thresholds were fitted on).", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for lesion in lesions:
            nuclei = ", ".join(
                f"{name} {fmt.percent(n['fraction_of_lesion'])}%, {fmt.percent(n['fraction_of_nucleus'], 2)}%"
                for name, n in (lesion.get("nuclei") or {}).items()
            )
            row = ([lesion.get("side") or ""] if sided else []) + [
                fmt.threshold(lesion.get("threshold_cem43")),
                lesion.get("corresponds_to", "-"),
                fmt.length(lesion.get("lr_mm")),
                fmt.length(lesion.get("ap_mm")),
                fmt.length(lesion.get("si_mm")),
                fmt.volume(lesion.get("volume_mm3")),
                fmt.length(lesion.get("equivalent_diameter_mm")),
                *thermometry_columns(lesion),
                nuclei or "-",
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += clinical_sections(report)
    return "\n".join(lines)


def _title(report: dict, side: str | None) -> str:
    return f"{report.get('protocol', '')}" + (f" ({side})" if side else "")


# ------------------------------------------------------------------------------- staging


