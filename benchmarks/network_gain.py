"""What the per-scene network adds, by SURE and in truth: the evidence behind NETWORK=auto (docs/decisions.md).

    python -m benchmarks.network_gain CASE      # CASE: apex30, apex40, dsen2, vietnam, eo1 or wv2

One run with NETWORK=always and the default recipe (pansharpening: the plugin's 60 iterations, width 8), one
thread, seed 0; prints one JSON line: the first estimate's and the network's quality against the reference, the
network's final SURE gain over the first estimate (relative to the latter's risk) ± its standard error, and the
gain averaged over each window of 30 iterations.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np

from sure_core import SolverOptions, hsms, pansharpening, s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.metrics import ergas, q2n
from sure_core.simulation import load_apex, simulate_s2

from . import hsms as bench_hsms
from . import pan as bench_pan
from . import s2_real
from .apex import score as apex_score
from .common import missing_data, pin_threads, timed

#: each case and the shared data file it reads
CASES = {"apex30": "apex_gt.mat", "apex40": "apex_gt.mat", "dsen2": "S2A_MSIL1C_20170527_T33UUB.mat",
         "vietnam": "vietnam.mat", "eo1": "paris_data_hs_ms.mat", "wv2": "imgWV2.mat"}


def windows(history: list[float], width: int = 30) -> list[float]:
    return [round(float(np.mean(history[i:i + width])), 4) for i in range(0, len(history), width)]


def run(case: str) -> dict:
    """(metric, first estimate's quality, network's quality, run record) of one case."""
    options = SolverOptions(device="cpu", threads=1, network="always")
    if case.startswith("apex"):
        sim = simulate_s2(load_apex(s2_real.DATA / "apex_gt.mat"), float(case[4:]), 0, "zero_phase")
        first = s2_sharpening.first_estimate(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                             smoothing=True)
        out, record = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, options=options,
                                            geometry="zero_phase")
        return "MSRE dB", apex_score(sim.truth, first)["msre"], apex_score(sim.truth, out)["msre"], record
    if case in ("dsen2", "vietnam"):
        bands = s2_real.load_crop(case)[0]
        d = s2_real.degrade(bands)

        def score(estimate):
            e = dict(zip(s2.SPECTRAL_ORDER, estimate))
            return s2_real.score_all(bands, {k: np.stack([e[n] for n in s2_real.GROUPS[k]]) for k in ("20m", "60m")},
                                     11)["20m"]["ergas"]

        first = s2_sharpening.first_estimate(d["10m"], d["20m"], d["60m"], geometry="area", registration="off")
        out, record = s2_sharpening.sharpen(d["10m"], d["20m"], d["60m"], options=options, geometry="area",
                                            registration="off")
        return "ERGAS 20 m", score(first), score(out), record
    if case == "eo1":
        truth, ms, _ = bench_hsms.load_paris()
        sigma = bench_hsms.sigma_from_mtf(0.3, 3)
        hs, _ = bench_hsms.degrade_hs(truth, sigma, 3, 30.0, 0, "area", noise_before_decimation=True)
        first, _ = hsms.first_estimate_hs_ms(hs, ms, geometry="area", psf_sigma=sigma)
        out, record, _ = hsms.fuse_hs_ms(hs, ms, options=options, geometry="area", psf_sigma=sigma)
        return "ERGAS", ergas(truth, first, 3), ergas(truth, out, 3), record
    ms, pan = bench_pan.load_wv2()
    ms_lr, pan_lr = bench_pan.wald_inputs(ms, pan)
    first = bench_pan.run_first_estimate(ms_lr, pan_lr)
    out, record, _ = pansharpening.pansharpen(ms_lr, pan_lr, sensor="worldview2",
                                             options=replace(options, iterations=60, width=8))
    return "Q8", q2n(ms, first, 32, 32), q2n(ms, out, 32, 32), record


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in CASES:
        print(f"usage: python -m benchmarks.network_gain CASE, CASE one of {', '.join(CASES)}")
        return 2
    if missing_data(CASES[argv[0]]):
        return 2
    pin_threads(1)
    (metric, first, network, record), seconds = timed(run, argv[0])
    print(json.dumps({"case": argv[0], "metric": metric, "first": first, "network": network,
                      "gain": record.network_gain, "se": record.network_gain_se,
                      "windows": windows(record.gain_history), "seconds": seconds,
                      "decision": record.network_decision}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
