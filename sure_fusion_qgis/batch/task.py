"""The unit of work of a batch run: sharpen one scene (or one extent/window of it) into its output GeoTIFF.

`sharpen_scene` runs on a Dask worker (or anywhere: it needs no Dask). It calls the plugin's own
`sharpening.run_sharpening`, so the output, its metadata and its temporary-name-then-rename writing are the
same as from QGIS. Errors that the user must fix (bad input, unknown device: `RasterIOError`,
`SureFusionError`) come back as a failed `SceneOutcome` at once, because running them again would fail again;
any other exception propagates, so that Dask retries the scene (`retries=`).
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .. import raster_io
from ..core_loader import core_module
from ..raster_io import RasterIOError
from ..sharpening import SharpeningSettings, run_sharpening
from .outputs import check_output
from .scenes import Scene

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
    tile_size: int = 0           # 10 m pixels; 0: the whole scene (or extent) in one piece
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


def sharpen_scene(scene: Scene, settings: BatchSettings) -> SceneOutcome:
    """Sharpen `scene` into `scene.output`, unless a finished output is there (and not `settings.overwrite`)."""
    start = time.perf_counter()
    worker = _worker_name()
    if not settings.overwrite:
        check = check_output(scene.output)
        if check.finished:
            return SceneOutcome(scene.name, "skipped", 0.0, scene.output, f"finished earlier ({check.reason})", worker)
    core = core_module()
    try:
        inputs = open_inputs(scene, settings)
        window = raster_io.plan_area(inputs, scene_extent(scene, inputs))
        run_settings = SharpeningSettings(options=solver_options(settings), tile_size=settings.tile_size,
                                          tile_overlap=settings.tile_overlap, coregistration=settings.coregistration)
        Path(scene.output).parent.mkdir(parents=True, exist_ok=True)
        result = run_sharpening(inputs, window, scene.output, run_settings,
                                progress=ProgressReporter(scene.name, settings.progress_seconds))
    except (RasterIOError, core.SureFusionError) as e:
        return SceneOutcome(scene.name, "failed", time.perf_counter() - start, scene.output, str(e), worker)
    registration = "".join(f"; {text}" for text, _ in result.registration_log) + f"; {result.network_decision}"
    return SceneOutcome(scene.name, "done", time.perf_counter() - start, result.path,
                        f"{window.width}×{window.height} px, {len(result.tiles)} tile(s){registration}", worker,
                        result.device, result.final_risk)


def open_inputs(scene: Scene, settings: BatchSettings) -> raster_io.SentinelInputs:
    s2 = core_module("sentinel2")
    groups = {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M}
    if scene.product:
        return raster_io.open_s2_product(scene.product, groups, with_60m=settings.with_60m)
    labels = {key: f"{scene.name}: the {key} raster" for key in groups}
    return raster_io.open_band_rasters(scene.raster_paths, groups, labels, scene_name=scene.name)


def scene_extent(scene: Scene, inputs: raster_io.SentinelInputs) -> tuple[float, float, float, float] | None:
    """The scene's extent in its CRS; a pixel window becomes the extent it covers on the 10 m grid."""
    if scene.window is None:
        return scene.extent
    col, row, width, height = scene.window
    grid = inputs.grid_10m
    return (grid.x0 + col * grid.pixel, grid.y0 - (row + height) * grid.pixel_y,
            grid.x0 + (col + width) * grid.pixel, grid.y0 - row * grid.pixel_y)


def solver_options(settings: BatchSettings):
    """sure_core SolverOptions: the recipe's defaults, with what the batch settings fix."""
    core = core_module()
    changes = {"loss": settings.loss, "seed": settings.seed, "device": settings.device, "threads": settings.threads,
               "network": settings.network}
    if settings.iterations:
        changes["iterations"] = settings.iterations
    if settings.width:
        changes["width"] = settings.width
    return replace(core.SolverOptions(), **changes).validated()


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
