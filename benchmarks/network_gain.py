"""What the per-scene network adds, by SURE and in truth, and what NETWORK=auto saves: the evidence behind
NETWORK=auto (docs/decisions.md).

    python -m benchmarks.network_gain CASE [CASE ...] [--seeds 0 1 2] [--network always auto] [--json FILE]
    python -m benchmarks.network_gain --table FILE [FILE ...]     # the before/after table of saved runs
    python -m benchmarks.network_gain --rules FILE [FILE ...]     # candidate decision rules replayed on them

CASE: apex30, apex40, dsen2, vietnam, eo1 (HS+MS, co-registered), eo1-off (co-registration off), wv2. Default
recipes (pansharpening: the plugin's 60 iterations, width 8), one thread. For each case and seed the NETWORK modes
run one after the other (their order alternates with the seed), so that their seconds share the machine's load.
One JSON line a run: the first estimate's and the output's quality against the reference, the seconds of the fusion
call, the iterations run, the decision, the network's SURE gain over the first estimate (relative to the latter's
risk) ± its standard error, the gain averaged over each tenth of training, and (in --json) the per-iteration paired
gains and first-estimate risks, on which `--rules` replays variants of the decision rule of `sure_core.solver`.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sure_core import SolverOptions, hsms, pansharpening, s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.metrics import ergas, q2n
from sure_core.simulation import load_apex, simulate_s2

from .common import missing_data, pin_threads

#: each case and the shared data file it reads
CASES = {"apex30": "apex_gt.mat", "apex40": "apex_gt.mat", "dsen2": "S2A_MSIL1C_20170527_T33UUB.mat",
         "vietnam": "vietnam.mat", "eo1": "paris_data_hs_ms.mat", "eo1-off": "paris_data_hs_ms.mat",
         "wv2": "imgWV2.mat"}


def windows(history: list[float], parts: int = 10) -> list[float]:
    width = max(1, len(history) // parts)
    return [round(float(np.mean(history[i:i + width])), 4) for i in range(0, len(history), width)]


def prepare(case: str, seed: int):
    """(metric, first estimate's quality, fuse(options) → (output's quality, record)) of one case and seed."""
    from . import hsms as bench_hsms
    from . import pan as bench_pan
    from . import s2_real
    from .apex import score as apex_score

    if case.startswith("apex"):
        sim = simulate_s2(load_apex(s2_real.DATA / "apex_gt.mat"), float(case[4:]), seed, "zero_phase")
        first = s2_sharpening.first_estimate(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                             smoothing=True)

        def fuse(options):
            out, record = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, options=options,
                                                geometry="zero_phase")
            return apex_score(sim.truth, out)["msre"], record
        return "MSRE dB", apex_score(sim.truth, first)["msre"], fuse
    if case in ("dsen2", "vietnam"):
        bands = s2_real.load_crop(case)[0]
        d = s2_real.degrade(bands)

        def score(estimate):
            e = dict(zip(s2.SPECTRAL_ORDER, estimate))
            return s2_real.score_all(bands, {k: np.stack([e[n] for n in s2_real.GROUPS[k]]) for k in ("20m", "60m")},
                                     11)["20m"]["ergas"]

        def fuse(options):
            out, record = s2_sharpening.sharpen(d["10m"], d["20m"], d["60m"], options=options, geometry="area",
                                                registration="off")
            return score(out), record
        first = s2_sharpening.first_estimate(d["10m"], d["20m"], d["60m"], geometry="area", registration="off")
        return "ERGAS 20 m", score(first), fuse
    if case.startswith("eo1"):
        coregistration = "off" if case == "eo1-off" else "auto"
        truth, ms, _ = bench_hsms.load_paris()
        sigma = bench_hsms.sigma_from_mtf(0.3, 3)
        hs, _ = bench_hsms.degrade_hs(truth, sigma, 3, 30.0, seed, "area", noise_before_decimation=True)

        def fuse(options):
            out, record, _ = hsms.fuse_hs_ms(hs, ms, options=options, geometry="area", psf_sigma=sigma,
                                             coregistration=coregistration)
            return ergas(truth, out, 3), record
        first, _ = hsms.first_estimate_hs_ms(hs, ms, geometry="area", psf_sigma=sigma, coregistration=coregistration)
        return "ERGAS", ergas(truth, first, 3), fuse
    ms, pan = bench_pan.load_wv2()
    ms_lr, pan_lr = bench_pan.wald_inputs(ms, pan)

    def fuse(options):
        out, record, _ = pansharpening.pansharpen(ms_lr, pan_lr, sensor="worldview2",
                                                 options=replace(options, iterations=60, width=8))
        return q2n(ms, out, 32, 32), record
    return "Q8", q2n(ms, bench_pan.run_first_estimate(ms_lr, pan_lr), 32, 32), fuse


def run(case: str, seeds: list[int], modes: list[str]):
    for seed in seeds:
        metric, first, fuse = prepare(case, seed)
        for mode in (modes if seed % 2 == 0 else modes[::-1]):
            start = time.perf_counter()
            quality, record = fuse(SolverOptions(device="cpu", threads=1, network=mode, seed=seed))
            yield {"case": case, "seed": seed, "network": mode, "metric": metric, "first": first, "output": quality,
                   "seconds": time.perf_counter() - start, "iterations_run": record.iterations_run,
                   "iterations": record.options.get("iterations"), "applied": record.network_applied,
                   "gain": record.network_gain, "se": record.network_gain_se,
                   "windows": windows(record.gain_history), "decision": record.network_decision,
                   "gains": record.gain_history, "base_risks": record.base_risk_history}


def replay(run_: dict, min_gain: float, margin: float, start: float, growing: bool = False) -> tuple[bool, int]:
    """(kept, iterations run) that the solver's decision (`solver.network_pays` every tenth of the iterations from
    `start` of them on, over the last tenth) with these parameters would have given on a NETWORK=always run;
    `growing`: a variant that also keeps training while the last tenth's gain exceeds the tenth before it by two
    standard errors of their difference."""
    from sure_core.solver import network_pays

    n = run_["iterations"]
    base = torch.tensor(run_["base_risks"], dtype=torch.float64)
    gains = torch.tensor(run_["gains"], dtype=torch.float64) * base.abs().mean()   # gain_history is relative
    window = max(10, n // 10)
    for end in range(window, n, window):
        if end < start * n:
            continue
        pays, mean, se = network_pays(gains[end - window:end], base[end - window:end], min_gain, margin)
        if growing and not pays and end >= 2 * window:
            earlier = slice(end - 2 * window, end - window)
            _, before, se_before = network_pays(gains[earlier], base[earlier])
            pays = mean - before >= 2 * math.hypot(se, se_before)
        if not pays:
            return False, end
    return True, n


#: (least gain, standard errors of margin, share of the iterations from which the decision is taken, growing)
RULES = [(0.02, 2, 0.3, False), (0.015, 2, 0.3, False), (0.01, 2, 0.3, False), (0.005, 2, 0.3, False),
         (0.02, 0, 0.3, False), (0.02, 2, 0.5, False), (0.01, 2, 0.5, False), (0.01, 2, 0.7, False),
         (0.02, 2, 0.3, True)]


def rules(paths: list[Path]) -> None:
    """Each candidate rule replayed on the NETWORK=always runs: per case, the quality change against always
    (mean over seeds; 0 where the network is kept) and the share of the iterations run."""
    runs = [r for p in paths for r in json.loads(p.read_text()) if r["network"] == "always"]
    cases = sorted({r["case"] for r in runs}, key=list(CASES).index)
    print("| rule (least gain, SEs, from) | " + " | ".join(cases) + " |")
    print("|---|" + "---|" * len(cases))
    for min_gain, margin, start, growing in RULES:
        cells = []
        for case in cases:
            rows = [r for r in runs if r["case"] == case]
            deltas, shares = [], []
            for r in rows:
                kept, its = replay(r, min_gain, margin, start, growing)
                delta = 0.0 if kept else r["first"] - r["output"]
                deltas.append(delta if r["metric"] == "MSRE dB" else 100 * delta / r["output"])
                shares.append(its / r["iterations"])
            unit = " dB" if rows[0]["metric"] == "MSRE dB" else " %"
            cells.append(f"{np.mean(deltas):+.3f}{unit}, {100 * np.mean(shares):.0f} % it.")
        print(f"| {100 * min_gain:g} %, {margin:g}, {start:g}{', growing' if growing else ''} | " + " | ".join(cells)
              + " |")


def table(paths: list[Path]) -> None:
    """Before (always) and after (auto), one row per case and seed, and the mean over the seeds of a case."""
    runs = [r for p in paths for r in json.loads(p.read_text())]
    print("| case | seed | metric | first estimate | always | auto | Δ auto − always | seconds always | seconds auto | "
          "ratio | iterations auto | SURE gain (always, end) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in sorted({r["case"] for r in runs}, key=list(CASES).index):
        pairs = []
        for seed in sorted({r["seed"] for r in runs if r["case"] == case}):
            by = {r["network"]: r for r in runs if r["case"] == case and r["seed"] == seed}
            if {"always", "auto"} <= by.keys():
                pairs.append((str(seed), by["always"], by["auto"]))
        if len(pairs) > 1:
            a = {**pairs[0][1], **{k: float(np.mean([p[1][k] for p in pairs])) for k in ("first", "output", "seconds",
                                                                                         "gain", "se")}}
            b = {**pairs[0][2], **{k: float(np.mean([p[2][k] for p in pairs])) for k in ("output", "seconds")},
                 "iterations_run": round(float(np.mean([p[2]["iterations_run"] for p in pairs])))}
            pairs.append(("**mean**", a, b))   # its ratio: of the mean seconds
        for seed, a, b in pairs:
            fmt = ".3f" if a["metric"] == "MSRE dB" else ".4f" if a["metric"] == "Q8" else ".3f"
            delta = b["output"] - a["output"]
            rel = "" if a["metric"] == "MSRE dB" else f" ({100 * delta / a['output']:+.2f} %)"
            print(f"| {case} | {seed} | {a['metric']} | {format(a['first'], fmt)} | {format(a['output'], fmt)} | "
                  f"{format(b['output'], fmt)} | {delta:+{fmt}}{rel} | {a['seconds']:.0f} | {b['seconds']:.0f} | "
                  f"{a['seconds'] / b['seconds']:.1f}× | {b['iterations_run']} of {b['iterations']} | "
                  f"{100 * a['gain']:.1f} ± {100 * a['se']:.2f} % |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=", ".join(CASES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--network", nargs="+", default=["always"], choices=["always", "auto", "never"])
    parser.add_argument("--json", type=Path, default=None, help="append the runs to this file (a JSON list)")
    parser.add_argument("--table", type=Path, nargs="+", default=None, help="print the table of saved runs")
    parser.add_argument("--rules", type=Path, nargs="+", default=None,
                        help="replay candidate decision rules on the saved NETWORK=always runs")
    args = parser.parse_args(argv)
    if args.table or args.rules:
        table(args.table) if args.table else rules(args.rules)
        return 0
    if not args.cases or set(args.cases) - set(CASES):
        parser.error(f"give one or more CASEs among {', '.join(CASES)}")
    if missing_data(*(CASES[c] for c in args.cases)):
        return 2
    pin_threads(1)
    saved = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    for case in args.cases:
        for result in run(case, args.seeds, args.network):
            print(json.dumps({k: v for k, v in result.items() if k not in ("gains", "base_risks")}), flush=True)
            if args.json:
                saved.append(result)
                args.json.write_text(json.dumps(saved))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
