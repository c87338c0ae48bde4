"""Noise σ of each band of a multi-band image, from what the other bands (and a guide) cannot predict.

The single-band wavelet estimator (`noise.estimate_noise_sigma`) takes fine texture for noise; on the small,
textured MS images of pansharpening (an 80×80 WorldView-2 crop) it returned 5-45 DN where the data hold about
2 DN. Texture is shared between bands, noise is not: so the finest Haar diagonal coefficients of each band are
regressed on those of its neighbouring bands and of the guide brought to the same grid (HySime's idea, Bioucas-Dias
and Nascimento 2008, applied to the finest scale), and σ is a robust spread of what is left: a low quantile of
block-wise MADs, rescaled by the same statistic on pure Gaussian noise (as in `noise`), or the whole-band MAD
when there are too few blocks. The residual still holds any detail the other bands do not share, so the result
remains an upper bound of the noise, a much tighter one on real scenes.
"""
from __future__ import annotations

import numpy as np

from .errors import ImageTooSmallError, InputShapeError

_MAD_TO_SIGMA = 0.6744897501960817
BLOCK = 8              # Haar coefficients per block side (a 16×16-pixel window)
QUANTILE = 0.1
MIN_BLOCKS = 16
NEIGHBOURS = 4         # bands on each side used as predictors (all bands when there are few)
_CALIBRATION: dict[tuple[int, float], float] = {}


def haar_diagonal(image: np.ndarray) -> np.ndarray:
    """Finest orthonormal Haar diagonal (HH) coefficients of every band: (bands, rows//2, cols//2).

    For white noise of std σ the coefficients have std σ too."""
    b, h, w = image.shape
    x = image[:, :h // 2 * 2, :w // 2 * 2]
    return (x[:, ::2, ::2] - x[:, 1::2, ::2] - x[:, ::2, 1::2] + x[:, 1::2, 1::2]) / 2.0


def _blocks(coefficients: np.ndarray) -> np.ndarray:
    """(blocks, BLOCK²): the BLOCK×BLOCK blocks of a coefficient map (a partial last row or column is dropped)."""
    h, w = coefficients.shape
    nh, nw = h // BLOCK, w // BLOCK
    blocks = coefficients[:nh * BLOCK, :nw * BLOCK].reshape(nh, BLOCK, nw, BLOCK).transpose(0, 2, 1, 3)
    return blocks.reshape(nh * nw, BLOCK * BLOCK)


def _block_mad_sigmas(coefficients: np.ndarray) -> np.ndarray:
    return np.median(np.abs(_blocks(coefficients)), axis=1) / _MAD_TO_SIGMA


def _calibration() -> float:
    """quantile(block MAD σ)/σ on unit Gaussian noise, measured once with a fixed seed."""
    key = (BLOCK, QUANTILE)
    if key not in _CALIBRATION:
        noise = np.random.default_rng(0).standard_normal((512, 512))
        _CALIBRATION[key] = float(np.quantile(_block_mad_sigmas(noise), QUANTILE))
    return _CALIBRATION[key]


def _robust_sigma(residual: np.ndarray, flat: np.ndarray) -> float:
    """σ of a band's residual coefficients; `flat` marks where the band's own coefficients are exactly zero (an
    area filled with one value, e.g. nodata), which would pull the low quantile to 0 and are left out."""
    per_block = _block_mad_sigmas(residual)[_blocks(flat).mean(axis=1) <= 0.1]
    if per_block.size >= MIN_BLOCKS:
        return float(np.quantile(per_block, QUANTILE)) / _calibration()
    kept = residual[~flat]
    return float(np.median(np.abs(kept))) / _MAD_TO_SIGMA if kept.size else 0.0


def cross_band_noise_sigma(image, guides=None) -> np.ndarray:
    """Noise std per band of `image` (bands, rows, cols), in its units; `guides` (k, rows, cols) are extra
    predictors on the same grid (e.g. the PAN degraded to the MS grid), whose own noise is not estimated."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputShapeError(f"expected (bands, rows, cols), got shape {x.shape}")
    if min(x.shape[1:]) < 8:
        raise ImageTooSmallError(f"noise estimation needs at least 8×8 pixels per band, got {x.shape[1:]}")
    if guides is None:
        extra = np.zeros((0, *x.shape[1:]))
    else:
        extra = np.asarray(guides, dtype=np.float64).reshape(-1, *x.shape[1:])
    hh = haar_diagonal(np.concatenate([x, extra]))
    flat = hh.reshape(hh.shape[0], -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    bands, n = x.shape[0], flat.shape[1]
    sigmas = []
    for b in range(bands):  # one small least-squares problem per band
        near = [k for k in range(max(0, b - NEIGHBOURS), min(bands, b + NEIGHBOURS + 1)) if k != b]
        predictors = flat[near + list(range(bands, flat.shape[0]))]
        if predictors.shape[0] and n > 4 * predictors.shape[0]:
            coef = np.linalg.lstsq(predictors.T, flat[b], rcond=None)[0]
            residual = (flat[b] - coef @ predictors) * np.sqrt(n / (n - predictors.shape[0]))  # lost degrees of freedom
        else:
            residual = flat[b]
        sigmas.append(_robust_sigma(residual.reshape(hh.shape[1:]), hh[b] == 0))
    return np.asarray(sigmas)


def bounded_noise_sigma(image, guides=None) -> np.ndarray:
    """Per band, the smaller of the wavelet estimate (`noise.estimate_noise_sigma`) and the cross-band one: both are
    upper bounds of the noise on real scenes (texture passes for noise), each the tighter where the other is loose
    (the wavelet one on bands that nothing else predicts, like B8 among the 10 m bands)."""
    from .noise import estimate_noise_sigma

    return np.minimum(estimate_noise_sigma(image), cross_band_noise_sigma(image, guides))
