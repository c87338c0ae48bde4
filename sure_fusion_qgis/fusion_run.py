"""What every fusion run of the plugin shares, whatever its inputs: settings, the result, the GeoTIFF writer
plugged into the core's runner (`sure_core.runner.run`: whole area, tiles or scene), nodata filling, and the
provenance fields of the solver run.

No QGIS here. `sharpening.py` (Sentinel-2) and `pair_run.py` (HS+MS, PAN+MS) build on it; each supplies a
core fusion case, its inputs' `raster_stack.RasterStack` and a `read(window) -> (data, invalid)` that fills nodata
its own way.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .core_loader import core_module
from .error_report import band_errors, error_metadata
from .io_errors import RasterInputError
from .plausibility import check_finite
from .raster_stack import RasterStack, Window
from .raster_writer import OUTPUT_NODATA, GeoTiffWriter, output_block_size

Tile = core_module("tiling").Tile    # no torch

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
    # (text, is_warning) per coarse group, see `registration_summary`
    registration_log: list = field(default_factory=list)
    channel_names: list[str] | None = None             # band names in the run records' channel order (None: band_names)
    units: str = ""                                    # the output's units, as the inputs give them
    cases: list = field(default_factory=list)          # the core fusion case fitted on each trained window

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


@dataclass(frozen=True)
class AreaPlan:
    """How `write_area` runs over an area: the effective training mode, the tiles (windows relative to the area),
    the tile size and halo asked of the runner, and the output's block side (tiles of at least two blocks get their
    inner edges on the block grid, so each tile writes whole blocks that are then freed from GDAL's cache;
    smaller tiles keep the size asked for: their output is small)."""
    training: str
    tiles: list
    tile_size: int
    halo: int
    block: int
    aligned: bool


def plan_area(settings: RunSettings, window: Window, step: int) -> AreaPlan:
    mode = settings.effective_training(window)
    tile_size = {"whole": 0, "tiles": settings.tile_size, "scene": settings.scene_tile_size()}[mode]
    block = output_block_size(step)
    aligned = tile_size >= 2 * block
    tiles = core_module("runner").area_tiles((window.height, window.width), step, mode, tile_size,
                                              settings.tile_overlap, block if aligned else 0)
    return AreaPlan(mode, tiles, tile_size, settings.tile_overlap, block, aligned)


def write_area(target: str, stack: RasterStack, descriptions: list[str], result: FusionResult, case,
               plan: AreaPlan, read: Callable[[Window], tuple], settings: RunSettings, *,
               metadata: Callable[[FusionResult], dict], nothing_valid: str, progress=None, log=None,
               before_commit: Callable[[FusionResult, str], list] | None = None):
    """Fuse `result.window` (of the stack's finest grid) with the core fusion `case` into the GeoTIFF `target` on
    that window's grid, through the core's runner: `read(window)` (finest-grid pixels) returns the case's data and
    the invalid mask on that grid; each tile's core is written as it comes (nodata tiles too: no fill beforehand).
    Scene training ranks its crops by the stack's mask-only read (`RasterStack.valid_fraction`): no values read
    or filled for crops it then leaves out.

    `progress(tile, core progress)` may stop the run; `metadata(result)` returns {domain ('' = default): (dataset
    items, [items per band])}, written before commit. Returns the core's `AreaRun` (with the fitted cases).
    Raises RasterInputError(`nothing_valid`) when every tile is nodata, InvalidResultError when a tile's result is
    not finite. Any exception leaves `target` as it was (and no temporary file).
    `before_commit(result, written)` runs once the output is written and validated, with the path of its temporary
    file (readable, not yet in place); it may stop the run (raise), or return `safe_output.StagedFile`s (the
    report) to put in place right after the output. Nothing replaces an existing file before it has returned.
    """
    runner, scene = core_module("runner"), core_module("scene")
    area = result.window
    start = time.perf_counter()
    with GeoTiffWriter(target, stack.output_grid(area), descriptions, block=plan.block) as writer:
        def write(tile, block):
            if block is None:
                block = np.full((len(descriptions), tile.core.height, tile.core.width), OUTPUT_NODATA)
            else:
                check_finite(block, f"tile {tile.index + 1} of {tile.count}" if tile.count > 1 else "the area")
            writer.write(block, tile.core.col, tile.core.row)
            if plan.aligned:
                writer.flush()

        # the core's windows are relative to the area; `read` and the stack take the finest grid's
        done = runner.run(case, lambda w: read(w.shifted(area.col, area.row)), (area.height, area.width), write,
                          training=plan.training, tile_size=plan.tile_size, halo=plan.halo,
                          align=plan.block if plan.aligned else 0,
                          scene=scene.SceneOptions(crops=settings.scene_crops, crop_size=settings.scene_crop_size),
                          options=settings.options, progress=progress, log=log, nodata=OUTPUT_NODATA,
                          valid_fraction=lambda w: stack.valid_fraction(w.shifted(area.col, area.row)))
        result.tiles, result.records, result.skipped_tiles = done.tiles, done.records, done.skipped_tiles
        result.cases = done.cases
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
    return done


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
    """A group of coarse bands as the output's metadata names it: its band names, pixel size and label, and the
    core observation it is (the key of its registration record; empty: the metadata key)."""
    names: list[str]
    pixel_m: float
    label: str
    observation: str = ""


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
        record = _merged_registration(records, group.observation or key)
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
