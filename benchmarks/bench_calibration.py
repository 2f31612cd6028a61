"""Benchmark: calibration recovery, uncertainty-band coverage and speed (default CLT protocol).

In the brain phantom with the hemispherical-array heat source (bundled CLT protocol,
0.5 mm grid, 40 mm box):

1. recovery: MR thermometry series of the alignment (60 W) and verification (100 W)
   sonications are synthesised (:func:`fusplan.synthetic_thermometry.synthetic_series`: exact
   Fourier field, 1.1 x 1.1 x 3 mm voxels, 3.5 s frames, Gaussian noise 0.5 and 1 C)
   from a focus of known efficiency 0.7, spread 1.6 and offset (0.8, -0.6, 1.3) mm, and
   from an anisotropic Gaussian heat source 2.5 x 2.5 x 5 mm (not of the model's family);
   :func:`fusplan.calibration.calibrate` fits them and
   :func:`fusplan.prediction.predict_treatment` predicts the day-1-T1 (200 CEM43) lesion,
   compared with the generating model's lesion;
2. coverage: over synthetic cases whose truth is drawn from the documented priors, how
   often the 5-95 % band of the day-1-T1 equivalent diameter contains the truth, without
   calibration (one band, many truths) and after calibrating each case on its own
   synthetic thermometry (series made with the true offset). The true lesion is
   simulated with the focus on the grid's centre voxel: its size does not depend on
   where it sits, but on a 0.5 mm grid a focus between voxel centres gets a titrated
   power ~2 % off and a lesion up to ~0.07 mm larger (tests/test_uncertainty.py), a
   discretisation error the band does not model. With 25 structural draws the sample
   5-95 % interval is expected to hold a new draw ~83 % of the time (order statistics);
3. speed: calibration time, a 200-sample band (1 and 2 worker processes) and, as the
   baseline, full simulations (:func:`fusplan.simulate`, heat source included) of
   perturbed protocols one by one, extrapolated to 200 samples; the ratio is printed.

Timings on a shared machine are noisy: compare ratios measured in the same run.

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_calibration.py [--cases 10] [--truths 40] [--json out.json]``
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

import fusplan
from fusplan.calibration import calibrate
from fusplan.prediction import predict_treatment
from fusplan.clinical import clinical_regions
from fusplan.focusmodel import run_protocol, side_model
from fusplan.measured import MeasuredSonication, Measurements
from fusplan.execution import ExecutionOptions
from fusplan.protocol import default_protocol_path, load_protocol
from fusplan.synthetic_thermometry import gaussian_source, synthetic_series, truth_model
from fusplan.uncertainty import draw_offsets, draw_parameters, uncertainty_band

POWERS = {1: 60.0, 2: 100.0}
TRUTH = {"efficiency": 0.7, "spread": 1.6, "offset_ras_mm": (0.8, -0.6, 1.3)}


def t1_diameter(history, grid) -> float:
    return clinical_regions(history.dose_cem43, history.peak_temperature_c, grid, keys=["cem43_200"])[0] \
        .equivalent_diameter_mm


def measure_case(result, truth, noise_c, seed, peak_shift_c=None, lesion_truth=None):
    """Calibrate on ``truth``'s synthetic series; the true lesion comes from ``lesion_truth`` (default ``truth``)."""
    series = [synthetic_series(truth, i, powers_w=POWERS, noise_c=noise_c, seed=seed + i) for i in (1, 2)]
    measurements = Measurements(None, tuple(MeasuredSonication(i, POWERS[i], series=s) for i, s in zip((1, 2), series)))
    t0 = time.perf_counter()
    fit = calibrate(result, measurements)
    seconds = time.perf_counter() - t0
    history, grid = run_protocol(lesion_truth or truth, fixed_powers_w=POWERS, peak_shift_c=peak_shift_c)
    return fit, seconds, t1_diameter(history, grid)


def recovery(result, model) -> dict:
    out = {}
    for label, truth in (("model_family", truth_model(model, **TRUTH)),
                         ("gaussian_2.5x2.5x5", truth_model(model, source=gaussian_source(
                             model, (2.5, 2.5, 5.0), efficiency=0.15, offset_ras_mm=TRUTH["offset_ras_mm"])))):
        for noise in (0.5, 1.0):
            fit, seconds, truth_d = measure_case(result, truth, noise, seed=10)
            predicted = predict_treatment(result, fit)
            pred_d = next(r for r in predicted.regions if r.region.key == "cem43_200").equivalent_diameter_mm
            row = {"noise_c": noise, "calibration_s": seconds, "efficiency": fit.heating_efficiency,
                   "spread": fit.focal_spread, "offset_ras_mm": [float(v) for v in fit.offset_ras_mm],
                   "offset_error_mm": float(np.linalg.norm(fit.offset_ras_mm - np.array(TRUTH["offset_ras_mm"]))),
                   "uncertainty": fit.uncertainty, "residual_c": fit.residual_c,
                   "t1_diameter_truth_mm": truth_d, "t1_diameter_predicted_mm": pred_d,
                   "t1_diameter_error_mm": pred_d - truth_d}
            out[f"{label}_noise{noise}"] = row
            print(f"{label:20s} noise {noise} C: eta {fit.heating_efficiency:.3f} +/- "
                  f"{fit.uncertainty['heating_efficiency']:.3f}, spread {fit.focal_spread:.2f} +/- "
                  f"{fit.uncertainty['focal_spread']:.2f}, offset error {row['offset_error_mm']:.2f} mm, "
                  f"residual {fit.residual_c:.2f} C; day-1 T1 diameter truth {truth_d:.2f} predicted {pred_d:.2f} "
                  f"(error {pred_d - truth_d:+.2f} mm); calibration {seconds:.1f} s", flush=True)
    return out


def truth_from_draw(model, draw, offset):
    tissue = dataclasses.replace(model.tissue, perfusion_ml_min_kg=model.tissue.perfusion_ml_min_kg * draw["perfusion"],
                                 conductivity_w_m_k=model.tissue.conductivity_w_m_k * draw["conductivity"])
    truth = truth_model(model, efficiency=draw["efficiency"] * draw["attenuation"], spread=draw["spread"],
                        offset_ras_mm=offset)
    return dataclasses.replace(truth, tissue=tissue)


def coverage(result, model, truths: int, cases: int) -> dict:
    rng = np.random.default_rng(2024)
    t0 = time.perf_counter()
    band = uncertainty_band(model, samples=200, seed=7)
    p = band.percentiles["equivalent_diameter_mm"]
    inside = []
    for draw in draw_parameters(model, None, truths, rng):
        history, grid = run_protocol(truth_from_draw(model, draw, (0.0, 0.0, 0.0)), peak_shift_c=draw["peak_shift_c"])
        inside.append(p["p5"] <= t1_diameter(history, grid) <= p["p95"])
    uncal = float(np.mean(inside))
    print(f"coverage without calibration: {uncal:.2f} of {truths} truths inside [{p['p5']:.2f}, {p['p95']:.2f}] mm "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    inside_cal, widths = [], []
    for case in range(cases):
        draw = draw_parameters(model, None, 1, rng)[0]
        offset = draw_offsets(None, 1, rng)[0]
        truth = truth_from_draw(model, draw, offset)
        fit, _, truth_d = measure_case(result, truth, 0.75, seed=100 + 10 * case, peak_shift_c=draw["peak_shift_c"],
                                       lesion_truth=truth_from_draw(model, draw, (0.0, 0.0, 0.0)))
        b = uncertainty_band(result, fit, samples=40, structural=10, seed=case).percentiles["equivalent_diameter_mm"]
        inside_cal.append(b["p5"] <= truth_d <= b["p95"])
        widths.append(b["p95"] - b["p5"])
        print(f"  case {case + 1}: truth {truth_d:.2f} mm, band [{b['p5']:.2f}, {b['p95']:.2f}] "
              f"{'inside' if inside_cal[-1] else 'OUTSIDE'}", flush=True)
    cal = float(np.mean(inside_cal)) if inside_cal else None
    if cases:
        print(f"coverage after calibration: {cal:.2f} of {cases} cases (mean band width {np.mean(widths):.2f} mm; "
              f"without calibration {p['p95'] - p['p5']:.2f} mm)", flush=True)
    return {"uncalibrated": uncal, "uncalibrated_truths": truths, "uncalibrated_band": p,
            "calibrated": cal, "calibrated_cases": cases,
            "calibrated_mean_width_mm": float(np.mean(widths)) if widths else None}


def speed(result, model, protocol, baseline_runs: int) -> dict:
    measurements = Measurements(None, tuple(MeasuredSonication(i, POWERS[i], series=synthetic_series(
        truth_model(model, **TRUTH), i, powers_w=POWERS, seed=i)) for i in (1, 2)))
    t0 = time.perf_counter()
    fit = calibrate(result, measurements)
    calibration_s = time.perf_counter() - t0
    timings = {"calibration_s": calibration_s}
    for workers in (1, 2):
        t0 = time.perf_counter()
        uncertainty_band(result, fit, samples=200, execution=ExecutionOptions(workers=workers), seed=1)
        timings[f"band_200_workers{workers}_s"] = time.perf_counter() - t0
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()
    for draw in draw_parameters(model, None, baseline_runs, rng):
        spec = protocol.spec
        spec["tissue"] = {"preset": "brain", "perfusion_ml_min_kg": 559.0 * draw["perfusion"],
                          "conductivity_w_m_k": 0.51 * draw["conductivity"],
                          "attenuation_np_m": 4.0 * draw["attenuation"]}
        fusplan.simulate(load_protocol(spec))
    per_sample = (time.perf_counter() - t0) / baseline_runs
    timings["full_simulation_per_sample_s"] = per_sample
    timings["full_simulation_200_s_extrapolated"] = 200 * per_sample
    best = min(timings["band_200_workers1_s"], timings["band_200_workers2_s"])
    timings["speedup_band_vs_full"] = 200 * per_sample / best
    print(f"calibration {calibration_s:.1f} s; band of 200 samples {timings['band_200_workers1_s']:.1f} s "
          f"(1 process), {timings['band_200_workers2_s']:.1f} s (2 processes); full simulation "
          f"{per_sample:.2f} s per sample -> {200 * per_sample:.0f} s for 200 ({timings['speedup_band_vs_full']:.0f}x)",
          flush=True)
    return timings


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10, help="calibrated coverage cases")
    parser.add_argument("--truths", type=int, default=40, help="uncalibrated coverage truths")
    parser.add_argument("--baseline-runs", type=int, default=3, help="full simulations timed for the baseline")
    parser.add_argument("--skip", nargs="*", default=(), choices=("recovery", "coverage", "speed"))
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    protocol = load_protocol(default_protocol_path("clt_single"))
    result = fusplan.simulate(protocol)
    model = side_model(result)
    out = {}
    if "recovery" not in args.skip:
        out["recovery"] = recovery(result, model)
    if "speed" not in args.skip:
        out["speed"] = speed(result, model, protocol, args.baseline_runs)
    if "coverage" not in args.skip:
        out["coverage"] = coverage(result, model, args.truths, args.cases)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=2)
    return out


if __name__ == "__main__":
    main()
