"""Pansharpening sensor presets: MS bands, centre wavelengths, MTF gains at Nyquist, default ratio, bit depth.

The MS PSF of the fusion model is a Gaussian whose MTF at the MS Nyquist frequency (1/(2·ratio) cycles per
PAN pixel) equals the sensor's gain: σ = ratio·sqrt(−2 ln g / π²) PAN pixels (`psf.sigma_from_mtf`). The PAN
gain is used to degrade the PAN in reduced-resolution (Wald) protocols and quality indexes.

Where the gains come from. The pansharpening literature does not use measured on-orbit MTFs per scene but a
table of nominal gains fixed in Vivone et al.'s toolbox ("A critical comparison among pansharpening
algorithms", IEEE TGRS 53(5), 2015; "A new benchmark based on recent advances in multispectral
pansharpening", IEEE GRSM 9(1), 2021): files `MTF.m`, `genMTF.m` and `MTF_PAN.m`/`genPANMTF.m` and every
Python port of them (read through the project's code search). Those gains are:

    QuickBird  MS [0.34 0.32 0.30 0.22] (B, G, R, NIR)  PAN 0.15
    IKONOS     MS [0.26 0.28 0.29 0.28]                   PAN 0.17
    GeoEye-1   MS [0.23 0.23 0.23 0.23]                   PAN 0.16
    WorldView-2 MS [0.35 ×7, 0.27] (8 bands)              PAN 0.11
    WorldView-3 MS [0.325 0.355 0.360 0.350 0.365 0.360 0.335 0.315]   PAN 0.14
    'none'     MS 0.29 per band                           PAN 0.15

They come from the sensors' pre-launch specifications and published MTF studies as summarised by the
toolbox authors; they are *conventions* of the field (one value for all scenes), not measurements of a
given scene. For Pléiades, SPOT 6/7 and Landsat 8/9 OLI the toolbox has no entry; a fork of it uses 0.3 for
the four Pléiades MS bands, and we found no published per-band gains for SPOT 6/7 or OLI in the stored
sources. Those presets therefore use the generic convention (MS 0.3, PAN 0.15) and say so
(`gains_are_convention`). Band centres and PAN ranges are the vendors' published nominal band edges
(rounded). Bit depths are the usual delivered radiometric depths, for information only: the core works in
whatever unit the data arrive in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputShapeError, InvalidInputValueError
from .psf import sigma_from_mtf

#: MS and PAN gains used when nothing better is known (the brief's and the field's convention; the toolbox's
#: 'none' entry uses 0.29 for the MS bands).
GENERIC_MS_MTF = 0.3
GENERIC_PAN_MTF = 0.15


@dataclass(frozen=True)
class PanSensor:
    key: str                                   # the static string used by the API and the QGIS enum
    name: str
    ms_bands: tuple[str, ...]                  # () for 'generic': any number of bands
    ms_centre_nm: tuple[float, ...]
    ms_mtf: tuple[float, ...]                  # MTF gain at the MS Nyquist frequency, per MS band
    pan_mtf: float                             # PAN gain at the PAN Nyquist frequency
    pan_range_nm: tuple[float, float] | None
    ratio: int | None                          # nominal MS/PAN pixel-size ratio (None: take it from the data)
    bit_depth: int | None                      # usual delivered radiometric depth (information)
    gains_are_convention: bool                 # True: the gains are a convention, not published for this sensor
    source: str
    #: reduced products with fewer bands: band count → indices into `ms_bands` (e.g. WorldView 4-band bundles)
    subsets: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def band_indices(self, n_bands: int) -> tuple[int, ...] | None:
        """Which preset bands an MS image of `n_bands` bands holds; None for 'generic' (any count)."""
        if not self.ms_bands:
            return None
        if n_bands == len(self.ms_bands):
            return tuple(range(n_bands))
        if n_bands in self.subsets:
            return self.subsets[n_bands]
        counts = sorted({len(self.ms_bands), *self.subsets})
        raise InputShapeError(
            f"the {self.name} preset describes MS images of {' or '.join(map(str, counts))} bands "
            f"({', '.join(self.ms_bands)}), but the MS image has {n_bands}: choose the sensor 'generic' (MTF "
            f"{GENERIC_MS_MTF} for every band) or give the PSF σ yourself")

    def ms_mtf_for(self, n_bands: int) -> np.ndarray:
        """MTF gains at Nyquist of the `n_bands` MS bands (the preset's, or its reduced product's)."""
        idx = self.band_indices(n_bands)
        if idx is None:
            return np.full(n_bands, self.ms_mtf[0] if self.ms_mtf else GENERIC_MS_MTF)
        return np.asarray([self.ms_mtf[i] for i in idx], dtype=np.float64)

    def ms_band_names(self, n_bands: int) -> list[str]:
        idx = self.band_indices(n_bands)
        if idx is None:
            return [f"band {k + 1}" for k in range(n_bands)]
        return [self.ms_bands[i] for i in idx]

    def ms_psf_sigma(self, n_bands: int, ratio: int | None = None) -> np.ndarray:
        """Gaussian PSF σ (PAN pixels) of each MS band for this `ratio` (default: the preset's)."""
        r = self._ratio(ratio)
        return np.asarray([sigma_from_mtf(g, r) for g in self.ms_mtf_for(n_bands)])

    def pan_psf_sigma(self, ratio: int | None = None) -> float:
        """Gaussian PSF σ (PAN pixels) that takes the PAN to the MS resolution with the PAN's own MTF gain."""
        return sigma_from_mtf(self.pan_mtf, self._ratio(ratio))

    def _ratio(self, ratio: int | None) -> int:
        r = self.ratio if ratio is None else ratio
        if r is None:
            raise InvalidInputValueError(f"the {self.name} preset has no default ratio: give the ratio")
        if int(r) != r or r < 2:
            raise InvalidInputValueError(f"the ratio must be an integer ≥ 2, got {r}")
        return int(r)


def mtf_from_sigma(sigma: float, ratio: int) -> float:
    """Inverse of `psf.sigma_from_mtf`: the Gaussian MTF of std σ (fine pixels) at the coarse Nyquist 1/(2·ratio)."""
    return math.exp(-(math.pi ** 2) * sigma ** 2 / (2.0 * ratio ** 2))


def pan_to_ms_sharpness_sigma(ms_mtf: float, pan_mtf: float) -> float:
    """σ (PAN pixels) of the Gaussian by which the PAN is blurrier than an MS band would be at the PAN's pixel size.

    The convention of the MTF-based pansharpening literature is that the ideal fused band has the MS sensor's
    MTF gain g_ms at the PAN's Nyquist frequency, while the PAN has its own, usually lower, gain g_pan there
    (WorldView-2: 0.35 against 0.11). For Gaussian MTFs, exp(−π²σ²/2) = g at 1/2 cycle per pixel, so the PAN is
    the ideal band blurred by σ_rel = sqrt(σ_pan² − σ_ms²) = sqrt(2 ln(g_ms/g_pan))/π; 0 when the PAN is the
    sharper one.
    """
    if not (0 < ms_mtf < 1 and 0 < pan_mtf < 1):
        raise InvalidInputValueError(f"MTF gains must lie in (0, 1), got MS {ms_mtf} and PAN {pan_mtf}")
    return math.sqrt(2.0 * math.log(ms_mtf / pan_mtf)) / math.pi if pan_mtf < ms_mtf else 0.0


_TOOLBOX = ("Vivone et al. pansharpening toolbox (TGRS 2015 / GRSM 2021), MTF.m and MTF_PAN.m: nominal gains "
            "used across the pansharpening literature")

SENSORS: dict[str, PanSensor] = {s.key: s for s in (
    PanSensor("generic", "generic sensor", (), (), (), GENERIC_PAN_MTF, None, None, None, True,
              f"convention: MS {GENERIC_MS_MTF}, PAN {GENERIC_PAN_MTF} (toolbox 'none': MS 0.29, PAN 0.15)"),
    PanSensor("pleiades", "Pléiades 1A/1B",
              ("blue", "green", "red", "nir"), (490.0, 560.0, 650.0, 840.0), (0.3, 0.3, 0.3, 0.3),
              GENERIC_PAN_MTF, (480.0, 830.0), 4, 12, True,
              "convention: MS 0.3 as in a fork of the toolbox (MTF_GLP_HPM_PP 'Pleiades'); PAN 0.15 as 'none'"),
    PanSensor("worldview2", "WorldView-2",
              ("coastal", "blue", "green", "yellow", "red", "red edge", "nir1", "nir2"),
              (427.0, 478.0, 546.0, 608.0, 659.0, 724.0, 833.0, 949.0),
              (0.35, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35, 0.27), 0.11, (450.0, 800.0), 4, 11, False, _TOOLBOX,
              subsets={4: (1, 2, 4, 6)}),
    PanSensor("worldview3", "WorldView-3 (VNIR)",
              ("coastal", "blue", "green", "yellow", "red", "red edge", "nir1", "nir2"),
              (425.0, 480.0, 545.0, 605.0, 660.0, 725.0, 833.0, 950.0),
              (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14, (450.0, 800.0), 4, 11, False,
              _TOOLBOX + " ('WV3_4bands' = bands 2, 3, 5, 7)", subsets={4: (1, 2, 4, 6)}),
    PanSensor("geoeye1", "GeoEye-1", ("blue", "green", "red", "nir"), (480.0, 545.0, 673.0, 850.0),
              (0.23, 0.23, 0.23, 0.23), 0.16, (450.0, 800.0), 4, 11, False, _TOOLBOX),
    PanSensor("quickbird", "QuickBird", ("blue", "green", "red", "nir"), (485.0, 560.0, 660.0, 830.0),
              (0.34, 0.32, 0.30, 0.22), 0.15, (450.0, 900.0), 4, 11, False, _TOOLBOX),
    PanSensor("ikonos", "IKONOS", ("blue", "green", "red", "nir"), (480.0, 550.0, 665.0, 805.0),
              (0.26, 0.28, 0.29, 0.28), 0.17, (526.0, 929.0), 4, 11, False, _TOOLBOX),
    PanSensor("spot67", "SPOT 6/7", ("blue", "green", "red", "nir"), (485.0, 560.0, 660.0, 825.0),
              (0.3, 0.3, 0.3, 0.3), GENERIC_PAN_MTF, (450.0, 745.0), 4, 12, True,
              "convention: generic gains (no per-band values found in the stored sources)"),
    PanSensor("landsat_oli", "Landsat 8/9 OLI",
              ("B1 coastal", "B2 blue", "B3 green", "B4 red", "B5 nir", "B6 swir1", "B7 swir2"),
              (443.0, 482.0, 561.0, 655.0, 865.0, 1609.0, 2201.0), (0.3,) * 7, GENERIC_PAN_MTF, (503.0, 676.0), 2,
              12, True,
              "convention: generic gains (no per-band values found in the stored sources); Landsat 9 delivers "
              "14-bit data rescaled like Landsat 8's 12-bit; the PAN (B8, 503-676 nm) does not see the NIR or SWIR, "
              "so estimated PAN weights for B5-B7 are near zero",
              subsets={3: (1, 2, 3), 4: (1, 2, 3, 4), 5: (0, 1, 2, 3, 4)}),
)}

_ALIASES = {
    "none": "generic", "pléiades": "pleiades", "pleiades1a": "pleiades", "pleiades1b": "pleiades", "phr": "pleiades",
    "wv2": "worldview2", "worldview-2": "worldview2", "wv3": "worldview3", "worldview-3": "worldview3",
    "ge1": "geoeye1", "geoeye-1": "geoeye1", "geoeye": "geoeye1", "qb": "quickbird", "spot6": "spot67",
    "spot7": "spot67", "spot": "spot67", "spot6/7": "spot67", "landsat8": "landsat_oli", "landsat9": "landsat_oli",
    "landsat": "landsat_oli", "oli": "landsat_oli", "landsat8/9": "landsat_oli",
}


def sensor_keys() -> tuple[str, ...]:
    """The preset keys, 'generic' first (static strings for user interfaces)."""
    return tuple(SENSORS)


def get_sensor(sensor: str | PanSensor) -> PanSensor:
    """The preset for a key or common alias (case-insensitive: 'WV2', 'WorldView-2', 'Pléiades', 'landsat8')."""
    if isinstance(sensor, PanSensor):
        return sensor
    key = str(sensor).strip().lower().replace(" ", "").replace("_", "") if sensor is not None else "generic"
    for candidate in (key, _ALIASES.get(key)):
        if candidate in SENSORS:
            return SENSORS[candidate]
        folded = {k.replace("_", ""): k for k in SENSORS}
        if candidate in folded:
            return SENSORS[folded[candidate]]
    raise InvalidInputValueError(f"unknown sensor {sensor!r}: use one of {', '.join(SENSORS)}")
