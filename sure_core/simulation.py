"""Simulation protocols with ground truth: the paper's APEX Sentinel-2 protocol (docs/method.md §5.1)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import sentinel2 as s2
from .operators import BlurDecimate
from .psf import Geometry


@dataclass
class SimulatedS2:
    truth: np.ndarray          # (12, H, W) spectral order, normalised by its global maximum
    y10: np.ndarray            # (4, H, W)      B2, B3, B4, B8
    y20: np.ndarray            # (6, H/2, W/2)  B5, B6, B7, B8A, B11, B12
    y60: np.ndarray            # (2, H/6, W/6)  B1, B9
    sigma: dict                # true noise std per group ('10m', '20m', '60m'), same scale


def simulate_s2(truth: np.ndarray, snr_db: float = 40.0, seed: int = 0,
                geometry: Geometry | str = Geometry.ZERO_PHASE, shifts: dict | None = None) -> SimulatedS2:
    """Degrade a 12-band 10 m image (spectral order) as Sentinel-2 would see it.

    The image is divided by its global maximum; each 20/60 m band is blurred with its MTF-matched Gaussian
    and decimated by 2 or 6; white noise is added to all 12 bands at `snr_db`, per band
    σ_i = sqrt(mean(y_i²) / 10^(SNR/10)). Seeded: the same seed gives the same noise. `shifts` ({'20m', '60m'}:
    one (rows, cols) or one per band, in the group's own pixels) misregisters the coarse bands (see
    `operators.kernel_spectrum`).
    """
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 3 or truth.shape[0] != 12:
        raise ValueError(f"truth must be (12, rows, cols) in Sentinel-2 spectral order, got {truth.shape}")
    truth = truth / truth.max()
    rng = np.random.default_rng(seed)
    hr = truth.shape[1:]
    out, sigma = {}, {}
    for key, names, ratio in (("10m", s2.GROUP_10M, 1), ("20m", s2.GROUP_20M, 2), ("60m", s2.GROUP_60M, 6)):
        x = truth[[s2.SPECTRAL_ORDER.index(n) for n in names]]
        if ratio > 1:
            op = BlurDecimate(s2.group_sigmas(names), ratio, hr, geometry, dtype=torch.float64,
                              shifts=(shifts or {}).get(key))
            x = op.A(torch.from_numpy(x)).numpy()
        sig = np.sqrt((x ** 2).mean(axis=(1, 2)) / 10 ** (snr_db / 10))
        out[key] = x + sig[:, None, None] * rng.standard_normal(x.shape)
        sigma[key] = sig
    return SimulatedS2(truth, out["10m"], out["20m"], out["60m"], sigma)


def load_apex(path) -> np.ndarray:
    """The APEX scene of the paper (`Xm_im`, 198×198×12) as a (12, 198, 198) array."""
    from scipy.io import loadmat

    return np.ascontiguousarray(loadmat(str(path))["Xm_im"].transpose(2, 0, 1).astype(np.float64))
