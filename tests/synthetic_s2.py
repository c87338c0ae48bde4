"""The synthetic Sentinel-2 scene of the tests, with its truth: pure numpy, for core and plugin tests alike.

One brightness field of 60 m blocks times a vegetation-like spectrum, plus a little band-specific texture at 10 m;
the coarse bands are block means of the truth (a box PSF, sharper than the S2 sensor model's), rounded to DN.
"""
from __future__ import annotations

import numpy as np

SPECTRAL_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
NAMES = {"10m": ("B2", "B3", "B4", "B8"), "20m": ("B5", "B6", "B7", "B8A", "B11", "B12"), "60m": ("B1", "B9")}
RATIOS = {"10m": 1, "20m": 2, "60m": 6}


def truth(size: int = 60, seed: int = 0) -> np.ndarray:
    """(12, size, size) the scene at 10 m in DN, bands in spectral order (`SPECTRAL_ORDER`)."""
    rng = np.random.default_rng(seed)
    # bands correlated as in real scenes: one brightness field times a vegetation-like spectrum, plus a little
    # band-specific texture
    spectrum = np.array([0.9, 0.8, 0.9, 0.7, 1.0, 1.6, 1.9, 2.0, 2.1, 1.2, 1.5, 1.0])
    field = np.kron(rng.random((size // 6, size // 6)), np.ones((6, 6)))
    hr = spectrum[:, None, None] * (0.4 + field)[None] + 0.03 * rng.random((12, size, size))
    return 1000.0 * hr


def observe(hr: np.ndarray) -> dict[str, np.ndarray]:
    """The 10/20/60 m groups (uint16 DN, bands in `NAMES` order) of a truth from `truth`: block means."""
    size = hr.shape[-1]
    out = {}
    for key, ratio in RATIOS.items():
        bands = hr[[SPECTRAL_ORDER.index(n) for n in NAMES[key]]]
        if ratio > 1:
            bands = bands.reshape(bands.shape[0], size // ratio, ratio, size // ratio, ratio).mean(axis=(2, 4))
        out[key] = np.round(bands).astype(np.uint16)
    return out
