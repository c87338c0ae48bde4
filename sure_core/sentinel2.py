"""Sentinel-2 MSI sensor model: band table, resolution groups and PSF σ from the MTF at Nyquist."""
from __future__ import annotations

from dataclasses import dataclass

from .psf import sigma_from_mtf


@dataclass(frozen=True)
class S2Band:
    name: str
    centre_nm: float
    gsd_m: int
    mtf_at_nyquist: float

    @property
    def ratio(self) -> int:
        """Resolution ratio to the 10 m grid."""
        return self.gsd_m // 10

    @property
    def psf_sigma(self) -> float:
        """Gaussian PSF std in 10 m pixels for the band's own ratio (docs/method.md §1.3)."""
        return sigma_from_mtf(self.mtf_at_nyquist, self.ratio)

    def psf_sigma_at(self, ratio: int) -> float:
        """PSF std (in pixels of the finer grid) when this band is degraded by `ratio` (Wald protocol)."""
        return sigma_from_mtf(self.mtf_at_nyquist, ratio)


#: The 12 bands used for sharpening (B10, the cirrus band, is not), in spectral order.
BANDS: tuple[S2Band, ...] = (
    S2Band("B1", 442.7, 60, 0.32),
    S2Band("B2", 492.4, 10, 0.26),
    S2Band("B3", 559.8, 10, 0.28),
    S2Band("B4", 664.6, 10, 0.24),
    S2Band("B5", 704.1, 20, 0.38),
    S2Band("B6", 740.5, 20, 0.34),
    S2Band("B7", 782.8, 20, 0.34),
    S2Band("B8", 832.8, 10, 0.26),
    S2Band("B8A", 864.7, 20, 0.33),
    S2Band("B9", 945.1, 60, 0.26),
    S2Band("B11", 1613.7, 20, 0.22),
    S2Band("B12", 2202.4, 20, 0.23),
)
BAND_BY_NAME = {b.name: b for b in BANDS}
SPECTRAL_ORDER = tuple(b.name for b in BANDS)

#: Bands of each resolution group, in the order the inputs arrive (and the network sees them).
GROUP_10M = ("B2", "B3", "B4", "B8")
GROUP_20M = ("B5", "B6", "B7", "B8A", "B11", "B12")
GROUP_60M = ("B1", "B9")
#: Indices (into SPECTRAL_ORDER) of the bands that sharpening creates, i.e. the 20 m and 60 m bands.
SHARPENED_BANDS = tuple(SPECTRAL_ORDER.index(n) for n in sorted(GROUP_20M + GROUP_60M, key=SPECTRAL_ORDER.index))


def group_sigmas(names: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(BAND_BY_NAME[n].psf_sigma for n in names)


def grouped_to_spectral(names: tuple[str, ...]) -> list[int]:
    """Permutation that takes bands in `names` order (grouped) to spectral order (only those present)."""
    present = [n for n in SPECTRAL_ORDER if n in names]
    return [names.index(n) for n in present]
