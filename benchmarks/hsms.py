"""Hyperspectral + multispectral fusion on the EO-1 Paris pair (Hyperion 128 bands + ALI 9 bands, 72×72 px, 30 m).

    python -m benchmarks.hsms                                  # both protocols, seed 0, one thread
    python -m benchmarks.hsms --protocols real --given-psf     # + a run with the true PSF σ
    python -m benchmarks.hsms --protocols real --given-psf --networks always auto   # the README's row and the default
    python -m benchmarks.hsms --seeds 0 1 2 --json out/hsms.json

**Real protocol** (the issue's; shared/data/README.md). The Hyperion cube HSim is the ground truth. It is
blurred by a Gaussian PSF whose MTF is 0.3 at the Nyquist frequency of the ×3 grid (σ = 1.48 px,
`sigma_from_mtf(0.3, 3)`), white noise is added at 30 dB (one σ for the whole cube: σ² = mean(blurred²)/10³, on
the blurred 72×72 cube before decimation, seeded), and every third pixel is kept in the 'area' geometry
(HS pixel j covers MS pixels 3j…3j+2, so the sample is the centre one: MATLAB's `downsample(·, 3, 1)` as in
HySure's demo). The real ALI image MSim is the guide. SURE Fusion runs the way `sure_fusion:hsms_fusion` does:
the two images are written as GeoTIFFs (30 m ALI grid, 90 m HS grid, 'area'-aligned) and fused through the
plugin's request → run driver (`sure_fusion_qgis.fusion_request`), which gets only the two images: SRF (NNLS),
PSF σ and both noise σ's are estimated; with `--given-psf` also a run with the PSF given as the protocol's MTF
(the algorithm's PSF=mtf, PSF_VALUE=0.3). `--networks` picks the NETWORK mode(s), one run each ('auto', the
plugin's default, or 'always', as the README's figures were measured). The linear first estimates come from the
core (`hsms.first_estimate_hs_ms`). Scores against HSim over all 128 bands:
ERGAS (ratio 3), SAM (°), PSNR (peak = max of HSim). Peers' figures (other tools, same protocol, other noise
draw) are printed beside ours; our own cubic-spline interpolation and an MTF-GLP-HPM hypersharpening of the
same draw tell how comparable they are.

**Simulated protocol** (the paper's, docs/method.md §5.3, on this scene): truth = HSim ÷ its maximum; MS = R·truth
through the IKONOS blue/green/red/NIR responses (`ikonos_spec_resp.mat`) sampled at the Hyperion band centres,
rows normalised to sum 1, noise at 40 dB (one σ for the MS image); HS = 15×15 Gaussian PSF σ = 2, ×4
decimation (zero-phase, as the paper), noise at 30 dB (one σ for the cube). Known R, PSF and σ's, as in the
paper. BP vs SURE losses; ERGAS (ratio 4), SAM, PSNR (peak 1). This one stays on the core
(`pair_fusion.fuse` with the known sensor model): the plugin takes no known spectral response without fitting
its offset, and no zero-phase geometry.

Hyperion band centres (the .mat has only `non_del_bands`, the 1-based Hyperion band numbers kept): Hyperion's
242 bands are sampled linearly from 355.59 nm (band 1) to 1057.68 nm (band 70) on the VNIR spectrometer and
from 851.92 nm (band 71) to 2577.08 nm (band 242) on the SWIR one (EO-1 Hyperion user guide band table; the
nominal spacing is ~10 nm), so band b sits at 355.59 + (b−1)·10.1757 nm (b ≤ 70) or 851.92 + (b−71)·10.0886 nm.
HySure's Paris demo assigns the ALI bands to Hyperion bands 9–10, 11–16, …, consistent with these centres.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from sure_core import SolverOptions, hsms, pair_fusion
from sure_core.metrics import ergas, msre, psnr, sam
from sure_core.psf import Geometry, geometry_offset, sigma_from_mtf

from .common import (
    DATA,
    NETWORK_MODES,
    fuse_pair,
    mean_of,
    missing_data,
    pin_threads,
    record_summary,
    timed,
    write_geotiff,
    write_json,
)

RATIO_REAL = 3
MTF_NYQUIST = 0.3
SNR_HS_REAL = 30.0
# ERGAS of other tools on the real protocol (shared/data/README.md)
PEERS = {"bicubic": 7.13, "MTF-GLP-HPM hypersharpening": 5.97, "HySure (untuned)": 6.17, "CNMF": 4.65}
TARGET = {"ergas": 4.5, "sam": 2.8, "seconds": 600.0}
SIM_RATIO, SIM_PSF_SIGMA, SIM_SNR_MS = 4, 2.0, 40.0
MS_PIXEL_M = 30.0        # ALI's pixel; the degraded Hyperion cube's is RATIO_REAL times larger


# --------------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------------
def load_paris() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HSim (128, 72, 72), MSim (9, 72, 72), Hyperion band numbers (128,)) as float64 arrays."""
    from scipy.io import loadmat

    data = loadmat(str(DATA / "paris_data_hs_ms.mat"))
    hs = np.ascontiguousarray(data["HSim"].transpose(2, 0, 1), dtype=np.float64)
    ms = np.ascontiguousarray(data["MSim"].transpose(2, 0, 1), dtype=np.float64)
    return hs, ms, data["non_del_bands"].ravel().astype(int)


def hyperion_centres_nm(band_numbers) -> np.ndarray:
    """Centre wavelengths (nm) of 1-based Hyperion band numbers (see the module docstring for the source)."""
    b = np.asarray(band_numbers, dtype=np.float64)
    vnir = 355.59 + (b - 1) * (1057.68 - 355.59) / 69
    swir = 851.92 + (b - 71) * (2577.08 - 851.92) / 171
    return np.where(b <= 70, vnir, swir)


def ikonos_response(centres_nm: np.ndarray) -> np.ndarray:
    """(4, L) IKONOS blue, green, red, NIR responses at the given wavelengths, rows summing to 1."""
    from scipy.io import loadmat

    table = loadmat(str(DATA / "ikonos_spec_resp.mat"))["ikonos_sp"]  # wavelength, pan, blue, green, red, NIR
    r = np.stack([np.interp(centres_nm, table[:, 0], table[:, k], left=0.0, right=0.0) for k in range(2, 6)])
    return r / r.sum(axis=1, keepdims=True)


def blur(image: np.ndarray, sigma: float, ratio: int, geometry: str) -> np.ndarray:
    """The blur of the ×`ratio` operator on the HR grid, without decimation: `[:, ::ratio, ::ratio]` of it is
    `BlurDecimate.A` (the PSF is centred on the low-resolution pixel centre of the geometry)."""
    from sure_core.operators import BlurDecimate

    op = BlurDecimate([sigma] * image.shape[0], ratio, image.shape[1:], geometry, dtype=torch.float64)
    x = torch.as_tensor(image)
    return torch.fft.irfft2(torch.fft.rfft2(x) * op.kernel_fft, s=image.shape[1:]).numpy()


def degrade_hs(truth: np.ndarray, sigma_psf: float, ratio: int, snr_db: float, seed: int, geometry: str,
               noise_before_decimation: bool) -> tuple[np.ndarray, float]:
    """(low-resolution HS, noise σ): blur, one white-noise σ for the cube at `snr_db`, decimation."""
    blurred = blur(truth, sigma_psf, ratio, geometry)  # the kernel already sits at the geometry's offset
    lr_clean = blurred[:, ::ratio, ::ratio]
    power = (blurred ** 2).mean() if noise_before_decimation else (lr_clean ** 2).mean()
    sigma = float(np.sqrt(power / 10 ** (snr_db / 10)))
    rng = np.random.default_rng(seed)
    return lr_clean + sigma * rng.standard_normal(lr_clean.shape), sigma


# --------------------------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------------------------
def upsample_cubic(lr: np.ndarray, ratio: int, geometry: str) -> np.ndarray:
    """Cubic-spline interpolation of each band onto the ×`ratio` grid, honouring the pixel geometry."""
    h, w = lr.shape[1:]
    offset = geometry_offset(geometry, ratio)
    rows = (np.arange(h * ratio) - offset) / ratio
    cols = (np.arange(w * ratio) - offset) / ratio
    grid = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([ndimage.map_coordinates(band, grid, order=3, mode="reflect") for band in lr])  # loop over bands


def mtf_glp_hpm(hs_lr: np.ndarray, ms: np.ndarray, ratio: int, sigma_psf: float, geometry: str) -> np.ndarray:
    """MTF-GLP with high-pass modulation, hypersharpening style: each HS band gets its own synthetic pan, the
    least-squares combination of the MS bands that best matches it at low resolution;
    x̂_l = ũ_l · P_l / P_l^low with ũ the interpolated HS band and P^low the pan blurred by the MTF-matched PSF,
    decimated and interpolated back."""
    ms_lr = pair_fusion.degrade(ms, ratio, sigma_psf, geometry)
    design = np.concatenate([ms_lr.reshape(ms.shape[0], -1), np.ones((1, ms_lr[0].size))])
    weights, *_ = np.linalg.lstsq(design.T, hs_lr.reshape(hs_lr.shape[0], -1).T, rcond=None)  # (G+1, L)
    pans = np.einsum("gl,ghw->lhw", weights[:-1], ms) + weights[-1][:, None, None]
    pans_low = upsample_cubic(pair_fusion.degrade(pans, ratio, sigma_psf, geometry), ratio, geometry)
    up = upsample_cubic(hs_lr, ratio, geometry)
    eps = 1e-6 * np.abs(pans).max()
    return up * pans / np.where(np.abs(pans_low) < eps, eps, pans_low)


def scores(truth: np.ndarray, estimate: np.ndarray, ratio: int, peak: float) -> dict:
    return {"ergas": ergas(truth, estimate, ratio), "sam": sam(truth, estimate), "psnr": psnr(truth, estimate, peak),
            "msre": msre(truth, estimate)}


# --------------------------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------------------------
def fuse_real(folder: Path, hs: np.ndarray, ms: np.ndarray, options: SolverOptions, psf: str,
              coregistration: str = "auto") -> tuple[np.ndarray, dict]:
    """SURE Fusion as sure_fusion:hsms_fusion runs it (the shared request → run driver) on the pair written as
    GeoTIFFs: spectral response and noise σ estimated, the PSF estimated (`psf` 'estimated') or given as the
    protocol's MTF ('given': the algorithm's PSF=mtf, PSF_VALUE=0.3)."""
    paths = {"hs": str(folder / "hs.tif"), "ms": str(folder / "ms.tif")}
    if not Path(paths["hs"]).exists():
        write_geotiff(Path(paths["hs"]), hs, MS_PIXEL_M * RATIO_REAL)
        write_geotiff(Path(paths["ms"]), ms, MS_PIXEL_M)
    choices = {"srf": "estimate", **({"psf": "mtf", "psf_value": MTF_NYQUIST} if psf == "given" else
                                      {"psf": "estimate"})}
    target = folder / f"sure_{psf}_{options.loss}_{options.network}_seed{options.seed}.tif"
    fused, result = fuse_pair("hsms", paths["hs"], paths["ms"], target, options, choices,
                              coregistration=coregistration)
    return fused, {"run": record_summary(result), "psf_sigma": float(result.cases[0].sensor_model.psf_sigma[0])}


def real_protocol(seed: int, options: SolverOptions, given_psf: bool, losses: list[str], networks: list[str],
                  coregistration: str = "auto") -> list[dict]:
    truth, ms, _ = load_paris()
    sigma_psf = sigma_from_mtf(MTF_NYQUIST, RATIO_REAL)
    geometry = Geometry.AREA.value
    hs, sigma_noise = degrade_hs(truth, sigma_psf, RATIO_REAL, SNR_HS_REAL, seed, geometry,
                                 noise_before_decimation=True)
    peak = float(truth.max())
    rows = []

    def add(method, estimate, seconds, **extra):
        row = {"protocol": "real", "seed": seed, "method": method, **scores(truth, estimate, RATIO_REAL, peak),
               "seconds": seconds, **extra}
        rows.append(row)
        print(f"real seed {seed} {method:<56} ERGAS {row['ergas']:6.3f}  SAM {row['sam']:6.3f}°  "
              f"PSNR {row['psnr']:6.2f} dB  {seconds:7.1f} s", flush=True)

    add("cubic-spline interpolation (ours)", *timed(upsample_cubic, hs, RATIO_REAL, geometry))
    add("MTF-GLP-HPM hypersharpening (ours, true σ)", *timed(mtf_glp_hpm, hs, ms, RATIO_REAL, sigma_psf, geometry))
    psf_choices = [("estimated", None)] + ([("given", sigma_psf)] if given_psf else [])
    with tempfile.TemporaryDirectory(prefix="bench_hsms_") as tmp:
        for label, psf in psf_choices:
            start = time.perf_counter()
            model = hsms.fit_sensor_model(hs, ms, psf_sigma=psf, geometry=geometry, coregistration=coregistration)
            estimate, _ = hsms.first_estimate_hs_ms(hs, ms, sensor_model=model, geometry=geometry)
            add(f"linear first estimate (SRF est., PSF {label})", estimate, time.perf_counter() - start,
                psf_sigma=float(model.psf_sigma[0]))
            for loss in losses:
                for network in networks:
                    run_options = replace(options, loss=loss, seed=seed, network=network)
                    (fused, info), seconds = timed(fuse_real, Path(tmp), hs, ms, run_options, label,
                                                   coregistration)
                    run = info["run"]
                    add(f"SURE Fusion, {loss} loss, network {network} (SRF est., PSF {label})", fused, seconds,
                        psf_sigma=info["psf_sigma"], sigma_hs_estimated=float(np.mean(run["sigma"]["hs"])),
                        sigma_hs_true=sigma_noise, sigma_ms_estimated=float(np.mean(run["sigma"]["ms"])),
                        options={"iterations": options.iterations, "width": options.width,
                                 "threads": options.threads}, run=run)
                    print(f"    {run['iterations_run']} iterations run: {run['network_decision']}", flush=True)
    print(f"real seed {seed}: true PSF σ {sigma_psf:.3f} px, true HS noise σ {sigma_noise:.4f}")
    return rows


def simulated_protocol(seed: int, options: SolverOptions, snr_hs: float, losses: list[str]) -> list[dict]:
    hs_full, _, band_numbers = load_paris()
    truth = hs_full / hs_full.max()
    response = ikonos_response(hyperion_centres_nm(band_numbers))
    geometry = Geometry.ZERO_PHASE.value
    rng = np.random.default_rng(10_000 + seed)
    ms_clean = np.einsum("gl,lhw->ghw", response, truth)
    sigma_ms = float(np.sqrt((ms_clean ** 2).mean() / 10 ** (SIM_SNR_MS / 10)))
    ms = ms_clean + sigma_ms * rng.standard_normal(ms_clean.shape)
    hs, sigma_hs = degrade_hs(truth, SIM_PSF_SIGMA, SIM_RATIO, snr_hs, seed, geometry, noise_before_decimation=False)
    model = pair_fusion.SensorModel(SIM_RATIO, np.full(truth.shape[0], SIM_PSF_SIGMA), response,
                                          np.zeros(response.shape[0]))
    known = {"sigma": {"lr": sigma_hs, "guide": sigma_ms}, "geometry": geometry}
    rows = []

    def add(method, estimate, seconds):
        row = {"protocol": "simulated", "snr_hs": snr_hs, "seed": seed, "method": method,
               **scores(truth, estimate, SIM_RATIO, 1.0), "seconds": seconds,
               "options": {"iterations": options.iterations, "width": options.width, "threads": options.threads}}
        rows.append(row)
        print(f"sim HS {snr_hs:g} dB seed {seed} {method:<34} ERGAS {row['ergas']:6.3f}  SAM {row['sam']:6.3f}°  "
              f"PSNR {row['psnr']:6.2f} dB  {seconds:7.1f} s", flush=True)

    add("cubic-spline interpolation", upsample_cubic(hs, SIM_RATIO, geometry), 0.0)
    for tune in (False, True):
        start = time.perf_counter()
        estimate = pair_fusion.first_estimate(hs, ms, model, tune=tune, **known)
        add("linear first estimate" + (", SURE τ" if tune else ", τ = 0"), estimate, time.perf_counter() - start)
    for loss in losses:
        start = time.perf_counter()
        fused, _ = pair_fusion.fuse(hs, ms, model, options=replace(options, loss=loss, seed=seed), **known)
        add(f"{loss} loss", fused, time.perf_counter() - start)
    return rows


# --------------------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------------------
_mean = mean_of


def print_tables(runs: list[dict], options: SolverOptions) -> None:
    real = [r for r in runs if r["protocol"] == "real"]
    if real:
        seeds = sorted({r["seed"] for r in real})
        print(f"\nReal EO-1 Paris pair, HS degraded ×3 (MTF 0.3, 'area') at 30 dB, mean over the seeds run ({seeds}); "
              f"{options.iterations} iterations, width {options.width}, {options.threads} thread(s)")
        print(f"{'method':<66} {'ERGAS':>7} {'SAM °':>7} {'PSNR dB':>8} {'seconds':>8} {'seeds':>5}")
        for name, value in PEERS.items():
            print(f"{'peer: ' + name:<66} {value:>7.2f} {'':>7} {'':>8} {'':>8}")
        for method in dict.fromkeys(r["method"] for r in real):
            rows = [r for r in real if r["method"] == method]
            print(f"{method:<66} {_mean(rows, 'ergas'):>7.3f} {_mean(rows, 'sam'):>7.3f} {_mean(rows, 'psnr'):>8.2f} "
                  f"{_mean(rows, 'seconds'):>8.1f} {len(rows):>5}")
        print(f"{'target':<66} {'≤ ' + str(TARGET['ergas']):>7} {'≤ ' + str(TARGET['sam']):>7} {'':>8} "
              f"{'≤ ' + str(int(TARGET['seconds'])):>8}")
    sim = [r for r in runs if r["protocol"] == "simulated"]
    for snr in sorted({r["snr_hs"] for r in sim}, reverse=True):
        rows_snr = [r for r in sim if r["snr_hs"] == snr]
        print(f"\nSimulated (paper's protocol on this scene): IKONOS MS at {SIM_SNR_MS:g} dB, HS ×4 (σ = 2, "
              f"zero-phase) at {snr:g} dB; known R, PSF, σ; mean over seeds {sorted({r['seed'] for r in rows_snr})}")
        print(f"{'method':<34} {'ERGAS':>7} {'SAM °':>7} {'PSNR dB':>8} {'MSRE dB':>8} {'seconds':>8}")
        for method in dict.fromkeys(r["method"] for r in rows_snr):
            rows = [r for r in rows_snr if r["method"] == method]
            print(f"{method:<34} {_mean(rows, 'ergas'):>7.3f} {_mean(rows, 'sam'):>7.3f} {_mean(rows, 'psnr'):>8.2f} "
                  f"{_mean(rows, 'msre'):>8.2f} {_mean(rows, 'seconds'):>8.1f}")
        s = [r for r in rows_snr if r["method"] == "sure loss"]
        b = [r for r in rows_snr if r["method"] == "bp loss"]
        if s and b:
            print(f"SURE − BP: ERGAS {_mean(s, 'ergas') - _mean(b, 'ergas'):+.3f}, "
                  f"PSNR {_mean(s, 'psnr') - _mean(b, 'psnr'):+.2f} dB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", nargs="+", default=["real", "sim"], choices=["real", "sim"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--losses", nargs="+", default=["sure"], choices=["sure", "bp"],
                        help="losses for the real protocol (the simulated one always runs BP and SURE)")
    parser.add_argument("--sim-snr-hs", type=float, nargs="+", default=[30.0],
                        help="HS SNR(s) of the simulated protocol")
    parser.add_argument("--given-psf", action="store_true", help="real protocol: also fuse with the true PSF σ")
    parser.add_argument("--networks", nargs="+", default=["auto"], choices=NETWORK_MODES,
                        help="real protocol: SURE Fusion's NETWORK mode(s), one run each (auto: the plugin's default; "
                             "the README's figures were measured with the network always applied); the simulated "
                             "protocol uses the first")
    parser.add_argument("--coregistration", choices=["auto", "off"], default="auto",
                        help="real protocol: COREGISTRATION of the fusion and of the first estimates (auto: the "
                             "plugin's default; the README's EO-1 figures predate it: off)")
    parser.add_argument("--iterations", type=int, default=None, help="override the recipe's iterations")
    parser.add_argument("--width", type=int, default=None, help="override the network width")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write all rows to this file")
    parser.add_argument("--report", type=Path, nargs="+", default=None,
                        help="only print the tables of rows saved by earlier --json runs (e.g. one run per seed)")
    args = parser.parse_args(argv)
    if args.report:
        runs = [row for path in args.report for row in json.loads(path.read_text())]
        options = SolverOptions(**next((r["options"] for r in runs if "options" in r), {}))
        print_tables(runs, options)
        return 0
    if missing_data("paris_data_hs_ms.mat", "ikonos_spec_resp.mat"):
        return 2
    pin_threads(args.threads)
    options = SolverOptions(device="cpu", threads=args.threads)
    if args.iterations:
        options = replace(options, iterations=args.iterations)
    if args.width:
        options = replace(options, width=args.width)
    runs = []
    for seed in args.seeds:
        if "real" in args.protocols:
            runs += real_protocol(seed, options, args.given_psf, args.losses, args.networks, args.coregistration)
        if "sim" in args.protocols:
            for snr in args.sim_snr_hs:
                runs += simulated_protocol(seed, replace(options, network=args.networks[0]), snr, ["bp", "sure"])
    print_tables(runs, options)
    if args.json:
        write_json(args.json, runs)
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
