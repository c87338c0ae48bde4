"""Sentinel-2 sharpening of a raster area, tile by tile: read windows → `sure_core.sharpen` → write GeoTIFF.

No QGIS here: the algorithm (and benchmarks or scripts) hand in opened inputs, an area, solver options and
two callables — `progress(tile, progress) -> stop?` and `log(text)` — and get a `SharpeningResult`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from . import raster_io
from .core_loader import core_module
from .raster_io import OUTPUT_NODATA, GeoTiffWriter, RasterInputError, SentinelInputs, Window
from .tiling import Tile, plan_tiles

PLUGIN_VERSION = "0.1.0"
METHOD = "Deep SURE: unsupervised guided CNN trained on the scene by Stein's unbiased risk estimate"


@dataclass
class SharpeningSettings:
    options: object                      # sure_core.solver.SolverOptions
    sigma: dict | None = None            # {'10m': [...], '20m': [...], '60m': [...]} in output units; None: estimate
    tile_size: int = 0                   # 10 m pixels; 0: the whole area in one piece
    tile_overlap: int = 36               # halo on each side of a tile, 10 m pixels


@dataclass
class SharpeningResult:
    path: str
    band_names: list[str]
    records: list = field(default_factory=list)       # one sure_core RunRecord per sharpened tile
    tiles: list[Tile] = field(default_factory=list)
    skipped_tiles: int = 0
    seconds: float = 0.0
    window: Window | None = None
    sigma_by_band: dict[str, float] = field(default_factory=dict)

    @property
    def final_risk(self) -> float:
        risks = [r.final_risk for r in self.records if np.isfinite(r.final_risk)]
        return float(np.mean(risks)) if risks else float("nan")

    @property
    def device(self) -> str:
        return self.records[0].device if self.records else "none"

    @property
    def device_reason(self) -> str:
        return self.records[0].device_reason if self.records else ""


def band_descriptions(names: list[str]) -> list[str]:
    """'B5 (704 nm)': the band name and centre wavelength, as QGIS shows it in the band list."""
    centres = {b.name: b.centre_nm for b in core_module("sentinel2").BANDS}
    return [f"{n} ({centres[n]:.0f} nm)" for n in names]


def _fill_invalid(values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Nodata pixels get the band mean of the valid ones: the core needs finite data, and a flat fill adds no
    false detail (the noise estimate ignores flat areas); these pixels become nodata again in the output."""
    if not invalid.any():
        return values
    filled = values.copy()
    for band in filled:
        band[invalid] = band[~invalid].mean()
    return filled


def _upsample_mask(mask: np.ndarray, ratio: int) -> np.ndarray:
    return np.repeat(np.repeat(mask, ratio, axis=0), ratio, axis=1) if ratio > 1 else mask


def sharpen_tile(inputs: SentinelInputs, window: Window, settings: SharpeningSettings, callback
                 ) -> tuple[np.ndarray | None, np.ndarray, object | None]:
    """(sharpened (bands, rows, cols) or None if all nodata, invalid mask at 10 m, run record or None)."""
    sharpen = core_module("s2_sharpening").sharpen
    data, invalid_10m = {}, np.zeros((window.height, window.width), dtype=bool)
    invalid_by_group = {}
    for key, group in inputs.groups.items():
        values, invalid = raster_io.read_group(group, window)
        data[key], invalid_by_group[key] = values, invalid
        invalid_10m |= _upsample_mask(invalid, group.ratio)
    if invalid_10m.all():
        return None, invalid_10m, None
    for key in data:
        data[key] = _fill_invalid(data[key], invalid_by_group[key])
    fused, record = sharpen(data["10m"], data["20m"], data.get("60m"), sigma=settings.sigma,
                            options=settings.options, geometry="area", callback=callback)
    fused[:, invalid_10m] = OUTPUT_NODATA
    return fused, invalid_10m, record


def run_sharpening(inputs: SentinelInputs, window: Window, target: str, settings: SharpeningSettings,
                   progress=None, log=None) -> SharpeningResult:
    """Sharpen `window` (10 m pixels of the input grid) of `inputs` into the GeoTIFF `target`.

    `progress(tile, core_progress)` is called per iteration and returns True to stop (the core then raises
    FusionCancelled); `log(text)` receives one line per tile. Any exception leaves no file at `target`.
    """
    log = log or (lambda text: None)
    names = core_module("s2_sharpening").output_band_names("60m" in inputs.groups)
    step = inputs.coarsest.ratio
    tiles = plan_tiles(window, settings.tile_size, settings.tile_overlap, step)
    result = SharpeningResult(target, names, tiles=tiles, window=window)
    grid = raster_io.output_grid(inputs, window)
    start = time.perf_counter()
    with GeoTiffWriter(target, grid, band_descriptions(names)) as writer:
        if len(tiles) > 1:
            writer.fill_nodata()
        for tile in tiles:
            if len(tiles) > 1:
                log(f"tile {tile.index + 1}/{tile.count}: {tile.core.width}×{tile.core.height} px "
                    f"(sharpened with a {tile.read.width}×{tile.read.height} px halo window)")
            callback = (lambda p, t=tile: progress(t, p)) if progress else None
            fused, _, record = sharpen_tile(inputs, tile.read, settings, callback)
            rows, cols = tile.core_in_read()
            if fused is None:
                result.skipped_tiles += 1
                log(f"tile {tile.index + 1}/{tile.count} is all nodata: left empty")
                block = np.full((len(names), tile.core.height, tile.core.width), OUTPUT_NODATA)
            else:
                result.records.append(record)
                block = fused[:, rows, cols]
            writer.write(block, tile.core.col - window.col, tile.core.row - window.row)
        if not result.records:
            raise RasterInputError("the processed area holds nodata only (in at least one of the 10/20/60 m inputs "
                                   "at every pixel): choose an extent over valid data")
        result.seconds = time.perf_counter() - start
        result.sigma_by_band = _sigma_by_band(inputs, result.records)
        writer.set_metadata(*provenance(inputs, settings, result))
        result.path = writer.commit()
    return result


def _sigma_by_band(inputs: SentinelInputs, records: list) -> dict[str, float]:
    """σ per band (output units), averaged over tiles; record.sigma is per group in 10m, 20m, 60m order."""
    keys = [k for k in ("10m", "20m", "60m") if k in inputs.groups]
    sums: dict[str, list[float]] = {}
    for record in records:
        for key, sigmas in zip(keys, record.sigma):
            for name, s in zip(inputs.groups[key].names, sigmas):
                sums.setdefault(name, []).append(float(s))
    return {name: float(np.mean(v)) for name, v in sums.items()}


def provenance(inputs: SentinelInputs, settings: SharpeningSettings, result: SharpeningResult
               ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Dataset and per-band metadata: enough to know how every number in the file was made."""
    core = core_module()
    options = result.records[0].options
    dataset = {
        "SURE_FUSION_PLUGIN_VERSION": PLUGIN_VERSION,
        "SURE_CORE_VERSION": core.__version__,
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
        "FINAL_SURE_RISK_PER_TILE": ", ".join(f"{r.final_risk:.6g}" for r in result.records),
        "NOISE_SIGMA": ", ".join(f"{n}={result.sigma_by_band[n]:.6g}" for n in result.band_names
                                 if n in result.sigma_by_band),
        "NOISE_SIGMA_SOURCE": "given" if settings.sigma else "estimated (wavelet MAD)",
        "TILES": f"{len(result.tiles)} (size {settings.tile_size or 'whole area'}, overlap {settings.tile_overlap})",
        "BAND_ORDER": ",".join(result.band_names),
        "UNITS": inputs.units,
        "SCENE": inputs.scene_name,
        "SOLVER_OPTIONS": json.dumps(options, sort_keys=True),
        **inputs.provenance,
    }
    centres = {b.name: b.centre_nm for b in core_module("sentinel2").BANDS}
    bands = [{"BANDNAME": n, "WAVELENGTH": f"{centres[n]:g}", "WAVELENGTH_UNIT": "nm",
              "NOISE_SIGMA": f"{result.sigma_by_band.get(n, float('nan')):.6g}",
              "SHARPENED": "no (observed at 10 m)" if n in ("B2", "B3", "B4", "B8") else "yes"}
             for n in result.band_names]
    return dataset, bands
