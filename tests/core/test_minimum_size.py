"""`s2_sharpening.minimum_size` is the real limit: an area of that side sharpens, one coarse step less does not.

The plugin states the smallest area to users from this function (docs/plugin.md, "Smallest area"), so it must
match what `sharpen` accepts, for each input set and σ choice.
"""
import numpy as np
import pytest

from sure_core import ImageTooSmallError, SolverOptions, s2_sharpening

FAST = SolverOptions(iterations=1, device="cpu", threads=1, width=4)


def _scene(side: int, with_60m: bool, seed: int = 0) -> tuple:
    """Smooth random bands on the 10/20/60 m grids (block means, so the grids agree)."""
    rng = np.random.default_rng(seed)
    hr = 1000.0 + 300.0 * np.kron(rng.random((12, side // 2, side // 2)), np.ones((2, 2))) \
        + 20.0 * rng.random((12, side, side))

    def down(bands, r):
        return bands.reshape(bands.shape[0], side // r, r, side // r, r).mean(axis=(2, 4))

    return hr[:4], down(hr[4:10], 2), (down(hr[10:], 6) if with_60m else None)


@pytest.mark.parametrize("with_60m,sigma_given,expected", [(False, False, 16), (False, True, 16),
                                                           (True, False, 48), (True, True, 18)])
def test_minimum_size_is_the_limit_of_sharpen(with_60m, sigma_given, expected):
    side = s2_sharpening.minimum_size(with_60m, sigma_given)
    assert side == expected
    step = 6 if with_60m else 2
    sigma = {"10m": [5.0] * 4, "20m": [5.0] * 6, "60m": [5.0] * 2} if sigma_given else None
    y10, y20, y60 = _scene(side, with_60m)
    fused, _ = s2_sharpening.sharpen(y10, y20, y60, sigma=sigma, options=FAST)
    assert np.isfinite(fused).all()
    y10, y20, y60 = _scene(side - step, with_60m)
    with pytest.raises(ImageTooSmallError):
        s2_sharpening.sharpen(y10, y20, y60, sigma=sigma, options=FAST)
