"""Sentinel-2 inputs through GDAL: the 10/20/60 m bands as separate rasters (layers or files), or a product
(.SAFE folder, .zip or MTD_MSIL1C/2A.xml) through GDAL's SENTINEL2 driver. Bands are picked by name, scaled to
the output unit (reflectance for products), and the three grids put on the 10 m lattice (`raster_stack`).
No QGIS, no torch.

Errors are `RasterInputError`s with messages meant for the end user.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from osgeo import gdal, osr

from .io_errors import RasterInputError
from .raster_stack import (
    Grid,
    OpenedInputs,
    RasterSource,
    RasterStack,
    band_scaling,
    gdal_call,
    grid_of,
    open_dataset,
)

#: Band numbering of Sentinel-2 product metadata (band_id attributes): 0 = B1 … 12 = B12.
PRODUCT_BAND_IDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
GROUP_RATIOS = {"10m": 1, "20m": 2, "60m": 6}
_GROUP_OF_RATIO = {ratio: key for key, ratio in GROUP_RATIOS.items()}
_S2_BAND_NAME = re.compile(r"^\s*B0?(8A|1[0-2]|[1-9])(?![0-9A-Za-z])", re.IGNORECASE)
_GEOREFERENCE_HINT = "the 10/20/60 m bands must carry their map coordinates, e.g. the GeoTIFFs or JP2 of the product"


class SentinelInputs(OpenedInputs):
    """The resolution groups ('10m', '20m'[, '60m']) of one scene: a stack on the 10 m lattice whose sources'
    `names` are the core's band names."""

    @property
    def groups(self) -> dict[str, RasterSource]:
        return {_GROUP_OF_RATIO[source.ratio]: source for source in self.stack.sources}

    @property
    def grid_10m(self) -> Grid:
        return self.stack.grid

    @classmethod
    def on_lattice(cls, groups: dict[str, RasterSource], scene_name: str, units: str,
                   provenance: dict[str, str], warnings: list[str] | None = None) -> SentinelInputs:
        """The groups checked against one 10 m lattice: one projected CRS, pixel sizes 1:2:6, every coarse pixel
        covering whole finer pixels, and a common area."""
        g10 = groups["10m"]
        if osr.SpatialReference(wkt=g10.grid.crs_wkt).IsGeographic():
            raise RasterInputError(f"{g10.label} is in a geographic CRS (degrees): keep the product's UTM projection, "
                                   f"since sharpening relies on the 10/20/60 m pixel relation in metres")
        keys = [k for k in GROUP_RATIOS if k in groups]
        stack = RasterStack.on_lattice([groups[k] for k in keys], [GROUP_RATIOS[k] for k in keys])
        return cls(stack, scene_name, units, provenance, list(warnings or []))


def s2_band_name(text: str | None) -> str | None:
    """'B8A', 'B04', 'B4, central wavelength 665 nm', 'B5 (704 nm)' → 'B8A', 'B4', 'B4', 'B5'; else None."""
    match = _S2_BAND_NAME.match(text or "")
    return f"B{match.group(1).upper()}" if match else None


def band_names_of(ds: gdal.Dataset) -> list[str | None]:
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
    found = band_names_of(ds)
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
        ds = open_dataset(path, label)
        others = {f"{k[:-1]} m": names for k, names in band_names.items() if k != key}
        indexes, warning = _select_bands(ds, band_names[key], label, others)
        warnings += [warning] if warning else []
        scales, offsets = band_scaling(ds, indexes)
        any_scaled |= any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets)
        groups[key] = RasterSource(label, str(path), grid_of(ds, label, _GEOREFERENCE_HINT, square=True), indexes,
                                   scales, offsets, tuple(band_names[key]))
    for key in ("10m", "20m"):
        if key not in groups:
            raise RasterInputError(f"the {key} bands are required (or give a Sentinel-2 product instead)")
    name = scene_name or Path(str(paths["10m"]).split("|")[0]).stem
    units = "input units with band scale/offset applied" if any_scaled else "input units (as stored)"
    return SentinelInputs.on_lattice(groups, name, units,
                                     {"INPUTS": "; ".join(f"{k}={g.path}" for k, g in groups.items())}, warnings)


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
    ds, message = gdal_call(lambda: gdal.OpenEx(str(source), gdal.OF_RASTER | gdal.OF_READONLY))
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
        sds = open_dataset(sub, sub_label)
        found = [(sds.GetRasterBand(i).GetMetadataItem("BANDNAME") or "").upper()
                 for i in range(1, sds.RasterCount + 1)]
        found = [s2_band_name(n) for n in found]
        missing = [n for n in band_names[key] if n not in found]
        if missing:
            raise RasterInputError(f"the product's {key} data lacks band(s) {', '.join(missing)}: the product is "
                                   f"incomplete or corrupt (download it again)")
        indexes = [found.index(n) + 1 for n in band_names[key]]
        groups[key] = RasterSource(
            sub_label, sub, grid_of(sds, sub_label, _GEOREFERENCE_HINT, square=True), indexes,
            scales=[1.0 / quantification] * len(indexes),
            offsets=[offsets.get(n, 0.0) / quantification for n in band_names[key]],
            names=tuple(band_names[key]), zero_is_nodata=True)
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
    return SentinelInputs.on_lattice(groups, scene, units, provenance, warnings)


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


