"""Per-band noise level estimation from the data (Donoho's wavelet MAD on the finest diagonal sub-band)."""
from __future__ import annotations

import numpy as np
import torch

from .errors import ImageTooSmallError

_MAD_TO_SIGMA = 0.6744897501960817  # Φ⁻¹(3/4): median(|N(0,1)|)


def estimate_noise_sigma(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Noise std per band of `image` (bands, rows, cols), in the image's own units.

    Uses a single-level db2 DWT (pytorch_wavelets, symmetric extension) and σ = median(|HH|)/0.6745 over
    the diagonal detail coefficients, ignoring exact zeros (flat, saturated or nodata areas).
    """
    from pytorch_wavelets import DWTForward  # imported here: only needed when σ is not given

    x = torch.as_tensor(np.asarray(image), dtype=torch.float64)
    if x.ndim == 2:
        x = x[None]
    if min(x.shape[-2:]) < 8:
        raise ImageTooSmallError(f"noise estimation needs at least 8×8 pixels per band, got {tuple(x.shape[-2:])}")
    dwt = DWTForward(J=1, wave="db2", mode="symmetric").to(torch.float64)
    _, highs = dwt(x[None])
    diagonal = highs[0][0, :, 2].abs().flatten(1)  # (bands, n): sub-bands are ordered LH, HL, HH
    sigmas = []
    for coeffs in diagonal:  # a handful of bands: the loop is over bands, not pixels
        nonzero = coeffs[coeffs > 0]
        sigmas.append(float(nonzero.median()) / _MAD_TO_SIGMA if nonzero.numel() else 0.0)
    return np.asarray(sigmas)
