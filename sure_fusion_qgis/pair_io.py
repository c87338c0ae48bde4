"""A (low-resolution, high-resolution) raster pair through GDAL: HS + MS, or MS + PAN. No QGIS, no torch.

* `open_pair` opens both rasters and checks what pair fusion needs: one CRS, an integer resolution ratio
  ≥ 2 with the high-resolution raster really finer, grids on a common lattice (every low-resolution pixel
  covers a whole ratio×ratio block of high-resolution pixels) and an overlap.
* `plan_pair_area` — the processed window on the high-resolution grid, its edges on the low-resolution grid.
* `read_pair` — one window of both rasters as float64 with their invalid-pixel masks.
* `spectral_info` — centre wavelengths and FWHMs (nm) from GDAL band metadata, the ENVI domain, the IMAGERY
  domain or band descriptions, so they can drive a Gaussian spectral response and be carried to the output.

Errors are raster_io's `RasterInputError`, with messages for the end user that name the fix (usually a
Processing algorithm such as gdal:warpreproject).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from .raster_io import (
    Grid,
    RasterInputError,
    Window,
    _band_scaling,
    _crs_name,
    _grid_of,
    _open,
    check_extent,
    read_bands,
)

#: how far (in high-resolution pixels) a grid origin may sit off the common lattice and still count as aligned
ALIGN_TOLERANCE_PX = 0.01
#: how far the pixel-size ratio may be from an integer (float noise in geotransforms)
RATIO_TOLERANCE = 1e-3
_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3,
               "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3, "mm": 1e6, "millimeter": 1e6,
               "millimeters": 1e6}
_DESCRIPTION_WAVELENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*(nm|nanometers?|µm|μm|um|micrometers?|microns?)\b", re.IGNORECASE)
_GEOREFERENCE_HINT = ("fusion needs both layers' map coordinates to match their pixels: assign the CRS and "
                      "georeferencing (e.g. gdal:assignprojection or the Georeferencer) or use the original files")


@dataclass
class InputRaster:
    """One raster of the pair: where it lives, its grid, and per band its scaling and spectral description."""
    label: str                     # for messages, e.g. "HS (hyperion_30m)"
    path: str
    grid: Grid
    band_indexes: list[int]        # 1-based GDAL band numbers (all bands)
    scales: list[float]
    offsets: list[float]           # value = DN * scale + offset
    descriptions: list[str]        # GDAL band descriptions ('' when unset)
    wavelengths: list[float | None]   # centre wavelength, nm
    fwhms: list[float | None]         # full width at half maximum, nm

    @property
    def band_count(self) -> int:
        return len(self.band_indexes)

    @property
    def scaled(self) -> bool:
        return any(s != 1.0 for s in self.scales) or any(o != 0.0 for o in self.offsets)

    def has_wavelengths(self) -> bool:
        return all(w is not None for w in self.wavelengths)

    def has_fwhms(self) -> bool:
        return all(f is not None for f in self.fwhms)


@dataclass
class RasterPair:
    """A low-resolution raster (the bands to sharpen) and a high-resolution guide on a common lattice."""
    low: InputRaster
    high: InputRaster
    ratio: int
    origin: tuple[int, int]        # (col, row) of the low grid's origin on the high grid, high-resolution pixels
    scene_name: str
    units: str
    provenance: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def low_window(self, window: Window) -> Window:
        """The window of the low-resolution grid under `window` (high-resolution pixels, edges on the lattice)."""
        r, (oc, orow) = self.ratio, self.origin
        return Window((window.col - oc) // r, (window.row - orow) // r, window.width // r, window.height // r)


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
def open_raster(path: str, label: str) -> InputRaster:
    ds = _open(path, label)
    if ds.RasterCount < 1:
        raise RasterInputError(f"{label} has no raster bands")
    indexes = list(range(1, ds.RasterCount + 1))
    scales, offsets = _band_scaling(ds, indexes)
    wavelengths, fwhms = spectral_info(ds)
    descriptions = [ds.GetRasterBand(i).GetDescription() or "" for i in indexes]
    return InputRaster(label, str(path), _grid_of(ds, label, square=False, hint=_GEOREFERENCE_HINT), indexes,
                       scales, offsets, descriptions, wavelengths, fwhms)


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
    _check_same_crs(low, high)
    ratio = _integer_ratio(low, high)
    origin = _common_lattice(low, high, ratio)
    name = scene_name or Path(str(low_path).split("|")[0]).stem
    units = "input units with band scale/offset applied" if low.scaled or high.scaled else "input units (as stored)"
    provenance = {"INPUT_LOW_RESOLUTION": f"{low.label}: {low.path}",
                  "INPUT_HIGH_RESOLUTION": f"{high.label}: {high.path}",
                  "RESOLUTION_RATIO": str(ratio), "INPUT_CRS": _crs_name(osr.SpatialReference(wkt=high.grid.crs_wkt))}
    pair = RasterPair(low, high, ratio, origin, name, units, provenance)
    _data_area(pair)   # fails early when the two do not overlap
    return pair


def _check_same_crs(low: InputRaster, high: InputRaster) -> None:
    srs_low, srs_high = osr.SpatialReference(wkt=low.grid.crs_wkt), osr.SpatialReference(wkt=high.grid.crs_wkt)
    if not srs_low.IsSame(srs_high):
        raise RasterInputError(
            f"{low.label} and {high.label} are in different CRS ({_crs_name(srs_low)} vs {_crs_name(srs_high)}): "
            f"both must share one CRS and pixel lattice; reproject {low.label} onto {high.label}'s CRS with "
            f"gdal:warpreproject (target CRS {_crs_name(srs_high)}, target resolution a whole multiple of "
            f"{high.grid.pixel:g}), then run this algorithm again")


def _integer_ratio(low: InputRaster, high: InputRaster) -> int:
    """The pixel-size ratio low/high, equal on both axes, an integer ≥ 2."""
    sizes = f"{low.label} has a pixel size of {_size(low.grid)}, {high.label} {_size(high.grid)}"
    rx, ry = low.grid.pixel / high.grid.pixel, low.grid.pixel_y / high.grid.pixel_y
    if rx < 1 + RATIO_TOLERANCE or ry < 1 + RATIO_TOLERANCE:
        raise RasterInputError(
            f"{high.label} is not finer than {low.label} ({sizes}): the high-resolution layer must have the "
            f"smaller pixels; check that the two layers are not swapped")
    ratio = int(round(rx))
    if abs(rx - ratio) > RATIO_TOLERANCE * rx or abs(ry - ratio) > RATIO_TOLERANCE * ry:
        shown = f"{rx:.4g}" if math.isclose(rx, ry, rel_tol=RATIO_TOLERANCE) else f"{rx:.4g} × {ry:.4g}"
        near = max(2, ratio)
        raise RasterInputError(
            f"the resolution ratio of {low.label} to {high.label} is {shown}, not an integer ({sizes}): fusion "
            f"needs each low-resolution pixel to cover a whole block of high-resolution pixels; resample one layer "
            f"with gdal:warpreproject, e.g. {low.label} to a resolution of {near * high.grid.pixel:g} "
            f"(ratio {near}) with the -tap option, or {high.label} to {low.grid.pixel / near:g}")
    return ratio


def _size(grid: Grid) -> str:
    """'10 m', '20 × 30 m', '0.001°': the pixel size in the CRS's units."""
    srs = osr.SpatialReference(wkt=grid.crs_wkt)
    unit = "°" if srs.IsGeographic() else {"metre": " m", "meter": " m"}.get(srs.GetLinearUnitsName().lower(),
                                                                            f" {srs.GetLinearUnitsName()}")
    size = f"{grid.pixel:g}" if math.isclose(grid.pixel, grid.pixel_y, rel_tol=1e-9) else \
        f"{grid.pixel:g} × {grid.pixel_y:g}"
    return f"{size}{unit}"


def _common_lattice(low: InputRaster, high: InputRaster, ratio: int) -> tuple[int, int]:
    """(col, row) of the low grid's origin on the high grid; an error when it is not a whole pixel."""
    dcol = (low.grid.x0 - high.grid.x0) / high.grid.pixel
    drow = (high.grid.y0 - low.grid.y0) / high.grid.pixel_y
    off_col, off_row = dcol - round(dcol), drow - round(drow)
    if abs(off_col) > ALIGN_TOLERANCE_PX or abs(off_row) > ALIGN_TOLERANCE_PX:
        raise RasterInputError(
            f"{low.label} is not aligned with {high.label}: its grid is shifted by {off_col:+.3f}, {off_row:+.3f} "
            f"{high.label} pixels (x, y) from the {high.label} grid, so its pixels do not cover whole {ratio}×{ratio} "
            f"blocks of {high.label} pixels; put both on one pixel lattice with gdal:warpreproject (target "
            f"resolution {high.grid.pixel:g} and {ratio * high.grid.pixel:g}, extra option -tap, or target extent "
            f"snapped to the other layer's grid)")
    return int(round(dcol)), int(round(drow))


# ------------------------------------------------------------------------------------- area, reading
def _data_area(pair: RasterPair) -> tuple[int, int, int, int]:
    """(c0, r0, c1, r1) on the high grid: what both rasters cover, edges snapped inwards to the low grid."""
    r, (oc, orow) = pair.ratio, pair.origin
    c0, r0 = max(0, oc), max(0, orow)
    c1 = min(pair.high.grid.width, oc + pair.low.grid.width * r)
    r1 = min(pair.high.grid.height, orow + pair.low.grid.height * r)
    c0, r0 = oc + math.ceil((c0 - oc) / r) * r, orow + math.ceil((r0 - orow) / r) * r
    c1, r1 = oc + math.floor((c1 - oc) / r) * r, orow + math.floor((r1 - orow) / r) * r
    if c1 <= c0 or r1 <= r0:
        raise RasterInputError(
            f"{pair.low.label} and {pair.high.label} do not overlap by even one {pair.low.label} pixel: "
            f"{pair.low.label} covers {_extent_text(pair.low.grid.extent())} and {pair.high.label} covers "
            f"{_extent_text(pair.high.grid.extent())} (xmin, ymin, xmax, ymax in their CRS); give two layers of "
            f"the same area")
    return c0, r0, c1, r1


def _extent_text(extent) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in extent) + ")"


def plan_pair_area(pair: RasterPair, extent: tuple[float, float, float, float] | None = None) -> Window:
    """The processed window on the high-resolution grid: the data both layers cover (∩ `extent`, which is
    snapped outwards), with edges on the low-resolution grid so that it maps to whole low-resolution pixels."""
    c0, r0, c1, r1 = _data_area(pair)
    if extent is not None:
        g, r, (oc, orow) = pair.high.grid, pair.ratio, pair.origin
        xmin, ymin, xmax, ymax = extent
        check_extent(extent, min(g.pixel, g.pixel_y), f"{pair.high.label}")
        ec0, ec1 = (xmin - g.x0) / g.pixel, (xmax - g.x0) / g.pixel
        er0, er1 = (g.y0 - ymax) / g.pixel_y, (g.y0 - ymin) / g.pixel_y
        ec0, ec1 = oc + math.floor((ec0 - oc) / r) * r, oc + math.ceil((ec1 - oc) / r) * r
        er0, er1 = orow + math.floor((er0 - orow) / r) * r, orow + math.ceil((er1 - orow) / r) * r
        data = output_grid(pair, Window(c0, r0, c1 - c0, r1 - r0)).extent()
        c0, c1, r0, r1 = max(c0, ec0), min(c1, ec1), max(r0, er0), min(r1, er1)
        if c1 <= c0 or r1 <= r0:
            raise RasterInputError(
                f"the extent {_extent_text(extent)} lies outside the data both layers cover, "
                f"{_extent_text(data)} (xmin, ymin, xmax, ymax in the layers' CRS): choose an extent inside it")
    return Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0))


def output_grid(pair: RasterPair, window: Window) -> Grid:
    """The high-resolution grid of `window`: the guide's CRS and alignment, origin moved to the window."""
    g = pair.high.grid
    gt = (g.x0 + window.col * g.pixel, g.pixel, 0.0, g.y0 - window.row * g.pixel_y, 0.0, -g.pixel_y)
    return Grid(g.crs_wkt, gt, window.width, window.height)


def read_pair(pair: RasterPair, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(low values (L, h, w), low invalid (h, w), high values (G, H, W), high invalid (H, W)) under `window`
    (high-resolution pixels, edges on the low grid), float64 with band scale/offset applied."""
    low, high = pair.low, pair.high
    lr, lr_invalid = read_bands(low.path, low.label, low.band_indexes, low.scales, low.offsets,
                                pair.low_window(window))
    hr, hr_invalid = read_bands(high.path, high.label, high.band_indexes, high.scales, high.offsets, window)
    return lr, lr_invalid, hr, hr_invalid
