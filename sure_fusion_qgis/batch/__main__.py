"""Command line: fuse many scenes (Sentinel-2, HS + MS, PAN + MS) on a Dask cluster (a LocalCluster by default).
See --help."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

EPILOG = """\
scenes: Sentinel-2 products (.SAFE folder, .zip, MTD_MSIL1C/2A.xml) and/or manifest CSV files with the columns
name,product,bands_10m,bands_20m,bands_60m,hs,ms,pan,sensor,xmin,ymin,xmax,ymax (one scene per row: a product, S2
band rasters, an HS + MS pair (hs, ms) or a PAN + MS pair (ms, pan[, sensor]); see docs/plugin.md).
Outputs: OUTPUT_DIR/<scene>_sharpened.tif, <scene>_fused.tif (HS + MS), <scene>_pansharpened.tif. Finished
outputs are skipped on a re-run (use --overwrite to redo).
Exit code: 0 when every scene is done or was finished earlier, 1 when a scene failed, 2 for bad arguments or
unusable output paths, 130 after Ctrl-C, 143 after SIGTERM.

examples:
  python -m sure_fusion_qgis.batch S2*.SAFE -o out/ --iterations 300
  python -m sure_fusion_qgis.batch scenes.csv -o out/ --scheduler tcp://10.0.0.5:8786 --device cuda
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sure_fusion_qgis.batch", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fuse scenes by Deep SURE (Sentinel-2 sharpening to 10 m, HS + MS fusion, pansharpening), one "
                    "Dask task per scene, without QGIS.")
    parser.add_argument("scenes", nargs="+", metavar="SCENE", help="product path or manifest .csv")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the fused GeoTIFFs (created)")
    solver = parser.add_argument_group("solver (as the QGIS algorithm's parameters)")
    solver.add_argument("--iterations", type=int, default=0,
                        help="training iterations (0: the algorithm's default, 300; pansharpening 60)")
    solver.add_argument("--loss", choices=("sure", "bp"), default="sure")
    solver.add_argument("--seed", type=int, default=0)
    solver.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    solver.add_argument("--width", type=int, default=0, help="network width (0: the algorithm's default)")
    solver.add_argument("--threads", type=int, default=1, help="torch CPU threads per scene (default 1)")
    solver.add_argument("--tile-size", type=int, default=0, help="tile size in output px (0: whole scene at once)")
    solver.add_argument("--tile-overlap", type=int, default=36, help="tile halo in output px (default 36)")
    solver.add_argument("--no-60m", action="store_true", help="products: sharpen the 20 m bands only (no B1, B9)")
    solver.add_argument("--network", choices=("auto", "always", "never"), default="auto",
                        help="auto (default): keep the per-scene network only where SURE says it beats the linear "
                             "first estimate (else stop training early and apply the first estimate to the tiles); "
                             "always; never: the first estimate alone")
    solver.add_argument("--coregistration", choices=("auto", "off"), default="auto",
                        help="auto (default): measure and correct the coarse bands' sub-pixel shift against the "
                             "guide (written to each output's metadata); off: trust the georeferencing")
    run = parser.add_argument_group("cluster and run")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on an existing Dask scheduler (e.g. tcp://host:8786; workers started with "
                          "`dask worker ADDRESS`); default: a LocalCluster on this machine")
    run.add_argument("--workers", type=int, default=0,
                     help="LocalCluster worker processes (0: CPU cores // --threads)")
    run.add_argument("--threads-per-worker", type=int, default=1, help="scenes run at once per worker (default 1)")
    run.add_argument("--memory-limit", default="auto",
                     help="LocalCluster memory limit per worker, e.g. 4GiB ('auto': RAM / workers; 0: none)")
    run.add_argument("--retries", type=int, default=2,
                     help="re-runs of a scene whose task raised or whose worker died (default 2)")
    run.add_argument("--overwrite", action="store_true", help="redo scenes whose output is finished")
    run.add_argument("--summary", metavar="JSON", help="also write the summary as JSON to this file")
    run.add_argument("--quiet", action="store_true", help="no progress output, only the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("threads", "threads_per_worker"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be ≥ 1")
    if args.iterations < 0 or args.width < 0 or args.workers < 0 or args.retries < 0 or args.tile_size < 0:
        parser.error("--iterations, --width, --workers, --retries and --tile-size must be ≥ 0")

    from ..io_errors import RasterIOError
    from ..safe_output import stage_text
    from .outputs import remove_stale_partials
    from .runner import ClusterSettings, ProgressDisplay, check_workers, dask_client, format_summary, plan, run_scenes
    from .scenes import SceneListError, collect_scenes
    from .task import BatchSettings

    try:
        scenes = collect_scenes(args.scenes, args.output_dir)
    except SceneListError as e:
        parser.error(str(e))
    settings = BatchSettings(iterations=args.iterations, loss=args.loss, seed=args.seed, device=args.device,
                             width=args.width, threads=args.threads, tile_size=args.tile_size,
                             tile_overlap=args.tile_overlap, with_60m=not args.no_60m, overwrite=args.overwrite,
                             coregistration=args.coregistration, network=args.network)
    cluster = ClusterSettings(scheduler=args.scheduler, workers=args.workers,
                              threads_per_worker=args.threads_per_worker, memory_limit=args.memory_limit,
                              retries=args.retries)
    skipped, to_run = plan(scenes, settings)
    log = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    log(f"{len(scenes)} scene(s): {len(skipped)} finished earlier, {len(to_run)} to run")
    outcomes = {o.name: o for o in skipped}
    if to_run:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    try:
        check_output_paths(scenes, to_run, args.summary)
    except RasterIOError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if to_run:
        signal.signal(signal.SIGTERM, _interrupt)   # batch systems stop jobs by SIGTERM: shut the cluster down
        try:
            with dask_client(cluster, args.threads) as client:
                workers = client.nthreads()
                log(f"Dask: {'scheduler ' + args.scheduler if args.scheduler else 'LocalCluster'} with "
                    f"{len(workers)} worker(s), {sum(workers.values())} task thread(s); torch threads per scene "
                    f"{args.threads}; retries {args.retries}")
                check_workers(client)
                display = ProgressDisplay(len(to_run), stream=None if args.quiet else sys.stderr)
                for outcome in run_scenes(client, to_run, settings, retries=args.retries, display=display):
                    outcomes[outcome.name] = outcome
        except KeyboardInterrupt as stop:
            for scene in to_run:  # the cluster is down: what its killed tasks were writing (a task still running
                remove_stale_partials(scene.output)  # elsewhere holds its file, which is kept)
            print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
            return 128 + (stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT)
        except (RuntimeError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    ordered = [outcomes[scene.name] for scene in scenes]
    print(format_summary(ordered))
    if args.summary:
        try:  # like every output: a temporary file, renamed when complete
            stage_text(args.summary, json.dumps([asdict(o) for o in ordered], indent=1), "--summary").commit()
        except RasterIOError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 1 if any(o.status == "failed" for o in ordered) else 0


def check_output_paths(scenes, to_run, summary: str | None = None) -> None:
    """Before any cluster starts: no output of a scene to run (nor the --summary file) is an input of any scene or
    another output, and each output's folder can be written with its temporary name (`output_paths`; the outputs'
    sizes are checked by the task, which opens the inputs)."""
    from .. import output_paths
    from .task import planned_output, scene_inputs

    inputs = {label: path for scene in scenes for label, path in scene_inputs(scene).items()}
    for scene in to_run:
        output_paths.check_outputs([planned_output(scene)], inputs)
    if summary:
        outputs = {f"the output of scene {scene.name}": scene.output for scene in scenes}
        output_paths.check_outputs([output_paths.PlannedOutput("--summary", summary, (), "a JSON summary")],
                                   {**inputs, **outputs})


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signum)  # exit code 128 + signal: 143 for SIGTERM, 130 for Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
