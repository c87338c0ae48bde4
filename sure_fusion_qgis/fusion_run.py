"""What every fusion run of the plugin shares, whatever its inputs: settings, the result, the tile loop that
writes the output GeoTIFF, nodata filling, and the provenance fields of the solver run.

No QGIS here. `sharpening.py` (Sentinel-2) and `guided_run.py` (HS+MS, PAN+MS) build on it; each supplies a
`fuse_tile(tile) -> (fused or None, run record or None)` for its own inputs.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .core_loader import core_module
from .plausibility import check_finite
from .error_report import band_errors, error_metadata
from .raster_io import OUTPUT_NODATA, GeoTiffWriter, Grid, RasterInputError, Window, output_block_size
from .tiling import Tile, plan_tiles

PLUGIN_VERSION = "0.1.0"
METHOD = "Deep SURE: unsupervised guided CNN trained on the scene by Stein's unbiased risk estimate"


@dataclass
class RunSettings:
    options: object                      # sure_core.solver.SolverOptions
    sigma: dict | None = None            # noise σ per band group in data units; None: estimate
    tile_size: int = 0                   # output (high-resolution) pixels; 0: the whole area in one piece
    tile_overlap: int = 36               # halo on each side of a tile, output pixels
    training: str = "auto"               # see TRAINING_MODES
    scene_crops: int = 4                 # 'scene' training: crops spread over the area, and their side (output px)
    scene_crop_size: int = 192
    coregistration: str = "auto"         # 'auto': measure and correct each coarse group's sub-pixel shift; 'off'

    def effective_training(self, window: Window) -> str:
        """'whole', 'tiles' or 'scene' for an area: 'auto' trains on the whole area when it is small enough
        and no tile size is set, on each tile when a tile size is set, and on crops of the scene otherwise."""
        if self.training != "auto":
            return self.training
        if self.tile_size > 0:
            return "tiles"
        return "whole" if window.width * window.height <= AUTO_WHOLE_PIXELS else "scene"

    def scene_tile_size(self) -> int:
        return self.tile_size if self.tile_size > 0 else DEFAULT_SCENE_TILE


#: how the network is trained: on the whole area at once (the paper), on each tile independently, or once on
#: crops spread over the scene and then applied tile by tile (bounded memory, time linear in the area)
TRAINING_MODES = ("auto", "whole", "tiles", "scene")
AUTO_WHOLE_PIXELS = 512 * 512
DEFAULT_SCENE_TILE = 1024


@dataclass
class FusionResult:
    path: str
    band_names: list[str]
    records: list = field(default_factory=list)       # one sure_core RunRecord per fused tile
    tiles: list[Tile] = field(default_factory=list)
    skipped_tiles: int = 0
    seconds: float = 0.0
    window: Window | None = None
    sigma_by_band: dict[str, float] = field(default_factory=dict)
    training: str = "whole"                            # effective RunSettings.training mode
    registration_log: list = field(default_factory=list)  # (text, is_warning) per coarse group, see `registration_summary`
    channel_names: list[str] | None = None             # band names in the run records' channel order (None: band_names)
    units: str = ""                                    # the output's units, as the inputs give them

    def error_by_band(self) -> dict:
        """{band: error_report.BandError} in the output's band order: the estimate pooled over the run records."""
        errors = band_errors(self.records, self.channel_names or self.band_names)
        return {name: errors[name] for name in self.band_names if name in errors}

    @property
    def final_risk(self) -> float:
        risks = [r.final_risk for r in self.records if np.isfinite(r.final_risk)]
        return float(np.mean(risks)) if risks else float("nan")

    @property
    def smoothing(self) -> str:
        """The guided smoothing's strength h, one value per distinct choice over the tiles (0: not applied)."""
        strengths = sorted({r.smoothing_strength for r in self.records})
        return ", ".join(f"{h:g}" for h in strengths) if strengths else "0"

    @property
    def network_decision(self) -> str:
        """Whether the network was applied, and the SURE gain that decided it (the first tile's when tiles differ)."""
        decisions = {r.network_decision for r in self.records}
        if len(decisions) <= 1:
            return next(iter(decisions), "")
        applied = sum(r.network_applied for r in self.records)
        return f"network applied on {applied} of {len(self.records)} tiles (each decided by its own SURE gain)"

    @property
    def device(self) -> str:
        return self.records[0].device if self.records else "none"

    @property
    def device_reason(self) -> str:
        return self.records[0].device_reason if self.records else ""


def fill_invalid(values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Nodata pixels get the band mean of the valid ones: the core needs finite data, and a flat fill adds no
    false detail (the noise estimate ignores flat areas); these pixels become nodata again in the output."""
    if not invalid.any():
        return values
    filled = values.copy()
    for band in filled:
        band[invalid] = band[~invalid].mean()
    return filled


#: the pseudo-tile under which 'scene' training reports its iterations (before the tiles report, once each)
TRAINING_STAGE = Tile(Window(0, 0, 0, 0), Window(0, 0, 0, 0), 0, 1)


def tile_done_progress():
    """A core Progress saying "this step is complete", for stages without iterations (a tile of a scene model)."""
    return core_module("solver").Progress(1, 1, float("nan"), float("nan"), 0.0, 0.0)


def upsample_mask(mask: np.ndarray, ratio: int) -> np.ndarray:
    """A low-resolution mask on the grid `ratio` times finer (each pixel becomes a ratio×ratio block)."""
    return np.repeat(np.repeat(mask, ratio, axis=0), ratio, axis=1) if ratio > 1 else mask


def plan_output_tiles(settings: RunSettings, window: Window, step: int) -> tuple[str, list[Tile], int, bool]:
    """(effective training mode, tiles, output block size, aligned) of a run over `window`: tiles of at least
    two blocks get their inner edges on the output's block grid, so each tile writes whole blocks that
    `write_tiles` then frees from GDAL's cache; smaller tiles keep the size asked for (their output is small)."""
    mode = settings.effective_training(window)
    tile_size = {"whole": 0, "tiles": settings.tile_size, "scene": settings.scene_tile_size()}[mode]
    block = output_block_size(step)
    aligned = tile_size >= 2 * block
    return mode, plan_tiles(window, tile_size, settings.tile_overlap, step, align=block if aligned else 0), block, aligned


def scene_tile_fuser(train: Callable[[], object], read: Callable[[Window], tuple], progress=None
                     ) -> Callable[[Tile], tuple]:
    """`fuse_tile` for 'scene' training: `train()` gives the scene model (a sure_core SceneModel) when the first
    tile is due, inside the writer's timing and clean-up; each tile's `read(window) -> (data, invalid mask)` is
    then fused by it, with nodata where the mask says, and reported once to `progress` (which may stop)."""
    trained = []

    def fuse_tile(tile: Tile):
        if not trained:
            trained.append(train())
        data, invalid = read(tile.read)
        if invalid.all():
            return None, None
        fused = trained[0].fuse(data)
        fused[:, invalid] = OUTPUT_NODATA
        if progress and progress(tile, tile_done_progress()):
            raise core_module().FusionCancelled(f"stopped after tile {tile.index + 1} of {tile.count} on request")
        return fused, trained[0].record

    return fuse_tile


def write_tiles(target: str, grid: Grid, descriptions: list[str], result: FusionResult,
                fuse_tile: Callable[[Tile], tuple], *, metadata: Callable[[FusionResult], dict],
                nothing_valid: str, log=None, block: int = 256, flush_tiles: bool = False,
                before_commit: Callable[[FusionResult, str], list] | None = None) -> FusionResult:
    """Fuse `result.tiles` one by one into the GeoTIFF `target` on `grid` (whose origin is `result.window`'s).

    `fuse_tile(tile)` returns (array (bands, rows, cols) over `tile.read`, run record) or (None, None) when the
    tile holds nodata only; `metadata(result)` returns {domain ('' = default): (dataset items, [items per band])},
    written before commit.
    Raises RasterInputError(`nothing_valid`) when every tile is nodata, InvalidResultError when a tile's result is
    not finite. Any exception leaves `target` as it was (and no temporary file).
    `before_commit(result, written)` runs once the output is written and validated, with the path of its temporary
    file (readable, not yet in place); it may stop the run (raise), or return `safe_output.StagedFile`s (the
    report) to put in place right after the output. Nothing replaces an existing file before it has returned.
    `block`: the output's block side; `flush_tiles`: free each tile's blocks once written (tiles on the block grid,
    see `plan_output_tiles`), which bounds GDAL's share of the memory by one tile.
    """
    log = log or (lambda text: None)
    tiles, window = result.tiles, result.window
    start = time.perf_counter()
    with GeoTiffWriter(target, grid, descriptions, block=block) as writer:
        for tile in tiles:  # every tile writes its whole core (nodata tiles too): no fill beforehand
            if len(tiles) > 1:
                log(f"tile {tile.index + 1}/{tile.count}: {tile.core.width}×{tile.core.height} px "
                    f"(fused with a {tile.read.width}×{tile.read.height} px halo window)")
            fused, record = fuse_tile(tile)
            rows, cols = tile.core_in_read()
            if fused is None:
                result.skipped_tiles += 1
                log(f"tile {tile.index + 1}/{tile.count} is all nodata: left empty")
                block_data = np.full((len(descriptions), tile.core.height, tile.core.width), OUTPUT_NODATA)
            else:
                result.records.append(record)
                block_data = fused[:, rows, cols]
                check_finite(block_data, f"tile {tile.index + 1} of {tile.count}" if tile.count > 1 else "the area")
            writer.write(block_data, tile.core.col - window.col, tile.core.row - window.row)
            if flush_tiles:
                writer.flush()
            del fused, block_data
            core_module("device").release_memory()
        if not result.records:
            raise RasterInputError(nothing_valid)
        result.seconds = time.perf_counter() - start
        for domain, (dataset_items, band_items) in metadata(result).items():
            writer.set_metadata(dataset_items, band_items, domain)
        written = writer.finish()
        companions = list(before_commit(result, written)) if before_commit else []
        try:
            result.path = writer.commit()
            for companion in companions:
                companion.commit()
        finally:
            for companion in companions:  # after a failure; a committed one has nothing left to delete
                companion.discard()
    return result


def run_provenance(settings: RunSettings, result: FusionResult, inputs) -> dict[str, str]:
    """Dataset metadata every output carries: versions, method, solver settings, device, risk, timing, tiles,
    band order, σ, units, and the inputs' own provenance (`inputs` has scene_name, units, provenance)."""
    options = result.records[0].options
    return {
        "SURE_FUSION_PLUGIN_VERSION": PLUGIN_VERSION,
        "SURE_CORE_VERSION": core_module().__version__,
        "METHOD": METHOD,
        "ITERATIONS": options["iterations"],
        "LOSS": options["loss"],
        "SEED": options["seed"],
        "LEARNING_RATE": options["learning_rate"],
        "NETWORK_WIDTH": options["width"],
        "DEVICE": result.device,
        "DEVICE_REASON": result.device_reason,
        "SECONDS": f"{result.seconds:.1f}",
        "FINAL_SURE_RISK": f"{result.final_risk:.6g}",
        "FINAL_SURE_RISK_PER_TILE": ("one network for the scene" if result.training == "scene" else
                                     ", ".join(f"{r.final_risk:.6g}" for r in result.records)),
        "NETWORK": result.network_decision,
        "NETWORK_SURE_GAIN": ", ".join(f"{r.network_gain:.4g} ± {r.network_gain_se:.2g}" for r in result.records),
        "ITERATIONS_RUN": ", ".join(str(r.iterations_run) for r in result.records),
        "GUIDED_SMOOTHING_STRENGTH": (f"{result.smoothing} (non-local means of the output weighted by the "
                                      "full-resolution bands, h chosen by SURE on them; 0 = not applied)"),
        "TRAINING": {"whole": "on the whole area at once", "tiles": "one network per tile",
                     "scene": f"one network on {settings.scene_crops} crops of {settings.scene_crop_size} px spread "
                              "over the area, applied tile by tile"}[result.training],
        "NOISE_SIGMA": ", ".join(f"{n}={result.sigma_by_band[n]:.6g}" for n in result.band_names
                                 if n in result.sigma_by_band),
        "NOISE_SIGMA_SOURCE": "given" if settings.sigma else "estimated from the data",
        "TILES": f"{len(result.tiles)} (size {settings.tile_size or 'whole area'}, overlap {settings.tile_overlap})",
        "BAND_ORDER": ",".join(result.band_names),
        "UNITS": inputs.units,
        "SCENE": inputs.scene_name,
        "SOLVER_OPTIONS": json.dumps(options, sort_keys=True),
        **error_metadata(result.error_by_band())[0],
        **inputs.provenance,
    }


def band_error_items(result: FusionResult) -> dict[str, dict[str, str]]:
    """{band name: metadata items of its error estimate} (see error_report)."""
    return error_metadata(result.error_by_band())[1]


@dataclass(frozen=True)
class CoarseGroup:
    """A group of coarse bands as the output's metadata names it: its band names, pixel size and label."""
    names: list[str]
    pixel_m: float
    label: str


def _merged_registration(records: list, key: str) -> dict | None:
    """The group's registration over the fused tiles: the one record (whole area, scene), or the median of the tiles'
    (`coregistration.median_record`; each tile used its own); None when co-registration was off."""
    measured = [r.registration[key] for r in records if key in getattr(r, "registration", {})]
    if not measured:
        return None
    if all(m == measured[0] for m in measured):
        return measured[0]
    return core_module("coregistration").median_record(measured, "tiles (each tile used its own)")


def registration_summary(settings: RunSettings, records: list, groups: dict[str, CoarseGroup]
                         ) -> tuple[dict[str, str], dict[str, dict[str, str]], list[tuple[str, bool]]]:
    """What the co-registration measured, for the output: (dataset items, items per band name, log lines as
    (text, is_warning)). Shifts are where each band's content lay, in its own pixels (rows down, columns right) and
    in metres (east, north); the output is on the guide's grid either way."""
    describe = core_module("coregistration").describe
    if settings.coregistration == "off":
        return {"COREGISTRATION": "off (inputs assumed registered to a fraction of a pixel)"}, {}, []
    dataset = {"COREGISTRATION": "auto: each coarse band's sub-pixel shift against the guide measured and corrected; "
                                 "the output lies on the guide's grid"}
    bands, lines = {}, []
    for key, group in groups.items():
        record = _merged_registration(records, key)
        if record is None:
            continue
        text, warn = describe(group.label, record, group.pixel_m)
        if record.get("note") and record["trusted"]:
            text += f" ({record['note']})"
        lines.append((text, warn or not record["trusted"]))
        dataset[f"COREGISTRATION_{key.upper()}"] = text
        for name, (rows, cols) in zip(group.names, record["shifts"]):
            bands[name] = {"SHIFT_ROWS_COLS_PX": f"{rows:+.4f}, {cols:+.4f}",
                           "SHIFT_EAST_NORTH_M": f"{cols * group.pixel_m:+.3f}, {-rows * group.pixel_m:+.3f}"}
    return dataset, bands, lines
