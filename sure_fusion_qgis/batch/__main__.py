"""Command line: sharpen many Sentinel-2 scenes on a Dask cluster (a LocalCluster by default). See --help."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

EPILOG = """\
scenes: Sentinel-2 products (.SAFE folder, .zip, MTD_MSIL1C/2A.xml) and/or manifest CSV files with the columns
name,product,bands_10m,bands_20m,bands_60m,xmin,ymin,xmax,ymax (one scene per row; see docs/plugin.md).
Outputs: OUTPUT_DIR/<scene>_sharpened.tif. Finished outputs are skipped on a re-run (use --overwrite to redo).
Exit code: 0 when every scene is done or was finished earlier, 1 when a scene failed, 2 for bad arguments.

examples:
  python -m sure_fusion_qgis.batch S2*.SAFE -o out/ --iterations 300
  python -m sure_fusion_qgis.batch scenes.csv -o out/ --scheduler tcp://10.0.0.5:8786 --device cuda
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sure_fusion_qgis.batch", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sharpen Sentinel-2 scenes to 10 m by Deep SURE, one Dask task per scene, without QGIS.")
    parser.add_argument("scenes", nargs="+", metavar="SCENE", help="product path or manifest .csv")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the sharpened GeoTIFFs (created)")
    solver = parser.add_argument_group("solver (as the QGIS algorithm's parameters)")
    solver.add_argument("--iterations", type=int, default=0, help="training iterations (0: recipe default, 300)")
    solver.add_argument("--loss", choices=("sure", "bp"), default="sure")
    solver.add_argument("--seed", type=int, default=0)
    solver.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    solver.add_argument("--width", type=int, default=0, help="network width (0: recipe default)")
    solver.add_argument("--threads", type=int, default=1, help="torch CPU threads per scene (default 1)")
    solver.add_argument("--tile-size", type=int, default=0, help="tile size in 10 m px (0: whole scene at once)")
    solver.add_argument("--tile-overlap", type=int, default=36, help="tile halo in 10 m px (default 36)")
    solver.add_argument("--no-60m", action="store_true", help="products: sharpen the 20 m bands only (no B1, B9)")
    solver.add_argument("--network", choices=("auto", "always", "never"), default="auto",
                        help="auto (default): keep the per-scene network only where SURE says it beats the linear "
                             "first estimate (else stop training early and apply the first estimate to the tiles); "
                             "always; never: the first estimate alone")
    solver.add_argument("--coregistration", choices=("auto", "off"), default="auto",
                        help="auto (default): measure and correct each coarse group's sub-pixel shift against the "
                             "10 m bands (written to each output's metadata); off: trust the georeferencing")
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
        except KeyboardInterrupt:
            print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
            return 130
        except (RuntimeError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    ordered = [outcomes[scene.name] for scene in scenes]
    print(format_summary(ordered))
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as handle:
            json.dump([asdict(o) for o in ordered], handle, indent=1)
    return 1 if any(o.status == "failed" for o in ordered) else 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
