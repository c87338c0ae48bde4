"""One runner for every fusion case and every way of training over an area.

`fuse_window` trains on one window's data and fuses it. `run` processes an area of `shape` target-grid pixels
window by window: trained on the whole area at once ('whole', the paper), one network per tile ('tiles'), or one
network on crops spread over the area and applied tile by tile ('scene', see `sure_core.scene`). The core does no
I/O: the caller hands in `read(window) -> (data, invalid)` and `write(tile, block)` (the plugin's GDAL reader and
writer, the batch runner, in-memory arrays in the tests). A fusion case (`fusion_case.FusionCase`) says what the
window data are and how they become a problem and output bands.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .device import release_memory, resolve_device
from .errors import FusionCancelled, SureFusionError
from .fusion_case import FusionCase
from .scene import SceneModel, SceneOptions, choose_crops, train_scene
from .solver import Progress, ProgressCallback, RunRecord, SolverOptions, solve
from .tiling import TRAINING_STAGE, Tile, Window, plan_tiles

TRAINING_MODES = ("whole", "tiles", "scene")

#: read(window) -> (the case's window data, invalid (rows, cols) bool on the target grid or None: all valid)
Reader = Callable[[Window], tuple]
#: write(tile, block): the fused core of `tile` (bands, rows, cols), or None where the tile holds nodata only
Writer = Callable[[Tile, "np.ndarray | None"], None]
#: progress(tile, core progress) -> stop? (per iteration while a window trains; once per tile of a scene model)
TileProgress = Callable[[Tile, Progress], "bool | None"]


@dataclass
class AreaRun:
    """What `run` did: the tiles, one run record per fused tile (a scene model's record for each of its tiles),
    the fitted case of every trained window (with 'scene': the scene's one), and the nodata tiles skipped."""
    tiles: list[Tile]
    records: list[RunRecord] = field(default_factory=list)
    cases: list = field(default_factory=list)
    skipped_tiles: int = 0
    scene: SceneModel | None = None


def fuse_window(case: FusionCase, data, options: SolverOptions | None = None,
                callback: ProgressCallback | None = None) -> tuple[np.ndarray, RunRecord, FusionCase]:
    """Train on one window's data and fuse it: (output bands in data units, run record, the case fitted on the
    window). The record holds the σ used by observation name and the case's recipe."""
    options = (options or SolverOptions()).validated()
    device, reason = resolve_device(options.device)
    case = case.window_fitted(data)
    problem, sigma = case.problem(case.inputs(data), device)
    x_hat, record = solve(problem, options, callback)
    record.device_reason = reason
    record.sigma = sigma
    record.recipe = case.recipe()
    return case.output(x_hat, problem), record, case


def tile_done() -> Progress:
    """A Progress saying "this step is complete", for stages without iterations (a tile of a scene model)."""
    return Progress(1, 1, float("nan"), float("nan"), 0.0, 0.0)


def area_tiles(shape: tuple[int, int], step: int, training: str, tile_size: int = 0, halo: int = 0,
               align: int = 0) -> list[Tile]:
    """The tiles `run` processes an area of `shape` (rows, cols) in (windows relative to the area)."""
    if training not in TRAINING_MODES:
        raise SureFusionError(f"training must be one of {', '.join(TRAINING_MODES)}, got {training!r}")
    rows, cols = shape
    return plan_tiles(Window(0, 0, cols, rows), 0 if training == "whole" else tile_size, halo, step, align)


def run(case: FusionCase, read: Reader, shape: tuple[int, int], write: Writer, *, training: str = "whole",
        tile_size: int = 0, halo: int = 0, align: int = 0, scene: SceneOptions | None = None,
        options: SolverOptions | None = None, progress: TileProgress | None = None,
        log: Callable[[str], None] | None = None, nodata: float = np.nan,
        valid_fraction: Callable[[Window], float] | None = None) -> AreaRun:
    """Fuse an area of `shape` (rows, cols) target pixels, window by window (windows relative to the area).

    `tile_size` 0 with 'whole' or 'tiles' is one tile; 'scene' tiles its inference by `tile_size` too. Tiles are
    read with `halo` pixels around them and only their core is written; `align` > 0 puts inner tile edges on its
    multiples (an output's block grid). Pixels `read` marks invalid are `nodata` in the output. With 'scene',
    `valid_fraction(window)` (default: from `read`) keeps the training crops away from nodata. `progress` may stop
    the run (FusionCancelled); nothing is written for a tile after its stop.
    """
    options = (options or SolverOptions()).validated()
    scene = scene or SceneOptions()
    log = log or (lambda text: None)
    tiles = area_tiles(shape, case.step, training, tile_size, halo, align)
    result = AreaRun(tiles)
    if training == "scene":
        result.scene = train_on_crops(case, read, shape, scene, options, progress=progress, log=log,
                                      valid_fraction=valid_fraction)
        result.cases.append(result.scene.case)
    device = result.scene.device if result.scene else resolve_device(options.device)[0]
    for tile in tiles:
        if len(tiles) > 1:
            log(f"tile {tile.index + 1}/{tile.count}: {tile.core.width}×{tile.core.height} px "
                f"(fused with a {tile.read.width}×{tile.read.height} px halo window)")
        data, invalid = read(tile.read)
        if invalid is not None and invalid.all():
            result.skipped_tiles += 1
            log(f"tile {tile.index + 1}/{tile.count} is all nodata: left empty")
            write(tile, None)
            continue
        if result.scene is not None:
            fused, record = result.scene.fuse(data), result.scene.record
        else:
            callback = (lambda p, tile=tile: progress(tile, p)) if progress else None
            fused, record, fitted = fuse_window(case, data, options, callback)
            result.cases.append(fitted)
        if invalid is not None:
            fused[:, invalid] = nodata
        if result.scene is not None and progress and progress(tile, tile_done()):
            raise FusionCancelled(f"stopped after tile {tile.index + 1} of {tile.count} on request")
        result.records.append(record)
        r, c = tile.core_in_read()
        write(tile, fused[:, r, c])
        del fused
        release_memory(device)
    return result


def train_on_crops(case: FusionCase, read: Reader, shape: tuple[int, int], scene: SceneOptions | None = None,
                   options: SolverOptions | None = None, *, progress: TileProgress | None = None,
                   log: Callable[[str], None] | None = None,
                   valid_fraction: Callable[[Window], float] | None = None) -> SceneModel:
    """The scene model of 'scene' training, as `run` trains it: crops chosen away from nodata, one network
    trained on them (arguments as `run`'s). Public so that a benchmark timing the tiles can train exactly so."""
    scene = scene or SceneOptions()

    def fraction(window: Window) -> float:
        invalid = read(window)[1]
        return 1.0 if invalid is None else 1.0 - float(invalid.mean())

    crops = choose_crops(shape, scene.crops, scene.crop_size, case.step, valid_fraction or fraction)
    callback = (lambda p: progress(TRAINING_STAGE, p)) if progress else None
    return train_scene(case, lambda w: read(w)[0], shape, options=options, scene=replace(scene, crops=len(crops)),
                       callback=callback, log=log, crops=crops)


def run_to_array(case: FusionCase, read: Reader, shape: tuple[int, int], bands: int, **kwargs
                 ) -> tuple[np.ndarray, AreaRun]:
    """`run` into an in-memory array (bands, rows, cols): for tests, benchmarks and small areas."""
    out = np.zeros((bands, *shape), dtype=np.float32)

    def write(tile: Tile, block) -> None:
        if block is not None:
            rs, cs = tile.core.slices()
            out[:, rs, cs] = block

    return out, run(case, read, shape, write, **kwargs)
