"""Sentinel-2 sensor model: PSF σ against the MTF table of docs/method.md §1.3, groups and ordering."""
import math

import numpy as np
import pytest

from sure_core import sentinel2 as s2
from sure_core.psf import gaussian_taps, sigma_from_mtf

# σ (10 m pixels) from the method digest's table
EXPECTED_SIGMA = {"B1": 2.8831, "B5": 0.8856, "B6": 0.9351, "B7": 0.9351, "B8A": 0.9480, "B9": 3.1348,
                  "B11": 1.1078, "B12": 1.0915, "B2": 0.5225, "B3": 0.5079, "B4": 0.5378, "B8": 0.5225}


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGMA))
def test_psf_sigma_matches_table(name):
    assert s2.BAND_BY_NAME[name].psf_sigma == pytest.approx(EXPECTED_SIGMA[name], abs=5e-5)


@pytest.mark.parametrize("band", s2.BANDS, ids=lambda b: b.name)
def test_sampled_psf_has_the_tabulated_mtf_at_nyquist(band):
    """The sampled 15-tap kernel's frequency response at the LR Nyquist frequency ≈ the band's MTF."""
    ratio = max(band.ratio, 2)
    kernel, first = gaussian_taps(band.psf_sigma_at(ratio))
    taps = np.arange(kernel.shape[0]) + first
    profile = kernel.sum(axis=1)
    response = abs((profile * np.exp(-2j * math.pi * taps / (2 * ratio))).sum())
    # truncation and sampling move it a little, more for the wide 60 m kernels
    assert response == pytest.approx(band.mtf_at_nyquist, abs=0.02)


def test_groups_cover_the_twelve_bands_once():
    assert sorted(s2.GROUP_10M + s2.GROUP_20M + s2.GROUP_60M) == sorted(s2.SPECTRAL_ORDER)
    assert len(s2.SPECTRAL_ORDER) == 12 and "B10" not in s2.SPECTRAL_ORDER
    grouped = s2.GROUP_10M + s2.GROUP_20M + s2.GROUP_60M
    assert [grouped[i] for i in s2.grouped_to_spectral(grouped)] == list(s2.SPECTRAL_ORDER)


def test_sigma_formula_inverts_the_gaussian_mtf():
    sigma = sigma_from_mtf(0.3, 4)
    assert math.exp(-2 * math.pi ** 2 * sigma ** 2 / 64) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        sigma_from_mtf(1.2, 2)
