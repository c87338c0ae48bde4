"""Every GDAL read and write of the plugin, usable without QGIS (and without torch).

* `open_band_rasters` — the 10/20/60 m bands as three rasters (layers or files);
  `open_s2_product` — a Sentinel-2 L1C/L2A product (.SAFE folder, .zip or MTD_MSIL1C/2A.xml) through
  GDAL's SENTINEL2 driver. Both return `SentinelInputs`: where each band lives, its scale/offset to
  the output unit, and the grid of each resolution.
* `plan_area` — the processed area on the 10 m grid, snapped to the coarsest grid so that every
  window maps to whole pixels at 10, 20 and 60 m.
* `read_group` — one window of one resolution group as float64 plus an invalid-pixel mask.
* `GeoTiffWriter` — a tiled, compressed GeoTIFF written to a temporary file beside the target, every GDAL
  write checked, re-opened and read back (`validate_geotiff`), and renamed over the target only on success,
  so a failure, a full disk or a cancel leaves the target as it was.

Errors are `RasterInputError` / `RasterOutputError` with messages meant for the end user.
"""
from __future__ import annotations

import math
import os
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from .core_loader import core_module
from .io_errors import RasterInputError, RasterIOError, RasterOutputError  # noqa: F401  (raised and re-exported here)
from .safe_output import StagedFile, remove_file, write_failure

OUTPUT_NODATA = -9999.0
#: Band numbering of Sentinel-2 product metadata (band_id attributes): 0 = B1 … 12 = B12.
PRODUCT_BAND_IDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
GROUP_RATIOS = {"10m": 1, "20m": 2, "60m": 6}
_ALIGN_TOLERANCE_PX = 1e-3
_S2_BAND_NAME = re.compile(r"^\s*B0?(8A|1[0-2]|[1-9])(?![0-9A-Za-z])", re.IGNORECASE)



# ----------------------------------------------------------------------------------------- grids
@dataclass(frozen=True)
class Grid:
    """A north-up raster grid."""
    crs_wkt: str
    geotransform: tuple
    width: int
    height: int

    @property
    def pixel(self) -> float:
        """Pixel width (map units); also the height for the square grids of Sentinel-2."""
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


#: a pixel window (col, row, width, height); one definition for the core and the plugin (no torch needed)
Window = core_module("tiling").Window


@dataclass
class BandGroup:
    """The bands of one resolution (10m, 20m or 60m), where they live and how to scale them."""
    key: str
    label: str                   # for messages: which input this is
    path: str                    # what gdal.Open opens (file, URI or SENTINEL2 subdataset)
    grid: Grid
    names: tuple[str, ...]       # band names, in the order the core expects
    band_indexes: list[int]      # 1-based GDAL band numbers, same order as `names`
    scales: list[float]
    offsets: list[float]         # value = DN * scale + offset
    zero_is_nodata: bool = False
    origin_10m: tuple[int, int] = (0, 0)   # (col, row) of this grid's origin on the 10 m grid, set by the checks

    @property
    def ratio(self) -> int:
        return GROUP_RATIOS[self.key]


@dataclass
class SentinelInputs:
    groups: dict[str, BandGroup]
    scene_name: str
    units: str
    provenance: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def grid_10m(self) -> Grid:
        return self.groups["10m"].grid

    @property
    def coarsest(self) -> BandGroup:
        return self.groups["60m"] if "60m" in self.groups else self.groups["20m"]


def _write_limit(target: str) -> str:
    """Why a write may have failed, from the system itself (GDAL does not always pass the reason on: with GDAL 3.10
    libtiff prints "File too large" to stderr only): a full disk, or a file-size limit; '' when neither shows."""
    import resource
    import shutil

    folder = os.path.dirname(os.path.abspath(target)) or "."
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 2 ** 20:
        return f"the disk is full ({free} bytes free in {folder}); free some space or write elsewhere"
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        return (f"the file grew beyond the size limit of {soft} bytes set for this process (ulimit -f); raise the "
                "limit or write a smaller area")
    return ""


# -------------------------------------------------------------------------------------- opening
def _gdal_call(make):
    """(result, GDAL's error message) of `make()`, whether or not some other code enabled gdal.UseExceptions()."""
    gdal.ErrorReset()
    try:
        result = make()
    except RuntimeError as e:
        return None, str(e)
    return result, gdal.GetLastErrorMsg()


def _open(path: str, label: str) -> gdal.Dataset:
    ds, message = _gdal_call(lambda: gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY))
    plain = str(path).split("|")[0]
    if ds is None and not re.match(r"^[A-Za-z0-9_]{2,}:|/vsi", plain) and not os.path.exists(plain):
        raise RasterInputError(f"{label}: {plain!r} does not exist; check the path")
    if ds is None:
        raise RasterInputError(f"{label}: GDAL cannot open {path!r} as a raster ({message or 'unknown format'}); "
                               f"check the path and that the file is a complete, readable image")
    return ds


_S2_GEOREFERENCE_HINT = "the 10/20/60 m bands must carry their map coordinates, e.g. the GeoTIFFs or JP2 of the product"


def _grid_of(ds: gdal.Dataset, label: str, *, square: bool = True, hint: str = _S2_GEOREFERENCE_HINT) -> Grid:
    """The north-up grid of `ds`; `square` also demands square pixels (Sentinel-2); `hint` ends the
    not-georeferenced message with what the user should give instead."""
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


def s2_band_name(text: str | None) -> str | None:
    """'B8A', 'B04', 'B4, central wavelength 665 nm', 'B5 (704 nm)' → 'B8A', 'B4', 'B4', 'B5'; else None."""
    match = _S2_BAND_NAME.match(text or "")
    return f"B{match.group(1).upper()}" if match else None


def _band_names_of(ds: gdal.Dataset) -> list[str | None]:
    names = []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        names.append(s2_band_name(band.GetMetadataItem("BANDNAME")) or s2_band_name(band.GetDescription()))
    return names


def _select_bands(ds: gdal.Dataset, expected: tuple[str, ...], label: str,
                  others: dict[str, tuple[str, ...]] | None = None) -> tuple[list[int], str | None]:
    """1-based band numbers of `expected`, and a warning for the user (or None).

    Band descriptions (or BANDNAME) either name every expected band exactly once, and the bands are picked by
    name in any order; or they are not used, and the bands are taken in file order (with a warning when some
    bands carry names, which must then agree with that order). Duplicate names and names that contradict the
    file order are errors: falling back to file order there once swapped B5↔B12, B6↔B11 and B7↔B8A without a
    word. `others` ({input: its band names}) turns a raster given to the wrong input into a "swapped?" hint.
    """
    found = _band_names_of(ds)
    positions: dict[str, list[int]] = {}
    for number, name in enumerate(found, start=1):
        if name:
            positions.setdefault(name, []).append(number)
    twice = {name: numbers for name, numbers in positions.items() if len(numbers) > 1 and name in expected}
    if twice:
        name, numbers = next(iter(twice.items()))
        raise RasterInputError(
            f"{label}: the band descriptions name {name} {len(numbers)} times (bands "
            f"{', '.join(map(str, numbers))}), so it is not clear which band is {name}: give every band its own "
            f"name ({', '.join(expected)}, in any order), or clear all descriptions to take the bands in file order")
    if all(name in positions for name in expected):
        return [positions[name][0] for name in expected], None
    named = [name for name in found if name]
    if ds.RasterCount != len(expected):
        hint = ""
        for other, names in (others or {}).items():
            if named and set(named) <= set(names):
                hint = f"; its band descriptions name {', '.join(named)}, the {other} bands: are the inputs swapped?"
            elif not hint and not named and ds.RasterCount == len(names):
                hint = f"; {ds.RasterCount} bands is what the {other} input has: are the inputs swapped?"
        raise RasterInputError(
            f"{label} has {ds.RasterCount} band(s) but needs exactly {len(expected)} ({', '.join(expected)}, in this "
            f"order), or band descriptions that name these bands: stack the right bands (e.g. gdalbuildvrt "
            f"-separate) or set the band descriptions{hint}")
    foreign = [name for name in named if name not in expected]
    if foreign:
        raise RasterInputError(f"{label}: its band descriptions name {', '.join(named)}, but this input needs "
                               f"{', '.join(expected)}: pick the right raster for this input")
    wrong = [(number, name, expected[number - 1]) for number, name in enumerate(found, start=1)
             if name and name != expected[number - 1]]
    if wrong:
        details = "; ".join(f"band {n} is described as {name} but holds {want} in file order"
                            for n, name, want in wrong[:3]) + ("; …" if len(wrong) > 3 else "")
        raise RasterInputError(
            f"{label}: only {len(named)} of {len(expected)} bands are named, and the names contradict the file order "
            f"({details}), so neither can be trusted: name every band ({', '.join(expected)}, in any order), or "
            f"clear all descriptions to take the bands in file order")
    described = [ds.GetRasterBand(i).GetDescription().strip() for i in range(1, ds.RasterCount + 1)]
    if named:
        return list(range(1, len(expected) + 1)), (
            f"{label}: only {len(named)} of {len(expected)} bands are named in their descriptions; the names agree "
            f"with the file order, so the bands are taken in file order ({', '.join(expected)})")
    if any(described):
        return list(range(1, len(expected) + 1)), (
            f"{label}: the band descriptions ({', '.join(repr(d) for d in described)}) name no Sentinel-2 band, so "
            f"the bands are taken in file order ({', '.join(expected)}); check that this is their order")
    return list(range(1, len(expected) + 1)), None


def _band_scaling(ds: gdal.Dataset, indexes: list[int]) -> tuple[list[float], list[float]]:
    scales, offsets = [], []
    for i in indexes:
        band = ds.GetRasterBand(i)
        scales.append(band.GetScale() if band.GetScale() not in (None, 0) else 1.0)
        offsets.append(band.GetOffset() or 0.0)
    return scales, offsets


def open_band_rasters(paths: dict[str, str | None], band_names: dict[str, tuple[str, ...]],
                      labels: dict[str, str] | None = None, scene_name: str | None = None) -> SentinelInputs:
    """The 10 m, 20 m and (optional) 60 m bands as separate rasters, checked for band count and grid relation.

    `paths` maps '10m', '20m', '60m' to a GDAL-openable path (None or missing: not given);
    `band_names` maps the same keys to the band names the core expects in that order.
    Values are read as stored, with the band's scale/offset applied when one is set.
    """
    labels = labels or {}
    groups = {}
    warnings = []
    any_scaled = False
    for key in ("10m", "20m", "60m"):
        path = paths.get(key)
        if not path:
            continue
        label = labels.get(key, f"the {key} raster")
        ds = _open(path, label)
        others = {f"{k[:-1]} m": names for k, names in band_names.items() if k != key}
        indexes, warning = _select_bands(ds, band_names[key], label, others)
        warnings += [warning] if warning else []
        scales, offsets = _band_scaling(ds, indexes)
        any_scaled |= any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets)
        groups[key] = BandGroup(key, label, str(path), _grid_of(ds, label), tuple(band_names[key]), indexes,
                                scales, offsets)
    for key in ("10m", "20m"):
        if key not in groups:
            raise RasterInputError(f"the {key} bands are required (or give a Sentinel-2 product instead)")
    check_grid_relation(groups)
    name = scene_name or Path(str(paths["10m"]).split("|")[0]).stem
    units = "input units with band scale/offset applied" if any_scaled else "input units (as stored)"
    return SentinelInputs(groups, name, units, {"INPUTS": "; ".join(f"{k}={g.path}" for k, g in groups.items())},
                          warnings)


def check_grid_relation(groups: dict[str, BandGroup]) -> None:
    """Same projected CRS, pixel sizes 1:2:6, and every coarse pixel covering whole finer pixels."""
    g10 = groups["10m"]
    srs10 = osr.SpatialReference(wkt=g10.grid.crs_wkt)
    if srs10.IsGeographic():
        raise RasterInputError(f"{g10.label} is in a geographic CRS (degrees): keep the product's UTM projection, "
                               f"since sharpening relies on the 10/20/60 m pixel relation in metres")
    p10 = g10.grid.pixel
    for key in ("20m", "60m"):
        group = groups.get(key)
        if group is None:
            continue
        srs = osr.SpatialReference(wkt=group.grid.crs_wkt)
        if not srs.IsSame(srs10):
            raise RasterInputError(
                f"{group.label} and {g10.label} are in different CRS ({_crs_name(srs)} vs {_crs_name(srs10)}): "
                f"all bands must share the product's CRS; use the bands of one Sentinel-2 tile, do not reproject")
        ratio = group.grid.pixel / p10
        if not math.isclose(ratio, group.ratio, rel_tol=1e-6):
            raise RasterInputError(
                f"{group.label} has {group.grid.pixel:g} m pixels and {g10.label} {p10:g} m: the ratio must be "
                f"{group.ratio} ({key} to 10m) but is {ratio:g}; pass the bands at their native resolution")
        dcol = (group.grid.x0 - g10.grid.x0) / p10
        drow = (g10.grid.y0 - group.grid.y0) / p10
        if abs(dcol - round(dcol)) > _ALIGN_TOLERANCE_PX or abs(drow - round(drow)) > _ALIGN_TOLERANCE_PX:
            raise RasterInputError(
                f"{group.label} is not aligned with {g10.label}: its origin lies {dcol:.3f}, {drow:.3f} 10 m pixels "
                f"from the 10 m grid, so its pixels do not cover whole {group.ratio}×{group.ratio} blocks of 10 m "
                f"pixels; use the original product bands or snap the grids (gdalwarp -tap -tr)")
        group.origin_10m = (int(round(dcol)), int(round(drow)))
    g20, g60 = groups.get("20m"), groups.get("60m")
    if g20 is not None and g60 is not None:
        for a, b in ((g60.origin_10m[0], g20.origin_10m[0]), (g60.origin_10m[1], g20.origin_10m[1])):
            if (a - b) % 2:
                raise RasterInputError(
                    f"{g60.label} is not aligned with {g20.label}: a 60 m pixel must cover exactly 3×3 20 m "
                    f"pixels; use the original product bands or snap the grids (gdalwarp -tap -tr)")


def _crs_name(srs: osr.SpatialReference) -> str:
    code = srs.GetAuthorityCode(None)
    return f"EPSG:{code}" if code else (srs.GetName() or "unknown CRS")


# ------------------------------------------------------------------------------- Sentinel-2 products
def resolve_product_path(path: str) -> str:
    """A .SAFE folder → its MTD_MSIL1C/2A.xml; a .zip or an MTD file → itself."""
    p = Path(path)
    if not p.exists():
        raise RasterInputError(f"the Sentinel-2 product {path!r} does not exist")
    if p.is_dir():
        for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
            if (p / name).is_file():
                return str(p / name)
        legacy = sorted(p.glob("S2*_OPER_MTD_SAFL*.xml"))
        if legacy:
            return str(legacy[0])
        raise RasterInputError(f"{path!r} is a folder without MTD_MSIL1C.xml or MTD_MSIL2A.xml: give the .SAFE folder "
                               f"of a Sentinel-2 L1C/L2A product, its .zip, or its MTD_MSIL*.xml file")
    return str(p)


def open_s2_product(path: str, band_names: dict[str, tuple[str, ...]], with_60m: bool = True) -> SentinelInputs:
    """A Sentinel-2 L1C or L2A product through GDAL's SENTINEL2 driver, as reflectance.

    Bands are found by their BANDNAME metadata (the 10 m subdataset is ordered B4, B3, B2, B8). Values become
    reflectance = (DN + offset) / quantification, with the offset (BOA_ADD_OFFSET for L2A, RADIO_ADD_OFFSET for
    L1C, processing baseline ≥ 04.00) read from the product XML because GDAL < 3.8 does not apply it. DN 0 is nodata.
    """
    source = resolve_product_path(path)
    ds, message = _gdal_call(lambda: gdal.OpenEx(str(source), gdal.OF_RASTER | gdal.OF_READONLY))
    if ds is None:  # an empty or foreign .zip, a corrupt MTD file: say what it is not, not just "unreadable"
        raise RasterInputError(f"PRODUCT {path!r} is not a Sentinel-2 L1C/L2A product GDAL can read: GDAL cannot "
                               f"open it ({message or 'unknown format'}). Give the .SAFE folder, its .zip as "
                               f"downloaded, or its MTD_MSIL1C.xml/MTD_MSIL2A.xml; for single rasters use "
                               f"INPUT_10M/INPUT_20M/INPUT_60M instead")
    driver = ds.GetDriver().ShortName
    if driver != "SENTINEL2":
        raise RasterInputError(f"{path!r} is not a Sentinel-2 L1C/L2A product (GDAL reads it as {driver}): give the "
                               f".SAFE folder, its .zip or MTD_MSIL1C.xml/MTD_MSIL2A.xml; for single-band files use "
                               f"INPUT_10M/INPUT_20M/INPUT_60M instead")
    subdatasets = _subdatasets_by_resolution(ds)
    if not subdatasets:
        raise RasterInputError(f"{path!r} opens as Sentinel-2 but lists no 10/20/60 m image data: the product is "
                               f"incomplete or corrupt (download it again)")
    epsgs = sorted(subdatasets)
    epsg = epsgs[0]
    warnings = []
    if len(epsgs) > 1:
        warnings.append(f"the product spans several UTM zones ({', '.join(epsgs)}); using {epsg}")
    keys = ("10m", "20m", "60m") if with_60m else ("10m", "20m")
    metadata_xml = _product_xml(ds, source)
    level = "L2A" if "L2A" in (ds.GetMetadataItem("PRODUCT_TYPE") or "") + source.upper() else "L1C"
    quantification, offsets, baseline = _radiometry(metadata_xml, level)
    groups = {}
    for key in keys:
        sub = subdatasets[epsg].get(key)
        if sub is None:
            raise RasterInputError(f"the product has no {key} image data for {epsg}: it is incomplete or corrupt")
        sub_label = f"PRODUCT {key} bands"
        sds = _open(sub, sub_label)
        found = [(sds.GetRasterBand(i).GetMetadataItem("BANDNAME") or "").upper()
                 for i in range(1, sds.RasterCount + 1)]
        found = [s2_band_name(n) for n in found]
        missing = [n for n in band_names[key] if n not in found]
        if missing:
            raise RasterInputError(f"the product's {key} data lacks band(s) {', '.join(missing)}: the product is "
                                   f"incomplete or corrupt (download it again)")
        indexes = [found.index(n) + 1 for n in band_names[key]]
        groups[key] = BandGroup(
            key, sub_label, sub, _grid_of(sds, sub_label), tuple(band_names[key]), indexes,
            scales=[1.0 / quantification] * len(indexes),
            offsets=[offsets.get(n, 0.0) / quantification for n in band_names[key]],
            zero_is_nodata=True)
    check_grid_relation(groups)
    scene = ds.GetMetadataItem("PRODUCT_URI") or Path(path.rstrip("/\\")).name
    scene = re.sub(r"\.(SAFE|zip)$", "", scene, flags=re.IGNORECASE)
    applied = {n: offsets.get(n, 0.0) for n in sorted(set(sum((list(v) for v in band_names.values()), [])))}
    provenance = {
        "PRODUCT": scene, "PRODUCT_LEVEL": level, "PROCESSING_BASELINE": baseline or "unknown",
        "QUANTIFICATION_VALUE": f"{quantification:g}",
        "ADD_OFFSET_APPLIED": ", ".join(f"{n}={v:g}" for n, v in applied.items()),
        "PRODUCT_CRS": epsg,
    }
    units = (f"{'surface (BOA)' if level == 'L2A' else 'top-of-atmosphere'} reflectance (0–1): "
             f"(DN + offset) / {quantification:g}")
    return SentinelInputs(groups, scene, units, provenance, warnings)


def _subdatasets_by_resolution(ds: gdal.Dataset) -> dict[str, dict[str, str]]:
    """{'EPSG_32634': {'10m': name, '20m': name, '60m': name}} from the SUBDATASETS domain."""
    result: dict[str, dict[str, str]] = {}
    for key, value in (ds.GetMetadata("SUBDATASETS") or {}).items():
        if not key.endswith("_NAME"):
            continue
        match = re.search(r":(10m|20m|60m):(EPSG_\d+)$", value)
        if match:
            result.setdefault(match.group(2), {})[match.group(1)] = value
    return result


def _product_xml(ds: gdal.Dataset, source: str) -> ET.Element | None:
    text = (ds.GetMetadata("xml:SENTINEL2") or [None])[0]
    if text is None and source.lower().endswith(".xml"):
        text = Path(source).read_text(encoding="utf-8", errors="replace")
    if not text:
        return None
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        raise RasterInputError(f"the product's metadata XML is corrupt ({e}): download the product again") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _radiometry(root: ET.Element | None, level: str) -> tuple[float, dict[str, float], str | None]:
    """(quantification value, {band: additive offset in DN}, processing baseline) from the product XML."""
    quantification, offsets, baseline = 10000.0, {}, None
    if root is None:
        return quantification, offsets, baseline
    wanted_q = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    wanted_offset = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    for element in root.iter():
        tag = _local(element.tag)
        if tag == wanted_q and element.text:
            quantification = float(element.text)
        elif tag == wanted_offset and element.text:
            band_id = int(element.get("band_id", element.get("bandId", -1)))
            if 0 <= band_id < len(PRODUCT_BAND_IDS):
                offsets[PRODUCT_BAND_IDS[band_id]] = float(element.text)
        elif tag == "PROCESSING_BASELINE" and element.text:
            baseline = element.text.strip()
    if quantification <= 0:
        raise RasterInputError(f"the product's {wanted_q} is {quantification}: the metadata is corrupt")
    return quantification, offsets, baseline


# ----------------------------------------------------------------------------------- area, reading
def plan_area(inputs: SentinelInputs, extent: tuple[float, float, float, float] | None = None) -> Window:
    """The processed window on the 10 m grid: the data common to all inputs (∩ `extent`, snapped outwards),
    with edges on the coarsest grid so that it maps to whole 20 m and 60 m pixels."""
    g10 = inputs.groups["10m"]
    coarse = inputs.coarsest
    step, (oc, orow) = coarse.ratio, coarse.origin_10m
    c0, r0, c1, r1 = -math.inf, -math.inf, math.inf, math.inf
    for group in inputs.groups.values():
        gc, gr = group.origin_10m
        c0, r0 = max(c0, gc), max(r0, gr)
        c1, r1 = min(c1, gc + group.grid.width * group.ratio), min(r1, gr + group.grid.height * group.ratio)
    common = (c1 - c0, r1 - r0)
    c0, c1 = oc + math.ceil((c0 - oc) / step) * step, oc + math.floor((c1 - oc) / step) * step
    r0, r1 = orow + math.ceil((r0 - orow) / step) * step, orow + math.floor((r1 - orow) / step) * step
    if c1 <= c0 or r1 <= r0:
        inputs_named = " and ".join(f"{k[:-1]} m" for k in inputs.groups)
        if common[0] > 0 and common[1] > 0:
            raise RasterInputError(
                f"the {inputs_named} inputs have only {common[0]}×{common[1]} 10 m pixels in common, less than one "
                f"{coarse.key[:-1]} m pixel ({step}×{step} 10 m pixels), let alone the smallest area that can be "
                f"sharpened (docs/plugin.md, 'Smallest area'): give inputs that cover a larger common area")
        raise RasterInputError(f"the {inputs_named} inputs do not overlap: use bands of the same scene and area")
    data = (c0, r0, c1, r1)
    if extent is not None:
        xmin, ymin, xmax, ymax = extent
        p = g10.grid.pixel
        check_extent(extent, p, "10 m")
        ec0 = (xmin - g10.grid.x0) / p
        ec1 = (xmax - g10.grid.x0) / p
        er0 = (g10.grid.y0 - ymax) / p
        er1 = (g10.grid.y0 - ymin) / p
        ec0, ec1 = oc + math.floor((ec0 - oc) / step) * step, oc + math.ceil((ec1 - oc) / step) * step
        er0, er1 = orow + math.floor((er0 - orow) / step) * step, orow + math.ceil((er1 - orow) / step) * step
        c0, c1, r0, r1 = max(c0, ec0), min(c1, ec1), max(r0, er0), min(r1, er1)
        if c1 <= c0 or r1 <= r0:
            gx0, gy1 = g10.grid.x0 + data[0] * p, g10.grid.y0 - data[1] * p
            gx1, gy0 = g10.grid.x0 + data[2] * p, g10.grid.y0 - data[3] * p
            raise RasterInputError(
                f"the extent ({xmin:.1f}, {ymin:.1f}, {xmax:.1f}, {ymax:.1f}) lies outside the data, which covers "
                f"({gx0:.1f}, {gy0:.1f}, {gx1:.1f}, {gy1:.1f}) in the inputs' CRS: choose an extent inside the image")
    return Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0))


def check_extent(extent: tuple[float, float, float, float], pixel: float, grid_name: str) -> None:
    """An extent must span at least one pixel of the output grid each way: a zero-width box was once read as "no
    extent" and the whole image processed (hours on a full tile)."""
    xmin, ymin, xmax, ymax = extent
    width, height = xmax - xmin, ymax - ymin
    box = f"({xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g})"
    if not (width > 0 and height > 0):
        raise RasterInputError(f"the extent {box} has no area (xmin ≥ xmax or ymin ≥ ymax): give xmin < xmax and "
                               f"ymin < ymax, in the inputs' CRS or with its [EPSG:code]")
    if width < pixel or height < pixel:
        raise RasterInputError(f"the extent {box} is {width:.4g} × {height:.4g} map units, smaller than one "
                               f"{grid_name} pixel ({pixel:g}): choose a larger extent; if it is in another CRS "
                               f"(degrees?), say so, e.g. '{box[1:-1]} [EPSG:4326]'")


def group_window(group: BandGroup, window_10m: Window) -> Window:
    """The window of `group`'s own grid that covers `window_10m` (which must lie on the group's grid)."""
    gc, gr = group.origin_10m
    r = group.ratio
    return Window((window_10m.col - gc) // r, (window_10m.row - gr) // r, window_10m.width // r, window_10m.height // r)


def read_group(group: BandGroup, window_10m: Window) -> tuple[np.ndarray, np.ndarray]:
    """(values (bands, rows, cols) float64 in output units, invalid (rows, cols) bool) of one resolution group.

    A pixel is invalid when any band is nodata (band nodata value, mask or alpha), NaN, or DN 0 in products.
    """
    return read_bands(group.path, group.label, group.band_indexes, group.scales, group.offsets,
                      group_window(group, window_10m), group.zero_is_nodata)


def read_bands(path: str, label: str, band_indexes: list[int], scales: list[float], offsets: list[float],
               win: Window, zero_is_nodata: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(values (bands, rows, cols) float64 = DN·scale + offset, invalid (rows, cols) bool) of a window of
    some bands of one raster. A pixel is invalid when any band is nodata (nodata value, mask or alpha), NaN,
    or 0 when `zero_is_nodata`."""
    ds = _open(path, label)
    values = np.empty((len(band_indexes), win.height, win.width), dtype=np.float64)
    invalid = np.zeros((win.height, win.width), dtype=bool)
    for k, (index, scale, offset) in enumerate(zip(band_indexes, scales, offsets)):
        band = ds.GetRasterBand(index)
        raw = band.ReadAsArray(win.col, win.row, win.width, win.height)
        if raw is None:
            raise RasterInputError(f"{label}: reading band {index} failed ({gdal.GetLastErrorMsg()}); "
                                   f"the file may be truncated or corrupt")
        raw = raw.astype(np.float64)
        if band.GetMaskFlags() != gdal.GMF_ALL_VALID:
            invalid |= band.GetMaskBand().ReadAsArray(win.col, win.row, win.width, win.height) == 0
        if zero_is_nodata:
            invalid |= raw == 0
        invalid |= ~np.isfinite(raw)
        values[k] = raw * scale + offset
    return values, invalid


# ------------------------------------------------------------------------------------------ writing
def output_grid(inputs: SentinelInputs, window: Window) -> Grid:
    """The 10 m grid of the processed window: the input's CRS and alignment, origin moved to the window."""
    g = inputs.grid_10m
    p = g.pixel
    gt = (g.x0 + window.col * p, p, 0.0, g.y0 - window.row * p, 0.0, -p)
    return Grid(g.crs_wkt, gt, window.width, window.height)


def output_block_size(step: int, target: int = 256) -> int:
    """The GeoTIFF block side for outputs whose tiles have edges on multiples of `step` pixels: a multiple of
    16 (TIFF) and of `step`, near `target` (256 for 4, 240 for Sentinel-2's 6 or a ratio of 3)."""
    unit = math.lcm(16, max(1, int(step)))
    return unit * max(1, round(target / unit))


class GeoTiffWriter:
    """A Float32, tiled, DEFLATE-compressed GeoTIFF written into a temporary file beside `target`
    (`safe_output.StagedFile`) and renamed over it by `commit`.

    Every GDAL call is checked, by its return code and by GDAL's last error: GDAL reports a full disk or an I/O
    error as an error message and carries on, so an unchecked writer would rename a truncated file over a good one.
    `finish()` closes the file, re-opens it and reads every pixel back (`validate_geotiff`); `commit()` then renames
    it. Use as a context manager: leaving the block by an exception (error or cancel) deletes the temporary file
    and leaves the target untouched.
    `flush()` after each written tile hands its blocks to the file and frees them from GDAL's cache, so memory
    does not grow with the output (tiles planned with `align=block` write whole blocks).
    """

    def __init__(self, target: str, grid: Grid, band_descriptions: list[str], nodata: float = OUTPUT_NODATA,
                 block: int = 256, label: str = "OUTPUT"):
        self.target = Path(target)
        self.label = label
        self.grid = grid
        self.bands = len(band_descriptions)
        self.staged = StagedFile(target, label)
        self.partial = self.staged.path
        self.nodata = nodata
        self._ds = None
        # ZLEVEL=1: a tile's 12 bands compress in 0.32 s instead of 0.55 s (the default level 6), the file 0.7 %
        # larger (docs/decisions.md, "The first estimate on whole tiles")
        options = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "COMPRESS=DEFLATE", "PREDICTOR=3",
                   "ZLEVEL=1", "BIGTIFF=IF_SAFER", "INTERLEAVE=BAND"]
        try:
            ds = self._checked("creating the file", lambda: gdal.GetDriverByName("GTiff").Create(
                str(self.partial), grid.width, grid.height, self.bands, gdal.GDT_Float32, options))
            if ds is None:
                raise self._failure("creating the file", "GDAL could not create it")
            self._ds = ds
            self._checked("setting the georeferencing", lambda: ds.SetGeoTransform(grid.geotransform))
            self._checked("setting the CRS", lambda: ds.SetProjection(grid.crs_wkt))
            for i, description in enumerate(band_descriptions, start=1):
                band = ds.GetRasterBand(i)
                self._checked("describing the bands", partial(band.SetDescription, description))
                self._checked("setting nodata", partial(band.SetNoDataValue, nodata))
        except BaseException:
            self.discard()
            raise

    def _failure(self, action: str, message: str) -> RasterOutputError:
        reason = _write_limit(self.target)
        advice = f": {reason}" if reason else "; check that the disk is not full and the folder is writable"
        return write_failure(self.target, self.label, f"GDAL failed while {action} ({message})" + advice)

    def _checked(self, action: str, call):
        """`call()`, raising RasterOutputError when it returns an error code or GDAL recorded an error meanwhile
        (whether or not some other code enabled gdal.UseExceptions()). The message quotes every error GDAL raised:
        GDAL 3.10 reports the operating system's reason ("No space left on device") apart from its last error."""
        errors = []

        def collect(error_class, number, message):
            if error_class >= gdal.CE_Failure and message not in errors:
                errors.append(message)

        gdal.ErrorReset()
        gdal.PushErrorHandler(collect)
        try:
            result = call()
        except RuntimeError as e:
            raise self._failure(action, "; ".join(errors + [str(e)] if str(e) not in errors else errors)) from None
        finally:
            gdal.PopErrorHandler()
        if (type(result) is int and result != gdal.CE_None) or gdal.GetLastErrorType() >= gdal.CE_Failure or errors:
            raise self._failure(action, "; ".join(errors) or gdal.GetLastErrorMsg() or f"error code {result}")
        return result

    def write(self, array: np.ndarray, col: int, row: int) -> None:
        """Write (bands, rows, cols) at pixel offset (col, row) of the output."""
        for i in range(array.shape[0]):
            band = self._ds.GetRasterBand(i + 1)
            data = np.asarray(array[i], dtype=np.float32)
            self._checked(f"writing band {i + 1}", partial(band.WriteArray, data, col, row))

    def flush(self) -> None:
        self._checked("writing tiles to disk", self._ds.FlushCache)

    def set_metadata(self, dataset: dict[str, str], bands: list[dict[str, str]] | None = None,
                     domain: str = "") -> None:
        """Dataset and per-band metadata items of one metadata domain ('' = the default domain)."""
        ds = self._ds
        if dataset:
            self._checked("writing metadata", lambda: ds.SetMetadata({k: str(v) for k, v in dataset.items()}, domain))
        for i, items in enumerate(bands or [], start=1):
            if items:
                band = ds.GetRasterBand(i)
                self._checked("writing band metadata",
                              partial(band.SetMetadata, {k: str(v) for k, v in items.items()}, domain))

    def finish(self) -> str:
        """Flush and close the file (errors checked), sync it to disk, re-open it and validate it
        (`validate_geotiff`). Returns the temporary file's path: readable, not yet in place."""
        self.flush()
        gdal.ErrorReset()
        self._ds = None   # closes the dataset: GDAL writes the last blocks and the TIFF directory now
        if gdal.GetLastErrorType() >= gdal.CE_Failure:
            raise self._failure("closing the file", gdal.GetLastErrorMsg())
        self.staged.sync()
        validate_geotiff(str(self.partial), self.grid.width, self.grid.height, self.bands, self.target, self.label)
        return str(self.partial)

    def commit(self) -> str:
        """Finish (if not done) and rename the validated file over the target; returns the target's path."""
        if self._ds is not None:
            self.finish()
        path = self.staged.commit()
        remove_file(Path(path + ".aux.xml"))  # statistics of an older file by the same name would be wrong now
        self.committed = True
        return path

    committed = False

    def discard(self) -> None:
        self._ds = None   # a failed close here changes nothing: the file is deleted next
        self.staged.discard()

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.discard()


def validate_geotiff(path: str, width: int, height: int, bands: int, target=None, label: str = "OUTPUT") -> None:
    """Re-open a written GeoTIFF and read every pixel back: it must have the planned size and band count and hold
    finite values only (nodata is −9999). Catches truncated files and failed writes that GDAL did not report
    where they happened, so that such a file never replaces a good one."""
    target = target or path

    def fail(reason: str) -> RasterOutputError:
        return write_failure(target, label, f"the written file does not read back correctly ({reason}); check that "
                                            f"the disk is not full")

    ds, message = _gdal_call(lambda: gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY))
    if ds is None:
        raise fail(f"GDAL cannot open it: {message or 'unknown error'}")
    found = (ds.RasterXSize, ds.RasterYSize, ds.RasterCount)
    if found != (width, height, bands):
        raise fail(f"{found[0]}×{found[1]} px and {found[2]} bands instead of {width}×{height} px and {bands} bands")
    rows = max(1, ds.GetRasterBand(1).GetBlockSize()[1])
    for i in range(1, bands + 1):
        band = ds.GetRasterBand(i)
        for row in range(0, height, rows):
            count = min(rows, height - row)
            gdal.ErrorReset()
            data, message = _gdal_call(partial(band.ReadAsArray, 0, row, width, count))
            if data is None or gdal.GetLastErrorType() >= gdal.CE_Failure:
                raise fail(f"band {i}, rows {row}–{row + count}: {message or 'unreadable'}")
            if not np.isfinite(data).all():
                raise fail(f"band {i} holds NaN or infinite values")


def read_group_overview(group: BandGroup, window_10m: Window, band_names: list[str], size: tuple[int, int]
                        ) -> np.ndarray:
    """Some bands of a group over `window_10m`, resampled (nearest) to `size` = (cols, rows), output units."""
    picks = [group.names.index(name) for name in band_names]
    return read_bands_overview(group.path, group.label, [group.band_indexes[k] for k in picks],
                               [group.scales[k] for k in picks], [group.offsets[k] for k in picks],
                               group_window(group, window_10m), size, group.zero_is_nodata)


def read_bands_overview(path: str, label: str, band_indexes: list[int], scales: list[float], offsets: list[float],
                        win: Window, size: tuple[int, int], zero_is_nodata: bool = False) -> np.ndarray:
    """Some bands of a raster window resampled (nearest) to `size` = (cols, rows), as DN·scale + offset;
    nodata (the band's nodata value, or 0 when `zero_is_nodata`) becomes NaN."""
    ds = _open(path, label)
    out = []
    for index, scale, offset in zip(band_indexes, scales, offsets):
        band = ds.GetRasterBand(index)
        raw = band.ReadAsArray(win.col, win.row, win.width, win.height, buf_xsize=size[0], buf_ysize=size[1])
        values = raw.astype(np.float64) * scale + offset
        nodata = band.GetNoDataValue()
        if zero_is_nodata:
            values[raw == 0] = np.nan
        if nodata is not None:
            values[raw == nodata] = np.nan
        out.append(values)
    return np.stack(out)


def read_overview(path: str, band_numbers: list[int], size: tuple[int, int]) -> np.ndarray:
    """Bands of a raster resampled (nearest) to `size` = (cols, rows); nodata becomes NaN."""
    ds = _open(path, path)
    out = []
    for number in band_numbers:
        band = ds.GetRasterBand(number)
        values = band.ReadAsArray(buf_xsize=size[0], buf_ysize=size[1]).astype(np.float64)
        nodata = band.GetNoDataValue()
        if nodata is not None:
            values[values == nodata] = np.nan
        out.append(values)
    return np.stack(out)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (3, rows, cols) uint8 image as PNG."""
    mem_path = f"/vsimem/sure_fusion_{uuid.uuid4().hex}.png"
    mem = gdal.GetDriverByName("MEM").Create("", rgb.shape[2], rgb.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(rgb[i])
    gdal.GetDriverByName("PNG").CreateCopy(mem_path, mem)
    try:
        handle = gdal.VSIFOpenL(mem_path, "rb")
        size = gdal.VSIStatL(mem_path).size
        data = gdal.VSIFReadL(1, size, handle)
        gdal.VSIFCloseL(handle)
    finally:
        gdal.Unlink(mem_path)
    return bytes(data)


def write_png(path: str, rgb: np.ndarray) -> str:
    Path(path).write_bytes(png_bytes(rgb))
    return str(path)


def read_raster(path: str) -> tuple[np.ndarray, Grid, list[str], dict[str, str]]:
    """A whole raster as (bands, rows, cols) float64, its grid, band descriptions and metadata (tests, demo)."""
    ds = _open(path, path)
    data = ds.ReadAsArray().astype(np.float64)
    if data.ndim == 2:
        data = data[None]
    descriptions = [ds.GetRasterBand(i).GetDescription() for i in range(1, ds.RasterCount + 1)]
    return data, _grid_of(ds, path, square=False), descriptions, ds.GetMetadata() or {}


def write_simple_geotiff(path: str, data: np.ndarray, geotransform, crs_wkt: str, descriptions=None,
                         nodata: float | None = None, gdal_type=gdal.GDT_UInt16) -> str:
    """A small GeoTIFF (tests, the demo sample): (bands, rows, cols) with CRS, geotransform and descriptions."""
    predictor = "3" if gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64) else "2"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0], gdal_type,
                                              ["COMPRESS=DEFLATE", f"PREDICTOR={predictor}", "INTERLEAVE=BAND"])
    ds.SetGeoTransform(tuple(geotransform))
    ds.SetProjection(crs_wkt)
    for i in range(data.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(data[i])
        if descriptions:
            band.SetDescription(descriptions[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds.FlushCache()
    del ds
    return str(path)


def epsg_wkt(code: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    return srs.ExportToWkt()
