"""Accuracy and speed of atlas registration and targeting (issue 3).

Synthetic subjects: the Morel template (MNI152NLin6Asym, 2 mm) under a known random
affine (rotation <= 10 deg per axis, translation <= 20 mm, scale 0.92-1.08, shear),
a smooth nonlinear warp (<= 3 mm), a +/-15 % bias field and 2 % Rician-like noise,
stored LPS at 1 mm, in T1 and T2-like contrast (:func:`fusplan.samples.synthetic_subject`).
Errors are the distances between the registered and the true subject positions of
the CLp targets and of every Morel nucleus centroid ("thalamus"), and of AC and PC.
The baseline is the same error after the affine stage alone (measured in the same run).

Colin27 (``--colin``): AC/PC mapped from the template vs the Colin27 AFIDs (raw and
with the (0, +1, +1) mm origin correction of the AFIDs README), CLp inside the
thalamus, and invariance of the world targets across storage orientations (LAS,
LPS, permuted axes, oblique), the clinical-like copy and a rigidly moved header.

Timing is CPU (process) and wall time; the machine is shared, so the ratio to a
fixed numpy workload timed in the same run is printed as well.

Usage::

    python benchmarks/bench_registration.py --seeds 0 1 2 3 4 --contrasts T1 T2 --colin
"""
from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
from scipy import ndimage

from fusplan.atlas import load_atlas, read_fcsv, sample_scan_path
from fusplan.io import Scan, load_scan
from fusplan.registration import register
from fusplan.samples import make_clinical_like, oblique_lps_affine, reoriented, synthetic_subject
from fusplan.spatial import resample
from fusplan.targeting import clp_template_point, locate_targets


def reference_workload_s() -> float:
    """CPU seconds of a fixed numpy workload (for machine-independent ratios)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(128, 128, 128)).astype(np.float32)
    start = time.process_time()
    for _ in range(3):
        np.fft.irfftn(np.fft.rfftn(data))
    return time.process_time() - start


def moved_header(scan: Scan, rotation_deg=(6.0, -8.0, 10.0), translation_mm=(15.0, -20.0, 10.0)):
    """The head moved rigidly in the scanner: only the affine changes. Returns (scan, 4x4 motion)."""
    from scipy.spatial.transform import Rotation

    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    motion[:3, 3] = translation_mm
    return Scan(scan.data, motion @ scan.affine), motion


def synthetic_errors(seeds, contrasts, settings):
    atlas = load_atlas("morel")
    indices = [int(i) for i in np.unique(atlas.labels) if i > 0]
    centroids = np.array(ndimage.center_of_mass(atlas.labels > 0, atlas.labels, indices))
    centroids = centroids @ atlas.affine[:3, :3].T + atlas.affine[:3, 3]
    clp = np.array([clp_template_point(atlas, side) for side in ("left", "right")])
    acpc = np.array([atlas.landmarks["AC"], atlas.landmarks["PC"]])
    rows = []
    for contrast in contrasts:
        for seed in seeds:
            subject = synthetic_subject(atlas, seed, contrast=contrast)
            cpu, wall = time.process_time(), time.perf_counter()
            reg = register(subject.scan, atlas, settings=settings)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            points = np.vstack([clp, centroids])
            truth = subject.template_to_subject(points)
            error = np.linalg.norm(reg.template_to_subject(points) - truth, axis=1)
            affine_error = np.linalg.norm(points @ reg.affine_mm[:3, :3].T + reg.affine_mm[:3, 3] - truth, axis=1)
            acpc_error = np.linalg.norm(reg.template_to_subject(acpc) - subject.template_to_subject(acpc), axis=1)
            row = dict(contrast=contrast, seed=seed, clp_mean_mm=error[:2].mean(), clp_worst_mm=error[:2].max(),
                       thalamus_mean_mm=error.mean(), thalamus_worst_mm=error.max(),
                       affine_only_mean_mm=affine_error.mean(), affine_only_worst_mm=affine_error.max(),
                       ac_mm=acpc_error[0], pc_mm=acpc_error[1], detected=reg.contrast,
                       similarity=reg.similarity, cpu_s=cpu, wall_s=wall)
            rows.append(row)
            print(f"{contrast} seed {seed}: thalamus mean {row['thalamus_mean_mm']:.2f} worst {row['thalamus_worst_mm']:.2f} mm "
                  f"(CLp {row['clp_mean_mm']:.2f}/{row['clp_worst_mm']:.2f}; affine only {row['affine_only_mean_mm']:.2f}/"
                  f"{row['affine_only_worst_mm']:.2f}); AC {row['ac_mm']:.2f} PC {row['pc_mm']:.2f}; "
                  f"detected {reg.contrast}, similarity {reg.similarity:.3f}; cpu {cpu:.1f} s, wall {wall:.1f} s", flush=True)
    for contrast in contrasts:
        sel = [r for r in rows if r["contrast"] == contrast]
        print(f"== {contrast}: thalamus mean {np.mean([r['thalamus_mean_mm'] for r in sel]):.2f} mm, "
              f"worst {np.max([r['thalamus_worst_mm'] for r in sel]):.2f} mm; CLp mean {np.mean([r['clp_mean_mm'] for r in sel]):.2f}, "
              f"worst {np.max([r['clp_worst_mm'] for r in sel]):.2f}; affine-only baseline mean "
              f"{np.mean([r['affine_only_mean_mm'] for r in sel]):.2f} mm")
    return rows


def colin_checks(settings):
    atlas = load_atlas("morel")
    truth = read_fcsv(atlas.folder.parent / "landmarks/afids/tpl-MNIColin27_desc-groundtruth_afids.fcsv")
    scan = load_scan(sample_scan_path("ch2"))
    out = {}
    cpu, wall = time.process_time(), time.perf_counter()
    base = locate_targets(scan, settings=settings)
    out["cpu_s"], out["wall_s"] = time.process_time() - cpu, time.perf_counter() - wall
    print(f"Colin27 ch2 locate_targets: cpu {out['cpu_s']:.1f} s, wall {out['wall_s']:.1f} s; {base.registration.facts()}")
    for key in ("AC", "PC"):
        raw = np.linalg.norm(base.landmarks[key] - truth[key])
        corrected = np.linalg.norm(base.landmarks[key] - truth[key] - [0, 1, 1])
        out[f"{key}_error_mm"] = raw
        out[f"{key}_error_corrected_mm"] = corrected
        print(f"  {key}: error vs AFIDs {raw:.2f} mm (with (0,+1,+1) correction {corrected:.2f} mm)")
    labels = base.labels_on(scan.shape, scan.affine)
    for target in base.targets:
        index = tuple(np.rint(scan.world_to_voxel(target.ras_mm)).astype(int))
        name = base.label_names.get(int(labels[index]), "outside")
        print(f"  CLp {target.side}: ras {np.round(target.ras_mm, 2)}, acpc {np.round(target.acpc_mm, 2)}, label {name}")
        out[f"clp_{target.side}_label"] = name
    reference = np.array([t.ras_mm for t in base.targets] + [base.landmarks["AC"], base.landmarks["PC"]])

    variants = {
        "LAS": reoriented(scan, flips=(True, False, False)),
        "LPS": reoriented(scan, flips=(True, True, False)),
        "permuted (2,0,1) + flip": reoriented(scan, order=(2, 0, 1), flips=(False, True, False)),
    }
    affine, shape = oblique_lps_affine(scan.affine, scan.shape, (1.0, 1.0, 1.0), (8.0, -5.0, 6.0))
    variants["oblique 1 mm"] = Scan(resample(scan.data, scan.affine, shape, affine), affine)
    variants["clinical-like"] = make_clinical_like(scan)
    moved, motion = moved_header(scan)
    variants["moved header"] = moved
    for name, variant in variants.items():
        result = locate_targets(variant, settings=settings)
        points = np.array([t.ras_mm for t in result.targets] + [result.landmarks["AC"], result.landmarks["PC"]])
        expected = reference @ motion[:3, :3].T + motion[:3, 3] if name == "moved header" else reference
        diff = np.linalg.norm(points - expected, axis=1)
        out[f"invariance_{name}_mm"] = diff.max()
        print(f"  {name}: max world difference of targets/AC/PC {diff.max():.3f} mm (targets {np.round(diff[:2], 3)})")
    return out


def main() -> None:
    logging.getLogger("dipy").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--contrasts", nargs="*", default=["T1", "T2"])
    parser.add_argument("--settings", default="standard")
    parser.add_argument("--colin", action="store_true", help="also run the Colin27 checks")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    baseline = reference_workload_s()
    print(f"reference workload: {baseline:.2f} s cpu")
    report = {"reference_workload_cpu_s": baseline}
    if args.seeds:
        report["synthetic"] = synthetic_errors(args.seeds, args.contrasts, args.settings)
    if args.colin:
        report["colin27"] = colin_checks(args.settings)
        print(f"Colin27 locate_targets cpu / reference workload = {report['colin27']['cpu_s'] / baseline:.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2, default=float)


if __name__ == "__main__":
    main()
