"""Sentinel-2 sharpening of a raster area: read windows → the core's runner with `Sentinel2Case` → GeoTIFF.

No QGIS here: the algorithm (and the batch runner, benchmarks or scripts) hand in opened inputs, an area, solver
options and two callables — `progress(tile, progress) -> stop?` and `log(text)` — and get a `FusionResult`.
"""
from __future__ import annotations

import numpy as np

from .core_loader import core_module
from .fusion_run import (
    CoarseGroup,
    FusionResult,
    RunSettings,
    band_error_items,
    fill_invalid,
    plan_area,
    registration_summary,
    run_provenance,
    write_area,
)
from .io_errors import RasterInputError
from .plausibility import SPREAD_OVERVIEW_PX, band_spread, check_noise_sigma
from .raster_stack import Window
from .s2_inputs import SentinelInputs


def sentinel2_case(inputs: SentinelInputs, settings: RunSettings):
    """The core's fusion case for these inputs and settings."""
    return core_module("s2_sharpening").Sentinel2Case(with_60m="60m" in inputs.groups, sigma=settings.sigma,
                                                      geometry="area", registration=settings.coregistration)


def read_window(inputs: SentinelInputs, window: Window) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({'10m','20m'[,'60m']}: bands with nodata filled, invalid mask at 10 m) of a window (10 m pixels)."""
    read = inputs.stack.read(window)
    data = {key: fill_invalid(values, invalid) if invalid.any() and not invalid.all() else values
            for key, (values, invalid) in zip(inputs.groups, read)}
    return data, inputs.stack.invalid_on_finest([invalid for _, invalid in read])


def minimum_side(inputs: SentinelInputs, settings: RunSettings) -> int:
    """The smallest side, in 10 m pixels, of an area (or tile window) these inputs and settings can sharpen."""
    return core_module("s2_sharpening").minimum_size("60m" in inputs.groups, settings.sigma is not None)


def check_area(inputs: SentinelInputs, window: Window, settings: RunSettings, mode: str, tiles: list) -> None:
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


def check_sigma(inputs: SentinelInputs, window: Window, settings: RunSettings) -> None:
    """A given NOISE_SIGMA against each band's spread over the area (`plausibility.check_noise_sigma`), measured
    on an overview of each group."""
    if not settings.sigma:
        return
    given, spread = {}, {}
    for key, group in inputs.groups.items():
        given.update(zip(group.names, settings.sigma.get(key) or []))
        size = tuple(max(1, min(SPREAD_OVERVIEW_PX, n // group.ratio)) for n in (window.width, window.height))
        spread.update(band_spread(list(group.names), group.read_overview(window, size)))
    check_noise_sigma(given, spread, inputs.units)


def run_sharpening(inputs: SentinelInputs, window: Window, target: str, settings: RunSettings,
                   progress=None, log=None, before_commit=None) -> FusionResult:
    """Sharpen `window` (10 m pixels of the input grid) of `inputs` into the GeoTIFF `target`. In `settings`,
    `sigma` is {'10m': [...], '20m': [...], '60m': [...]} in output units, tile size and overlap are 10 m pixels.

    `progress(tile, core_progress)` is called per iteration and returns True to stop (the core then raises
    FusionCancelled); `log(text)` receives one line per tile; `before_commit` see `fusion_run.write_area`. The
    area's size and a given σ are checked against the data before anything is trained. Any exception leaves
    `target` as it was. With 'scene' training, the training iterations come under `sure_core.tiling.TRAINING_STAGE` and
    each tile then reports once.
    """
    case = sentinel2_case(inputs, settings)
    names = case.band_names()
    plan = plan_area(settings, window, inputs.stack.step)
    check_area(inputs, window, settings, plan.training, plan.tiles)
    check_sigma(inputs, window, settings)
    grouped = [n for k in ("10m", "20m", "60m") if k in inputs.groups for n in inputs.groups[k].names]  # core order
    result = FusionResult(target, names, tiles=plan.tiles, window=window, training=plan.training,
                              channel_names=grouped, units=inputs.units)

    def metadata(done):
        done.sigma_by_band = _sigma_by_band(inputs, done.records)
        return {"": provenance(inputs, settings, done, case)}

    write_area(target, inputs.stack, case.band_descriptions(), result, case, plan,
               lambda w: read_window(inputs, w), settings, metadata=metadata, progress=progress, log=log,
               before_commit=before_commit,
               nothing_valid="the processed area holds nodata only (in at least one of the 10/20/60 m "
                             "inputs at every pixel): choose an extent over valid data")
    return result


def _sigma_by_band(inputs: SentinelInputs, records: list) -> dict[str, float]:
    """σ per band (output units), averaged over tiles (record.sigma: by observation name, the group keys)."""
    sums: dict[str, list[float]] = {}
    for record in records:
        for key, sigmas in record.sigma.items():
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


def provenance(inputs: SentinelInputs, settings: RunSettings, result: FusionResult, case
               ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Dataset and per-band metadata: enough to know how every number in the file was made."""
    dataset = run_provenance(settings, result, inputs)
    dataset.update(case.provenance())
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
