"""Where a tile of the S2 scene path spends its time: GDAL read, problem (operators, σ, scale), first estimate
(and network, if kept), output, GDAL write and compression, memory release, and the final read-back.

The scene of `benchmarks.scale` (the DSen2 crop mirrored to `--size`² px, three GeoTIFFs) is trained once with the
plugin's driver (`TRAINING=scene`), then its tiles are fused `--passes` times into one GeoTIFF, each phase timed. The
first pass meets every window shape anew (operator spectra and gain tables built), later passes find them cached,
as most tiles of a full Sentinel-2 tile do (16 shapes over 100 tiles). `--cpu` reports process CPU seconds instead
of wall seconds: steadier on a machine shared with other work. `--profile` adds a cProfile of the tile loop.

Usage: python -m benchmarks.tile_profile [--size 2046] [--network never] [--passes 2] [--cpu] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from .common import missing_data
from .scale import assemble, load_dsen2, write_scene


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2046, help="scene side in 10 m pixels (a multiple of 6)")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--network", choices=("auto", "always", "never"), default="never")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu", action="store_true", help="process CPU seconds instead of wall seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile the tile loop (top 40 by own time)")
    args = parser.parse_args(argv)
    if missing_data("S2A_MSIL1C_20170527_T33UUB.mat"):
        return 2
    import torch

    from sure_core import sentinel2 as s2
    from sure_core.device import release_memory
    from sure_core.solver import SolverOptions
    from sure_fusion_qgis import raster_writer, s2_inputs, sharpening
    from sure_fusion_qgis.fusion_run import plan_output_tiles

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu else time.perf_counter
    with tempfile.TemporaryDirectory(prefix="sure_tile_profile_") as tmp:
        folder = Path(tmp)
        write_scene(folder, assemble(load_dsen2(), args.size))
        groups = {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M}
        inputs = s2_inputs.open_band_rasters({k: str(folder / f"{k}.tif") for k in groups}, groups)
        window = inputs.stack.plan()
        options = SolverOptions(iterations=300, threads=args.threads, device="cpu", network=args.network)
        settings = sharpening.SharpeningSettings(options=options, tile_size=args.tile, tile_overlap=48,
                                                 training="scene")
        start = clock()
        model = sharpening.train_on_scene(inputs, window, settings)
        print(f"training {clock() - start:.1f} s ({model.record.network_decision})")
        _, tiles, block, _ = plan_output_tiles(settings, window, 6)
        print(f"{len(tiles)} tiles, windows read: {sorted({(t.read.width, t.read.height) for t in tiles})}")
        profiler = cProfile.Profile() if args.profile else None
        times: dict[str, float] = {}

        def timed(name, call, *args):
            begin = clock()
            result = call(*args)
            times[name] = times.get(name, 0.0) + clock() - begin
            return result

        def apply(problem):
            return model.model.apply(problem, model.window_statistics)[0]

        if profiler:
            profiler.enable()
        with raster_writer.GeoTiffWriter(str(folder / "out.tif"), inputs.stack.output_grid(window),
                                         [str(i) for i in range(12)], block=block) as writer:
            for n in range(args.passes):
                for tile in tiles:
                    data, _ = timed("read", sharpening.read_window, inputs, tile.read)
                    problem = timed("problem", model.case.problem, data, model.noise, model.scale, model.device)
                    x_hat = timed("estimate", apply, problem)
                    fused = timed("output", model.case.output, x_hat, problem)
                    rows, cols = tile.core_in_read()
                    timed("write", writer.write, fused[:, rows, cols], tile.core.col - window.col,
                          tile.core.row - window.row)
                    timed("flush (compress)", writer.flush)
                    timed("release", release_memory)
                total = sum(times.values())
                print(f"pass {n + 1}, seconds per tile: " + ", ".join(f"{k} {v / len(tiles):.3f}"
                                                                     for k, v in times.items())
                      + f"; total {total / len(tiles):.3f}", flush=True)
                times.clear()
            begin = clock()
            writer.finish()
            print(f"close and read back (validate_geotiff): {clock() - begin:.2f} s for the whole output")
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
