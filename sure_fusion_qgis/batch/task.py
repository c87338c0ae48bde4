"""The unit of work of a batch run: fuse one scene (or one extent/window of it) into its output GeoTIFF.

`run_scene` runs on a Dask worker (or anywhere: it needs no Dask). It builds the same `FusionRequest` the QGIS
algorithms build and runs it through the plugin's own driver (`fusion_request`), so the output, its metadata and
its temporary-name-then-rename writing are the same as from QGIS, for Sentinel-2 scenes, HS + MS pairs and
PAN + MS pairs alike. Errors that the user must fix (bad input, unknown device: `RasterIOError`,
`SureFusionError`) come back as a failed `SceneOutcome` at once, because running them again would fail again;
any other exception propagates, so that Dask retries the scene (`retries=`).
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .. import fusion_request, output_paths
from ..core_loader import core_module
from ..fusion_run import RunSettings
from ..io_errors import RasterIOError
from .outputs import check_output
from .scenes import PAIR_COLUMNS, Scene

PROGRESS_TOPIC = "sure-fusion-batch-progress"


@dataclass(frozen=True)
class BatchSettings:
    """Solver and run settings shared by every scene of a batch (plain values: cheap to send to workers)."""
    iterations: int = 0          # 0: the core's recipe default
    loss: str = "sure"
    seed: int = 0
    device: str = "auto"         # 'auto', 'cpu' or 'cuda'
    width: int = 0               # network width; 0: the recipe default
    threads: int = 1             # torch CPU threads per scene
    tile_size: int = 0           # output pixels; 0: the whole scene (or extent) in one piece
    tile_overlap: int = 36
    with_60m: bool = True        # products: also sharpen B1 and B9
    coregistration: str = "auto"  # 'auto': measure and correct the coarse bands' sub-pixel shifts; 'off'
    network: str = "auto"        # 'auto': keep the network where SURE says it pays; 'always'; 'never'
    overwrite: bool = False      # redo scenes whose output is finished
    progress_seconds: float = 2.0  # at most one progress event per scene this often

    def requested_metadata(self) -> dict[str, str]:
        """The output metadata items these settings fix (to tell a finished output made with other settings)."""
        items = {"LOSS": self.loss, "SEED": str(self.seed)}
        if self.iterations:
            items["ITERATIONS"] = str(self.iterations)
        if self.width:
            items["NETWORK_WIDTH"] = str(self.width)
        return items


@dataclass
class SceneOutcome:
    name: str
    status: str                  # 'done', 'skipped' (finished earlier) or 'failed'
    seconds: float
    output: str
    message: str = ""
    worker: str = ""             # where it ran: Dask worker address, or host:pid outside Dask
    device: str = ""
    final_risk: float = float("nan")


def run_scene(scene: Scene, settings: BatchSettings) -> SceneOutcome:
    """Fuse `scene` into `scene.output`, unless a finished output is there (and not `settings.overwrite`)."""
    start = time.perf_counter()
    worker = _worker_name()
    if not settings.overwrite:
        check = check_output(scene.output)
        if check.finished:
            return SceneOutcome(scene.name, "skipped", 0.0, scene.output, f"finished earlier ({check.reason})", worker)
    core = core_module()
    try:
        prepared = fusion_request.prepare(scene_request(scene, settings))
        window = prepared.window
        Path(scene.output).parent.mkdir(parents=True, exist_ok=True)
        output_paths.check_outputs([planned_output(scene, window.width, window.height, len(prepared.band_names))],
                                   scene_inputs(scene))
        result = fusion_request.run(prepared, scene.output,
                                    progress=ProgressReporter(scene.name, settings.progress_seconds))
    except (RasterIOError, core.SureFusionError) as e:
        return SceneOutcome(scene.name, "failed", time.perf_counter() - start, scene.output, str(e), worker)
    registration = "".join(f"; {text}" for text, _ in result.registration_log) + f"; {result.network_decision}"
    return SceneOutcome(scene.name, "done", time.perf_counter() - start, result.path,
                        f"{window.width}×{window.height} px, {len(result.tiles)} tile(s){registration}", worker,
                        result.device, result.final_risk)


def scene_request(scene: Scene, settings: BatchSettings) -> fusion_request.FusionRequest:
    """The scene as the request a QGIS algorithm would make of the same inputs, with the batch settings."""
    run_settings = RunSettings(options=solver_options(settings, scene.kind), tile_size=settings.tile_size,
                               tile_overlap=settings.tile_overlap, coregistration=settings.coregistration)
    choices = dict(scene.choices)
    if scene.kind in PAIR_COLUMNS:
        low, high = PAIR_COLUMNS[scene.kind]
        paths = scene.raster_paths
        sources = {"low": paths[low], "high": paths[high]}
        labels = {"low": f"{scene.name}: the {low} raster", "high": f"{scene.name}: the {high} raster"}
    elif scene.product:
        sources, labels = {"product": scene.product}, {}
        choices["with_60m"] = settings.with_60m
    else:
        sources = scene.raster_paths
        labels = {key: f"{scene.name}: the {key} raster" for key in ("10m", "20m", "60m")}
    return fusion_request.FusionRequest(scene.kind, sources, run_settings, extent=scene.extent, window=scene.window,
                                        labels=labels, scene_name=scene.name, choices=choices)


def planned_output(scene: Scene, width: int = 0, height: int = 0, bands: int = 0) -> output_paths.PlannedOutput:
    """The scene's output for `output_paths.check_outputs` (its size unknown, 0, before the inputs are opened)."""
    return output_paths.geotiff_output(f"the output of scene {scene.name}", scene.output, width, height, bands)


def scene_inputs(scene: Scene) -> dict[str, str]:
    """{label: path} of the scene's inputs: what its output must never overwrite."""
    if scene.product:
        return {f"{scene.name}: product": scene.product}
    prefix = "bands_" if scene.kind == "s2" else ""
    return {f"{scene.name}: {prefix}{key}": path for key, path in scene.rasters}


def solver_options(settings: BatchSettings, kind: str = "s2"):
    """sure_core SolverOptions: the recipe of this kind of fusion (the QGIS algorithm's), with what the batch
    settings fix."""
    core = core_module()
    changes = {"loss": settings.loss, "seed": settings.seed, "device": settings.device, "threads": settings.threads,
               "network": settings.network}
    if settings.iterations:
        changes["iterations"] = settings.iterations
    if settings.width:
        changes["width"] = settings.width
    return replace(core.SolverOptions(), **{**fusion_request.RECIPES.get(kind, {}), **changes}).validated()


class ProgressReporter:
    """The core's progress callback → a Dask event `{scene, fraction, iteration, iterations}` every few seconds
    (the client shows it in its progress bar). Outside a Dask worker it does nothing. Never asks to stop."""

    def __init__(self, scene: str, every_seconds: float):
        self.scene = scene
        self.every = every_seconds
        self.last = -float("inf")
        self.worker = _dask_worker()

    def __call__(self, tile, progress) -> bool:
        if self.worker is None:
            return False
        fraction = (tile.index + progress.iteration / progress.iterations) / tile.count
        now = time.monotonic()
        if now - self.last >= self.every or fraction >= 1.0:
            self.last = now
            self.worker.log_event(PROGRESS_TOPIC, {"scene": self.scene, "fraction": fraction,
                                                   "iteration": progress.iteration, "iterations": progress.iterations})
        return False


def _dask_worker():
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


def _worker_name() -> str:
    worker = _dask_worker()
    return worker.address if worker is not None else f"{socket.gethostname()}:{os.getpid()}"
