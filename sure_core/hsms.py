"""Hyperspectral + multispectral fusion: the HS bands brought to the MS grid (method.md §2.2).

    fused, record, sensor_model = fuse_hs_ms(hs, ms)                # SRF and PSF estimated from the pair
    fused, record, sensor_model = fuse_hs_ms(hs, ms, srf="gaussian", hs_wavelengths=wl, hs_fwhm=fw,
                                             ms_sensor="landsat8")

`hs` is (L, h, w) and `ms` (G, H, W) with H = ratio·h, W = ratio·w on the same footprint (pixel-aligned). The
sensor model (`pair_fusion.SensorModel`) says how each sees the unknown HS image x on the MS grid:
hs = H x + n (Gaussian PSF of σ HR pixels, decimation by the ratio) and ms = R x + o + n. This module only
builds that sensor model from the user's choices and checks the inputs; `pair_fusion` does the work.

Spectral response R (`srf`):
* ``"estimate"`` (default): non-negative least squares of the MS degraded to the HS grid on the HS bands
  (`pair_fusion.estimate_response`, as HySure does); needs no metadata.
* ``"gaussian"``: Gaussian band responses from the HS band centres/FWHMs and the MS sensor's
  (`ms_sensor` preset, or `ms_wavelengths`/`ms_fwhm`); see `spectral_response`. Its rows sum to 1, so a
  gain and an offset per MS band are then fitted at low resolution (the two images may be in different
  units, e.g. DN and reflectance).
* a (G × L) array, or the path of a CSV file holding one: used as given; only the offset per MS band is fitted.
PSF σ (`psf_sigma`): None or ``"estimate"`` → `pair_fusion.estimate_psf_sigma`; or a number (HR pixels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import pair_fusion as pf
from .errors import InputShapeError, InvalidInputValueError
from .psf import Geometry
from .solver import ProgressCallback, RunRecord, SolverOptions
from .spectral_response import (
    BandTable,
    gaussian_response,
    parse_response_matrix,
    preset_bands,
    validate_response_matrix,
)

HS_NAME = "the hyperspectral image"
MS_NAME = "the multispectral image"
SRF_MODES = ("estimate", "gaussian")


def _image(name: str, a) -> np.ndarray:
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputValueError(f"{name} cannot be read as a numeric array ({exc})") from exc
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or min(a.shape) < 1:
        raise InputShapeError(f"{name} must be an array of shape (bands, rows, cols), got {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputValueError(f"{name} contains {int((~np.isfinite(a)).sum())} NaN or infinite values: fill or "
                                     "mask nodata before fusing")
    return a


def _geometry(geometry) -> Geometry:
    try:
        return Geometry.parse(geometry)
    except ValueError as exc:
        raise InvalidInputValueError(str(exc)) from None


def _ratio(hs: np.ndarray, ms: np.ndarray, ratio) -> int:
    return pf.infer_ratio(hs, ms, HS_NAME, MS_NAME, given=ratio)


def _wavelengths_nm(name: str, values) -> np.ndarray:
    """Wavelengths as given, in nm (values all below 30 are taken as µm)."""
    w = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if w.ndim != 1 or not np.isfinite(w).all() or (w <= 0).any():
        raise InvalidInputValueError(f"{name} must be positive finite wavelengths (nm or µm), "
                                     f"got {np.asarray(values).tolist()}")
    return w * 1000.0 if w.max() < 30.0 else w


def _hs_table(hs_bands: int, wavelengths, fwhm) -> BandTable:
    if wavelengths is None:
        raise InvalidInputValueError("srf='gaussian' needs the HS band centre wavelengths (hs_wavelengths); without "
                                     "them use srf='estimate'")
    centres = _wavelengths_nm("hs_wavelengths", wavelengths)
    if centres.size != hs_bands:
        raise InputShapeError(f"{centres.size} HS wavelengths given for {hs_bands} HS bands")
    if fwhm is None:  # contiguous spectrometer bands: the FWHM is about the band spacing
        if centres.size < 2:
            raise InvalidInputValueError("a single HS band needs its FWHM (hs_fwhm)")
        order = np.argsort(centres)
        gaps = np.diff(centres[order])
        spacing = np.empty_like(centres)
        spacing[order] = np.minimum(np.r_[gaps[0], gaps], np.r_[gaps, gaps[-1]])
        widths = np.maximum(spacing, 1e-3)
    else:
        widths = _widths_nm("hs_fwhm", fwhm, wavelengths, centres.size)
    return BandTable(centres, np.asarray(widths, dtype=np.float64))


def _widths_nm(name: str, fwhm, wavelengths, bands: int) -> np.ndarray:
    """FWHMs in nm, read in the unit of the matching wavelengths; one for all bands or one per band."""
    fwhm = np.atleast_1d(np.asarray(fwhm, dtype=np.float64))
    if fwhm.ndim != 1 or fwhm.size not in (1, bands):
        raise InputShapeError(f"{fwhm.size} {name} values given for {bands} bands")
    if not np.isfinite(fwhm).all() or (fwhm <= 0).any():
        raise InvalidInputValueError(f"{name} must be positive finite widths, got {fwhm.tolist()}")
    unit = 1000.0 if np.max(wavelengths) < 30.0 else 1.0
    return np.broadcast_to(fwhm * unit, (bands,)).copy()


def _ms_table(ms_bands: int, sensor, wavelengths, fwhm) -> BandTable:
    if isinstance(sensor, BandTable):
        table = sensor
    elif sensor is not None:
        name, _, band_list = str(sensor).partition(":")
        names = [b.strip() for b in band_list.split(",") if b.strip()] or None
        table = preset_bands(name, names)
        if names is None and len(table) != ms_bands:
            raise InputShapeError(
                f"the {name!r} preset has {len(table)} bands ({', '.join(table.names)}) "
                f"but the MS image has {ms_bands}: "
                f"name its bands in order, e.g. ms_sensor='{name}:{','.join(table.names[:ms_bands])}'")
    elif wavelengths is not None and fwhm is not None:
        centres = _wavelengths_nm("ms_wavelengths", wavelengths)
        table = BandTable(centres, _widths_nm("ms_fwhm", fwhm, wavelengths, centres.size))
    else:
        raise InvalidInputValueError("srf='gaussian' needs the MS bands: a sensor preset (ms_sensor='sentinel2' or "
                                     "'landsat_oli', optionally ':B2,B3,...') or ms_wavelengths and ms_fwhm")
    if len(table) != ms_bands:
        raise InputShapeError(f"{len(table)} MS band descriptions for an MS image of {ms_bands} bands")
    return table


def _fit_gain_offset(hs: np.ndarray, ms: np.ndarray, response: np.ndarray, ratio: int, psf_sigma: np.ndarray,
                     geometry: Geometry, gain: bool, valid: np.ndarray | None = None,
                     shift=None) -> tuple[np.ndarray, np.ndarray]:
    """Per MS band, the gain a and offset b with H·ms_g ≈ a·(R hs)_g + b at low resolution (least squares), on
    the `valid` low-resolution pixels."""
    predicted = np.einsum("gl,lhw->ghw", response, hs).reshape(ms.shape[0], -1)
    observed = pf.degrade(ms, ratio, float(np.mean(psf_sigma)), geometry, shift).reshape(ms.shape[0], -1)
    if valid is not None:
        keep = np.asarray(valid, dtype=bool).reshape(-1)
        predicted, observed = predicted[:, keep], observed[:, keep]
    if not gain:
        return response, (observed - predicted).mean(axis=1)
    p_c = predicted - predicted.mean(axis=1, keepdims=True)
    o_c = observed - observed.mean(axis=1, keepdims=True)
    slope = (p_c * o_c).sum(axis=1) / np.maximum((p_c * p_c).sum(axis=1), 1e-300)
    if (slope <= 0).any():
        bad = np.flatnonzero(slope <= 0).tolist()
        raise InvalidInputValueError(f"MS band(s) {bad} (0-based) do not increase with the HS bands that their "
                                     "Gaussian response weights: check the band order and wavelengths, "
                                     "or use srf='estimate'")
    return response * slope[:, None], observed.mean(axis=1) - slope * predicted.mean(axis=1)


def fit_sensor_model(hs, ms, *, ratio=None, srf="estimate", hs_wavelengths=None, hs_fwhm=None, ms_sensor=None,
                ms_wavelengths=None, ms_fwhm=None, psf_sigma=None,
                geometry: Geometry | str = Geometry.AREA, valid=None,
                coregistration: str = "auto") -> pf.SensorModel:
    """The sensor model of an HS/MS pair (ratio, PSF σ, R, offset, shift) from the options described in the module
    doc; `valid` ((h, w) bool on the HS grid, `pair_fusion.regression_mask`) keeps nodata out of the estimates.
    `coregistration` 'auto' measures the HS image's sub-pixel shift against the MS image first (two sensors are
    never exactly registered, and a shift fitted as blur would widen the PSF), 'off' assumes none."""
    hs, ms = _image(HS_NAME, hs), _image(MS_NAME, ms)
    geometry = _geometry(geometry)
    ratio = _ratio(hs, ms, ratio)
    n_hs, n_ms = hs.shape[0], ms.shape[0]
    estimate_psf = psf_sigma is None or (isinstance(psf_sigma, str) and psf_sigma == "estimate")
    if not estimate_psf:
        try:
            sigma = np.asarray(psf_sigma, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InvalidInputValueError(f"psf_sigma must be 'estimate' or a number of HR pixels, "
                                         f"got {psf_sigma!r}") from None
        if sigma.size not in (1, n_hs) or not np.isfinite(sigma).all() or (sigma <= 0).any():
            raise InvalidInputValueError(f"psf_sigma must be one positive number (or one per HS band) in MS pixels, "
                                         f"got {np.asarray(psf_sigma).tolist()}")
        sigma = np.broadcast_to(sigma, (n_hs,)).copy()
    registration, shift = pf.register_pair(hs, ms, ratio, None if estimate_psf else sigma, geometry, valid,
                                           coregistration)
    if estimate_psf:
        sigma = np.full(n_hs, pf.estimate_psf_sigma(hs, ms, ratio, geometry=geometry, valid=valid, shift=shift))
        if registration:   # measured with a nominal PSF: once more with the pair's own
            registration, shift = pf.register_pair(hs, ms, ratio, sigma, geometry, valid, coregistration)
    if isinstance(srf, str) and srf == "estimate":
        response, offset = pf.estimate_response(hs, ms, ratio, sigma, geometry=geometry, valid=valid, shift=shift)
        if (response.sum(axis=1) <= 0).any():
            rows = np.flatnonzero(response.sum(axis=1) <= 0).tolist()
            raise InvalidInputValueError(f"MS band(s) {rows} (0-based) are not explained by any HS band (estimated "
                                         "response all zero): check that the two images show the same area, "
                                         "or give the SRF")
    elif isinstance(srf, str) and srf == "gaussian":
        shape = gaussian_response(_hs_table(n_hs, hs_wavelengths, hs_fwhm),
                                  _ms_table(n_ms, ms_sensor, ms_wavelengths, ms_fwhm))
        response, offset = _fit_gain_offset(hs, ms, shape, ratio, sigma, geometry, gain=True, valid=valid,
                                            shift=shift)
    elif isinstance(srf, (str, Path)):
        if (isinstance(srf, str) and "\n" not in srf and not Path(srf).is_file()
                and not srf.lower().endswith((".csv", ".txt"))):
            raise InvalidInputValueError(f"srf must be 'estimate', 'gaussian', a (MS × HS bands) matrix or a CSV file; "
                                         f"got {srf!r}")
        response, offset = _fit_gain_offset(hs, ms, parse_response_matrix(srf, n_ms, n_hs), ratio, sigma, geometry,
                                            gain=False, valid=valid, shift=shift)
    else:
        response, offset = _fit_gain_offset(hs, ms, validate_response_matrix(srf, n_ms, n_hs), ratio, sigma, geometry,
                                            gain=False, valid=valid, shift=shift)
    shifts = registration["shifts"] if registration else None
    return pf.SensorModel(ratio, sigma, response, offset, shifts, registration).validated(n_hs, n_ms)


def first_estimate_hs_ms(hs, ms, *, sigma_hs=None, sigma_ms=None, geometry: Geometry | str = Geometry.AREA,
                         sensor_model: pf.SensorModel | None = None, **model_options
                         ) -> tuple[np.ndarray, pf.SensorModel]:
    """The linear first estimate alone (no network), (L, H, W) in HS units, and the sensor model used."""
    sensor_model = sensor_model or fit_sensor_model(hs, ms, geometry=geometry, **model_options)
    estimate = pf.first_estimate(_image(HS_NAME, hs), _image(MS_NAME, ms), sensor_model,
                                 {"hs": sigma_hs, "ms": sigma_ms}, geometry=_geometry(geometry),
                                 names=HsMsCase.names)
    return estimate, sensor_model


def fuse_hs_ms(hs, ms, *, ratio=None, srf="estimate", hs_wavelengths=None, hs_fwhm=None, ms_sensor=None,
               ms_wavelengths=None, ms_fwhm=None, psf_sigma=None, sigma_hs=None, sigma_ms=None,
               options: SolverOptions | None = None, geometry: Geometry | str = Geometry.AREA,
               callback: ProgressCallback | None = None, valid=None, coregistration: str = "auto"
               ) -> tuple[np.ndarray, RunRecord, pf.SensorModel]:
    """Fuse an HS image (L, h, w) with an MS image (G, H, W) of the same footprint: the L bands on the MS grid.

    Returns (fused (L, H, W) float64 in HS units, the run record, the sensor model used). Noise σ's
    (`sigma_hs`, `sigma_ms`, data units, one or one per band) are estimated when not given. See the module
    docstring for `srf` and `psf_sigma`; `geometry='area'` suits georeferenced rasters, 'zero_phase'
    reproduces the paper's simulations.
    """
    from .runner import fuse_window

    hs, ms = _image(HS_NAME, hs), _image(MS_NAME, ms)
    case = HsMsCase(sigma={"hs": sigma_hs, "ms": sigma_ms}, geometry=_geometry(geometry), ratio=ratio,
                    model_options=dict(srf=srf, hs_wavelengths=hs_wavelengths, hs_fwhm=hs_fwhm, ms_sensor=ms_sensor,
                                       ms_wavelengths=ms_wavelengths, ms_fwhm=ms_fwhm, psf_sigma=psf_sigma,
                                       coregistration=coregistration))
    fused, record, fitted = fuse_window(case, (hs, ms, valid), options, callback)
    return fused, record, fitted.sensor_model


@dataclass
class HsMsCase(pf.PairCase):
    """The HS + MS fusion case: the HS bands ('hs') brought to the grid of the MS image ('ms'), the sensor model
    fitted by `fit_sensor_model` with `model_options` (srf, band tables, psf_sigma, coregistration: see the module doc)
    on each window, or once per scene on its training crops (the mean sensor model)."""

    model_options: dict = field(default_factory=dict)

    names = ("hs", "ms")

    def fit_sensor_model(self, hs, ms, valid=None) -> pf.SensorModel:
        return fit_sensor_model(hs, ms, ratio=self.ratio, geometry=self.geometry, valid=valid, **self.model_options)

    def inputs(self, data) -> tuple:
        return _image(HS_NAME, data[0]), _image(MS_NAME, data[1]), *data[2:]
