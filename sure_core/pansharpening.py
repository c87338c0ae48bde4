"""Pansharpening: the MS bands brought to the PAN grid by Deep SURE (method.md §2.3), on any number of bands.

The PAN is modelled as a weighted sum of the unknown high-resolution MS bands plus an offset,
PAN = Σ_b w_b x_b + o + n, and the MS as x blurred by each band's MTF-matched Gaussian and decimated by the
integer ratio. This module only turns the user's choices into that sensor model (`fit_sensor_model`) and calls the
generic engine `pair_fusion.fuse`:

* weights: estimated by default — non-negative least squares of the PAN degraded to the MS grid on the MS
  bands, with an intercept (`pair_fusion.estimate_response`) —, or given (one value per MS band, in data
  units: PAN ≈ Σ w_b MS_b + o). With given weights the offset o is still estimated, from the band means
  (o = mean(PAN on the MS grid) − Σ w_b mean(MS_b)): a PAN and its MS bands seldom share a radiometric zero
  (dark offsets, different calibration), and a wrong offset would be injected into every band as a flat bias;
* MS PSF: the sensor preset's MTF gains at the data's ratio (`pan_sensors`), a σ you give (one, or one per
  band, in PAN pixels), or ``psf_sigma="estimate"`` (the σ whose degraded PAN the MS bands explain best);
* PAN sharpness: an MTF-matched PAN is blurrier, at its own pixel size, than the fused bands should be (the
  ideal fused band has the MS sensor's MTF gain at the PAN's Nyquist frequency; WorldView-2: 0.35 for the MS,
  0.11 for the PAN). Left as it is, the PAN's finest detail is injected too weakly. So before anything else the
  PAN is brought to the MS sharpness by a regularised (Wiener-type) inverse of the relative Gaussian blur
  σ_rel = sqrt(2 ln(g_ms/g_pan))/π (`pan_sensors.pan_to_ms_sharpness_sigma`, from the preset's gains, or from
  `pan_mtf` and the MS PSF σ you give); `match_pan_mtf=False` skips it. Measured on the WorldView-2 Wald
  protocol (benchmarks/pan.py), the linear first estimate (noise σ = 0) goes from Q8 0.868 / ERGAS 5.11 to
  0.889 / 4.68;
* MS noise σ (when not given): from the finest-scale detail that the other MS bands and the PAN do not
  explain (`cross_band_noise`), because the single-band wavelet estimate takes the texture of small,
  detailed MS images for noise (WorldView-2 Wald protocol: 5-45 DN estimated where about 2 DN remain; the
  first estimate's ERGAS 4.89 with it, 4.68 with the cross-band σ). The PAN's σ is left to the engine;
* pixel geometry: 'area' (default) for georeferenced rasters, where an MS pixel covers the ratio×ratio PAN
  pixels below it; 'zero_phase' reproduces the paper's simulations.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import pair_fusion
from .cross_band_noise import cross_band_noise_sigma
from .errors import InputShapeError, InvalidInputValueError
from .pair_fusion import SensorModel
from .pan_sensors import PanSensor, get_sensor, mtf_from_sigma, pan_to_ms_sharpness_sigma
from .psf import Geometry
from .solver import ProgressCallback, RunRecord, SolverOptions


def _ms_array(ms) -> np.ndarray:
    ms = np.asarray(ms, dtype=np.float64)
    if ms.ndim == 2:
        ms = ms[None]
    if ms.ndim != 3 or min(ms.shape) < 1:
        raise InputShapeError(f"the MS image must be an array of shape (bands, rows, cols), got {ms.shape}")
    if not np.isfinite(ms).all():
        raise InvalidInputValueError("the MS image contains NaN or inf: fill or mask nodata before pansharpening")
    return ms


def _pan_array(pan) -> np.ndarray:
    pan = np.asarray(pan, dtype=np.float64)
    if pan.ndim == 3 and pan.shape[0] != 1:
        raise InputShapeError(f"the PAN must have a single band, got {pan.shape[0]} bands (shape {pan.shape}): "
                              "pass the panchromatic band alone, as (rows, cols) or (1, rows, cols)")
    if pan.ndim == 3:
        pan = pan[0]
    if pan.ndim != 2:
        raise InputShapeError(f"the PAN must be an array of shape (rows, cols) or (1, rows, cols), got {pan.shape}")
    if not np.isfinite(pan).all():
        raise InvalidInputValueError("the PAN contains NaN or inf: fill or mask nodata before pansharpening")
    return pan


def _ratio(ms: np.ndarray, pan: np.ndarray, ratio) -> int:
    return pair_fusion.infer_ratio(ms, pan, "the MS image", "the PAN", given=ratio)


#: Wiener regularisation of the PAN sharpening: the inverse filter's gain is capped near 1/(2·sqrt(reg)) = 5.
PAN_SHARPENING_REGULARISATION = 1e-2
#: Mirrored margin (PAN pixels) around the PAN while it is filtered by FFT, so the image does not wrap around.
_PAN_SHARPENING_MARGIN = 16


def _sharpening_gain(shape: tuple[int, int], sigma: float, regularisation: float) -> np.ndarray:
    """D(f) on the rfft2 grid of `shape` (see `sharpen_pan`)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None]
    transfer = np.exp(-2.0 * np.pi ** 2 * sigma ** 2 * (fx ** 2 + fy ** 2))
    return transfer * (1.0 + regularisation) / (transfer ** 2 + regularisation)


def sharpen_pan(pan: np.ndarray, sigma: float, regularisation: float = PAN_SHARPENING_REGULARISATION) -> np.ndarray:
    """Undo a Gaussian blur of std `sigma` (pixels) on a 2-D image, with a regularised inverse filter.

    D(f) = M(f)(1 + reg)/(M(f)² + reg) with M the Gaussian's transfer function: gain 1 at zero frequency (band
    means are kept), ≈ 1/M where M ≫ sqrt(reg), and rolled off where the blur left little signal, so noise is not
    amplified without bound. The image is mirrored on a margin first, so its borders do not wrap around.
    """
    if sigma <= 0:
        return pan
    m = _PAN_SHARPENING_MARGIN
    padded = np.pad(pan, m, mode="symmetric")
    out = np.fft.irfft2(np.fft.rfft2(padded) * _sharpening_gain(padded.shape, sigma, regularisation), s=padded.shape)
    return out[m:-m, m:-m]


def sharpened_noise_factor(sigma: float, regularisation: float = PAN_SHARPENING_REGULARISATION) -> float:
    """How much `sharpen_pan` multiplies the std of white noise: the rms of D(f) over all frequencies."""
    if sigma <= 0:
        return 1.0
    gain = _sharpening_gain((256, 256), sigma, regularisation)
    weights = np.full(gain.shape[1], 2.0)
    weights[0] = weights[-1] = 1.0  # rfft: the mirrored columns count twice, not DC and Nyquist
    return float(np.sqrt((gain ** 2 * weights).sum() / (256 * 256)))


def pan_sharpening_sigma(preset: PanSensor, psf_sigma: np.ndarray, ratio: int, pan_mtf: float | None) -> float:
    """σ_rel (PAN pixels) of the PAN's extra blur against the MS bands, from the MS PSF σ and the PAN's MTF gain."""
    ms_mtf = float(np.mean([mtf_from_sigma(s, ratio) for s in psf_sigma]))
    pan_gain = preset.pan_mtf if pan_mtf is None else float(pan_mtf)
    if not 0 < pan_gain < 1:
        raise InvalidInputValueError(f"the PAN's MTF gain at Nyquist must lie in (0, 1), got {pan_mtf}")
    return pan_to_ms_sharpness_sigma(min(max(ms_mtf, 1e-6), 1 - 1e-9), pan_gain)


def _psf_sigma(ms, pan, ratio: int, preset: PanSensor, psf_sigma, geometry, valid=None, shift=None) -> np.ndarray:
    bands = ms.shape[0]
    if psf_sigma is None:
        return preset.ms_psf_sigma(bands, ratio)
    if isinstance(psf_sigma, str):
        if psf_sigma != "estimate":
            raise InvalidInputValueError(f"psf_sigma must be a number, one number per band or 'estimate', "
                                         f"got {psf_sigma!r}")
        return np.full(bands, pair_fusion.estimate_psf_sigma(ms, pan[None], ratio, geometry=geometry, valid=valid,
                                                             shift=shift))
    sigma = np.asarray(psf_sigma, dtype=np.float64).reshape(-1)
    if sigma.size not in (1, bands):
        raise InputShapeError(f"give one PSF σ or one per MS band ({bands}), got {sigma.size} values")
    if not np.isfinite(sigma).all() or (sigma <= 0).any():
        raise InvalidInputValueError(f"the PSF σ must be finite and > 0 (PAN pixels), got {sigma.tolist()}")
    return np.broadcast_to(sigma, (bands,)).copy()


def _response(ms, pan, ratio: int, sigma: np.ndarray, weights, geometry, valid=None, shift=None
              ) -> tuple[np.ndarray, np.ndarray]:
    bands = ms.shape[0]
    if weights is None:
        return pair_fusion.estimate_response(ms, pan[None], ratio, sigma, geometry=geometry, valid=valid,
                                             shift=shift)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != bands:
        raise InputShapeError(f"give one PAN weight per MS band ({bands}), got {w.size}")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise InvalidInputValueError(f"PAN weights must be finite, ≥ 0 and not all zero, got {w.tolist()}")
    # the means are taken on the MS grid (the PAN degraded like the MS), where both are sampled alike
    pan_lr = pair_fusion.degrade(pan[None], ratio, float(np.mean(sigma)), geometry, shift)[0]
    keep = np.ones(pan_lr.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    offset = float(pan_lr[keep].mean()) - float(w @ ms[:, keep].mean(axis=1))
    return w[None], np.asarray([offset])


def prepare(ms, pan, *, ratio=None, sensor: str | PanSensor = "generic", weights=None, psf_sigma=None,
            pan_mtf: float | None = None, match_pan_mtf: bool = True, geometry: Geometry | str = Geometry.AREA,
            valid=None, coregistration: str = "auto") -> tuple[np.ndarray, np.ndarray, SensorModel, float]:
    """Validated inputs and the sensor model pansharpen uses: (ms (B, h, w), guide (1, H, W), sensor_model, σ_rel).

    The guide is the PAN brought to the MS sharpness (unless `match_pan_mtf` is False); the sensor model holds the
    ratio, the MS PSF σ per band, the PAN weights (1, B) and offset (1,) relating the guide to the MS bands;
    σ_rel is the blur (PAN pixels) the PAN was sharpened by (0: not sharpened). `valid` ((h, w) bool on the MS
    grid, `pair_fusion.regression_mask`) keeps nodata out of the estimated PSF, weights and offset.
    `coregistration` 'auto' measures each MS band's sub-pixel shift against the PAN first; 'off' assumes none.
    """
    ms, pan = _ms_array(ms), _pan_array(pan)
    geometry = Geometry.parse(geometry)
    r = _ratio(ms, pan, ratio)
    preset = get_sensor(sensor)
    estimated = isinstance(psf_sigma, str)
    nominal = preset.ms_psf_sigma(ms.shape[0], r) if estimated else _psf_sigma(ms, pan, r, preset, psf_sigma, geometry)
    registration, shift = pair_fusion.register_pair(ms, pan, r, nominal, geometry, valid, coregistration)
    sigma = _psf_sigma(ms, pan, r, preset, psf_sigma, geometry, valid, shift) if estimated else nominal
    if estimated and registration:   # measured with the preset's PSF: once more with the pair's own
        registration, shift = pair_fusion.register_pair(ms, pan, r, sigma, geometry, valid, coregistration)
    relative = pan_sharpening_sigma(preset, sigma, r, pan_mtf) if match_pan_mtf else 0.0
    pan = sharpen_pan(pan, relative)
    response, offset = _response(ms, pan, r, sigma, weights, geometry, valid, shift)
    sensor_model = SensorModel(r, sigma, response, offset, registration["shifts"] if registration else None,
                              registration)
    return ms, pan[None], sensor_model.validated(ms.shape[0], 1), relative


def ms_noise_sigma(ms: np.ndarray, guide: np.ndarray, sensor_model: SensorModel,
                   geometry: Geometry | str = Geometry.AREA) -> np.ndarray:
    """MS noise σ per band: what neither the other MS bands nor the guide, degraded to the MS grid, explain."""
    on_ms_grid = pair_fusion.degrade(guide, sensor_model.ratio, float(np.mean(sensor_model.psf_sigma)), geometry,
                                     sensor_model.mean_shift)
    return cross_band_noise_sigma(ms, on_ms_grid)


def fit_sensor_model(ms, pan, **kwargs) -> SensorModel:
    """The sensor model alone (see `prepare`)."""
    return prepare(ms, pan, **kwargs)[2]


def pansharpen(ms, pan, *, ratio=None, sensor: str | PanSensor = "generic", weights=None, psf_sigma=None,
               sigma_ms=None, sigma_pan=None, options: SolverOptions | None = None,
               geometry: Geometry | str = Geometry.AREA, callback: ProgressCallback | None = None,
               pan_mtf: float | None = None, match_pan_mtf: bool = True, valid=None, coregistration: str = "auto",
               ) -> tuple[np.ndarray, RunRecord, SensorModel]:
    """Pansharpen `ms` (bands, h, w) with `pan` (H, W) or (1, H, W), H = ratio·h, W = ratio·w.

    Any number of MS bands (hyperspectral included) and any integer ratio ≥ 2. `sensor`: a key of
    `pan_sensors.SENSORS` ('generic', 'worldview2', 'pleiades', ...), used for the MS PSF when `psf_sigma` is
    None. `weights`: None (estimated) or one PAN weight per band. `sigma_ms`/`sigma_pan`: noise std in data
    units, of the MS and of the PAN as given (estimated when None: the MS by `cross_band_noise`, the PAN by
    the engine). `pan_mtf`: the PAN's MTF gain at its Nyquist (None: the preset's); `match_pan_mtf`: bring
    the PAN to the MS sharpness first (see the module docstring). Returns (fused (bands, H, W) float64 in the
    MS unit, run record, the sensor model used). Inputs are not modified; the output is not clipped.
    """
    from .runner import fuse_window

    case = PanMsCase(sigma={"ms": sigma_ms, "pan": sigma_pan}, geometry=Geometry.parse(geometry), ratio=ratio,
                     sensor=sensor, pan_mtf=pan_mtf, match_pan_mtf=match_pan_mtf,
                     model_options=dict(weights=weights, psf_sigma=psf_sigma, coregistration=coregistration))
    fused, record, fitted = fuse_window(case, (ms, pan, valid), options, callback)
    return fused, record, fitted.sensor_model


@dataclass
class PanMsCase(pair_fusion.PairCase):
    """The pansharpening case: the MS bands ('ms') brought to the grid of the PAN ('pan'). The sensor model is
    fitted by `prepare` with `model_options` (weights, psf_sigma, coregistration) on each window, or once per scene
    on its training crops (the mean sensor_model). Each window's PAN is brought to the MS sharpness (σ_rel PAN pixels,
    from the sensor model's MS PSF) before it guides, a given PAN σ is scaled by what that filter does to noise, and the
    MS noise is estimated across bands."""

    sensor: str | PanSensor = "generic"
    pan_mtf: float | None = None
    match_pan_mtf: bool = True
    model_options: dict = field(default_factory=dict)
    relative: float = 0.0               # σ_rel of the PAN sharpening (PAN pixels; 0: not sharpened)
    window: tuple | None = field(default=None, repr=False, compare=False)  # (data, its inputs) of the window fitted on

    names = ("ms", "pan")

    def _prepare(self, ms, pan, valid=None) -> tuple:
        return prepare(ms, pan, ratio=self.ratio, sensor=self.sensor, pan_mtf=self.pan_mtf,
                       match_pan_mtf=self.match_pan_mtf, geometry=self.geometry, valid=valid, **self.model_options)

    def fit_sensor_model(self, ms, pan, valid=None) -> SensorModel:
        return self._prepare(ms, pan, valid)[2]

    def window_fitted(self, data) -> PanMsCase:
        """Fitted on one window, whose sharpened PAN the fit made already: `inputs` reuses it for that window."""
        if self.sensor_model is not None:
            return self
        ms, guide, sensor_model, _ = self._prepare(*data)
        return replace(self.with_sensor_model(sensor_model), window=(data, (ms, guide, *data[2:])))

    def with_sensor_model(self, sensor_model: SensorModel) -> PanMsCase:
        relative = pan_sharpening_sigma(get_sensor(self.sensor), sensor_model.psf_sigma, sensor_model.ratio,
                                        self.pan_mtf) \
            if self.match_pan_mtf else 0.0
        return replace(self, sensor_model=sensor_model, relative=relative)

    def inputs(self, data) -> tuple:
        if self.window is not None and data is self.window[0]:
            return self.window[1]
        return _ms_array(data[0]), sharpen_pan(_pan_array(data[1]), self.relative)[None], *data[2:]

    def lr_noise(self, lr: np.ndarray, guide: np.ndarray):
        given = self.sigma.get("ms")
        return ms_noise_sigma(lr, guide, self.sensor_model, self.geometry) if given is None else given

    def guide_noise(self, guide: np.ndarray):
        given = self.sigma.get("pan")
        return None if given is None else np.asarray(given, dtype=np.float64) * sharpened_noise_factor(self.relative)
