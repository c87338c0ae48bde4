"""Where a tile of the S2 scene path spends its time: GDAL read, problem (operators, σ, scale), first estimate
(and network, if kept), output, GDAL write and compression, memory release, and the final read-back.

The scene of `benchmarks.scale` (the DSen2 crop mirrored to `--size`² px, three GeoTIFFs) is trained once as the
plugin's driver trains it (`TRAINING=scene`: `fusion_request.prepare`, then the core runner's `train_on_crops`),
then the runner's tiles of that area are fused `--passes` times into one GeoTIFF, each phase timed. The first pass
meets every window shape anew (operator spectra and gain tables built), later passes find them cached, as most
tiles of a full Sentinel-2 tile do (16 shapes over 100 tiles). `--cpu` reports process CPU seconds instead of wall
seconds: steadier on a machine shared with other work. `--profile` adds a cProfile of the tile loop.

Usage: python -m benchmarks.tile_profile [--size 2046] [--tile 1024] [--network never] [--passes 2] [--cpu] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .common import missing_data, pin_threads
from .scale import assemble, load_dsen2, write_scene

#: the phases of one tile, in the order they run; 'rest of fuse' is what `SceneModel.fuse` spends outside the
#: three calls it is timed by (zero while fuse is only those three)
PHASES = ("read", "problem", "estimate", "output", "rest of fuse", "write", "flush (compress)", "release")


class _Timed:
    """`target` with the methods named in `phases` ({method: phase}) timed by `timed(phase, call, ...)`; every other
    attribute passed through. The scene model's own `fuse` then runs as it is, its parts timed."""

    def __init__(self, target, phases: dict[str, str], timed) -> None:
        self._target, self._phases, self._timed = target, phases, timed

    def __getattr__(self, name):
        value = getattr(self._target, name)
        phase = self._phases.get(name)
        if phase is None:
            return value
        return lambda *args, **kwargs: self._timed(phase, value, *args, **kwargs)


def profile(sources: dict[str, str], settings, passes: int, folder: Path, clock=time.perf_counter,
            profiler: cProfile.Profile | None = None, say=print) -> dict:
    """Train the Sentinel-2 scene of `sources` ({'10m', '20m', '60m': GeoTIFF path}) once the driver's way with
    `settings` (a `fusion_run.RunSettings`, training 'scene'), then fuse the runner's tiles of the whole area
    `passes` times into one GeoTIFF in `folder`, timing each phase by `clock`. Returns {'training': seconds,
    'network': the decision, 'tiles': count, 'windows': read window shapes, 'passes': [{phase: seconds per tile}],
    'finish': seconds of the final close and read-back, 'path': the output}; `say` gets the report's lines."""
    from sure_core.device import release_memory
    from sure_core.runner import train_on_crops
    from sure_core.scene import SceneOptions
    from sure_fusion_qgis import fusion_request, fusion_run, sharpening
    from sure_fusion_qgis.plausibility import check_finite
    from sure_fusion_qgis.raster_writer import OUTPUT_NODATA, GeoTiffWriter

    prepared = fusion_request.prepare(fusion_request.FusionRequest(kind="s2", sources=sources, settings=settings))
    inputs, area, settings = prepared.inputs, prepared.window, prepared.settings
    case = sharpening.sentinel2_case(inputs, settings)
    plan = fusion_run.plan_area(settings, area, inputs.stack.step)
    if plan.training != "scene":
        raise ValueError(f"the tile profile times scene training's tiles; these settings train {plan.training!r}")

    # as `fusion_run.write_area` hands the area to the runner: its windows are relative to the area
    def read(window):
        return sharpening.read_window(inputs, window.shifted(area.col, area.row))

    start = clock()
    model = train_on_crops(case, read, (area.height, area.width),
                           SceneOptions(crops=settings.scene_crops, crop_size=settings.scene_crop_size),
                           settings.options,
                           valid_fraction=lambda w: inputs.stack.valid_fraction(w.shifted(area.col, area.row)))
    training = clock() - start
    windows = sorted({(t.read.width, t.read.height) for t in plan.tiles})
    say(f"training {training:.1f} s ({model.record.network_decision})")
    say(f"{len(plan.tiles)} tiles, windows read: {windows}"
        + ("" if plan.aligned else "; tiles under two output blocks: compressed at the close, not per tile"))
    times: dict[str, float] = {}

    def timed(name, call, *args, **kwargs):
        begin = clock()
        result = call(*args, **kwargs)
        times[name] = times.get(name, 0.0) + clock() - begin
        return result

    timed_model = replace(model, case=_Timed(model.case, {"inputs": "problem", "problem": "problem",
                                                          "output": "output"}, timed),
                          model=_Timed(model.model, {"apply": "estimate"}, timed))
    result = {"training": training, "network": model.record.network_decision, "tiles": len(plan.tiles),
              "windows": windows, "passes": []}
    with GeoTiffWriter(str(folder / "out.tif"), inputs.stack.output_grid(area), case.band_descriptions(),
                       block=plan.block) as writer:
        def write(tile, fused, invalid):
            # the runner's nodata marking and cut to the core, then `write_area`'s check and GDAL write
            if invalid is not None and invalid.any():
                fused[:, invalid] = OUTPUT_NODATA
            rows, cols = tile.core_in_read()
            block = fused[:, rows, cols]
            check_finite(block, f"tile {tile.index + 1} of {tile.count}")
            writer.write(block, tile.core.col, tile.core.row)

        if profiler:
            profiler.enable()
        for n in range(passes):
            # one tile as `runner.run` fuses it with a scene model
            for tile in plan.tiles:
                data, invalid = timed("read", read, tile.read)
                fused = timed("fuse", timed_model.fuse, data)
                timed("write", write, tile, fused, invalid)
                if plan.aligned:
                    timed("flush (compress)", writer.flush)
                del fused
                timed("release", release_memory, model.device)
            times["rest of fuse"] = times.pop("fuse") - sum(times.get(k, 0.0) for k in ("problem", "estimate",
                                                                                      "output"))
            per_tile = {k: times[k] / len(plan.tiles) for k in PHASES if k in times}
            result["passes"].append(per_tile)
            say(f"pass {n + 1}, seconds per tile: " + ", ".join(f"{k} {v:.3f}" for k, v in per_tile.items())
                + f"; total {sum(per_tile.values()):.3f}")
            times.clear()
        if profiler:
            profiler.disable()
        begin = clock()
        writer.finish()
        result["finish"] = clock() - begin
        say(f"close and read back (validate_geotiff): {result['finish']:.2f} s for the whole output")
        result["path"] = writer.commit()   # kept in `folder`, for a look at what was timed
    return result


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
    if args.size % 6:
        raise SystemExit(f"--size must be a multiple of 6 (whole 60 m pixels), got {args.size}")
    from sure_core.solver import SolverOptions
    from sure_fusion_qgis.fusion_run import RunSettings

    pin_threads(args.threads)
    options = SolverOptions(iterations=300, threads=args.threads, device="cpu", network=args.network)
    settings = RunSettings(options=options, tile_size=args.tile, tile_overlap=48, training="scene")
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="sure_tile_profile_") as tmp:
        folder = Path(tmp)
        sources = write_scene(folder, assemble(load_dsen2(), args.size))
        profile(sources, settings, args.passes, folder, time.process_time if args.cpu else time.perf_counter,
                profiler)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
