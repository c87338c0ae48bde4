"""Spectral response R (multispectral band ← hyperspectral bands) from sensor band tables or a user matrix.

Three ways to obtain R without looking at the images (the fourth, estimating R from the two images by
non-negative least squares, lives in `pair_fusion.estimate_response`):

* **Gaussian responses** (`gaussian_response`): each band of each sensor is modelled as a Gaussian in
  wavelength with the band's centre and full width at half maximum (FWHM). MS band g sees HS band l in
  proportion to the overlap ∫ s_g(λ) h_l(λ) dλ of the two Gaussians; rows are normalised to sum to 1, so
  a flat spectrum keeps its value. MS bands that the HS bands do not cover raise an error naming them.
* **Presets** (`preset_bands`): Sentinel-2 MSI (B1…B12 without the cirrus band B10) and Landsat 8/9 OLI
  (B1…B7 and the panchromatic B8).
* **CSV files**: `parse_band_table` reads a generic band table (one band per row: wavelength, FWHM, an
  optional name first), in nm or µm; `parse_response_matrix` reads and checks a G × L matrix.

Pure Python/numpy; the parsers take the CSV text or a path to the file.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import sentinel2
from .errors import InputShapeError, InvalidInputValueError

#: Share of an MS band's response that must fall where HS bands exist; below it the band is "not covered".
MIN_COVERAGE = 0.5
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class BandTable:
    """Centre wavelengths and FWHMs (nm) of a sensor's bands, with names for messages."""

    centres_nm: np.ndarray
    fwhm_nm: np.ndarray
    names: tuple[str, ...] = ()
    note: str = field(default="", compare=False)   # how the table was read (e.g. the unit detected)

    def __post_init__(self):
        centres = np.atleast_1d(np.asarray(self.centres_nm, dtype=np.float64))
        fwhm = np.atleast_1d(np.asarray(self.fwhm_nm, dtype=np.float64))
        if fwhm.size == 1 and centres.size > 1:
            fwhm = np.full_like(centres, float(fwhm[0]))
        if centres.ndim != 1 or centres.size == 0:
            raise InputShapeError(f"band centres must be a non-empty list of wavelengths, got shape {centres.shape}")
        if fwhm.shape != centres.shape:
            raise InputShapeError(f"{centres.size} band centres but {fwhm.size} FWHM values: give one FWHM per band "
                                  "(or a single FWHM for all bands)")
        if not (np.isfinite(centres).all() and np.isfinite(fwhm).all()):
            raise InvalidInputValueError("band centres and FWHMs must be finite numbers (no NaN or empty values)")
        if (centres <= 0).any() or (fwhm <= 0).any():
            raise InvalidInputValueError("band centres and FWHMs must be positive wavelengths in nm")
        names = tuple(self.names) if self.names else tuple(f"band {i + 1}" for i in range(centres.size))
        if len(names) != centres.size:
            raise InputShapeError(f"{centres.size} bands but {len(names)} band names")
        object.__setattr__(self, "centres_nm", centres)
        object.__setattr__(self, "fwhm_nm", fwhm)
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return self.centres_nm.size

    def subset(self, names) -> BandTable:
        """The bands called `names`, in that order (KeyError-free: unknown names raise InvalidInputValueError)."""
        index = {n.upper(): i for i, n in enumerate(self.names)}
        missing = [n for n in names if str(n).upper() not in index]
        if missing:
            raise InvalidInputValueError(f"unknown band name(s) {missing}; this table has {list(self.names)}")
        rows = [index[str(n).upper()] for n in names]
        return BandTable(self.centres_nm[rows], self.fwhm_nm[rows], tuple(self.names[i] for i in rows), self.note)


# ------------------------------------------------------------------------------------------------------------------
# presets
# ------------------------------------------------------------------------------------------------------------------
#: Sentinel-2A MSI spectral bandwidths (nm) per ESA's S2 spectral response summary (MSI technical guide);
#: the centres are those of `sentinel2.BANDS`. B10 (cirrus, 1373.5 nm) is not in the band table.
SENTINEL2_FWHM_NM = {"B1": 21.0, "B2": 66.0, "B3": 36.0, "B4": 31.0, "B5": 15.0, "B6": 15.0, "B7": 20.0,
                     "B8": 106.0, "B8A": 21.0, "B9": 20.0, "B11": 91.0, "B12": 175.0}

#: Landsat OLI bands: (name, centre nm, FWHM nm) of the band-average relative spectral responses published
#: by NASA for OLI-2 (Landsat 9, a clone of Landsat 8's OLI, whose figures differ by about a nanometre).
LANDSAT_OLI_BANDS = (("B1", 442.81, 15.51), ("B2", 481.89, 59.87), ("B3", 560.95, 56.50), ("B4", 654.32, 36.88),
                     ("B5", 864.64, 28.77), ("B6", 1608.15, 86.15), ("B7", 2200.12, 189.48), ("B8", 589.32, 172.47))


def _sentinel2_table() -> BandTable:
    bands = sentinel2.BANDS
    return BandTable(np.array([b.centre_nm for b in bands]), np.array([SENTINEL2_FWHM_NM[b.name] for b in bands]),
                     tuple(b.name for b in bands), "Sentinel-2A MSI (ESA band centres and bandwidths)")


def _landsat_table() -> BandTable:
    return BandTable(np.array([b[1] for b in LANDSAT_OLI_BANDS]), np.array([b[2] for b in LANDSAT_OLI_BANDS]),
                     tuple(b[0] for b in LANDSAT_OLI_BANDS), "Landsat 8/9 OLI (NASA band-average responses)")


_PRESETS = {"sentinel2": _sentinel2_table, "landsat_oli": _landsat_table}
_ALIASES = {"s2": "sentinel2", "sentinel-2": "sentinel2", "sentinel2_msi": "sentinel2", "msi": "sentinel2",
            "landsat8": "landsat_oli", "landsat9": "landsat_oli", "landsat-8": "landsat_oli",
            "landsat-9": "landsat_oli", "landsat": "landsat_oli", "oli": "landsat_oli", "l8": "landsat_oli",
            "l9": "landsat_oli"}
PRESET_NAMES = tuple(_PRESETS)


def preset_bands(sensor: str, bands=None) -> BandTable:
    """The band table of a known MS sensor ('sentinel2' or 'landsat_oli'; 'landsat8'/'landsat9'/'s2' work too).

    `bands` picks and orders bands by name (e.g. ['B2', 'B3', 'B4', 'B8']) to match the MS image's bands;
    by default all bands in the table's order (S2: spectral order without B10; OLI: B1…B7, B8).
    """
    key = str(sensor).strip().lower().replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in _PRESETS:
        raise InvalidInputValueError(f"unknown MS sensor preset {sensor!r}: use one of {list(PRESET_NAMES)} "
                                     "or give the MS band wavelengths and FWHMs")
    table = _PRESETS[key]()
    return table if bands is None else table.subset(list(bands))


# ------------------------------------------------------------------------------------------------------------------
# Gaussian responses
# ------------------------------------------------------------------------------------------------------------------
def _as_table(table_or_centres, fwhm=None, what: str = "bands") -> BandTable:
    if isinstance(table_or_centres, BandTable):
        return table_or_centres
    if table_or_centres is None or fwhm is None:
        raise InvalidInputValueError(f"the {what} need both centre wavelengths and FWHMs")
    return BandTable(table_or_centres, fwhm)


def band_coverage(hs: BandTable, ms: BandTable, step_nm: float = 0.5) -> np.ndarray:
    """Per MS band, the share of its Gaussian response lying where the HS bands sample the spectrum.

    A wavelength counts as sampled when it lies within one FWHM of an HS band centre, so the usual gaps
    between adjacent HS bands are covered, but deleted absorption windows and the ends of the HS range are not.
    """
    ms_sigma = ms.fwhm_nm * _FWHM_TO_SIGMA
    lo = float(min(ms.centres_nm.min() - 4 * ms_sigma.max(), hs.centres_nm.min()))
    hi = float(max(ms.centres_nm.max() + 4 * ms_sigma.max(), hs.centres_nm.max()))
    grid = np.arange(lo, hi + step_nm, step_nm)
    # sort the HS intervals and test each grid point against the nearest centres (no L × grid table)
    order = np.argsort(hs.centres_nm)
    starts = hs.centres_nm[order] - hs.fwhm_nm[order]
    ends = np.maximum.accumulate(hs.centres_nm[order] + hs.fwhm_nm[order])
    last = np.searchsorted(starts, grid, side="right") - 1
    sampled = (last >= 0) & (grid <= ends[np.clip(last, 0, None)])
    response = np.exp(-0.5 * ((grid[None, :] - ms.centres_nm[:, None]) / ms_sigma[:, None]) ** 2)
    return (response * sampled[None, :]).sum(axis=1) / response.sum(axis=1)


def gaussian_response(hs, ms, hs_fwhm=None, ms_fwhm=None, *, min_coverage: float = MIN_COVERAGE) -> np.ndarray:
    """R (G × L): MS band g ← HS band l, from Gaussian band responses of both sensors.

    `hs` and `ms` are `BandTable`s, or arrays of centre wavelengths (nm) with `hs_fwhm`/`ms_fwhm`.
    R[g, l] ∝ ∫ s_g h_l dλ = σ_g σ_l / sqrt(σ_g² + σ_l²) · exp(−(μ_g − μ_l)² / (2(σ_g² + σ_l²))) for
    unit-peak Gaussians; each row is normalised to sum to 1. MS bands with less than `min_coverage` of their
    response inside the sampled HS range raise InvalidInputValueError naming them.
    """
    hs = _as_table(hs, hs_fwhm, "hyperspectral bands")
    ms = _as_table(ms, ms_fwhm, "multispectral bands")
    coverage = band_coverage(hs, ms)
    outside = np.flatnonzero(coverage < min_coverage)
    if outside.size:
        listed = ", ".join(f"{ms.names[i]} ({ms.centres_nm[i]:.0f} nm, {100 * coverage[i]:.0f} % covered)"
                           for i in outside)
        raise InvalidInputValueError(
            f"MS band(s) {listed} fall outside the spectral range sampled by the hyperspectral bands "
            f"({hs.centres_nm.min():.0f}–{hs.centres_nm.max():.0f} nm): drop these MS bands, or estimate the "
            "spectral response from the images instead")
    s_ms = (ms.fwhm_nm * _FWHM_TO_SIGMA)[:, None]
    s_hs = (hs.fwhm_nm * _FWHM_TO_SIGMA)[None, :]
    var = s_ms ** 2 + s_hs ** 2
    overlap = s_ms * s_hs / np.sqrt(var) * np.exp(-0.5 * (ms.centres_nm[:, None] - hs.centres_nm[None, :]) ** 2 / var)
    total = overlap.sum(axis=1, keepdims=True)
    return overlap / total


# ------------------------------------------------------------------------------------------------------------------
# CSV parsing
# ------------------------------------------------------------------------------------------------------------------
def _read_source(source, what: str) -> tuple[str, str]:
    """(text, label for messages) from CSV text, a path string or a Path."""
    if isinstance(source, Path):
        path = source
    elif isinstance(source, str) and "\n" not in source and (
            os.path.isfile(source) or source.strip().lower().endswith((".csv", ".txt"))):
        path = Path(source.strip())
    else:
        return str(source), what
    if not path.is_file():
        raise InvalidInputValueError(f"{what}: file {str(path)!r} does not exist")
    try:
        return path.read_text(encoding="utf-8-sig"), f"{what} {path.name!r}"
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputValueError(f"{what}: cannot read {str(path)!r} as text ({exc})") from exc


def _rows(text: str) -> list[list[str]]:
    """Non-empty rows of a CSV (comma, semicolon, tab or whitespace separated); '#' starts a comment line."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return []
    sample = "\n".join(lines[:5])
    delimiter = next((d for d in (",", ";", "\t") if d in sample), None)
    if delimiter is None:
        return [ln.split() for ln in lines]
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]


def _number(cell: str) -> float | None:
    """The float in a cell, NaN for empty/'nan' cells, None for text."""
    cell = cell.strip()
    if cell == "" or cell.lower() in ("nan", "na", "n/a"):
        return float("nan")
    try:
        return float(cell)
    except ValueError:
        return None


def parse_band_table(source, *, unit: str | None = None) -> BandTable:
    """A band table from CSV: one band per row, `wavelength, fwhm` or `name, wavelength, fwhm`.

    A header row (any non-numeric first row) is allowed. The unit is taken from `unit` ('nm' or 'um'), else
    from the header ('nm', 'um', 'µm', 'micro'), else from the values (centres below 30 are µm); the
    returned table's `note` states which unit was used and why. Values are returned in nm.
    """
    text, label = _read_source(source, "band table")
    rows = _rows(text)
    header = None
    if rows and all(_number(c) is None for c in rows[0] if c.strip()):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise InvalidInputValueError(f"{label}: no band rows found; expected one row per band: wavelength, fwhm")
    names, centres, widths = [], [], []
    for i, row in enumerate(rows, start=1):
        cells = [c for c in row if c.strip()] if len(row) > 3 else row
        name = None
        if len(cells) == 3 and _number(cells[0]) is None:
            name, cells = cells[0].strip(), cells[1:]
        if len(cells) != 2:
            raise InputShapeError(f"{label}, band row {i}: expected 2 values (wavelength, fwhm) or a name and 2 "
                                  f"values, got {len(row)} cells: {row}")
        values = [_number(c) for c in cells]
        if any(v is None or not math.isfinite(v) for v in values):
            raise InvalidInputValueError(f"{label}, band row {i}: wavelength and FWHM must be numbers, got {cells}")
        if values[0] <= 0 or values[1] <= 0:
            raise InvalidInputValueError(f"{label}, band row {i}: wavelength and FWHM must be positive, got {cells}")
        names.append(name or f"band {i}")
        centres.append(values[0])
        widths.append(values[1])
    centres_a, widths_a = np.asarray(centres), np.asarray(widths)
    unit_used, why = _detect_unit(unit, header, centres_a, label)
    factor = 1000.0 if unit_used == "um" else 1.0
    note = f"{label}: {len(centres)} bands, wavelengths read in {'µm' if unit_used == 'um' else 'nm'} ({why})"
    return BandTable(centres_a * factor, widths_a * factor, tuple(names), note)


def _detect_unit(unit, header, centres, label) -> tuple[str, str]:
    if unit is not None:
        u = str(unit).strip().lower().replace("µ", "u").replace("μ", "u")
        if u in ("nm", "nanometers", "nanometres"):
            return "nm", "as requested"
        if u in ("um", "micrometers", "micrometres", "microns", "micron"):
            return "um", "as requested"
        raise InvalidInputValueError(f"{label}: unknown wavelength unit {unit!r}; use 'nm' or 'um'")
    if header:
        joined = re.sub(r"[^a-z]+", " ", " ".join(header).lower().replace("µ", "u").replace("μ", "u"))
        if re.search(r"\bnm\b|nanomet", joined):
            return "nm", "unit named in the header"
        if re.search(r"\bum\b|micro", joined):
            return "um", "unit named in the header"
    if centres.max() < 30.0:
        return "um", "all wavelengths below 30, so micrometres"
    return "nm", "wavelengths of 30 or more, so nanometres"


def parse_response_matrix(source, ms_bands: int | None = None, hs_bands: int | None = None) -> np.ndarray:
    """A user spectral-response matrix from CSV: G rows (MS bands) × L columns (HS bands).

    An optional header row and an optional first column of band names are skipped. Checks: the expected
    shape when `ms_bands`/`hs_bands` are given, no empty or NaN cells, no negative values, no all-zero row.
    Returned as given (not normalised): it maps HS values to MS values.
    """
    text, label = _read_source(source, "spectral response matrix")
    rows = _rows(text)
    if rows and all(_number(c) is None or not c.strip() for c in rows[0]) and any(c.strip() for c in rows[0]):
        rows = rows[1:]  # a header row: no number in it
    if not rows:
        raise InvalidInputValueError(f"{label}: no rows found; expected one row per MS band, one column per HS band")
    if all(_number(r[0]) is None for r in rows):
        rows = [r[1:] for r in rows]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputShapeError(f"{label}: rows have different numbers of values ({sorted(widths)}); every MS band row "
                              "needs one value per HS band")
    values = [[_number(c) for c in r] for r in rows]
    for i, row in enumerate(values, start=1):
        if any(v is None for v in row):
            raise InvalidInputValueError(f"{label}, row {i}: non-numeric value in {rows[i - 1]}")
    matrix = np.asarray(values, dtype=np.float64)
    return validate_response_matrix(matrix, ms_bands, hs_bands, label)


def validate_response_matrix(matrix, ms_bands: int | None = None, hs_bands: int | None = None,
                             label: str = "spectral response matrix") -> np.ndarray:
    """Check a (G × L) response matrix: shape, finite, non-negative, no all-zero row. Returns it as float64."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise InputShapeError(f"{label}: expected a 2-D matrix (MS bands × HS bands), got shape {matrix.shape}")
    rows, cols = matrix.shape
    if ms_bands is not None and hs_bands is not None and (rows, cols) == (hs_bands, ms_bands) and rows != cols:
        raise InputShapeError(f"{label}: it is {rows} × {cols} but should be {ms_bands} × {hs_bands} (one row per MS "
                              "band, one column per HS band): transpose it")
    if ms_bands is not None and rows != ms_bands:
        raise InputShapeError(f"{label}: {rows} rows but the MS image has {ms_bands} bands (one row per MS band)")
    if hs_bands is not None and cols != hs_bands:
        raise InputShapeError(f"{label}: {cols} columns but the HS image has {hs_bands} bands (one column per HS band)")
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        r, c = bad[0] + 1
        raise InvalidInputValueError(f"{label}: {len(bad)} empty, NaN or infinite value(s), the first at row {r}, "
                                     f"column {c}")
    if (matrix < 0).any():
        r, c = np.argwhere(matrix < 0)[0] + 1
        raise InvalidInputValueError(f"{label}: negative value {matrix[r - 1, c - 1]:g} at row {r}, column {c}; "
                                     "spectral responses are ≥ 0")
    zero_rows = np.flatnonzero(~(matrix > 0).any(axis=1)) + 1
    if zero_rows.size:
        raise InvalidInputValueError(f"{label}: row(s) {zero_rows.tolist()} are all zero: every MS band must see "
                                     "at least one HS band")
    return matrix
