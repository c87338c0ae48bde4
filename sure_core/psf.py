"""Point-spread functions: Gaussian PSFs from MTF values, sampled on the HR grid.

Two pixel geometries are supported (see `Geometry`):

* ``zero_phase`` — the paper's convention: low-resolution pixel j is centred on high-resolution pixel r·j.
  Use it to reproduce the paper's simulations.
* ``area`` — what georeferenced rasters mean: low-resolution pixel j covers the r×r block of HR pixels
  inside its footprint, so its centre is at HR coordinate r·j + (r−1)/2. Use it for real data.

The geometry only moves the sampled Gaussian by a sub-pixel offset; the operators stay circulant.
"""
from __future__ import annotations

import math
from enum import Enum

import numpy as np

#: Half-width of the PSF support in HR pixels (the paper uses 15×15 kernels, i.e. 7 on each side).
PSF_HALF_WIDTH = 7


class Geometry(str, Enum):
    ZERO_PHASE = "zero_phase"
    AREA = "area"

    @classmethod
    def parse(cls, value: Geometry | str) -> Geometry:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown pixel geometry {value!r}: use 'zero_phase' (paper) or 'area' (georeferenced)") from None


def sigma_from_mtf(mtf_at_nyquist: float, ratio: int) -> float:
    """Std (HR pixels) of the Gaussian whose MTF equals `mtf_at_nyquist` at the LR Nyquist frequency 1/(2r).

    A Gaussian of std σ has MTF(f) = exp(−2π²σ²f²); solving MTF(1/(2r)) = m gives σ = r·sqrt(−2 ln m / π²).
    """
    if not 0.0 < mtf_at_nyquist < 1.0:
        raise ValueError(f"MTF at Nyquist must lie in (0, 1), got {mtf_at_nyquist}")
    return ratio * math.sqrt(-2.0 * math.log(mtf_at_nyquist) / math.pi ** 2)


def geometry_offset(geometry: Geometry | str, ratio: int) -> float:
    """HR-pixel offset of the LR pixel centre from HR pixel r·j."""
    return (ratio - 1) / 2.0 if Geometry.parse(geometry) is Geometry.AREA else 0.0


def gaussian_taps(sigma: float, offset: float = 0.0, half_width: int = PSF_HALF_WIDTH) -> tuple[np.ndarray, int]:
    """A normalised, separable 2-D Gaussian sampled at integer taps around `offset`.

    Returns (kernel, first_tap): kernel[a, b] weighs HR pixel (r·i + first_tap + a, r·j + first_tap + b) in
    the LR sample (i, j). Values below eps·max are zeroed (MATLAB ``fspecial`` style) before normalising.
    """
    if sigma <= 0:
        raise ValueError(f"PSF sigma must be positive, got {sigma}")
    first = int(math.floor(offset - half_width))
    last = int(math.ceil(offset + half_width))
    taps = np.arange(first, last + 1, dtype=np.float64) - offset
    g1 = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel = np.outer(g1, g1)
    kernel[kernel < np.finfo(np.float64).eps * kernel.max()] = 0.0
    return kernel / kernel.sum(), first


def shifted_gaussian_taps(sigma: float, offset_rows: float, offset_cols: float, half_width: int = PSF_HALF_WIDTH
                          ) -> tuple[np.ndarray, int, int]:
    """`gaussian_taps` centred at a different sub-pixel offset along each axis (a band registered with a shift):
    (kernel, first row tap, first column tap)."""
    rows, first_row = gaussian_taps(sigma, offset_rows, half_width)
    cols, first_col = gaussian_taps(sigma, offset_cols, half_width)
    # each call returns the outer product of one 1-D Gaussian with itself, normalised: its row sums are the 1-D taps
    kernel = np.outer(rows.sum(axis=1), cols.sum(axis=0))
    return kernel / kernel.sum(), first_row, first_col


def psf_support(offset: float = 0.0, half_width: int = PSF_HALF_WIDTH) -> int:
    """Number of taps along one axis of `gaussian_taps` for this offset."""
    return int(math.ceil(offset + half_width)) - int(math.floor(offset - half_width)) + 1
