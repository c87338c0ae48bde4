"""Per-band noise level estimation from the data (wavelet MAD on the finest diagonal sub-band).

Donoho's estimator σ = median(|HH|)/0.6745 over a whole band takes fine texture for noise on real scenes
(measured on a real Sentinel-2 crop: σ several times too high, which makes SURE over-smooth). So the
diagonal coefficients are cut into blocks, σ is estimated per block by the MAD, and the estimate is a low
quantile of the block estimates, rescaled by the same quantile measured on pure Gaussian noise: the
smoothest parts of the scene show the noise alone. Small images fall back to the whole-band MAD.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import ImageTooSmallError

_MAD_TO_SIGMA = 0.6744897501960817  # Φ⁻¹(3/4): median(|N(0,1)|)
BLOCK = 8             # HH coefficients per block side (a 16×16-pixel window of the band)
QUANTILE = 0.1        # of the block estimates
MIN_BLOCKS = 16       # fewer usable blocks: use the whole band
MIN_SIDE = 8          # the smallest band (pixels per side) a noise estimate accepts (cross_band_noise: the same)
_CALIBRATION: dict[tuple[int, float], float] = {}


def _dwt_diagonal(x: torch.Tensor) -> torch.Tensor:
    from pytorch_wavelets import DWTForward  # imported here: only needed when σ is not given

    dwt = DWTForward(J=1, wave="db2", mode="symmetric").to(torch.float64)
    _, highs = dwt(x[None])
    return highs[0][0, :, 2]  # (bands, h, w): the sub-bands are ordered LH, HL, HH


def _block_sigmas(diagonal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(MAD σ per block, usable mask) for blocks of BLOCK×BLOCK coefficients; (bands, blocks) each."""
    bands, h, w = diagonal.shape
    nh, nw = h // BLOCK, w // BLOCK
    blocks = diagonal[:, :nh * BLOCK, :nw * BLOCK].reshape(bands, nh, BLOCK, nw, BLOCK)
    blocks = blocks.permute(0, 1, 3, 2, 4).reshape(bands, nh * nw, BLOCK * BLOCK).abs()
    usable = (blocks > 0).float().mean(dim=-1) >= 0.9  # nodata or saturated blocks are flat: exact zeros
    return blocks.median(dim=-1).values / _MAD_TO_SIGMA, usable


def _calibration() -> float:
    """Ratio quantile(block σ)/σ on pure unit Gaussian noise, measured once with a fixed seed."""
    key = (BLOCK, QUANTILE)
    if key not in _CALIBRATION:
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(8, 512, 512, generator=gen, dtype=torch.float64)
        sig, _ = _block_sigmas(_dwt_diagonal(noise))
        _CALIBRATION[key] = float(torch.quantile(sig, QUANTILE))
    return _CALIBRATION[key]


def estimate_noise_sigma(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Noise std per band of `image` (bands, rows, cols), in the image's own units."""
    x = torch.as_tensor(np.asarray(image), dtype=torch.float64)
    if x.ndim == 2:
        x = x[None]
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ImageTooSmallError(f"noise estimation needs at least {MIN_SIDE}×{MIN_SIDE} pixels per band, got "
                                 f"{tuple(x.shape[-2:])}")
    diagonal = _dwt_diagonal(x)
    block_sigma, usable = _block_sigmas(diagonal)
    sigmas = []
    for band in range(x.shape[0]):  # a handful of bands: the loop is over bands, not pixels
        good = block_sigma[band][usable[band]]
        if good.numel() >= MIN_BLOCKS:
            sigmas.append(float(torch.quantile(good, QUANTILE)) / _calibration())
            continue
        coeffs = diagonal[band].abs().flatten()
        nonzero = coeffs[coeffs > 0]
        sigmas.append(float(nonzero.median()) / _MAD_TO_SIGMA if nonzero.numel() else 0.0)
    return np.asarray(sigmas)
