"""False-colour quick-looks (B12-B8A-B5 by default): numpy only, encoded to PNG by raster_writer."""
from __future__ import annotations

import numpy as np

FALSE_COLOUR = ("B12", "B8A", "B5")
#: the centre wavelengths (nm) that red, green and blue stand for in a natural-colour view
NATURAL_COLOUR_NM = (650.0, 550.0, 470.0)


def natural_colour_bands(wavelengths: list[float | None]) -> list[int] | None:
    """0-based (red, green, blue) band indices: for each of NATURAL_COLOUR_NM the band with the nearest centre
    wavelength, when every band's centre is known and they span the visible (one ≤ 520 nm, one ≥ 620 nm); else
    None."""
    if not wavelengths or any(w is None for w in wavelengths) or min(wavelengths) > 520 or max(wavelengths) < 620:
        return None
    return [min(range(len(wavelengths)), key=lambda k: abs(wavelengths[k] - target)) for target in NATURAL_COLOUR_NM]


def stretch_limits(*images: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Per-channel (low, high) percentiles over all `images` together, so before/after share one stretch."""
    stacked = np.concatenate([im.reshape(im.shape[0], -1) for im in images], axis=1)
    limits = np.empty((stacked.shape[0], 2))
    for c, channel in enumerate(stacked):
        valid = channel[np.isfinite(channel)]
        limits[c] = np.percentile(valid, [low, high]) if valid.size else (0.0, 1.0)
        if limits[c, 1] <= limits[c, 0]:
            limits[c, 1] = limits[c, 0] + 1e-9
    return limits


def to_rgb8(image: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """(3, rows, cols) float → uint8 with a linear stretch; a pixel with NaN (nodata) in any channel is black."""
    scaled = (image - limits[:, 0, None, None]) / (limits[:, 1] - limits[:, 0])[:, None, None]
    scaled = np.clip(scaled, 0.0, 1.0)
    scaled[:, ~np.isfinite(image).all(axis=0)] = 0.0
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def before_after(before: np.ndarray, after: np.ndarray, gap: int = 6) -> np.ndarray:
    """Side by side, same stretch, white gap: (3, rows, 2·cols + gap) uint8."""
    limits = stretch_limits(before, after)
    left, right = to_rgb8(before, limits), to_rgb8(after, limits)
    spacer = np.full((3, left.shape[1], gap), 255, dtype=np.uint8)
    return np.concatenate([left, spacer, right], axis=2)


def overview_size(width: int, height: int, max_side: int = 480) -> tuple[int, int]:
    """(cols, rows) no larger than max_side, keeping the aspect; small images are enlarged to at least 240 px."""
    factor = max_side / max(width, height)
    if factor > 1:
        factor = max(1, int(240 // max(width, height)) or 1)
    return max(1, int(round(width * factor))), max(1, int(round(height * factor)))
