"""Sentinel-2 sharpening of a raster area, tile by tile: read windows → `sure_core.sharpen` → write GeoTIFF.

No QGIS here: the algorithm (and benchmarks or scripts) hand in opened inputs, an area, solver options and
two callables — `progress(tile, progress) -> stop?` and `log(text)` — and get a `SharpeningResult`.
"""
from __future__ import annotations

import numpy as np

from . import raster_io
from .core_loader import core_module
from .fusion_run import (METHOD, PLUGIN_VERSION, TRAINING_STAGE, CoarseGroup, FusionResult, RunSettings,  # noqa: F401
                         band_error_items, fill_invalid, plan_output_tiles, registration_summary,
                         run_provenance, scene_tile_fuser, upsample_mask, write_tiles)
from .plausibility import SPREAD_OVERVIEW_PX, band_spread, check_noise_sigma
from .raster_io import OUTPUT_NODATA, RasterInputError, SentinelInputs, Window

#: settings of a Sentinel-2 run: `sigma` is {'10m': [...], '20m': [...], '60m': [...]} in output units;
#: tile size and overlap in 10 m pixels
SharpeningSettings = RunSettings
SharpeningResult = FusionResult


def band_descriptions(names: list[str]) -> list[str]:
    """'B5 (704 nm)': the band name and centre wavelength, as QGIS shows it in the band list."""
    centres = {b.name: b.centre_nm for b in core_module("sentinel2").BANDS}
    return [f"{n} ({centres[n]:.0f} nm)" for n in names]


def read_window(inputs: SentinelInputs, window: Window) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({'10m','20m'[,'60m']}: bands with nodata filled, invalid mask at 10 m) of a window (10 m pixels)."""
    data, invalid_10m = {}, np.zeros((window.height, window.width), dtype=bool)
    for key, group in inputs.groups.items():
        values, invalid = raster_io.read_group(group, window)
        data[key] = fill_invalid(values, invalid) if invalid.any() and not invalid.all() else values
        invalid_10m |= upsample_mask(invalid, group.ratio)
    return data, invalid_10m


def sharpen_tile(inputs: SentinelInputs, window: Window, settings: SharpeningSettings, callback
                 ) -> tuple[np.ndarray | None, np.ndarray, object | None]:
    """(sharpened (bands, rows, cols) or None if all nodata, invalid mask at 10 m, run record or None)."""
    data, invalid_10m = read_window(inputs, window)
    if invalid_10m.all():
        return None, invalid_10m, None
    fused, record = core_module("s2_sharpening").sharpen(
        data["10m"], data["20m"], data.get("60m"), sigma=settings.sigma, options=settings.options, geometry="area",
        callback=callback, registration=settings.coregistration)
    fused[:, invalid_10m] = OUTPUT_NODATA
    return fused, invalid_10m, record


def train_on_scene(inputs: SentinelInputs, window: Window, settings: SharpeningSettings, progress=None, log=None):
    """One network for the whole area, trained on crops spread over it and kept away from nodata
    (sure_core.scene): returns the SceneModel."""
    scene = core_module("scene")
    case = core_module("s2_sharpening").S2SceneCase(with_60m="60m" in inputs.groups,
                                                    registration=settings.coregistration)

    def read(w):  # w: sure_core window relative to the area
        return read_window(inputs, Window(window.col + w.col, window.row + w.row, w.width, w.height))

    shape = (window.height, window.width)
    crops = scene.choose_crops(shape, settings.scene_crops, settings.scene_crop_size, case.step,
                               lambda w: 1.0 - float(read(w)[1].mean()))
    callback = (lambda p: progress(TRAINING_STAGE, p)) if progress else None
    options = scene.SceneOptions(crops=len(crops), crop_size=settings.scene_crop_size)
    return scene.train_scene(case, lambda w: read(w)[0], shape, options=settings.options, scene=options,
                             noise=settings.sigma, callback=callback, log=log, crops=crops)


def minimum_side(inputs: SentinelInputs, settings: SharpeningSettings) -> int:
    """The smallest side, in 10 m pixels, of an area (or tile window) these inputs and settings can sharpen."""
    return core_module("s2_sharpening").minimum_size("60m" in inputs.groups, settings.sigma is not None)


def check_area(inputs: SentinelInputs, window: Window, settings: SharpeningSettings, mode: str, tiles: list) -> None:
    """The area, and with TRAINING=tiles each tile's window, at least `minimum_side` on each side, said in 10 m
    pixels of the user's area (the core's own errors speak of its internal grids, with thresholds that differ
    from one grid to the next)."""
    s2 = core_module("s2_sharpening")
    need = minimum_side(inputs, settings)
    pixel = inputs.grid_10m.pixel
    if min(window.width, window.height) < need:
        how = ("with 60 m input and σ estimated from the data" if "60m" in inputs.groups and settings.sigma is None
               else "with 60 m input" if "60m" in inputs.groups else "")
        raise RasterInputError(
            f"the processed area is {window.width}×{window.height} 10 m pixels ({window.width * pixel:g} m × "
            f"{window.height * pixel:g} m), smaller than the {need}×{need} 10 m pixels ({need * pixel:g} m × "
            f"{need * pixel:g} m) that sharpening needs{' ' + how if how else ''}: choose a larger EXTENT, or inputs "
            f"that cover more. The smallest areas are {s2.minimum_size(False, False)}×{s2.minimum_size(False, False)} "
            f"px without 60 m input, {s2.minimum_size(True, True)}×{s2.minimum_size(True, True)} px with 60 m input "
            f"and NOISE_SIGMA given, {s2.minimum_size(True, False)}×{s2.minimum_size(True, False)} px with 60 m input "
            f"and σ estimated")
    if mode == "tiles":
        smallest = min(tiles, key=lambda t: min(t.read.width, t.read.height)).read
        if min(smallest.width, smallest.height) < need:
            raise RasterInputError(
                f"TILE_SIZE {settings.tile_size} with TILE_OVERLAP {settings.tile_overlap} gives tile windows as small "
                f"as {smallest.width}×{smallest.height} 10 m pixels (halo included), but each must be at least "
                f"{need}×{need}: raise TILE_SIZE (or TILE_OVERLAP), or set TILE_SIZE 0 to train on the whole area")


def check_sigma(inputs: SentinelInputs, window: Window, settings: SharpeningSettings) -> None:
    """A given NOISE_SIGMA against each band's spread over the area (`plausibility.check_noise_sigma`), measured
    on an overview of each group."""
    if not settings.sigma:
        return
    given, spread = {}, {}
    for key, group in inputs.groups.items():
        given.update(zip(group.names, settings.sigma.get(key) or []))
        size = tuple(max(1, min(SPREAD_OVERVIEW_PX, n // group.ratio)) for n in (window.width, window.height))
        spread.update(band_spread(list(group.names), raster_io.read_group_overview(group, window, list(group.names),
                                                                                   size)))
    check_noise_sigma(given, spread, inputs.units)


def run_sharpening(inputs: SentinelInputs, window: Window, target: str, settings: SharpeningSettings,
                   progress=None, log=None, before_commit=None) -> SharpeningResult:
    """Sharpen `window` (10 m pixels of the input grid) of `inputs` into the GeoTIFF `target`.

    `progress(tile, core_progress)` is called per iteration and returns True to stop (the core then raises
    FusionCancelled); `log(text)` receives one line per tile; `before_commit` see `fusion_run.write_tiles`. The
    area's size and a given σ are checked against the data before anything is trained. Any exception leaves
    `target` as it was. With 'scene' training, the training iterations come under `TRAINING_STAGE` and each tile
    then reports once.
    """
    names = core_module("s2_sharpening").output_band_names("60m" in inputs.groups)
    mode, tiles, block, aligned = plan_output_tiles(settings, window, inputs.coarsest.ratio)
    check_area(inputs, window, settings, mode, tiles)
    check_sigma(inputs, window, settings)
    grouped = [n for k in ("10m", "20m", "60m") if k in inputs.groups for n in inputs.groups[k].names]  # core order
    result = SharpeningResult(target, names, tiles=tiles, window=window, training=mode, channel_names=grouped,
                              units=inputs.units)

    def fuse_tile(tile):
        callback = (lambda p: progress(tile, p)) if progress else None
        fused, _, record = sharpen_tile(inputs, tile.read, settings, callback)
        return fused, record

    if mode == "scene":
        fuse_tile = scene_tile_fuser(lambda: train_on_scene(inputs, window, settings, progress, log),
                                     lambda w: read_window(inputs, w), progress)

    def metadata(done):
        done.sigma_by_band = _sigma_by_band(inputs, done.records)
        return {"": provenance(inputs, settings, done)}

    return write_tiles(target, raster_io.output_grid(inputs, window), band_descriptions(names), result, fuse_tile,
                       metadata=metadata, log=log, block=block, flush_tiles=aligned, before_commit=before_commit,
                       nothing_valid="the processed area holds nodata only (in at least one of the 10/20/60 m "
                                     "inputs at every pixel): choose an extent over valid data")


def _sigma_by_band(inputs: SentinelInputs, records: list) -> dict[str, float]:
    """σ per band (output units), averaged over tiles; record.sigma is per group in 10m, 20m, 60m order."""
    keys = [k for k in ("10m", "20m", "60m") if k in inputs.groups]
    sums: dict[str, list[float]] = {}
    for record in records:
        for key, sigmas in zip(keys, record.sigma):
            for name, s in zip(inputs.groups[key].names, sigmas):
                sums.setdefault(name, []).append(float(s))
    return {name: float(np.mean(v)) for name, v in sums.items()}


def _first_estimate_shrinkage(records: list) -> str:
    """How the first estimate's low-resolution residuals were shrunk (see sure_core.injection)."""
    options = records[0].options
    if not options["residual"]:
        return "none: the paper's recipe has no first estimate"
    if options["loss"] != "sure":
        return "none: the BP recipe uses no risk estimate (H = 1)"
    if any(r.cross_band_shrinkage for r in records):
        return "cross-band ring matrices chosen by SURE (the coarse bands' σ was given)"
    return "per-band Tikhonov and ring factors chosen by SURE"


def provenance(inputs: SentinelInputs, settings: SharpeningSettings, result: SharpeningResult
               ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Dataset and per-band metadata: enough to know how every number in the file was made."""
    dataset = run_provenance(settings, result, inputs)
    if not settings.sigma:
        dataset["NOISE_SIGMA_SOURCE"] = f"estimated: {core_module('s2_sharpening').SIGMA_ESTIMATOR}"
    dataset["FIRST_ESTIMATE_SHRINKAGE"] = _first_estimate_shrinkage(result.records)
    centres = {b.name: b.centre_nm for b in core_module("sentinel2").BANDS}
    groups = {key: CoarseGroup(list(inputs.groups[key].names), inputs.groups[key].grid.pixel,
                               f"{key[:-1]} m bands ({', '.join(inputs.groups[key].names)})")
              for key in ("20m", "60m") if key in inputs.groups}
    registration, band_shifts, result.registration_log = registration_summary(settings, result.records, groups)
    dataset.update(registration)
    errors = band_error_items(result)
    bands = [{"BANDNAME": n, "WAVELENGTH": f"{centres[n]:g}", "WAVELENGTH_UNIT": "nm",
              "NOISE_SIGMA": f"{result.sigma_by_band.get(n, float('nan')):.6g}",
              "SHARPENED": "no (observed at 10 m)" if n in ("B2", "B3", "B4", "B8") else "yes",
              **band_shifts.get(n, {}), **errors.get(n, {})}
             for n in result.band_names]
    return dataset, bands
