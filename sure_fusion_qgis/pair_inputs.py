"""A (low-resolution, high-resolution) raster pair through GDAL: HS + MS, or MS + PAN. No QGIS, no torch.

* `open_pair` opens both rasters, reads their spectral metadata, checks the panchromatic guide has one band,
  and puts them on one lattice (`raster_stack`: one CRS, an integer ratio ≥ 2 with the high-resolution raster
  really finer, a common lattice and an overlap).
* `spectral_info` — centre wavelengths and FWHMs (nm) from GDAL band metadata, the ENVI domain, the IMAGERY
  domain or band descriptions, so they can drive a Gaussian spectral response and be carried to the output.

Errors are `RasterInputError`s, with messages for the end user that name the fix (usually a Processing
algorithm such as gdal:warpreproject).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from osgeo import gdal, osr

from .io_errors import RasterInputError
from .raster_stack import OpenedInputs, RasterSource, RasterStack, band_scaling, crs_name, grid_of, open_dataset

_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3,
               "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3, "mm": 1e6, "millimeter": 1e6,
               "millimeters": 1e6}
_DESCRIPTION_WAVELENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*(nm|nanometers?|µm|μm|um|micrometers?|microns?)\b", re.IGNORECASE)
_GEOREFERENCE_HINT = ("fusion needs both layers' map coordinates to match their pixels: assign the CRS and "
                      "georeferencing (e.g. gdal:assignprojection or the Georeferencer) or use the original files")


@dataclass
class SpectralRaster(RasterSource):
    """A layer of the pair: a stack source (all its bands, `names` their descriptions) and each band's spectral
    description."""
    wavelengths: list = field(default_factory=list)   # centre wavelength per band, nm (None: unknown)
    fwhms: list = field(default_factory=list)         # full width at half maximum per band, nm (None: unknown)

    def has_wavelengths(self) -> bool:
        return all(w is not None for w in self.wavelengths)

    def has_fwhms(self) -> bool:
        return all(f is not None for f in self.fwhms)


class RasterPair(OpenedInputs):
    """A low-resolution raster (the bands to sharpen) and a high-resolution guide: a stack of two, the guide
    first (the finest grid)."""

    @property
    def high(self) -> SpectralRaster:
        return self.stack.sources[0]

    @property
    def low(self) -> SpectralRaster:
        return self.stack.sources[1]

    @property
    def ratio(self) -> int:
        return self.low.ratio


# ------------------------------------------------------------------------------------- spectral metadata
def _to_nm(value: float, units: str | None) -> float | None:
    """A wavelength in `units` as nm; no units: values below 30 are taken as µm (no sensor has bands < 30 nm)."""
    if not math.isfinite(value) or value <= 0:
        return None
    key = (units or "").strip().lower()
    if key in _UNIT_TO_NM:
        return value * _UNIT_TO_NM[key]
    if key and key not in ("unknown", "none"):
        return None          # wavenumbers, GHz, index: not a wavelength we can use
    return value * 1e3 if value < 30 else value


def _number(text: str | None) -> float | None:
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        return None


def _envi_list(text: str | None) -> list[float | None]:
    """'{ 400.5, 410.2 }' → [400.5, 410.2]."""
    if not text:
        return []
    return [_number(v) for v in text.strip().strip("{}").split(",") if v.strip()]


def spectral_info(ds: gdal.Dataset) -> tuple[list[float | None], list[float | None]]:
    """(centre wavelengths, FWHMs) in nm per band; None where the metadata says nothing usable.

    Looked up per band, first hit wins: band metadata `wavelength`/`WAVELENGTH` (+ `wavelength_units`, and
    `fwhm` or Sentinel-2's `BANDWIDTH`), the IMAGERY domain (`CENTRAL_WAVELENGTH_UM`, `FWHM_UM`, GDAL ≥ 3.10),
    the dataset's ENVI domain (`wavelength`, `fwhm`, `wavelength_units` lists), and a wavelength written in
    the band description ('B5 (704 nm)', 'Band 2 (0.55 Micrometers)').
    """
    envi = ds.GetMetadata("ENVI") or {}
    envi_units = envi.get("wavelength_units")
    envi_wavelengths, envi_fwhms = _envi_list(envi.get("wavelength")), _envi_list(envi.get("fwhm"))
    if len(envi_wavelengths) != ds.RasterCount:
        envi_wavelengths = []
    if len(envi_fwhms) != ds.RasterCount:
        envi_fwhms = []
    wavelengths, fwhms = [], []
    for i in range(ds.RasterCount):
        band = ds.GetRasterBand(i + 1)
        units = band.GetMetadataItem("wavelength_units") or band.GetMetadataItem("WAVELENGTH_UNIT") or envi_units
        imagery = band.GetMetadata("IMAGERY") or {}
        candidates = [
            (_number(band.GetMetadataItem("wavelength")), units),
            (_number(imagery.get("CENTRAL_WAVELENGTH_UM")), "um"),
            (envi_wavelengths[i] if envi_wavelengths else None, envi_units),
        ]
        match = _DESCRIPTION_WAVELENGTH.search(band.GetDescription() or "")
        if match:
            candidates.append((float(match.group(1)), match.group(2)))
        wavelength = next((nm for v, u in candidates if v is not None and (nm := _to_nm(v, u)) is not None), None)
        width_candidates = [(_number(band.GetMetadataItem("fwhm")), units),
                            (_number(band.GetMetadataItem("BANDWIDTH")), band.GetMetadataItem("BANDWIDTH_UNIT")
                             or "nm"),
                            (_number(imagery.get("FWHM_UM")), "um"),
                            (envi_fwhms[i] if envi_fwhms else None, envi_units)]
        fwhm = next((nm for v, u in width_candidates if v is not None and (nm := _to_nm(v, u)) is not None), None)
        wavelengths.append(wavelength)
        fwhms.append(fwhm)
    return wavelengths, fwhms


# ------------------------------------------------------------------------------------------- opening
def open_raster(path: str, label: str) -> SpectralRaster:
    ds = open_dataset(path, label)
    if ds.RasterCount < 1:
        raise RasterInputError(f"{label} has no raster bands")
    indexes = list(range(1, ds.RasterCount + 1))
    scales, offsets = band_scaling(ds, indexes)
    wavelengths, fwhms = spectral_info(ds)
    descriptions = tuple(ds.GetRasterBand(i).GetDescription() or "" for i in indexes)
    return SpectralRaster(label, str(path), grid_of(ds, label, _GEOREFERENCE_HINT), indexes, scales, offsets,
                          descriptions, wavelengths=wavelengths, fwhms=fwhms)


def open_pair(low_path: str, high_path: str, *, low_label: str = "the low-resolution layer",
              high_label: str = "the high-resolution layer", single_band_high: bool = False,
              scene_name: str | None = None) -> RasterPair:
    """Open and check a (low-resolution, high-resolution) pair; see the module docstring for the checks.

    `single_band_high`: the guide must have exactly one band (a panchromatic image).
    """
    if str(low_path) == str(high_path):
        raise RasterInputError(f"{low_label} and {high_label} are the same layer ({low_path}): give two different "
                               f"layers")
    low, high = open_raster(low_path, low_label), open_raster(high_path, high_label)
    if single_band_high and high.band_count != 1:
        raise RasterInputError(
            f"{high.label} has {high.band_count} bands, but a panchromatic layer has exactly one: keep only the "
            f"panchromatic band first (Processing Toolbox › GDAL › Raster conversion › Rearrange bands, "
            f"gdal:rearrange_bands), or fuse a multi-band guide with sure_fusion:hsms_fusion instead")
    stack = RasterStack.on_lattice([high, low])
    name = scene_name or Path(str(low_path).split("|")[0]).stem
    units = "input units with band scale/offset applied" if low.scaled or high.scaled else "input units (as stored)"
    provenance = {"INPUT_LOW_RESOLUTION": f"{low.label}: {low.path}",
                  "INPUT_HIGH_RESOLUTION": f"{high.label}: {high.path}",
                  "RESOLUTION_RATIO": str(low.ratio),
                  "INPUT_CRS": crs_name(osr.SpatialReference(wkt=high.grid.crs_wkt))}
    return RasterPair(stack, name, units, provenance)
