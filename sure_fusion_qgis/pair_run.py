"""Fusion of a raster pair (HS+MS, PAN+MS): read windows → the core's runner with the algorithm's pair case
(`hsms.HsMsCase`, `pansharpening.PanMsCase`) → GeoTIFF on the fine layer's grid.

No QGIS here: the algorithm hands in the opened pair, the area, settings, the core case (its sensor-model
options; σ comes from the settings, by observation name), the output bands, and the `progress`/`log` callables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

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
from .pair_inputs import RasterPair, SpectralRaster
from .plausibility import SPREAD_OVERVIEW_PX, band_spread, check_noise_sigma
from .raster_stack import Window


@dataclass
class OutputBands:
    """How the output bands are named and described: the low-resolution layer's bands, carried over."""
    names: list[str]                   # short unique names (BAND_ORDER, σ keys)
    descriptions: list[str]            # GDAL band descriptions
    wavelengths: list[float | None]    # nm
    fwhms: list[float | None]          # nm

    @classmethod
    def of(cls, raster: SpectralRaster, wavelengths=None, fwhms=None, fallback_descriptions=None) -> OutputBands:
        """From `raster`'s descriptions and spectral metadata; `wavelengths`/`fwhms` (nm) override them and
        `fallback_descriptions` (e.g. a sensor preset's band names) stand in for missing descriptions."""
        wavelengths = list(wavelengths) if wavelengths is not None else list(raster.wavelengths)
        fwhms = list(fwhms) if fwhms is not None else list(raster.fwhms)
        given = [d.strip() for d in raster.names]
        if fallback_descriptions is not None and not any(given):
            given = [str(d) for d in fallback_descriptions]
        unique = all(given) and len(set(given)) == len(given)
        names = given if unique else [f"band {i}" for i in range(1, raster.band_count + 1)]
        descriptions = []
        for i, (text, wavelength) in enumerate(zip(given, wavelengths), start=1):
            if text:
                descriptions.append(text)
            else:
                descriptions.append(f"band {i} ({wavelength:.1f} nm)" if wavelength is not None else f"band {i}")
        return cls(names, descriptions, wavelengths, fwhms)

    def metadata(self) -> dict[str, tuple[dict, list[dict]]]:
        """Spectral metadata in the three places readers look: band items `wavelength`/`fwhm`/`wavelength_units`
        (EnMAP-Box, QGIS), the IMAGERY domain (GDAL ≥ 3.10) and the dataset's ENVI domain lists."""
        bands, imagery = [], []
        for wavelength, fwhm in zip(self.wavelengths, self.fwhms):
            items, imagery_items = {}, {}
            if wavelength is not None:
                items.update(wavelength=f"{wavelength:g}", wavelength_units="Nanometers")
                imagery_items["CENTRAL_WAVELENGTH_UM"] = f"{wavelength / 1e3:g}"
                if fwhm is not None:
                    items["fwhm"] = f"{fwhm:g}"
                    imagery_items["FWHM_UM"] = f"{fwhm / 1e3:g}"
            bands.append(items)
            imagery.append(imagery_items)
        domains = {"": ({}, bands), "IMAGERY": ({}, imagery)}
        if all(w is not None for w in self.wavelengths):
            envi = {"wavelength": "{" + ", ".join(f"{w:g}" for w in self.wavelengths) + "}",
                    "wavelength_units": "Nanometers"}
            if all(f is not None for f in self.fwhms):
                envi["fwhm"] = "{" + ", ".join(f"{f:g}" for f in self.fwhms) + "}"
            domains["ENVI"] = (envi, [])
        return domains


@dataclass
class PairResult(FusionResult):
    guide_sigma: list[float] = field(default_factory=list)  # σ of the guide bands, mean over tiles

    @property
    def models(self) -> list:
        """The SensorModel of every fused window (one for a scene)."""
        return [case.sensor_model for case in self.cases]


def read_filled(pair: RasterPair,
                window: Window) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]:
    """((lr, guide) with nodata filled, the low-resolution pixels the sensor-model regressions may use (None:
    all)), invalid mask on the high-resolution grid) of a window."""
    (hr, hr_invalid), (lr, lr_invalid) = pair.stack.read(window)
    invalid = pair.stack.invalid_on_finest([hr_invalid, lr_invalid])
    if invalid.all() or lr_invalid.all():
        return (lr, hr, None), np.ones_like(invalid)
    pair_fusion = core_module("pair_fusion")
    hr = fill_invalid(hr, hr_invalid)
    if lr_invalid.any():  # predicted from the guide where it lies: a flat fill would bias the fitted injection
        lr = pair_fusion.fill_from_guide(fill_invalid(lr, lr_invalid), hr, lr_invalid, pair.ratio)
    return (lr, hr, pair_fusion.regression_mask(lr_invalid, hr_invalid, pair.ratio)), invalid


def check_sigma(pair: RasterPair, window: Window, settings: RunSettings, names: tuple[str, str]) -> None:
    """A given NOISE_SIGMA against each band's spread over the area (`plausibility.check_noise_sigma`), measured
    on an overview of each layer; `names`: the observation names (σ keys) of the low and high layer."""
    if not settings.sigma:
        return
    given, spread = {}, {}
    for key, raster in ((names[0], pair.low), (names[1], pair.high)):
        if not settings.sigma.get(key):
            continue
        names_ = [f"{raster.label} band {i}" for i in range(1, raster.band_count + 1)]
        given.update(zip(names_, np.broadcast_to(np.asarray(settings.sigma[key], dtype=float), (raster.band_count,))))
        win = raster.window(window)
        size = (min(SPREAD_OVERVIEW_PX, win.width), min(SPREAD_OVERVIEW_PX, win.height))
        spread.update(band_spread(names_, raster.read_overview(window, size)))
    check_noise_sigma(given, spread, pair.units)


def run_pair_fusion(pair: RasterPair, window: Window, target: str, settings: RunSettings, case,
                      bands: OutputBands, *, provenance: dict[str, str] | None = None, progress=None,
                      log=None, before_commit=None) -> PairResult:
    """Fuse `window` (high-resolution pixels) of `pair` into the GeoTIFF `target`, on the guide's grid.

    `case` is the core's pair case with the algorithm's sensor-model options (fitted here on each window, or once
    on the scene's training crops); its σ is `settings.sigma` (by observation name). `progress(tile,
    core_progress)` is called per iteration and returns True to stop (the core then raises FusionCancelled);
    `log(text)` receives one line per tile; `provenance` adds dataset metadata items (the algorithm's own
    settings: SRF and PSF sources, sensor). A given σ is checked against the data first; `before_commit` see
    `fusion_run.write_area`. Any exception leaves `target` as it was.
    """
    lr_name, guide_name = case.names
    case = replace(case, sigma=dict(settings.sigma or {}), ratio=pair.ratio)
    check_sigma(pair, window, settings, case.names)
    plan = plan_area(settings, window, pair.stack.step)
    result = PairResult(target, bands.names, tiles=plan.tiles, window=window, training=plan.training,
                          units=pair.units)

    def metadata(done: PairResult):
        _collect_sigma(done, lr_name, guide_name)
        dataset = {**run_provenance(settings, done, pair), **(provenance or {}), **sensor_model_summary(done.models)}
        dataset["GUIDE_NOISE_SIGMA"] = ", ".join(f"{s:.6g}" for s in done.guide_sigma)
        domains = bands.metadata()
        psf = _mean_over_tiles([np.broadcast_to(np.asarray(m.psf_sigma, float), (len(bands.names),))
                                for m in done.models])
        errors = band_error_items(done)
        # the metadata key stays COREGISTRATION_LR (the output format) whatever the pair's observation is named
        group = {"lr": CoarseGroup(list(bands.names), pair.low.grid.pixel, pair.low.label, lr_name)}
        registration, band_shifts, done.registration_log = registration_summary(settings, done.records, group)
        dataset.update(registration)
        for k, items in enumerate(domains[""][1]):
            items["NOISE_SIGMA"] = f"{done.sigma_by_band.get(bands.names[k], float('nan')):.6g}"
            items.update(errors.get(bands.names[k], {}))
            if psf is not None:
                items["PSF_SIGMA_HR_PX"] = f"{psf[k]:.4g}"
            items.update(band_shifts.get(bands.names[k], {}))
        domains[""] = (dataset, domains[""][1])
        return domains

    write_area(target, pair.stack, bands.descriptions, result, case, plan, lambda w: read_filled(pair, w),
               settings, metadata=metadata, progress=progress, log=log, before_commit=before_commit,
               nothing_valid=f"the processed area holds nodata only (in {pair.low.label} or "
                             f"{pair.high.label} at every pixel): choose an area over valid data")
    return result


def _mean_over_tiles(arrays: list) -> np.ndarray | None:
    return np.mean(np.stack([np.asarray(a, dtype=np.float64) for a in arrays]), axis=0) if arrays else None


def _collect_sigma(result: PairResult, lr_name: str, guide_name: str) -> None:
    """σ per output band and per guide band (data units), averaged over tiles."""
    guide = _mean_over_tiles([r.sigma[guide_name] for r in result.records])
    low = _mean_over_tiles([r.sigma[lr_name] for r in result.records])
    result.guide_sigma = [] if guide is None else [float(s) for s in np.atleast_1d(guide)]
    if low is not None:
        low = np.broadcast_to(low, (len(result.band_names),))
        result.sigma_by_band = {n: float(s) for n, s in zip(result.band_names, low)}


def sensor_model_summary(models: list) -> dict[str, str]:
    """The sensor model the fusion used (mean over tiles): ratio, PSF σ, spectral response and offset, as text."""
    if not models:
        return {}
    response = _mean_over_tiles([m.response for m in models])
    offset = _mean_over_tiles([m.offset for m in models])
    psf = _mean_over_tiles([np.atleast_1d(m.psf_sigma) for m in models])
    psf_text = f"{psf[0]:.4g}" if np.allclose(psf, psf[0]) else ", ".join(f"{v:.4g}" for v in psf)
    return {
        "PSF_SIGMA_HR_PX": psf_text,
        "SPECTRAL_RESPONSE": json.dumps([[float(f"{v:.5g}") for v in row] for row in np.atleast_2d(response)]),
        "SPECTRAL_RESPONSE_SHAPE":
            "guide bands × output bands = " + " × ".join(map(str, np.atleast_2d(response).shape)),
        "RESPONSE_OFFSET": ", ".join(f"{v:.6g}" for v in np.atleast_1d(offset)),
        "SENSOR_MODEL_TILES": str(len(models)),
    }
