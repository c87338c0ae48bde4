"""Co-registration: quality against a sub-pixel misregistration of the coarse input, with the correction on and off.

    python -m benchmarks.coregistration                          # every case, full pipeline (about an hour)
    python -m benchmarks.coregistration --first-estimate         # the linear first estimate only (a minute)
    python -m benchmarks.coregistration --cases apex wv2 --json out/coregistration.json

Protocols (every shift a distance in the coarse input's own pixels, in a seeded random direction: one direction
per coarse group with --directions group, the default, or one per band with --directions band):
- apex: the APEX scene simulated as Sentinel-2 sees it (SNR 35, 'area' geometry), its 20 m and 60 m bands shifted
  by 0, 0.05, 0.1, 0.25, 0.5 and 1 px; σ estimated; sharpened through the plugin's driver (GeoTIFFs → s2_inputs →
  sharpening.run_sharpening, default options); MSRE over the 8 sharpened bands against the truth.
- dsen2: the DSen2 crop (real, aligned) degraded by 2 (Wald) with the same shifts; MSRE over its 20 m and 60 m
  bands against the original ones, 11 px border cut (as benchmarks.s2_real).
- vietnam: the real, misregistered crop, Wald ×2 as benchmarks.s2_real. Its original 20 m and 60 m bands, the Wald
  reference, lie where their files put them, not on the 10 m grid, while the output is registered to the 10 m
  bands: it is scored in the bands' own frame, moved (a Fourier shift) by the shift measured on the original,
  full-resolution bands (independent of the Wald inputs; halved for the Wald grid), beside bicubic (which keeps each
  band where it is).
- eo1: the EO-1 Paris pair, the real protocol of benchmarks.hsms (Hyperion blurred, MTF 0.3, 30 dB, ×3), the HS
  image shifted by 0, 0.5 and 1.5 HS px; hsms.fuse_hs_ms with the plugin's defaults; ERGAS against Hyperion. The
  real ALI image lies about half an ALI pixel from Hyperion (measured between the two 30 m images themselves), so
  the output, registered to ALI, is scored as it is and moved into Hyperion's frame by that offset.
- wv2: WorldView-2 reduced resolution as benchmarks.pan, the MS shifted by 0 and 0.5 MS px against the PAN;
  pansharpen with the plugin's recipe (60 iterations, width 8, WorldView-2 preset); Q8 against the original MS.
The simulated misregistrations use the operators' own shifted PSF (periodic edges), so the aligned rows of this
benchmark differ slightly from those of bench-hsms and bench-pan, whose degradation pads the edges.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sure_core import SolverOptions, hsms, pair_fusion, pansharpening, s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.coregistration import fourier_shift
from sure_core.metrics import ergas, msre, q2n
from sure_core.operators import BlurDecimate
from sure_core.psf import sigma_from_mtf
from sure_core.simulation import load_apex, simulate_s2

from . import hsms as bench_hsms
from . import pan as bench_pan
from . import s2_real
from .common import Stopwatch, missing_data, pin_threads, write_json

S2_SHIFTS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
PAIR_SHIFTS = {"eo1": (0.0, 0.5, 1.5), "wv2": (0.0, 0.5)}
PAN_RECIPE = {"iterations": 60, "width": 8}      # the plugin's pansharpening recipe
BORDER = 11


def directions(count: int, seed: int) -> np.ndarray:
    angles = np.random.default_rng(seed).uniform(0, 2 * np.pi, count)
    return np.stack([np.sin(angles), np.cos(angles)], axis=1)


def s2_shifts(distance: float, mode: str, seed: int) -> dict:
    """{'20m': [(rows, cols)] one or per band, '60m': …} at `distance` coarse pixels."""
    if mode == "band":
        unit = directions(8, seed)
        return {"20m": (distance * unit[:6]).tolist(), "60m": (distance * unit[6:]).tolist()}
    unit = directions(2, seed)
    return {"20m": [(distance * unit[0]).tolist()], "60m": [(distance * unit[1]).tolist()]}


# ------------------------------------------------------------------------------------------------- Sentinel-2
def sharpen_as_plugin(groups: dict, options: SolverOptions, coregistration: str) -> tuple[dict, object]:
    """The plugin's QGIS-free driver on GeoTIFFs of `groups` ({'10m','20m','60m'}): (spectral bands by name, result)."""
    from sure_fusion_qgis import raster_stack, s2_inputs
    from sure_fusion_qgis.fusion_run import RunSettings
    from sure_fusion_qgis.sharpening import run_sharpening

    with tempfile.TemporaryDirectory(prefix="bench_coreg_") as tmp:
        paths = s2_real.write_inputs(Path(tmp), groups, 32633, (300000.0, 5700000.0))
        inputs = s2_inputs.open_band_rasters({k: paths[k] for k in s2_real.GROUPS}, s2_real.GROUPS, scene_name="b")
        window = inputs.stack.plan()
        settings = RunSettings(options=options, coregistration=coregistration)
        result = run_sharpening(inputs, window, str(Path(tmp) / "out.tif"), settings)
        data, _, descriptions, _ = raster_stack.read_raster(result.path)
    names = [s2_inputs.s2_band_name(d) for d in descriptions]
    return dict(zip(names, data.astype(np.float64))), result


def first_estimate_bands(groups: dict, coregistration) -> dict:
    est = s2_sharpening.first_estimate(groups["10m"], groups["20m"], groups["60m"], geometry="area",
                                       registration=coregistration)
    return dict(zip(s2.SPECTRAL_ORDER, est))


def s2_case(name: str, truth_groups: dict, make_inputs, args, options: SolverOptions) -> list[dict]:
    """Rows for one S2 case: for each shift, the correction off and on (first estimate and/or plugin)."""
    rows = []
    for distance in S2_SHIFTS:
        shifts = s2_shifts(distance, args.directions, args.seed)
        groups = make_inputs(shifts)
        for coregistration in ("off", "auto"):
            start = time.perf_counter()
            measured = s2_sharpening.measure_registration(groups) if coregistration == "auto" else {}
            seconds_measure = time.perf_counter() - start
            methods = [("first estimate", lambda: (first_estimate_bands(groups, measured or "off"), None))]
            if not args.first_estimate and (coregistration == "auto" or distance == 0 or args.all_off):
                methods.append(("plugin", lambda: sharpen_as_plugin(groups, options, coregistration)))
            for method, run in methods:
                start = time.perf_counter()
                bands, result = run()
                row = {"case": name, "shift": distance, "directions": args.directions,
                       "coregistration": coregistration, "method": method, "seconds": time.perf_counter() - start,
                       "seconds_measure": seconds_measure, **truth_groups(bands),
                       "measured": {k: v["shifts"] for k, v in measured.items()}, "true": shifts}
                rows.append(row)
                print(f"{name} {distance:4g} px {coregistration:>4} {method:<14} MSRE {row['msre']:6.2f} dB "
                      f"({row['seconds']:.1f} s, measuring {seconds_measure:.2f} s)", flush=True)
    return rows


def apex_case(args, options: SolverOptions) -> list[dict]:
    truth = load_apex(s2_real.DATA / "apex_gt.mat")
    sharpened = [s2.SPECTRAL_ORDER[i] for i in s2.SHARPENED_BANDS]
    reference = truth / truth.max()

    def make_inputs(shifts):
        sim = simulate_s2(truth, 35.0, seed=args.seed, geometry="area", shifts=shifts)
        return {"10m": sim.y10, "20m": sim.y20, "60m": sim.y60}

    def score(bands):
        t = np.stack([reference[s2.SPECTRAL_ORDER.index(n)] for n in sharpened])
        e = np.stack([bands[n] for n in sharpened])
        return {"msre": msre(t, e)}

    return s2_case("apex", score, make_inputs, args, options)


def wald_with_shifts(bands: dict, shifts: dict) -> dict:
    out = {}
    for key, data in bands.items():
        sigmas = [s2.BAND_BY_NAME[n].psf_sigma_at(2) for n in s2_real.GROUPS[key]]
        op = BlurDecimate(sigmas, 2, data.shape[1:], geometry="area", dtype=torch.float64, shifts=shifts.get(key))
        out[key] = op.A(torch.as_tensor(data)).numpy()
    return out


def wald_score(bands: dict, estimate: dict, border: int = BORDER) -> dict:
    e = {key: np.stack([estimate[n] for n in s2_real.GROUPS[key]]) for key in ("20m", "60m")}
    scores = s2_real.score_all(bands, e, border)
    return {"msre": (6 * scores["20m"]["msre"] + 2 * scores["60m"]["msre"]) / 8,
            "ergas_20m": scores["20m"]["ergas"], "ergas_60m": scores["60m"]["ergas"]}


def dsen2_case(args, options: SolverOptions) -> list[dict]:
    bands, _, _ = s2_real.load_crop("dsen2")
    return s2_case("dsen2", lambda est: wald_score(bands, est), lambda shifts: wald_with_shifts(bands, shifts), args,
                   options)


def vietnam_case(args, options: SolverOptions) -> list[dict]:
    bands, epsg, origin = s2_real.load_crop("vietnam")
    degraded = s2_real.degrade(bands)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_coreg_") as tmp:
        paths = s2_real.write_inputs(Path(tmp), degraded, epsg, origin)
        bicubic = s2_real.run_bicubic(paths, Path(tmp))
    base = s2_real.score_all(bands, bicubic, BORDER)
    rows.append({"case": "vietnam", "method": "bicubic", "ergas_20m": base["20m"]["ergas"],
                 "ergas_60m": base["60m"]["ergas"]})
    measured = s2_sharpening.measure_registration(degraded)
    # where the reference lies: the original bands' shift against the original 10 m bands, in Wald-grid pixels
    original = {key: np.asarray(v["shifts"]) / 2 for key, v in s2_sharpening.measure_registration(bands).items()}
    print("vietnam: shifts on the Wald inputs " + ", ".join(
        f"{k} {np.round(np.mean(v['shifts'], axis=0), 3).tolist()}" for k, v in measured.items()) +
        "; of the original bands (halved) " + ", ".join(
        f"{k} {np.round(v.mean(axis=0), 3).tolist()}" for k, v in original.items()), flush=True)
    for coregistration in ("off", "auto"):
        methods = [("first estimate", lambda: first_estimate_bands(degraded, measured if coregistration == "auto"
                                                                   else "off"))]
        if not args.first_estimate:
            methods.append(("plugin", lambda: sharpen_as_plugin(degraded, options, coregistration)[0]))
        for method, run in methods:
            start = time.perf_counter()
            out = run()
            seconds = time.perf_counter() - start
            if coregistration == "auto":   # back into each band's own frame, where the Wald reference lies
                for key, ratio in (("20m", 2), ("60m", 6)):
                    for name, (rows_px, cols_px) in zip(s2_real.GROUPS[key], original[key]):
                        out[name] = fourier_shift(out[name], ratio * rows_px, ratio * cols_px)
            stacked = {k: np.stack([out[n] for n in s2_real.GROUPS[k]]) for k in ("20m", "60m")}
            scores = s2_real.score_all(bands, stacked, BORDER)
            rows.append({"case": "vietnam", "method": method, "coregistration": coregistration, "seconds": seconds,
                         "ergas_20m": scores["20m"]["ergas"], "ergas_60m": scores["60m"]["ergas"]})
            print(f"vietnam {coregistration:>4} {method:<14} ERGAS 20 m {scores['20m']['ergas']:.3f} "
                  f"({scores['20m']['ergas'] / base['20m']['ergas']:.2f}× bicubic's {base['20m']['ergas']:.3f}), "
                  f"60 m {scores['60m']['ergas']:.3f}; {seconds:.1f} s", flush=True)
    return rows


# ------------------------------------------------------------------------------------------------------ pairs
def eo1_case(args, options: SolverOptions) -> list[dict]:
    truth, ms, _ = bench_hsms.load_paris()
    ratio = bench_hsms.RATIO_REAL
    sigma_psf = sigma_from_mtf(bench_hsms.MTF_NYQUIST, ratio)
    rng = np.random.default_rng(args.seed)
    op = BlurDecimate([sigma_psf] * truth.shape[0], ratio, truth.shape[1:], "area", dtype=torch.float64)
    noise_power = float((torch.fft.irfft2(torch.fft.rfft2(torch.as_tensor(truth)) * op.kernel_fft,
                                          s=truth.shape[1:]).numpy() ** 2).mean())
    sigma_noise = np.sqrt(noise_power / 10 ** (bench_hsms.SNR_HS_REAL / 10))
    noise = sigma_noise * rng.standard_normal((truth.shape[0], truth.shape[1] // ratio, truth.shape[2] // ratio))
    unit = directions(1, args.seed)[0]
    intrinsic = pair_fusion.measure_registration(truth, ms, 1, 0.6)   # ALI against Hyperion, in ALI pixels
    print(f"eo1: the real ALI image lies ({intrinsic['rows']:+.3f}, {intrinsic['cols']:+.3f}) ALI px from Hyperion",
          flush=True)
    rows = []
    for distance in PAIR_SHIFTS["eo1"]:
        hs = pair_fusion.degrade(truth, ratio, sigma_psf, "area", tuple(distance * unit)) + noise
        for coregistration in ("off", "auto"):
            start = time.perf_counter()
            model = hsms.fit_sensor_model(hs, ms, geometry="area", coregistration=coregistration)
            seconds_model = time.perf_counter() - start
            methods = [("first estimate",
                        lambda: hsms.first_estimate_hs_ms(hs, ms, sensor_model=model, geometry="area")[0])]
            if not args.first_estimate and (coregistration == "auto" or distance == 0 or args.all_off):
                methods.append(("SURE Fusion", lambda: hsms.fuse_hs_ms(hs, ms, options=options, geometry="area",
                                                                     coregistration=coregistration)[0]))
            for method, run in methods:
                start = time.perf_counter()
                fused = run()
                seconds = time.perf_counter() - start
                in_frame = fourier_shift(fused, intrinsic["rows"], intrinsic["cols"]) if coregistration == "auto" \
                    else fused
                row = {"case": "eo1", "shift": distance, "coregistration": coregistration, "method": method,
                       "seconds": seconds, "seconds_model": seconds_model, "ergas": ergas(truth, fused, ratio),
                       "ergas_hyperion_frame": ergas(truth, in_frame, ratio), "psf_sigma": float(model.psf_sigma[0]),
                       "measured": model.mean_shift.tolist(), "true": (distance * unit).tolist()}
                rows.append(row)
                print(f"eo1 {distance:4g} px {coregistration:>4} {method:<14} ERGAS {row['ergas']:.3f}, in "
                      f"Hyperion's frame {row['ergas_hyperion_frame']:.3f} "
                      f"(PSF σ {row['psf_sigma']:.2f}, shift {np.round(row['measured'], 3).tolist()} of "
                      f"{np.round(row['true'], 3).tolist()}; {row['seconds']:.1f} s)", flush=True)
    return rows


def wv2_case(args, options: SolverOptions) -> list[dict]:
    ms, pan = bench_pan.load_wv2()
    preset = pansharpening.get_sensor(bench_pan.SENSOR)
    ratio = bench_pan.RATIO
    _, pan_lr = bench_pan.wald_inputs(ms, pan)
    unit = directions(1, args.seed)[0]
    recipe = replace(options, **PAN_RECIPE)
    rows = []
    for distance in PAIR_SHIFTS["wv2"]:
        ms_lr = pair_fusion.degrade(ms, ratio, preset.ms_psf_sigma(ms.shape[0], ratio), "area",
                                    tuple(distance * unit))
        for coregistration in ("off", "auto"):
            def first():
                ms_in, guide, model, _ = pansharpening.prepare(ms_lr, pan_lr, sensor=bench_pan.SENSOR,
                                                               coregistration=coregistration)
                sigma = {"lr": pansharpening.ms_noise_sigma(ms_in, guide, model)}
                return pair_fusion.first_estimate(ms_in, guide, model, sigma, geometry="area"), model

            methods = [("first estimate", first)]
            if not args.first_estimate and (coregistration == "auto" or distance == 0 or args.all_off):
                methods.append(("SURE Fusion", lambda: pansharpening.pansharpen(
                    ms_lr, pan_lr, sensor=bench_pan.SENSOR, options=recipe, coregistration=coregistration)[::2]))
            for method, run in methods:
                start = time.perf_counter()
                fused, model = run()
                row = {"case": "wv2", "shift": distance, "coregistration": coregistration, "method": method,
                       "seconds": time.perf_counter() - start, "q8": q2n(ms, fused, 32, 32),
                       "ergas": ergas(ms, fused, ratio), "measured": model.mean_shift.tolist(),
                       "true": (distance * unit).tolist()}
                rows.append(row)
                print(f"wv2 {distance:4g} px {coregistration:>4} {method:<14} Q8 {row['q8']:.4f} ERGAS "
                      f"{row['ergas']:.3f} (shift {np.round(row['measured'], 3).tolist()} of "
                      f"{np.round(row['true'], 3).tolist()}; {row['seconds']:.1f} s)", flush=True)
    return rows


CASES = {"apex": apex_case, "dsen2": dsen2_case, "vietnam": vietnam_case, "eo1": eo1_case, "wv2": wv2_case}


def summary(rows: list[dict]) -> None:
    """The issue's targets, read off the rows."""
    print("\nsummary (auto = co-registration on)")
    for case in ("apex", "dsen2"):
        for method in ("first estimate", "plugin"):
            sel = [r for r in rows if r["case"] == case and r["method"] == method]
            if not sel:
                continue
            ref = next(r["msre"] for r in sel if r["shift"] == 0 and r["coregistration"] == "auto")
            off0 = next(r["msre"] for r in sel if r["shift"] == 0 and r["coregistration"] == "off")
            off = {r["shift"]: f"{r['msre']:.2f}" for r in sel if r["coregistration"] == "off"}
            line = " ".join(f"{r['shift']:g}:{r['msre']:.2f}/{off.get(r['shift'], '–')}"
                            for r in sel if r["coregistration"] == "auto")
            worst = min(r["msre"] for r in sel if r["coregistration"] == "auto") - ref
            print(f"  {case} {method}: MSRE dB auto/off by shift {line}; worst shifted − unshifted {worst:+.2f} dB; "
                  f"unshifted auto − off {ref - off0:+.3f} dB")
    for case, key in (("eo1", "ergas"), ("eo1", "ergas_hyperion_frame"), ("wv2", "q8")):
        for method in ("first estimate", "SURE Fusion"):
            sel = [r for r in rows if r["case"] == case and r["method"] == method and r["coregistration"] == "auto"]
            if sel:
                ref = next(r[key] for r in sel if r["shift"] == 0)
                print(f"  {case} {method}: {key} " + ", ".join(
                    f"{r['shift']:g} px {r[key]:.4f} ({(r[key] / ref - 1) * 100:+.1f} %)" for r in sel))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--directions", default="group", choices=["group", "band"])
    parser.add_argument("--first-estimate", action="store_true", help="the linear first estimate only (fast)")
    parser.add_argument("--all-off", action="store_true",
                        help="also run the full pipeline without co-registration at every shift (by default: only "
                             "unshifted; the first-estimate rows show the rest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    needed = {"apex": ["apex_gt.mat"], "dsen2": ["S2A_MSIL1C_20170527_T33UUB.mat"], "vietnam": ["vietnam.mat"],
              "eo1": ["paris_data_hs_ms.mat"], "wv2": ["imgWV2.mat"]}
    if missing_data(*(name for case in args.cases for name in needed[case])):
        return 2
    pin_threads(args.threads)
    # the network always applied, as before NETWORK=auto, so that these rows measure the co-registration alone
    options = SolverOptions(device="cpu", threads=args.threads, seed=args.seed, network="always")
    clock = Stopwatch()
    rows = []
    for case in args.cases:
        rows += CASES[case](args, options)
    summary(rows)
    clock.report()
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
