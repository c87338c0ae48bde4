"""Scale benchmark: S2 sharpening of growing areas through GDAL windows, one network trained on crops.

For each size N (10 m pixels per side) a scene is assembled from the real DSen2 crop (600×600 px at 10 m,
mirrored to reach N) and written as three GeoTIFFs (10/20/60 m). A child process then runs the plugin's
QGIS-free driver (`sure_fusion_qgis.sharpening.run_sharpening`, TRAINING=scene: crops read through GDAL
windows, one network, tiles fused and written window by window) and reports its wall time split into
training and inference, and its own peak RSS. The table shows time against area and the extrapolation to a
whole Sentinel-2 tile (10980² px), plus a GPU estimate from the network's measured FLOPs per pixel.

Usage: python -m benchmarks.scale [--sizes 240 480 960 1920] [--iterations N] [--tile 1024] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import DATA, missing_data, write_json

ROOT = Path(__file__).resolve().parents[1]
FULL_TILE = 10980
RATIOS = {"10m": 1, "20m": 2, "60m": 6}
EPSG, ORIGIN = 32633, (300000.0, 5700000.0)


def load_dsen2() -> dict[str, np.ndarray]:
    from osgeo import gdal

    path = DATA / "S2A_MSIL1C_20170527_T33UUB.mat"
    out = {}
    for key, var in (("10m", "im10"), ("20m", "im20"), ("60m", "im60")):
        ds = gdal.Open(f'HDF5:"{path}"://{var}')
        out[key] = ds.ReadAsArray().transpose(0, 2, 1).astype(np.float32)  # stored column-major
    return out


def assemble(bands: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """The real crop cut or mirrored (whole 60 m pixels) to size×size 10 m pixels, consistently in all groups."""
    out = {}
    for key, data in bands.items():
        n = size // RATIOS[key]
        have = data.shape[-1]
        padded = data if n <= have else np.pad(data, ((0, 0), (0, n - have), (0, n - have)), mode="symmetric")
        out[key] = np.ascontiguousarray(padded[:, :n, :n])
    return out


def write_scene(folder: Path, bands: dict[str, np.ndarray]) -> dict[str, str]:
    from osgeo import gdal

    from sure_core import sentinel2 as s2
    from sure_fusion_qgis import raster_writer

    groups = {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M}
    paths = {}
    for key, data in bands.items():
        pixel = 10.0 * RATIOS[key]
        gt = (ORIGIN[0], pixel, 0.0, ORIGIN[1], 0.0, -pixel)
        paths[key] = raster_writer.write_simple_geotiff(folder / f"{key}.tif", data, gt, raster_writer.epsg_wkt(EPSG),
                                                        descriptions=list(groups[key]), gdal_type=gdal.GDT_Float32)
    return paths


def network_flops_per_pixel(width: int, skip_width: int) -> float:
    """Multiply-adds ×2 of one forward pass of the default S2 network, per 10 m output pixel (counted by hooks)."""
    import torch

    from sure_core.networks import GuidedAttentionNet

    net = GuidedAttentionNet(4, 8, 12, width=width, skip_width=skip_width, output="linear")
    flops = [0]

    def count(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        flops[0] += 2 * module.in_channels * module.out_channels * k * output.shape[-1] * output.shape[-2]

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(count)
    with torch.no_grad():
        net(torch.zeros(1, 12, 32, 32))
    return flops[0] / (32 * 32)


def quality(iterations: int, size: int = 288, offset: int = 6, crops: int = 2, crop_size: int = 192,
            tile: int = 144, halo: int = 48, threads: int = 1, network: str = "auto") -> dict:
    """Tiled (one network on crops, tiles with halo) against whole-window training, Wald protocol on real data.

    The whole DSen2 scene (600² px at 10 m) is degraded by 2 (S2 MTFs, 'area'), and a `size`² window of the
    degraded scene (not periodic at its borders, like any real area) is sharpened both ways; the 20 m bands
    are scored against the original ones (ERGAS, MSRE, 11 px border cut), and the error near tile borders is
    compared with the error inside tiles (seams).
    """
    import torch

    from benchmarks.s2_real import degrade
    from sure_core import metrics, s2_sharpening, scene
    from sure_core.solver import SolverOptions
    from sure_core.tiling import Window, plan_tiles

    torch.set_num_threads(threads)
    bands = {k: v.astype(np.float64) for k, v in load_dsen2().items()}
    low = degrade(bands)
    o, n = offset, size
    win = {k: low[k][:, o // RATIOS[k]:(o + n) // RATIOS[k], o // RATIOS[k]:(o + n) // RATIOS[k]] for k in low}
    truth = bands["20m"][:, o:o + n, o:o + n]
    idx = [s2_sharpening.output_band_names(True).index(b) for b in ("B5", "B6", "B7", "B8A", "B11", "B12")]

    def score(est, b=11):
        e, t = est[idx][:, b:-b, b:-b], truth[:, b:-b, b:-b]
        return {"ergas": metrics.ergas(t, e, 2), "msre": metrics.msre(t, e)}

    def read(w):
        rs, cs = w.slices()
        return {k: win[k][:, rs.start // RATIOS[k]:rs.stop // RATIOS[k], cs.start // RATIOS[k]:cs.stop // RATIOS[k]]
                for k in win}

    options = SolverOptions(iterations=iterations, threads=threads, device="cpu", network=network)
    out = {"first_estimate": score(s2_sharpening.first_estimate(win["10m"], win["20m"], win["60m"]))}
    start = time.perf_counter()
    whole, _ = s2_sharpening.sharpen(win["10m"], win["20m"], win["60m"], options=options)
    out["whole"] = {**score(whole), "seconds": time.perf_counter() - start}
    start = time.perf_counter()
    case = s2_sharpening.Sentinel2Case()
    fitted = scene.train_scene(case, read, (n, n), options=options,
                               scene=scene.SceneOptions(crops=crops, crop_size=crop_size))
    tiles = plan_tiles(Window(0, 0, n, n), tile, halo, case.step)
    tiled = np.zeros((12, n, n), dtype=np.float32)
    for t in tiles:
        fused = fitted.fuse(read(t.read))
        tiled[(slice(None), *t.core.slices())] = fused[(slice(None), *t.core_in_read())]
    out["tiled"] = {**score(tiled), "seconds": time.perf_counter() - start, "tiles": len(tiles),
                    "crops": [(w.col, w.row, w.width) for w in fitted.crops]}
    # the same scene model on the whole window at once: separates the effect of tiling from that of crop training
    untiled = fitted.fuse(read(Window(0, 0, n, n)))
    out["scene_model_untiled"] = score(untiled)
    # seams: error within 3 px of inner tile borders against the error elsewhere (20 m bands, border cut), for
    # the tiled and the untiled output of the same model (the untiled ratio is what the content alone gives),
    # and how much the tiled output differs from the untiled one near the borders and elsewhere
    near = np.zeros((n, n), dtype=bool)
    for t in tiles:
        for edge in (t.core.row, t.core.row + t.core.height):
            if 0 < edge < n:
                near[max(0, edge - 3):edge + 3, :] = True
        for edge in (t.core.col, t.core.col + t.core.width):
            if 0 < edge < n:
                near[:, max(0, edge - 3):edge + 3] = True
    inner = np.zeros((n, n), dtype=bool)
    inner[11:-11, 11:-11] = True
    seams = {}
    for name, est in (("tiled", tiled), ("untiled", untiled)):
        err = ((est[idx] - truth) ** 2).mean(axis=0)
        seams[name] = {"mse_near_tile_borders": float(err[near & inner].mean()),
                       "mse_elsewhere": float(err[~near & inner].mean())}
        seams[name]["ratio"] = seams[name]["mse_near_tile_borders"] / seams[name]["mse_elsewhere"]
    diff = np.abs(tiled[idx] - untiled[idx]).max(axis=0)
    seams["max_abs_tiled_minus_untiled"] = {"near_tile_borders": float(diff[near & inner].max()),
                                            "elsewhere": float(diff[~near & inner].max()),
                                            "relative_to_mean_signal": float(diff.max() / np.abs(truth).mean())}
    out["seams"] = seams
    return out


SMOOTHING = {"auto": None, "on": True, "off": False}   # SolverOptions.smoothing (auto: only with σ given)


def run_one(folder: str, iterations: int, tile: int, threads: int, smoothing: str = "auto", network: str = "auto"
            ) -> dict:
    """Child process: sharpen the scene in `folder` and print a JSON line with timings and peak RSS."""
    import torch

    from sure_core import s2_sharpening
    from sure_core import sentinel2 as s2
    from sure_core.solver import SolverOptions
    from sure_core.tiling import TRAINING_STAGE
    from sure_fusion_qgis import s2_inputs, sharpening
    from sure_fusion_qgis.fusion_run import RunSettings

    torch.set_num_threads(threads)
    folder = Path(folder)
    groups = {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M}
    inputs = s2_inputs.open_band_rasters({k: str(folder / f"{k}.tif") for k in groups}, groups)
    window = inputs.stack.plan()
    options = SolverOptions(iterations=iterations, threads=threads, device="cpu", smoothing=SMOOTHING[smoothing],
                            network=network)
    settings = RunSettings(options=options, tile_size=tile, tile_overlap=48, training="scene")
    marks = {}

    def progress(t, p):   # training ends where the first tile reports (NETWORK=auto may stop it early)
        if t is not TRAINING_STAGE:
            marks.setdefault("trained", time.perf_counter())
        return False

    start = time.perf_counter()
    result = sharpening.run_sharpening(inputs, window, str(folder / "out.tif"), settings, progress=progress)
    total = time.perf_counter() - start
    del s2_sharpening
    trained = marks.get("trained", start + total) - start
    return {"size": window.width, "seconds": total, "training_seconds": trained, "inference_seconds": total - trained,
            "tiles": len(result.tiles), "peak_rss_mb": peak_rss_mb(), "network": result.network_decision,
            "iterations_run": result.records[0].iterations_run}


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): VmHWM, which starts afresh at exec. ru_maxrss does not: a child
    forked from a parent holding a full tile's arrays inherits the parent's resident size (it read 3853 MB on
    three full-tile runs whatever the tiling, the parent's size at the fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[240, 480, 960, 1920])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--tile", type=int, default=1024, help="tile side in 10 m pixels (inference)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--tile-iterations", type=int, default=300,
                        help="iterations assumed for the full-tile estimate (training time scaled per iteration)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoothing", choices=list(SMOOTHING), default="auto",
                        help="the guided smoothing: auto (the default: off, σ being estimated), on, off (to time it)")
    parser.add_argument("--network", choices=("auto", "always", "never"), default="auto",
                        help="NETWORK: auto (the default: kept where SURE says it pays), always (as before), never")
    parser.add_argument("--quality", action="store_true",
                        help="instead of the size sweep: tiled (crops + tiles) against whole-window training")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.run_one and missing_data("S2A_MSIL1C_20170527_T33UUB.mat"):
        return 2
    if args.quality:
        result = quality(args.iterations, threads=args.threads, network=args.network)
        print(json.dumps(result, indent=2))
        w, t, u = result["whole"], result["tiled"], result["scene_model_untiled"]
        print(f"whole-window training: ERGAS {w['ergas']:.3f}, MSRE {w['msre']:.2f} dB, {w['seconds']:.0f} s; "
              f"tiled: ERGAS {t['ergas']:.3f}, MSRE {t['msre']:.2f} dB ({t['msre'] - w['msre']:+.2f} dB), "
              f"{t['seconds']:.0f} s; the same scene model untiled: ERGAS {u['ergas']:.3f}, MSRE {u['msre']:.2f} dB; "
              f"first estimate ERGAS {result['first_estimate']['ergas']:.3f}")
        s = result["seams"]
        print(f"seams: border/elsewhere squared-error ratio tiled {s['tiled']['ratio']:.3f}, untiled (content "
              f"alone) {s['untiled']['ratio']:.3f}; max |tiled − untiled| near borders "
              f"{s['max_abs_tiled_minus_untiled']['near_tile_borders']:.3g}, elsewhere "
              f"{s['max_abs_tiled_minus_untiled']['elsewhere']:.3g}")
        write_json(args.json, result, indent=2)
        return 0
    if args.run_one:
        print(json.dumps(run_one(args.run_one, args.iterations, args.tile, args.threads, args.smoothing,
                                 args.network)))
        return 0

    bands = load_dsen2()
    rows = []
    for size in args.sizes:
        if size % 6:
            raise SystemExit(f"sizes must be multiples of 6 (whole 60 m pixels), got {size}")
        with tempfile.TemporaryDirectory(prefix=f"sure_scale_{size}_") as tmp:
            write_scene(Path(tmp), assemble(bands, size))
            child = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--run-one", tmp, "--iterations",
                                    str(args.iterations), "--tile", str(args.tile), "--threads", str(args.threads),
                                    "--smoothing", args.smoothing, "--network", args.network],
                                   cwd=ROOT, capture_output=True, text=True, check=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
        row["mpx"] = size * size / 1e6
        rows.append(row)
        print(f"{size:>5}² px  {row['mpx']:6.2f} Mpx  training {row['training_seconds']:7.1f} s  inference "
              f"{row['inference_seconds']:7.1f} s ({row['tiles']} tiles)  total {row['seconds']:7.1f} s  "
              f"peak RSS {row['peak_rss_mb']:6.0f} MB", flush=True)

    big = max(rows, key=lambda r: r["mpx"])
    rate = big["mpx"] / big["inference_seconds"] * 60           # Mpx per minute, inference
    training = float(np.median([r["training_seconds"] for r in rows])) * args.tile_iterations / args.iterations
    tile_mpx = FULL_TILE ** 2 / 1e6
    estimate = training + tile_mpx / rate * 60
    flops = network_flops_per_pixel(16, 8)
    print(f"\ninference rate {rate:.2f} Mpx/min (at {big['size']}²); training {training:.0f} s for "
          f"{args.tile_iterations} iterations on crops (scaled from {args.iterations}; fixed, whatever the area)")
    print(f"full tile {FULL_TILE}² = {tile_mpx:.1f} Mpx: estimated {estimate / 60:.1f} min on this CPU "
          f"({args.threads} threads), peak RSS as measured above (bounded by the tile, not the scene)")
    print(f"network forward: {flops / 1e3:.1f} kFLOP per 10 m pixel → {flops * tile_mpx * 1e6 / 1e12:.2f} TFLOP "
          f"for a tile's inference; training {args.tile_iterations} iterations × one 192² px crop × ~4 forward "
          f"equivalents (two forward passes for SURE, a backward pass ≈ two) ≈ "
          f"{flops * 4 * args.tile_iterations * 192 ** 2 / 1e12:.2f} TFLOP")
    write_json(args.json, {"rows": rows, "inference_mpx_per_min": rate, "training_seconds": training,
                           "full_tile_estimate_seconds": estimate, "flops_per_pixel": flops,
                           "iterations": args.iterations, "threads": args.threads}, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
