"""Checks the dialogs make on the chosen layers alone, before a run: inputs swapped, or one layer chosen twice.

They run in checkParameterValues, so QGIS shows them when Run is pressed, before anything is read or trained
(qgis_process runs them too); the run's own checks (s2_inputs, pair_inputs, raster_stack) stay the authority on
everything else.
"""
from __future__ import annotations

from osgeo import gdal
from qgis.core import QgsUnitTypes

from .core_loader import core_module
from .s2_inputs import band_names_of


def pixel_size(layer) -> str:
    """'20 m': the layer's pixel width with the unit of its CRS."""
    return f"{layer.rasterUnitsPerPixelX():g} {QgsUnitTypes.toAbbreviatedString(layer.crs().mapUnits())}".strip()


def _s2_band_names(layer) -> list[str]:
    try:
        ds = gdal.Open(layer.source())
    except RuntimeError:
        ds = None
    return [n for n in (band_names_of(ds) if ds is not None else []) if n]


def _described(label: str, layer, names: list[str]) -> str:
    bands = f" and bands {', '.join(names)}" if names else ""
    return f"'{label}' ({layer.name()}) has {pixel_size(layer)} pixels{bands}"


def swapped_s2_layers(given: dict[str, tuple[str, object]]) -> str | None:
    """A message when two Sentinel-2 band layers look swapped, by their band names or their pixel sizes; `given`
    maps '10m', '20m', '60m' to (the input's label, its QgsRasterLayer)."""
    s2 = core_module("sentinel2")
    groups = {"10m": set(s2.GROUP_10M), "20m": set(s2.GROUP_20M), "60m": set(s2.GROUP_60M)}
    names = {key: _s2_band_names(layer) for key, (_, layer) in given.items()}
    keys = [k for k in ("10m", "20m", "60m") if k in given]
    for i, finer in enumerate(keys):
        for coarser in keys[i + 1:]:
            (label_a, a), (label_b, b) = given[finer], given[coarser]
            by_names = (names[finer] and set(names[finer]) <= groups[coarser]
                        and names[coarser] and set(names[coarser]) <= groups[finer])
            if by_names or a.rasterUnitsPerPixelX() > b.rasterUnitsPerPixelX():
                return (f"The {finer[:-1]} m and {coarser[:-1]} m layers look swapped: "
                        f"{_described(label_a, a, names[finer])}, {_described(label_b, b, names[coarser])}. "
                        f"Choose them the other way round.")
    return None


def pair_layers_problem(low_label: str, low, high_label: str, high, single_band_high: bool) -> str | None:
    """A message when the two layers of a fusion are one and the same, or look swapped (the coarse layer has the
    smaller pixels, or a one-band layer went where the multi-band one belongs)."""
    if low.source() == high.source():
        return (f"The same layer ({low.name()}) is chosen for '{low_label}' and '{high_label}': choose two "
                f"different layers.")
    looks_swapped = low.rasterUnitsPerPixelX() < high.rasterUnitsPerPixelX() or (
        single_band_high and high.bandCount() > 1 and low.bandCount() == 1)
    if looks_swapped:
        return (f"The layers look swapped: '{low_label}' ({low.name()}) has {pixel_size(low)} pixels and "
                f"{low.bandCount()} band(s), '{high_label}' ({high.name()}) {pixel_size(high)} pixels and "
                f"{high.bandCount()} band(s). Choose them the other way round.")
    return None
