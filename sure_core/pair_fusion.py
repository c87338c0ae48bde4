"""Pair fusion: low-resolution bands sharpened by a high-resolution guide that sees them through a spectral response.

The unknown x holds the L low-resolution bands (HS bands, or the MS bands of a pansharpening pair) on the
high-resolution grid. Two observations (method.md §2.2, §2.3):

    lr    (L, h, w) = H x + n       Gaussian blur (σ per band, HR pixels) and decimation by the integer `ratio`
    guide (G, H, W) = R x + o + n   R (G × L) the spectral response, o a per-band offset (e.g. a DN bias)

HS+MS fusion (G = MS bands) and pansharpening (G = 1, the PAN) are the same problem with different presets:
`PairCase` here, with `hsms.HsMsCase` and `pansharpening.PanMsCase` fitting their `SensorModel`.

The sensor model can be estimated from the pair: degrading the guide by the lr PSF gives H·guide = R·(H x) + o
≈ R·lr + o, so R and o follow from a (non-negative) regression at low resolution, and the PSF σ is the one
for which that regression fits best.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.optimize import nnls

from .coregistration import median_record
from .errors import InputShapeError, InvalidInputValueError
from .noise import estimate_noise_sigma
from .operators import BlurDecimate, SpectralResponse
from .problem import FusionProblem, Observation
from .psf import Geometry, sigma_from_mtf
from .solver import ProgressCallback, RunRecord, SolverOptions, smooth_alone

DEFAULT_COND = 1e-3
#: the observation names of the generic pair (lr, guide); the fusion cases name theirs (`PairCase`)
PAIR_NAMES = ("lr", "guide")
#: the pairs' recipe: the plain injection (see `injection`): on a synthetic pair with HS nodata the injection gain
#: read a PSF mismatch as missing detail (RMS 0.0074 against 0.0028 for nearest-neighbour), and on WorldView-2 it
#: lowered Q8; no guided smoothing, no cross-band shrinkage
PAIR_RECIPE = {"refined_injection": False, "guided_smoothing": False, "cross_band_shrinkage": False}
#: Low-resolution pixels used by the sensor-model regressions (a regular subsample beyond this).
MAX_REGRESSION_PIXELS = 200_000


@dataclass
class SensorModel:
    """How the guide and the low-resolution bands see the unknown image (see the module docstring)."""

    ratio: int
    psf_sigma: np.ndarray                        # (L,) Gaussian PSF σ of the lr bands, HR pixels
    response: np.ndarray                         # (G, L): guide ≈ response @ x + offset, x in lr units
    offset: np.ndarray = field(default=None)     # (G,) in guide units; None → zeros
    shifts: np.ndarray = field(default=None)     # (L, 2) where each lr band's content lies, in lr pixels (rows,
                                                 # cols) from its nominal place (`coregistration`); None → zeros
    registration: dict = field(default_factory=dict)  # the measurement behind `shifts` (Registration.as_record)

    @property
    def mean_shift(self) -> np.ndarray:
        return np.zeros(2) if self.shifts is None else np.asarray(self.shifts, dtype=np.float64).mean(axis=0)

    def validated(self, lr_bands: int, guide_bands: int) -> SensorModel:
        if int(self.ratio) != self.ratio or self.ratio < 2:
            raise InputShapeError(f"the resolution ratio must be an integer ≥ 2, got {self.ratio}")
        sigma = np.broadcast_to(np.asarray(self.psf_sigma, dtype=np.float64).reshape(-1), (lr_bands,)) \
            if np.size(self.psf_sigma) in (1, lr_bands) else None
        if sigma is None:
            raise InputShapeError(f"give one PSF σ or one per low-resolution band ({lr_bands}), "
                                  f"got {np.size(self.psf_sigma)}")
        if not np.isfinite(sigma).all() or (sigma <= 0).any():
            raise InvalidInputValueError(f"PSF σ must be finite and > 0 (HR pixels), got {np.unique(sigma).tolist()}")
        response = np.asarray(self.response, dtype=np.float64)
        if response.shape != (guide_bands, lr_bands):
            raise InputShapeError(f"the spectral response must be a ({guide_bands} guide bands × {lr_bands} "
                                  f"low-resolution bands) matrix, got shape {response.shape}")
        if not np.isfinite(response).all():
            raise InvalidInputValueError("the spectral response contains NaN or inf")
        if (np.abs(response).sum(axis=1) == 0).any():
            rows = np.flatnonzero(np.abs(response).sum(axis=1) == 0).tolist()
            raise InvalidInputValueError(f"guide band(s) {rows} (0-based) have an all-zero spectral response: "
                                         "they see none of the low-resolution bands")
        offset = np.zeros(guide_bands) if self.offset is None else np.asarray(self.offset, dtype=np.float64).reshape(-1)
        if offset.shape != (guide_bands,) or not np.isfinite(offset).all():
            raise InputShapeError(f"the guide offset must hold {guide_bands} finite values, got {offset.tolist()}")
        shifts = None if self.shifts is None else np.broadcast_to(
            np.asarray(self.shifts, dtype=np.float64).reshape(-1, 2), (lr_bands, 2)).copy()
        if shifts is not None and not np.isfinite(shifts).all():
            raise InvalidInputValueError("the band shifts must be finite")
        return SensorModel(int(self.ratio), sigma.copy(), response, offset, shifts, dict(self.registration))


def _as_image(name: str, a, *, allow_2d: bool = False) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if allow_2d and a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or min(a.shape) < 1:
        raise InputShapeError(f"{name} must be an array of shape (bands, rows, cols), got {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputValueError(f"{name} contains NaN or inf: fill or mask nodata before fusing")
    return a


def infer_ratio(lr, guide, lr_name: str = "the low-resolution image", guide_name: str = "the guide",
                given=None) -> int:
    """The integer size ratio guide/lr, the same along both axes; a clear error otherwise, or when a `given`
    ratio is not an integer ≥ 2 or disagrees with the sizes."""
    if given is not None:
        inferred = infer_ratio(lr, guide, lr_name, guide_name)
        try:
            integer = not isinstance(given, bool) and float(given).is_integer() and given >= 2
        except (TypeError, ValueError):
            integer = False
        if not integer:
            raise InputShapeError(f"the resolution ratio must be an integer ≥ 2 ({lr_name}'s pixel size / "
                                  f"{guide_name}'s), got {given}")
        if int(given) != inferred:
            raise InputShapeError(f"a ratio of {given} was given but the sizes ({np.shape(lr)[-2]}×{np.shape(lr)[-1]} "
                                  f"px for {lr_name}, {np.shape(guide)[-2]}×{np.shape(guide)[-1]} px for {guide_name}) "
                                  f"give {inferred}: crop both to the same footprint, or leave the ratio out")
        return inferred
    (h, w), (rows, cols) = np.shape(lr)[-2:], np.shape(guide)[-2:]
    if rows <= h or cols <= w:
        raise InputShapeError(f"{guide_name} ({rows}×{cols} px) must be finer than {lr_name} ({h}×{w} px): "
                              "check that the two inputs are not swapped")
    if rows % h or cols % w or rows // h != cols // w:
        raise InputShapeError(
            f"{guide_name} is {rows}×{cols} px and {lr_name} {h}×{w} px: the size ratio must be the same integer "
            f"along both axes (got {rows / h:g} and {cols / w:g}); crop both to a common extent on the coarse grid")
    return rows // h


def _check_sizes(lr: np.ndarray, guide: np.ndarray, ratio: int) -> None:
    if guide.shape[1:] != (lr.shape[1] * ratio, lr.shape[2] * ratio):
        raise InputShapeError(
            f"at a ratio of {ratio} the guide must be exactly {lr.shape[1] * ratio}×{lr.shape[2] * ratio} px for a "
            f"{lr.shape[1]}×{lr.shape[2]} px low-resolution image, got {guide.shape[1]}×{guide.shape[2]}")


def degrade(image: np.ndarray, ratio: int, psf_sigma, geometry: Geometry | str = Geometry.AREA,
            shift=None) -> np.ndarray:
    """H applied to every band of `image` (bands, H, W): Gaussian blur of σ (one, or one per band) and decimation,
    sampled where lr bands displaced by `shift` ((rows, cols) lr pixels, see `coregistration`) see the scene."""
    image = np.asarray(image, dtype=np.float64)
    sigmas = np.broadcast_to(np.asarray(psf_sigma, dtype=np.float64).reshape(-1), (image.shape[0],))
    op = BlurDecimate(sigmas.tolist(), ratio, image.shape[1:], geometry, dtype=torch.float64,
                      shifts=None if shift is None else [shift])
    return op.A(torch.as_tensor(image)).numpy()


def _regression_pixels(n: int, max_pixels: int, valid: np.ndarray | None = None, lr_bands: int = 1) -> np.ndarray:
    """Low-resolution pixel indices (flat) for the sensor-model regressions: the valid ones (all when `valid` is
    None, or when fewer than max(32, 2·lr_bands) are valid: a window that is nearly all nodata, e.g. at a
    scene's edge, is still processed, as its nodata pixels are blanked in the output), subsampled regularly to
    at most `max_pixels`."""
    if valid is not None and np.size(valid) != n:
        raise InputShapeError(f"the valid-pixel mask has {np.size(valid)} pixels, the low-resolution image {n}")
    pixels = np.arange(n) if valid is None else np.flatnonzero(np.asarray(valid, dtype=bool).reshape(-1))
    if len(pixels) < max(32, 2 * lr_bands):
        pixels = np.arange(n)
    step = max(1, int(np.ceil(len(pixels) / max_pixels)))
    return pixels[::step]


def regression_mask(lr_invalid: np.ndarray, guide_invalid: np.ndarray, ratio: int,
                    margin: int = 1) -> np.ndarray | None:
    """Low-resolution pixels usable by the sensor-model regressions, (h, w) bool, or None when all are: valid in
    the lr image, over a ratio×ratio guide block without invalid pixels, and `margin` lr pixels away from any
    invalid one (the guide is blurred by the PSF before the regression; filled nodata must not leak in)."""
    from scipy import ndimage

    lr_invalid = np.asarray(lr_invalid, dtype=bool)
    guide_invalid = np.asarray(guide_invalid, dtype=bool)
    if not lr_invalid.any() and not guide_invalid.any():
        return None
    h, w = lr_invalid.shape
    blocks = guide_invalid[:h * ratio, :w * ratio].reshape(h, ratio, w, ratio).any(axis=(1, 3))
    invalid = lr_invalid | blocks
    if margin > 0:
        invalid = ndimage.binary_dilation(invalid, iterations=margin)
    return ~invalid


def _fit_response(lr_flat: np.ndarray, guide_flat: np.ndarray,
                  nonnegative: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Regress each guide band on the lr bands with an intercept: (R (G, L), offset (G,), mean squared residual).

    lr_flat (L, n), guide_flat (G, n). Centring removes the intercept; the non-negative fit runs on the L × L
    Cholesky factor of the normal equations, so its cost does not grow with the number of pixels.
    """
    lr_mean, guide_mean = lr_flat.mean(axis=1), guide_flat.mean(axis=1)
    a = lr_flat - lr_mean[:, None]
    b = guide_flat - guide_mean[:, None]
    gram = a @ a.T
    gram += np.eye(len(gram)) * (1e-9 * np.trace(gram) / len(gram) + 1e-30)
    chol = np.linalg.cholesky(gram)                      # gram = C Cᵀ; ‖aᵀr − b‖² = ‖Cᵀr − C⁻¹ a b‖² + const
    rhs = np.linalg.solve(chol, a @ b.T)                 # (L, G)
    if nonnegative:
        response = np.stack([nnls(chol.T, rhs[:, g])[0] for g in range(b.shape[0])])
    else:
        response = np.linalg.solve(chol.T, rhs).T
    residual = b - response @ a
    return response, guide_mean - response @ lr_mean, float((residual ** 2).mean())


def fill_from_guide(lr, guide, lr_invalid: np.ndarray, ratio: int, psf_sigma: float | None = None) -> np.ndarray:
    """The lr image with its invalid pixels (h, w) predicted from the guide: each lr band regressed (with an
    intercept) on the guide degraded to the lr grid, over the valid pixels. A fill that agrees with the guide
    keeps nodata areas from biasing what is fitted over the whole window (the detail injection, SURE's τ), as a
    flat fill would: there the guide has detail the lr image lacks. `psf_sigma` defaults to an MTF of 0.3."""
    lr = np.array(_as_image("the low-resolution image", lr), dtype=np.float64)
    guide = _as_image("the guide", guide, allow_2d=True)
    invalid = np.asarray(lr_invalid, dtype=bool)
    if not invalid.any() or (~invalid).sum() < max(32, 2 * guide.shape[0]):  # no gap, or too little to regress on
        return lr
    sigma = sigma_from_mtf(0.3, ratio) if psf_sigma is None else float(np.mean(psf_sigma))
    degraded = degrade(guide, ratio, sigma).reshape(guide.shape[0], -1)
    valid = ~invalid.reshape(-1)
    pixels = _regression_pixels(valid.size, MAX_REGRESSION_PIXELS, valid)
    weights, offset, _ = _fit_response(degraded[:, pixels], lr.reshape(lr.shape[0], -1)[:, pixels], nonnegative=False)
    predicted = weights @ degraded[:, ~valid] + offset[:, None]
    lr.reshape(lr.shape[0], -1)[:, ~valid] = predicted
    return lr


def estimate_response(lr, guide, ratio: int, psf_sigma, *, geometry: Geometry | str = Geometry.AREA,
                      nonnegative: bool = True, max_pixels: int = MAX_REGRESSION_PIXELS,
                      valid: np.ndarray | None = None, shift=None) -> tuple[np.ndarray, np.ndarray]:
    """(R (G, L), offset (G,)) such that guide ≈ R x + offset, estimated at low resolution from the pair.

    The guide is degraded by the lr bands' PSF (their mean σ) and regressed on the lr bands, with
    non-negative weights by default (a spectral response cannot be negative), as HySure does. `valid`
    ((h, w) bool, see `regression_mask`) restricts the regression to pixels with real data in both images.
    """
    lr = _as_image("the low-resolution image", lr)
    guide = _as_image("the guide", guide, allow_2d=True)
    _check_sizes(lr, guide, ratio)
    sigma = float(np.mean(psf_sigma))
    degraded = degrade(guide, ratio, sigma, geometry, shift).reshape(guide.shape[0], -1)
    pixels = _regression_pixels(degraded.shape[1], max_pixels, valid, lr.shape[0])
    response, offset, _ = _fit_response(lr.reshape(lr.shape[0], -1)[:, pixels], degraded[:, pixels], nonnegative)
    return response, offset


def _principal_components(lr_flat: np.ndarray, k: int) -> np.ndarray:
    centred = lr_flat - lr_flat.mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:k] * np.sqrt(lr_flat.shape[1])  # (k, n) uncorrelated, unit-scale components


def estimate_psf_sigma(lr, guide, ratio: int, *, geometry: Geometry | str = Geometry.AREA,
                       grid: np.ndarray | None = None, max_pixels: int = MAX_REGRESSION_PIXELS,
                       valid: np.ndarray | None = None, shift=None) -> float:
    """One Gaussian PSF σ (HR pixels) for the lr bands: the σ whose degraded guide a linear mix of the lr bands
    explains best. The lr bands enter through their leading principal components, so that a hyperspectral
    image with more bands than its degraded size can hold does not fit any σ equally well. `valid` as for
    `estimate_response`."""
    lr = _as_image("the low-resolution image", lr)
    guide = _as_image("the guide", guide, allow_2d=True)
    _check_sizes(lr, guide, ratio)
    if grid is None:  # MTF at Nyquist from ~0.05 to ~0.85
        grid = ratio * np.linspace(0.18, 0.78, 31)
    lr_flat = lr.reshape(lr.shape[0], -1)
    pixels = _regression_pixels(lr_flat.shape[1], max_pixels, valid)
    count = min(lr.shape[0], 2 * guide.shape[0] + 4, len(pixels) // 8 or 1)
    components = _principal_components(lr_flat[:, pixels], count)
    errors = []
    for sigma in grid:
        degraded = degrade(guide, ratio, sigma, geometry, shift).reshape(guide.shape[0], -1)[:, pixels]
        _, _, mse = _fit_response(components, degraded, nonnegative=False)
        errors.append(mse / max(float(degraded.var()), 1e-30))
    return float(grid[int(np.argmin(errors))])


#: above this many lr bands (hyperspectral), the shift is measured on the leading principal components and pooled
PER_BAND_REGISTRATION_MAX = 12
REGISTRATION_COMPONENTS = 4


def measure_registration(lr, guide, ratio: int, psf_sigma, *, geometry: Geometry | str = Geometry.AREA,
                         valid: np.ndarray | None = None, names: list[str] | None = None) -> dict:
    """The lr image's sub-pixel shift against the guide (`coregistration`), as a record whose "shifts" hold one
    (rows, cols) per lr band: per band for a few bands (MS against a PAN), or one for all measured on the leading
    principal components (a hyperspectral image: one sensor, many noisy bands)."""
    from . import coregistration

    lr = _as_image("the low-resolution image", lr)
    guide = _as_image("the guide", guide, allow_2d=True)
    sigma = np.broadcast_to(np.asarray(psf_sigma, dtype=np.float64).reshape(-1), (lr.shape[0],))
    if lr.shape[0] <= PER_BAND_REGISTRATION_MAX:
        return coregistration.measure(lr, guide, ratio, sigma, geometry=geometry, valid=valid,
                                      names=names).as_record()
    flat = lr.reshape(lr.shape[0], -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    sample = centred[:, _regression_pixels(flat.shape[1], MAX_REGRESSION_PIXELS, valid)]
    loadings = np.linalg.svd(sample, full_matrices=False)[0][:, :REGISTRATION_COMPONENTS]   # (L, k)
    images = (loadings.T @ centred).reshape(-1, *lr.shape[1:])
    measured = coregistration.measure(images, guide, ratio, [float(np.mean(sigma))] * len(images), geometry=geometry,
                                      valid=valid, names=[f"component {k + 1}" for k in range(len(images))])
    record = measured.as_record()
    record["shifts"] = [list(measured.pooled.shift)] * lr.shape[0]
    return record


def register_pair(lr, guide, ratio: int, psf_sigma, geometry, valid, coregistration: str
                  ) -> tuple[dict, np.ndarray | None]:
    """(registration record, mean shift) of a pair for `coregistration` 'auto' ({} and None for 'off');
    `psf_sigma` None: a nominal PSF (MTF 0.3 at Nyquist) until the pair's own is estimated."""
    if coregistration == "off":
        return {}, None
    if coregistration != "auto":
        raise InvalidInputValueError(f"coregistration must be 'auto' or 'off', got {coregistration!r}")
    sigma = sigma_from_mtf(0.3, ratio) if psf_sigma is None else psf_sigma
    record = measure_registration(lr, guide, ratio, sigma, geometry=geometry, valid=valid)
    return record, np.mean(record["shifts"], axis=0)


def _noise(name: str, given, data: np.ndarray) -> np.ndarray:
    """Noise σ per band in `data`'s units: the given value(s), or the wavelet-MAD estimate."""
    if given is None:
        return estimate_noise_sigma(data)
    sigma = np.broadcast_to(np.asarray(given, dtype=np.float64).reshape(-1), (data.shape[0],)) \
        if np.size(given) in (1, data.shape[0]) else None
    if sigma is None:
        raise InputShapeError(f"give one noise σ or one per band ({data.shape[0]}) for {name}, got {np.size(given)}")
    if not np.isfinite(sigma).all() or (sigma < 0).any():
        raise InvalidInputValueError(f"noise σ of {name} must be finite and ≥ 0, got {np.asarray(given).tolist()}")
    return sigma.copy()


def build_problem(lr, guide, sensor_model: SensorModel, sigma: dict | None = None, *,
                  geometry: Geometry | str = Geometry.AREA, cond: float = DEFAULT_COND, lr_weight: float = 1.0,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  scales: tuple[float, float] | None = None, names: tuple[str, str] = PAIR_NAMES
                  ) -> tuple[FusionProblem, dict]:
    """The fusion problem in a normalised scale (lr ÷ its max, guide − offset ÷ its max, unless `scales` gives
    (lr scale, guide scale), e.g. one pair for every window of a scene), and σ used (data units) by observation name.
    `sigma` gives σ (one, or one per band, data units) by observation name; a name left out is estimated.

    The observations are [guide, lr], so the guide's channels come first in the network input (the guide stream);
    `names` (lr, guide) name them, e.g. ('hs', 'ms') or ('ms', 'pan') (see `PairCase`).
    """
    lr = _as_image("the low-resolution image", lr)
    guide = _as_image("the guide", guide, allow_2d=True)
    sensor_model = sensor_model.validated(lr.shape[0], guide.shape[0])
    _check_sizes(lr, guide, sensor_model.ratio)
    guide = guide - sensor_model.offset[:, None, None]
    if scales is None:
        lr_scale, guide_scale = float(np.abs(lr).max()), float(np.abs(guide).max())
    else:
        lr_scale, guide_scale = float(scales[0]), float(scales[1])
    if lr_scale <= 0 or guide_scale <= 0:
        raise InvalidInputValueError("an input is zero everywhere (after the guide's offset): is this area nodata?")
    lr_name, guide_name = names
    sigma = sigma or {}
    unknown = set(sigma) - set(names)
    if unknown:
        raise InvalidInputValueError(f"noise σ given for {sorted(unknown)}, but this pair's observations are "
                                     f"{list(names)}")
    sig_lr = _noise("the low-resolution image", sigma.get(lr_name), lr)
    sig_guide = _noise("the guide", sigma.get(guide_name), guide)

    def tensor(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    response = SpectralResponse(tensor(sensor_model.response * lr_scale / guide_scale))
    blur = BlurDecimate(sensor_model.psf_sigma.tolist(), sensor_model.ratio, guide.shape[1:], geometry, cond, device,
                        dtype,
                        shifts=sensor_model.shifts)
    bands = list(range(lr.shape[0]))
    observations = [
        Observation(guide_name, tensor(guide / guide_scale), response, tensor(sig_guide / guide_scale), bands,
                    back_project=False),
        Observation(lr_name, tensor(lr / lr_scale), blur, tensor(sig_lr / lr_scale), bands, back_project=True,
                    weight=lr_weight),
    ]
    problem = FusionProblem(observations, out_channels=lr.shape[0], hr_shape=guide.shape[1:],
                            guide_channels=guide.shape[0], scale=torch.tensor(lr_scale), **PAIR_RECIPE,
                            registration={lr_name: sensor_model.registration} if sensor_model.registration else {})
    return problem, {guide_name: sig_guide.tolist(), lr_name: sig_lr.tolist()}


def first_estimate(lr, guide, sensor_model: SensorModel, sigma: dict | None = None, *,
                   geometry: Geometry | str = Geometry.AREA, cond: float = DEFAULT_COND, tune: bool = True,
                   smoothing: bool = False, names: tuple[str, str] = PAIR_NAMES) -> np.ndarray:
    """The linear first estimate the network starts from (regression detail injection from the guide, then a
    SURE-tuned correction by the lr observation), (L, H, W) in lr units, on the CPU. `smoothing`: then the guided
    smoothing (see `guided_smoothing`; the solver does not apply it to the pairs). `sigma`: as `build_problem`."""
    from .injection import DetailInjectionBase

    problem, _ = build_problem(lr, guide, sensor_model, sigma, geometry=geometry, cond=cond, names=names)
    with torch.no_grad():
        estimate = DetailInjectionBase(problem, tune=tune)(problem.network_input())[0]
        if smoothing:
            estimate = smooth_alone(problem, estimate)
    return estimate.double().numpy() * float(problem.scale)


def fuse(lr, guide, sensor_model: SensorModel, sigma: dict | None = None, *,
         options: SolverOptions | None = None, geometry: Geometry | str = Geometry.AREA, cond: float = DEFAULT_COND,
         lr_weight: float = 1.0, callback: ProgressCallback | None = None) -> tuple[np.ndarray, RunRecord]:
    """Fuse with a given sensor model: x̂ (L, H, W) in lr units, and the run record (record.sigma by observation
    name, 'lr' and 'guide', data units). `sigma`: σ by those names, as `build_problem`; a name left out is
    estimated."""
    from .runner import fuse_window

    case = PairCase(sensor_model, dict(sigma or {}), geometry, cond, lr_weight)
    fused, record, _ = fuse_window(case, (lr, guide, None), options, callback)
    return fused, record


def mean_sensor_model(sensor_models: list[SensorModel]) -> SensorModel:
    """One sensor model for a scene from sensor models fitted on several of its windows: the mean PSF σ, response and
    offset (all sensor models must have the same ratio and band counts)."""
    if not sensor_models:
        raise InvalidInputValueError("no sensor model to average: the scene gave no window with valid data")
    ratios = {int(m.ratio) for m in sensor_models}
    if len(ratios) != 1:
        raise InputShapeError(f"sensor models of one scene must share the resolution ratio, got {sorted(ratios)}")
    offsets = [np.zeros(np.shape(m.response)[0]) if m.offset is None else np.asarray(m.offset, dtype=np.float64)
               for m in sensor_models]
    registration = median_record([m.registration for m in sensor_models], "windows") \
        if all(m.registration for m in sensor_models) else {}
    shifts = np.asarray(registration["shifts"]) if registration.get("trusted") else None
    return SensorModel(ratios.pop(),
                       np.mean([np.asarray(m.psf_sigma, dtype=np.float64) for m in sensor_models], axis=0),
                             np.mean([np.asarray(m.response, dtype=np.float64) for m in sensor_models], axis=0),
                             np.mean(offsets, axis=0), shifts, registration)


@dataclass
class PairCase:
    """A pair fusion case (`fusion_case.FusionCase`): the L bands of the coarse observation brought to the grid of
    a guide that sees them through a spectral response. This base fuses with a given sensor model; `hsms.HsMsCase`
    and `pansharpening.PanMsCase` fit theirs (`fit_sensor_model`) and name their observations.

    Window data: (lr (L, rows/ratio, cols/ratio), guide (G, rows, cols), valid (rows/ratio, cols/ratio) bool or
    None: the lr pixels the sensor-model fits may use, `regression_mask`). `sigma` (data units, one or one per band,
    by observation name) is used instead of the estimates where given.
    """

    sensor_model: SensorModel | None = None
    sigma: dict = field(default_factory=dict)
    geometry: Geometry | str = Geometry.AREA
    cond: float = DEFAULT_COND
    lr_weight: float = 1.0
    ratio: int | None = None            # the pair's size ratio before the sensor model is fitted (None: the model's)

    names = PAIR_NAMES                  # (lr, guide) observation names

    @property
    def observations(self) -> tuple[str, str]:
        lr_name, guide_name = self.names
        return guide_name, lr_name      # the problem's order: the guide steers the network

    @property
    def step(self) -> int:
        if self.sensor_model is None and self.ratio is None:
            raise InvalidInputValueError("a pair case needs its ratio (or a sensor model) before windows are planned")
        return int(self.sensor_model.ratio if self.sensor_model is not None else self.ratio)

    def recipe(self) -> dict:
        return dict(PAIR_RECIPE)

    # ------------------------------------------------------------------ the sensor model
    def fit_sensor_model(self, lr: np.ndarray, guide: np.ndarray, valid) -> SensorModel:
        raise InvalidInputValueError("this pair case has no sensor model to fit: give one")

    def with_sensor_model(self, sensor_model: SensorModel) -> PairCase:
        return replace(self, sensor_model=sensor_model)

    def window_fitted(self, data) -> PairCase:
        return self if self.sensor_model is not None else self.with_sensor_model(self.fit_sensor_model(*data))

    def fitted(self, samples: list) -> PairCase:
        """One sensor model for a scene: the mean of those fitted on a few of its windows (`mean_sensor_model`)."""
        if self.sensor_model is not None:
            return self
        return self.with_sensor_model(mean_sensor_model([self.fit_sensor_model(*sample) for sample in samples]))

    # ------------------------------------------------------------------ window → problem → output
    def inputs(self, data) -> tuple:
        """(lr, guide, ...) as the problem sees them (the rest of the window data, e.g. the valid mask, as it is)."""
        return _as_image("the low-resolution image", data[0]), _as_image("the guide", data[1], allow_2d=True), \
            *data[2:]

    def lr_noise(self, lr: np.ndarray, guide: np.ndarray):
        return self.sigma.get(self.names[0])

    def guide_noise(self, guide: np.ndarray):
        return self.sigma.get(self.names[1])

    def noise(self, data) -> dict:
        return self.problem(data)[1]

    def scale(self, data) -> tuple[float, float]:
        lr, guide = data[:2]
        model = self.sensor_model
        offset = np.zeros(1) if model.offset is None else np.asarray(model.offset, dtype=np.float64)
        return float(np.abs(lr).max()), float(np.abs(guide - offset.reshape(-1, 1, 1)).max())

    def problem(self, data, device="cpu", noise: dict | None = None, scale=None) -> tuple[FusionProblem, dict]:
        lr, guide = data[:2]
        lr_name, guide_name = self.names
        sigma = {lr_name: self.lr_noise(lr, guide), guide_name: self.guide_noise(guide)} if noise is None \
            else {lr_name: noise[lr_name], guide_name: noise[guide_name]}
        return build_problem(lr, guide, self.sensor_model, sigma, geometry=self.geometry,
                             cond=self.cond, lr_weight=self.lr_weight, device=device, scales=scale, names=self.names)

    def output(self, x_hat: torch.Tensor, problem: FusionProblem) -> np.ndarray:
        return x_hat.double().cpu().numpy() * float(problem.scale)
