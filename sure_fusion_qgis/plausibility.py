"""Settings and results checked against the data: a noise σ the data cannot hold is refused before training,
and a result that is not finite where the inputs were valid is refused before it is written.

Without these checks NOISE_SIGMA=1e30 gave 12 bands of NaN with exit code 0, and σ=50 on reflectance data a
negative SURE risk and a silently over-smoothed result (QA 2026-12, #56 and #57).
"""
from __future__ import annotations

import math

import numpy as np

from .io_errors import InvalidResultError

#: the overview a band's spread is measured on: enough pixels for a standard deviation, cheap on a full tile
SPREAD_OVERVIEW_PX = 256


def band_spread(names: list[str], values: np.ndarray) -> dict[str, tuple[float, int]]:
    """{name: (standard deviation, number of finite pixels)} per band of (bands, rows, cols); NaN marks nodata."""
    spread = {}
    for name, band in zip(names, values.reshape(values.shape[0], -1)):
        finite = band[np.isfinite(band)]
        spread[name] = (float(finite.std()) if finite.size else math.nan, int(finite.size))
    return spread


def check_noise_sigma(given: dict[str, float], spread: dict[str, tuple[float, int]], units: str,
                      parameter: str = "NOISE_SIGMA") -> None:
    """Refuse a σ above a band's own spread: the noise of a band cannot exceed how much the band varies.

    `given` maps band names to σ, `spread` to (standard deviation, pixels) over the processed area, both in `units`.
    The sample standard deviation of pure noise over n pixels scatters by about σ/√(2n), so σ may exceed the
    measured spread by three of those before it counts as impossible: a flat area whose variation is all noise
    (water, with σ given right) passes.
    """
    for name, sigma in given.items():
        if name not in spread or sigma <= 0:
            continue
        std, count = spread[name]
        if count < 2 or not math.isfinite(std):
            continue
        if sigma > std * (1.0 + 3.0 / math.sqrt(2.0 * count)):
            raise InvalidResultError(
                f"{parameter} gives σ = {sigma:g} for {name}, but {name} itself varies by only {std:.4g} (standard "
                f"deviation over {count} pixels of the processed area, {units}): noise cannot be larger than the "
                f"band's own spread, and training with it would give a meaningless (or NaN) result. Give σ in the "
                f"data's units (reflectance 0–1 or DN?), or leave {parameter} empty to estimate it")


def check_finite(values: np.ndarray, where: str) -> None:
    """Refuse a result with NaN or infinite values (nodata is already the finite −9999 there)."""
    bad = ~np.isfinite(values)
    if bad.any():
        pixels = int(bad.any(axis=0).sum())
        raise InvalidResultError(
            f"the result is not finite (NaN or infinite) at {pixels} of {bad[0].size} pixels of {where} where the "
            f"inputs are valid: the training diverged. Nothing was written. Check NOISE_SIGMA (a σ far above the "
            f"data's noise), LEARNING_RATE and the inputs' values, or leave them at their defaults")
