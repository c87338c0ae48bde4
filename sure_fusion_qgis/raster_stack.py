"""N rasters on one pixel lattice, read through GDAL: Sentinel-2's 10/20/60 m bands (ratios 1, 2, 6) and the
pairs' low- and high-resolution layers (ratio r) alike. No QGIS, no torch.

* `RasterSource` — one raster: where it lives, its grid, which bands are read and how they are scaled, and (once
  on the lattice) its integer ratio to the finest grid and its origin on it.
* `RasterStack.on_lattice` — checks what fusion needs of the sources (one CRS, whole-number pixel ratios to the
  finest grid, origins on its lattice, an overlap of at least one coarsest pixel) with messages that name the fix.
* `RasterStack.plan` — the processed window on the finest grid: the common data (∩ an extent), edges on the
  coarsest grid, so that every window maps to whole pixels of every source.
* `RasterStack.read` — one window of every source as float64 plus invalid masks; `read_invalid` the masks alone
  (to rank training crops without reading or filling values); `RasterSource.read_overview` a resampled preview.

Errors are `RasterInputError`s with messages for the end user.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, osr

from .core_loader import core_module
from .io_errors import RasterInputError

#: how far (in pixels of the finest grid) an origin may sit off the lattice and still count as on it (10 cm on
#: Sentinel-2's 10 m grid: float noise in geotransforms, far below what co-registration measures)
ALIGN_TOLERANCE_PX = 0.01
#: how far (relative) a pixel-size ratio may be from its integer: float noise only; at 1e-3 a 2000-pixel layer
#: would end two pixels off its lattice
RATIO_TOLERANCE = 1e-6
_INTEGER_TYPES = {getattr(gdal, name) for name in ("GDT_Byte", "GDT_Int8", "GDT_UInt16", "GDT_Int16", "GDT_UInt32",
                                                   "GDT_Int32", "GDT_UInt64", "GDT_Int64") if hasattr(gdal, name)}

#: a pixel window (col, row, width, height); one definition for the core and the plugin (no torch needed)
Window = core_module("tiling").Window


# ------------------------------------------------------------------------------------------ grids, GDAL
@dataclass(frozen=True)
class Grid:
    """A north-up raster grid."""
    crs_wkt: str
    geotransform: tuple
    width: int
    height: int

    @property
    def pixel(self) -> float:
        """Pixel width (map units)."""
        return self.geotransform[1]

    @property
    def pixel_y(self) -> float:
        """Pixel height (map units, positive)."""
        return -self.geotransform[5]

    @property
    def x0(self) -> float:
        return self.geotransform[0]

    @property
    def y0(self) -> float:
        return self.geotransform[3]

    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax)."""
        return (self.x0, self.y0 - self.height * self.pixel_y, self.x0 + self.width * self.pixel, self.y0)

    def window_grid(self, window: Window) -> Grid:
        """The grid of `window` of this grid: same CRS and alignment, origin moved to the window."""
        gt = (self.x0 + window.col * self.pixel, self.pixel, 0.0, self.y0 - window.row * self.pixel_y, 0.0,
              -self.pixel_y)
        return Grid(self.crs_wkt, gt, window.width, window.height)


def gdal_call(make):
    """(result, GDAL's error message) of `make()`, whether or not some other code enabled gdal.UseExceptions()."""
    gdal.ErrorReset()
    try:
        result = make()
    except RuntimeError as e:
        return None, str(e)
    return result, gdal.GetLastErrorMsg()


def open_dataset(path: str, label: str) -> gdal.Dataset:
    """`path` opened read-only as a raster; a missing file and an unreadable one get different messages."""
    ds, message = gdal_call(lambda: gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY))
    plain = str(path).split("|")[0]
    if ds is None and not re.match(r"^[A-Za-z0-9_]{2,}:|/vsi", plain) and not os.path.exists(plain):
        raise RasterInputError(f"{label}: {plain!r} does not exist; check the path")
    if ds is None:
        raise RasterInputError(f"{label}: GDAL cannot open {path!r} as a raster ({message or 'unknown format'}); "
                               f"check the path and that the file is a complete, readable image")
    return ds


def grid_of(ds: gdal.Dataset, label: str, hint: str, *, square: bool = False) -> Grid:
    """The north-up grid of `ds`; `square` also demands square pixels; `hint` ends the not-georeferenced message
    with what the user should give instead."""
    gt = ds.GetGeoTransform(can_return_null=True)
    wkt = ds.GetProjection()
    if gt is None or not wkt:
        raise RasterInputError(f"{label} is not georeferenced (no geotransform or no CRS): {hint}")
    if gt[2] != 0 or gt[4] != 0 or gt[5] >= 0:
        raise RasterInputError(f"{label} has a rotated or south-up geotransform {gt}: warp it to a north-up grid "
                               f"(gdalwarp) without resampling the other inputs")
    if square and not math.isclose(gt[1], -gt[5], rel_tol=1e-6):
        raise RasterInputError(f"{label} has non-square pixels ({gt[1]} × {-gt[5]}): Sentinel-2 grids are square")
    return Grid(wkt, tuple(gt), ds.RasterXSize, ds.RasterYSize)


def band_scaling(ds: gdal.Dataset, indexes: list[int]) -> tuple[list[float], list[float]]:
    """Each band's (scale, offset) from its metadata: value = DN · scale + offset."""
    scales, offsets = [], []
    for i in indexes:
        band = ds.GetRasterBand(i)
        scales.append(band.GetScale() if band.GetScale() not in (None, 0) else 1.0)
        offsets.append(band.GetOffset() or 0.0)
    return scales, offsets


def crs_name(srs: osr.SpatialReference) -> str:
    code = srs.GetAuthorityCode(None)
    return f"EPSG:{code}" if code else (srs.GetName() or "unknown CRS")


def pixel_size(grid: Grid) -> str:
    """'10 m', '20 × 30 m', '0.001°': the pixel size in the CRS's units."""
    srs = osr.SpatialReference(wkt=grid.crs_wkt)
    unit = "°" if srs.IsGeographic() else {"metre": " m", "meter": " m"}.get(srs.GetLinearUnitsName().lower(),
                                                                            f" {srs.GetLinearUnitsName()}")
    size = f"{grid.pixel:g}" if math.isclose(grid.pixel, grid.pixel_y, rel_tol=1e-9) else \
        f"{grid.pixel:g} × {grid.pixel_y:g}"
    return f"{size}{unit}"


def extent_text(extent) -> str:
    return "(" + ", ".join(f"{v:.10g}" for v in extent) + ")"


def upsample_mask(mask: np.ndarray, ratio: int) -> np.ndarray:
    """A low-resolution mask on the grid `ratio` times finer (each pixel becomes a ratio×ratio block)."""
    return np.repeat(np.repeat(mask, ratio, axis=0), ratio, axis=1) if ratio > 1 else mask


def check_extent(extent: tuple[float, float, float, float], grid: Grid, label: str) -> None:
    """An extent must span at least one pixel of the output grid each way: a zero-width box was once read as "no
    extent" and the whole image processed (hours on a full tile)."""
    xmin, ymin, xmax, ymax = extent
    width, height = xmax - xmin, ymax - ymin
    box = f"({xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g})"
    if not (width > 0 and height > 0):
        raise RasterInputError(f"the extent {box} has no area (xmin ≥ xmax or ymin ≥ ymax): give xmin < xmax and "
                               f"ymin < ymax, in the inputs' CRS or with its [EPSG:code]")
    pixel = min(grid.pixel, grid.pixel_y)
    if width < pixel or height < pixel:
        raise RasterInputError(f"the extent {box} is {width:.4g} × {height:.4g} map units, smaller than one "
                               f"{pixel_size(grid)} pixel of {label} ({pixel:g}): choose a larger extent; if it is "
                               f"in another CRS (degrees?), say so, e.g. '{box[1:-1]} [EPSG:4326]'")


# ------------------------------------------------------------------------------------------- one raster
@dataclass
class RasterSource:
    """One raster of a stack: where it lives, its grid, the bands read (in the order the core expects) and their
    scaling; `ratio` and `origin` place it on the stack's finest grid (set by `RasterStack.on_lattice`)."""
    label: str                     # for messages: which input this is
    path: str                      # what gdal.Open opens (file, URI or subdataset)
    grid: Grid
    band_indexes: list[int]        # 1-based GDAL band numbers
    scales: list[float]
    offsets: list[float]           # value = DN * scale + offset
    names: tuple[str, ...] = ()    # each band's name (Sentinel-2: B4, …; a layer: its description, '' unset)
    zero_is_nodata: bool = False   # DN 0 marks nodata (Sentinel-2 products)
    ratio: int = 1                 # its pixel size over the finest grid's
    origin: tuple[int, int] = (0, 0)   # (col, row) of its origin on the finest grid

    @property
    def band_count(self) -> int:
        return len(self.band_indexes)

    @property
    def scaled(self) -> bool:
        return any(s != 1.0 for s in self.scales) or any(o != 0.0 for o in self.offsets)

    def window(self, fine: Window) -> Window:
        """The window of this raster's own grid under `fine` (finest-grid pixels, edges on this grid)."""
        (oc, orow), r = self.origin, self.ratio
        return Window((fine.col - oc) // r, (fine.row - orow) // r, fine.width // r, fine.height // r)

    def read(self, fine: Window) -> tuple[np.ndarray, np.ndarray]:
        """(values (bands, rows, cols) float64 = DN·scale + offset, invalid (rows, cols) bool) under `fine`, on
        this raster's grid. A pixel is invalid when any band is nodata (nodata value, mask or alpha), NaN, or 0
        when `zero_is_nodata`."""
        win = self.window(fine)
        ds = open_dataset(self.path, self.label)
        values = np.empty((self.band_count, win.height, win.width), dtype=np.float64)
        invalid = np.zeros((win.height, win.width), dtype=bool)
        for k, (index, scale, offset) in enumerate(zip(self.band_indexes, self.scales, self.offsets)):
            band = ds.GetRasterBand(index)
            raw = self._raw(band, index, win).astype(np.float64)
            self._mark_invalid(invalid, band, index, win, raw)
            values[k] = raw * scale + offset
        return values, invalid

    def read_invalid(self, fine: Window) -> np.ndarray:
        """The invalid mask of `read` alone: values are read only where they decide it (zeros of a product,
        NaN of a floating-point band), the rest comes from the masks GDAL keeps."""
        win = self.window(fine)
        ds = open_dataset(self.path, self.label)
        invalid = np.zeros((win.height, win.width), dtype=bool)
        for index in self.band_indexes:
            band = ds.GetRasterBand(index)
            needs_values = self.zero_is_nodata or band.DataType not in _INTEGER_TYPES
            self._mark_invalid(invalid, band, index, win, self._raw(band, index, win) if needs_values else None)
        return invalid

    def _raw(self, band, index: int, win: Window) -> np.ndarray:
        raw = band.ReadAsArray(win.col, win.row, win.width, win.height)
        if raw is None:
            raise RasterInputError(f"{self.label}: reading band {index} failed ({gdal.GetLastErrorMsg()}); "
                                   f"the file may be truncated or corrupt")
        return raw

    def _mark_invalid(self, invalid: np.ndarray, band, index: int, win: Window, raw: np.ndarray | None) -> None:
        if band.GetMaskFlags() != gdal.GMF_ALL_VALID:
            mask = band.GetMaskBand().ReadAsArray(win.col, win.row, win.width, win.height)
            if mask is None:
                raise RasterInputError(f"{self.label}: reading the nodata mask of band {index} failed "
                                       f"({gdal.GetLastErrorMsg()}); the file may be truncated or corrupt")
            invalid |= mask == 0
        if raw is not None:
            if self.zero_is_nodata:
                invalid |= raw == 0
            invalid |= ~np.isfinite(raw)

    def read_overview(self, fine: Window, size: tuple[int, int], picks: list[int] | None = None) -> np.ndarray:
        """Some bands (positions in `band_indexes`; None: all) under `fine`, resampled (nearest) to `size` =
        (cols, rows), as DN·scale + offset; nodata (the band's nodata value, or 0 when `zero_is_nodata`) is NaN."""
        win = self.window(fine)
        ds = open_dataset(self.path, self.label)
        out = []
        for k in range(self.band_count) if picks is None else picks:
            band = ds.GetRasterBand(self.band_indexes[k])
            raw = band.ReadAsArray(win.col, win.row, win.width, win.height, buf_xsize=size[0], buf_ysize=size[1])
            values = raw.astype(np.float64) * self.scales[k] + self.offsets[k]
            nodata = band.GetNoDataValue()
            if self.zero_is_nodata:
                values[raw == 0] = np.nan
            if nodata is not None:
                values[raw == nodata] = np.nan
            out.append(values)
        return np.stack(out)


# ------------------------------------------------------------------------------------------- the stack
@dataclass
class RasterStack:
    """Rasters on one pixel lattice: `sources[0]` is the finest grid (the output's), every other source's pixels
    are whole blocks of it. Build with `on_lattice`, which checks that and places each source."""
    sources: list[RasterSource] = field(default_factory=list)

    @classmethod
    def on_lattice(cls, sources: list[RasterSource], ratios: list[int | None] | None = None) -> RasterStack:
        """Check `sources` (the finest first) against one lattice and place them on it. `ratios`: the ratio each
        source must have (None: any whole number ≥ 2; the first is always 1)."""
        fine = sources[0]
        ratios = list(ratios or [None] * len(sources))
        fine.ratio, fine.origin = 1, (0, 0)
        for source, expected in zip(sources[1:], ratios[1:]):
            _check_same_crs(source, fine)
            source.ratio = _integer_ratio(source, fine, expected)
            source.origin = _origin_on_lattice(source, fine)
        for coarse in sources[1:]:
            for finer in sources[1:]:
                if finer is not coarse and finer.ratio < coarse.ratio:
                    _check_nested(coarse, finer)
        stack = cls(list(sources))
        stack.data_area()   # fails now when the sources do not overlap
        return stack

    @property
    def finest(self) -> RasterSource:
        return self.sources[0]

    @property
    def grid(self) -> Grid:
        """The finest grid: the output's, and the one every window is given in."""
        return self.sources[0].grid

    @property
    def coarsest(self) -> RasterSource:
        return max(self.sources, key=lambda s: s.ratio)

    @property
    def step(self) -> int:
        """The coarsest ratio: windows with edges on its multiples (from its origin) map to whole pixels of all."""
        return self.coarsest.ratio

    def data_area(self) -> tuple[int, int, int, int]:
        """(c0, r0, c1, r1) on the finest grid: what every source covers, edges snapped inwards to the coarsest
        grid."""
        c0 = max(s.origin[0] for s in self.sources)
        r0 = max(s.origin[1] for s in self.sources)
        c1 = min(s.origin[0] + s.grid.width * s.ratio for s in self.sources)
        r1 = min(s.origin[1] + s.grid.height * s.ratio for s in self.sources)
        common = (c1 - c0, r1 - r0)
        (oc, orow), step = self.coarsest.origin, self.step
        c0, r0 = oc + math.ceil((c0 - oc) / step) * step, orow + math.ceil((r0 - orow) / step) * step
        c1, r1 = oc + math.floor((c1 - oc) / step) * step, orow + math.floor((r1 - orow) / step) * step
        if c1 <= c0 or r1 <= r0:
            raise RasterInputError(self._no_overlap(common))
        return c0, r0, c1, r1

    def _no_overlap(self, common: tuple[int, int]) -> str:
        labels = [s.label for s in self.sources]
        named = ", ".join(labels[:-1]) + " and " + labels[-1]
        covers = "; ".join(f"{s.label} covers {extent_text(s.grid.extent())}" for s in self.sources)
        where = f"{covers} (xmin, ymin, xmax, ymax in their CRS)"
        if common[0] <= 0 or common[1] <= 0:
            return f"{named} do not overlap: {where}; give inputs of the same scene and area"
        fine, coarse, step = pixel_size(self.grid), pixel_size(self.coarsest.grid), self.step
        return (f"{named} do not overlap by even one {coarse} pixel: they have only {common[0]}×{common[1]} {fine} "
                f"pixels in common, less than one {coarse} pixel ({step}×{step} {fine} pixels), let alone the "
                f"smallest area that can be fused; {where}; give inputs that cover a larger common area")

    def plan(self, extent: tuple[float, float, float, float] | None = None) -> Window:
        """The processed window on the finest grid: the data every source covers (∩ `extent`, which is snapped
        outwards), with edges on the coarsest grid so that it maps to whole pixels of every source."""
        c0, r0, c1, r1 = self.data_area()
        if extent is not None:
            g, step, (oc, orow) = self.grid, self.step, self.coarsest.origin
            check_extent(extent, g, self.finest.label)
            xmin, ymin, xmax, ymax = extent
            ec0, ec1 = (xmin - g.x0) / g.pixel, (xmax - g.x0) / g.pixel
            er0, er1 = (g.y0 - ymax) / g.pixel_y, (g.y0 - ymin) / g.pixel_y
            ec0, ec1 = oc + math.floor((ec0 - oc) / step) * step, oc + math.ceil((ec1 - oc) / step) * step
            er0, er1 = orow + math.floor((er0 - orow) / step) * step, orow + math.ceil((er1 - orow) / step) * step
            data = self.output_grid(Window(c0, r0, c1 - c0, r1 - r0)).extent()
            c0, c1, r0, r1 = max(c0, ec0), min(c1, ec1), max(r0, er0), min(r1, er1)
            if c1 <= c0 or r1 <= r0:
                raise RasterInputError(
                    f"the extent {extent_text(extent)} lies outside the data all inputs cover, {extent_text(data)} "
                    f"(xmin, ymin, xmax, ymax in the inputs' CRS): choose an extent inside it")
        return Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0))

    def output_grid(self, window: Window) -> Grid:
        """The finest grid of `window`: the output's grid."""
        return self.grid.window_grid(window)

    def read(self, window: Window) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(values, invalid) of each source on its own grid] under `window` (finest-grid pixels, edges on the
        coarsest grid), see `RasterSource.read`."""
        return [source.read(window) for source in self.sources]

    def invalid_on_finest(self, invalids: list[np.ndarray]) -> np.ndarray:
        """The sources' invalid masks (in source order) as one mask on the finest grid: invalid where any is."""
        out = None
        for source, invalid in zip(self.sources, invalids):
            up = upsample_mask(invalid, source.ratio)
            out = up.copy() if out is None else out | up
        return out

    def read_invalid(self, window: Window) -> np.ndarray:
        """The invalid mask of `read` on the finest grid, from the masks alone (`RasterSource.read_invalid`)."""
        return self.invalid_on_finest([source.read_invalid(window) for source in self.sources])

    def valid_fraction(self, window: Window) -> float:
        """The fraction of `window` valid in every source: how training crops are ranked."""
        return 1.0 - float(self.read_invalid(window).mean())


@dataclass
class OpenedInputs:
    """A run's inputs once opened and checked: their stack, and what the output and the report say of them."""
    stack: RasterStack
    scene_name: str
    units: str                                  # of the values read (and of the output)
    provenance: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- lattice checks
def _check_same_crs(source: RasterSource, fine: RasterSource) -> None:
    srs, srs_fine = osr.SpatialReference(wkt=source.grid.crs_wkt), osr.SpatialReference(wkt=fine.grid.crs_wkt)
    if not srs.IsSame(srs_fine):
        raise RasterInputError(
            f"{source.label} and {fine.label} are in different CRS ({crs_name(srs)} vs {crs_name(srs_fine)}): all "
            f"inputs must share one CRS and pixel lattice; take layers of one product or tile, or reproject "
            f"{source.label} onto {fine.label}'s CRS with gdal:warpreproject (target CRS {crs_name(srs_fine)}, target "
            f"resolution a whole multiple of {fine.grid.pixel:g}), then run this algorithm again")


def _integer_ratio(source: RasterSource, fine: RasterSource, expected: int | None) -> int:
    """The pixel-size ratio source/fine, equal on both axes: `expected`, or any whole number ≥ 2."""
    sizes = f"{source.label} has a pixel size of {pixel_size(source.grid)}, {fine.label} {pixel_size(fine.grid)}"
    rx, ry = source.grid.pixel / fine.grid.pixel, source.grid.pixel_y / fine.grid.pixel_y
    shown = f"{rx:.4g}" if math.isclose(rx, ry, rel_tol=1e-3) else f"{rx:.4g} × {ry:.4g}"
    if expected is not None:
        if math.isclose(rx, expected, rel_tol=RATIO_TOLERANCE) and math.isclose(ry, expected, rel_tol=RATIO_TOLERANCE):
            return expected
        raise RasterInputError(
            f"{sizes}: the ratio must be {expected} but is {shown}; give {source.label} at its native resolution "
            f"({expected * fine.grid.pixel:g}), not resampled")
    if rx < 1 + RATIO_TOLERANCE or ry < 1 + RATIO_TOLERANCE:
        raise RasterInputError(
            f"{fine.label} is not finer than {source.label} ({sizes}): the high-resolution layer must have the "
            f"smaller pixels; check that the two layers are not swapped")
    ratio = int(round(rx))
    if not (math.isclose(rx, ratio, rel_tol=RATIO_TOLERANCE) and math.isclose(ry, ratio, rel_tol=RATIO_TOLERANCE)):
        near = max(2, ratio)
        raise RasterInputError(
            f"the resolution ratio of {source.label} to {fine.label} is {shown}, not an integer ({sizes}): fusion "
            f"needs each low-resolution pixel to cover a whole block of high-resolution pixels; resample one layer "
            f"with gdal:warpreproject, e.g. {source.label} to a resolution of {near * fine.grid.pixel:g} "
            f"(ratio {near}) with the -tap option, or {fine.label} to {source.grid.pixel / near:g}")
    return ratio


def _origin_on_lattice(source: RasterSource, fine: RasterSource) -> tuple[int, int]:
    """(col, row) of `source`'s origin on the finest grid; an error when it is not a whole pixel."""
    dcol = (source.grid.x0 - fine.grid.x0) / fine.grid.pixel
    drow = (fine.grid.y0 - source.grid.y0) / fine.grid.pixel_y
    off_col, off_row = dcol - round(dcol), drow - round(drow)
    if abs(off_col) > ALIGN_TOLERANCE_PX or abs(off_row) > ALIGN_TOLERANCE_PX:
        r = source.ratio
        raise RasterInputError(
            f"{source.label} is not aligned with {fine.label}: its grid is shifted by {off_col:+.3f}, {off_row:+.3f} "
            f"{pixel_size(fine.grid)} pixels (x, y) from the grid of {fine.label}, so its pixels do not cover whole "
            f"{r}×{r} blocks of them; use the original, unresampled layers, or put both on one pixel lattice with "
            f"gdal:warpreproject (target resolution {fine.grid.pixel:g} and {r * fine.grid.pixel:g}, extra option "
            f"-tap, or target extent snapped to the other layer's grid)")
    return int(round(dcol)), int(round(drow))


def _check_nested(coarse: RasterSource, finer: RasterSource) -> None:
    """Two sources coarser than the finest grid: every pixel of `coarse` covers whole pixels of `finer`."""
    size = pixel_size(finer.grid)
    if coarse.ratio % finer.ratio:
        raise RasterInputError(
            f"{coarse.label} has a pixel size of {pixel_size(coarse.grid)}, not a whole multiple of the {size} of "
            f"{finer.label}, so its pixels cannot cover whole pixels of it; give the inputs at their native "
            f"resolutions")
    k = coarse.ratio // finer.ratio
    shift = [(a - b) / finer.ratio for a, b in zip(coarse.origin, finer.origin)]
    if any(s != round(s) for s in shift):
        raise RasterInputError(
            f"{coarse.label} is not aligned with {finer.label}: a {pixel_size(coarse.grid)} pixel must cover "
            f"exactly {k}×{k} {size} pixels, but its origin lies {shift[0]:+g}, {shift[1]:+g} {size} pixels (x, y) "
            f"from their grid; use the original, unresampled layers, or snap both grids to one lattice "
            f"(gdal:warpreproject with the -tap option)")


# ------------------------------------------------------------------------------------------- whole files
def read_overview(path: str, band_numbers: list[int], size: tuple[int, int]) -> np.ndarray:
    """Bands (1-based) of a whole raster resampled (nearest) to `size` = (cols, rows); nodata becomes NaN (the
    quick-looks of an output)."""
    ds = open_dataset(path, path)
    out = []
    for number in band_numbers:
        band = ds.GetRasterBand(number)
        values = band.ReadAsArray(buf_xsize=size[0], buf_ysize=size[1]).astype(np.float64)
        nodata = band.GetNoDataValue()
        if nodata is not None:
            values[values == nodata] = np.nan
        out.append(values)
    return np.stack(out)


def read_raster(path: str) -> tuple[np.ndarray, Grid, list[str], dict[str, str]]:
    """A whole raster as (bands, rows, cols) float64, its grid, band descriptions and metadata (tests, demo)."""
    ds = open_dataset(path, path)
    data = ds.ReadAsArray().astype(np.float64)
    if data.ndim == 2:
        data = data[None]
    descriptions = [ds.GetRasterBand(i).GetDescription() for i in range(1, ds.RasterCount + 1)]
    return data, grid_of(ds, path, "give a georeferenced raster"), descriptions, ds.GetMetadata() or {}
