"""Co-registration: how far each coarse band lies from where the guide's grid says it should, to a sub-pixel.

A band observed as y = H_s x + n, where H_s samples the blurred scene displaced by s (rows, cols) LR pixels
(`operators.kernel_spectrum`), is fitted against what the guides predict of it:

1. prediction p = Σ wᵢ gᵢ, the weights by least squares of the band's detail on its degraded guides;
2. s by Gauss–Newton on ‖D(y − a·H_s p)‖² over the interior pixels, D a high-pass that keeps the detail
   (illumination, haze and what the guides predict badly live in the low frequencies), started from the best
   whole-HR-pixel lag of one FFT cross-correlation over ±`search` LR pixels;
3. the weights refitted at s and s refined again (weights fitted at a wrong shift favour the low frequencies).

The standard error is the spread of the estimates on the four quadrants (it sees texture that differs across the
area, which the least-squares formula would not). An estimate is trusted when the prediction explains the band's
detail (correlation ≥ `MIN_CORRELATION`) and its standard error is small; otherwise the band keeps a zero shift.
When no band can be measured within the search range and most bands agree on a clear match beyond it, the inputs
do not overlap as their georeferencing claims: that is an error (`MisregistrationError`), not something to fuse.
Measurements and the choices they led to: docs/coregistration.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputValueError
from .psf import Geometry, gaussian_taps, geometry_offset

#: search range of the shift, in LR pixels, each way (two sensors' pairs can be well over a pixel apart)
DEFAULT_SEARCH = 1.5
#: a correlation peak up to this many times the search range away is looked for, to tell the user the inputs do
#: not overlap rather than fuse them
OUT_OF_RANGE = 3
#: correlation of the band's detail with the guides' prediction below which a shift is not trusted
MIN_CORRELATION = 0.5
#: standard error (LR pixels) above which a shift is not trusted
MAX_STDERR = 0.1
#: shifts below this (LR pixels) are not corrected: 0.01 px costs about 0.02 dB on APEX, and registered inputs
#: then give today's results bit for bit
NEGLIGIBLE = 0.01
#: a shift of a trusted band above this (LR pixels) is worth a warning
WARN_SHIFT = 0.3
#: the high-pass keeps detail finer than a Gaussian of this σ (LR pixels)
HIGH_PASS_SIGMA = 2.0
#: the fit uses at most this many HR pixels per side (a centred crop): the shift is one number per band
MAX_HR_SIDE = 768
#: a band's own shift is used only where it departs from its group's by more than this × (1 − its correlation)
#: LR pixels: a band the guides predict poorly (SWIR from visible and near-infrared guides) can drift from its true
#: shift by about that much (APEX's B11 and B12: 0.27 and 0.33 px at correlations 0.81 and 0.70)
DRIFT_PER_MISFIT = 1.5
#: …and by at least this (LR pixels): below it the bands' own estimates differ by their prediction bias (APEX's B9:
#: 0.036 px with none simulated), and a group shift costs less than the split would
MIN_SPLIT = 0.05


class MisregistrationError(InvalidInputValueError):
    """The inputs are offset by more than the search range: they do not overlap as their georeferencing claims."""


@dataclass(frozen=True)
class BandShift:
    """A band's measured shift: its content lies (rows, cols) LR pixels down/right of its nominal place."""

    rows: float = 0.0
    cols: float = 0.0
    stderr: float = float("nan")     # LR pixels, per axis (the larger of the two)
    correlation: float = float("nan")  # of the band's detail with the guides' prediction at the shift
    trusted: bool = False
    note: str = ""

    @property
    def shift(self) -> tuple[float, float]:
        """The shift to correct: zero when untrusted or negligible."""
        if not self.trusted or math.hypot(self.rows, self.cols) < NEGLIGIBLE:
            return (0.0, 0.0)
        return (self.rows, self.cols)


def fourier_shift(image: np.ndarray, rows: float, cols: float) -> np.ndarray:
    """`image` (…, H, W) with its content moved down/right by (rows, cols) pixels (band-limited, periodic)."""
    fr = np.fft.fftfreq(image.shape[-2])[:, None]
    fc = np.fft.fftfreq(image.shape[-1])[None, :]
    return np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fr * rows + fc * cols))).real


def _taps_spectrum(sigma: float, centre: float, n: int) -> np.ndarray:
    """1-D DFT (length n) of the Gaussian taps around `centre`, placed as the operators place them."""
    kernel, first = gaussian_taps(sigma, centre)
    taps = kernel.sum(axis=1)
    canvas = np.zeros(n)
    np.add.at(canvas, (-(first + np.arange(len(taps)))) % n, taps)
    return np.fft.fft(canvas)


class _BandModel:
    """H_s applied to HR images whose spectra are given, for one band (σ, ratio, geometry) on one canvas."""

    def __init__(self, sigma: float, ratio: int, hr_shape: tuple[int, int], geometry: Geometry | str):
        self.sigma, self.ratio, self.hr_shape = float(sigma), int(ratio), hr_shape
        self.offset = geometry_offset(geometry, ratio)

    def spectrum(self, shift) -> np.ndarray:
        rows, cols = self.hr_shape
        kr = _taps_spectrum(self.sigma, self.offset - self.ratio * shift[0], rows)
        kc = _taps_spectrum(self.sigma, self.offset - self.ratio * shift[1], cols)[:cols // 2 + 1]
        return kr[:, None] * kc[None, :]

    def apply(self, spectra: np.ndarray, shift) -> np.ndarray:
        """(k, h, w): H_s of each HR image whose rfft2 is in `spectra` (k, rows, cols//2+1)."""
        blurred = np.fft.irfft2(spectra * self.spectrum(shift), s=self.hr_shape)
        return blurred[..., ::self.ratio, ::self.ratio]


def _high_pass(lr_shape: tuple[int, int]) -> np.ndarray:
    fr = np.fft.fftfreq(lr_shape[0])[:, None]
    fc = np.fft.rfftfreq(lr_shape[1])[None, :]
    return 1.0 - np.exp(-2.0 * math.pi ** 2 * HIGH_PASS_SIGMA ** 2 * (fr ** 2 + fc ** 2))


def _detail(images: np.ndarray, high_pass: np.ndarray) -> np.ndarray:
    return np.fft.irfft2(np.fft.rfft2(images) * high_pass, s=images.shape[-2:])


def _centred_crop(lr: np.ndarray, guides: np.ndarray, valid, ratio: int):
    h, w = lr.shape[-2:]
    side = max(8, MAX_HR_SIDE // ratio)
    r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    rs, cs = slice(r0, r0 + min(h, side)), slice(c0, c0 + min(w, side))
    hr = (slice(r0 * ratio, rs.stop * ratio), slice(c0 * ratio, cs.stop * ratio))
    return lr[..., rs, cs], guides[(Ellipsis, *hr)], None if valid is None else valid[rs, cs]


class _Fit:
    """The shift of one band against fixed guides: prediction weights, coarse search and Gauss–Newton refinement."""

    def __init__(self, y: np.ndarray, guide_spectra: np.ndarray, model: _BandModel, mask: np.ndarray,
                 high_pass: np.ndarray):
        self.y, self.model, self.mask, self.high_pass = y, model, mask, high_pass
        self.guide_spectra = guide_spectra
        self.y_detail = _detail(y, high_pass)[mask]

    def degraded_detail(self, spectra: np.ndarray, shift) -> np.ndarray:
        return _detail(self.model.apply(spectra, shift), self.high_pass)[..., self.mask]

    def prediction(self, shift) -> np.ndarray:
        """rfft2 of p = Σ wᵢ gᵢ, the weights fitting the band's detail at `shift`."""
        design = self.degraded_detail(self.guide_spectra, shift)          # (guides, n)
        gram = design @ design.T
        gram += np.eye(len(gram)) * (1e-9 * np.trace(gram) / len(gram) + 1e-30)
        weights = np.linalg.solve(gram, design @ self.y_detail)
        return np.tensordot(weights, self.guide_spectra, axes=1)[None]

    def correlation(self, p_spectrum: np.ndarray, shift) -> float:
        d = self.degraded_detail(p_spectrum, shift)[0]
        return float(d @ self.y_detail / max(np.linalg.norm(d) * np.linalg.norm(self.y_detail), 1e-30))

    def coarse_search(self, reach: int) -> tuple[np.ndarray, np.ndarray]:
        """Correlation of the band's detail with each guide's at whole-HR-pixel lags t (|t| ≤ reach each way), the
        strongest guide's at each lag (no mix of guides is fitted yet: at a wrong shift it would be meaningless):
        (scores (2·reach+1, 2·reach+1), lags in LR pixels (rows, cols) of the same shape)."""
        r = self.model.ratio
        rows, cols = self.model.hr_shape
        hr_pass = np.exp(-2.0 * math.pi ** 2 * (HIGH_PASS_SIGMA * r) ** 2
                         * (np.fft.fftfreq(rows)[:, None] ** 2 + np.fft.rfftfreq(cols)[None, :] ** 2))
        q = np.fft.irfft2(self.guide_spectra * self.model.spectrum((0.0, 0.0)) * (1.0 - hr_pass), s=(rows, cols))
        comb = np.zeros((rows, cols))
        comb[::r, ::r] = np.where(self.mask, _detail(self.y, self.high_pass), 0.0)
        weight = np.zeros((rows, cols))
        weight[::r, ::r] = self.mask
        cross = np.fft.irfft2(np.conj(np.fft.rfft2(comb)) * np.fft.rfft2(q), s=(rows, cols))
        energy = np.fft.irfft2(np.conj(np.fft.rfft2(weight)) * np.fft.rfft2(q ** 2), s=(rows, cols))
        at = np.ix_(np.arange(len(q)), *(np.arange(-reach, reach + 1) % n for n in (rows, cols)))
        scores = np.abs(cross[at]) / np.sqrt(np.maximum(energy[at], 1e-30)) / max(np.linalg.norm(self.y_detail), 1e-30)
        lags = np.arange(-reach, reach + 1)
        return scores.max(axis=0), np.stack(np.meshgrid(-lags / r, -lags / r, indexing="ij"))

    def refine(self, p_spectrum: np.ndarray, start, mask: np.ndarray | None = None, steps: int = 8
               ) -> np.ndarray:
        """Gauss–Newton on (gain, rows, cols) from `start`; `mask` restricts the fit to part of the pixels."""
        shift = np.asarray(start, dtype=np.float64).copy()
        keep = slice(None) if mask is None else mask[self.mask]
        y = self.y_detail[keep]
        h = 1e-3
        max_step = 0.5 / self.model.ratio
        for _ in range(steps):
            base = self.degraded_detail(p_spectrum, shift)[0][keep]
            d_rows = (self.degraded_detail(p_spectrum, shift + (h, 0.0))[0][keep] - base) / h
            d_cols = (self.degraded_detail(p_spectrum, shift + (0.0, h))[0][keep] - base) / h
            gain = float(base @ y / max(base @ base, 1e-30))
            jac = np.stack([base, gain * d_rows, gain * d_cols], axis=1)
            step = np.linalg.lstsq(jac, y - gain * base, rcond=None)[0][1:]
            step = np.clip(step, -max_step, max_step)
            shift += step
            if np.abs(step).max() < 1e-4:
                break
        return shift


def _interior(lr_shape: tuple[int, int], ratio: int, sigma: float, search: float, valid) -> np.ndarray:
    """Pixels far enough from the (periodic) canvas edges for the shifted PSF and the high-pass not to wrap."""
    margin = int(math.ceil(search + 3 * sigma / ratio + 1))
    mask = np.zeros(lr_shape, dtype=bool)
    mask[margin:lr_shape[0] - margin, margin:lr_shape[1] - margin] = True
    if valid is not None:
        mask &= np.asarray(valid, dtype=bool)
    return mask


def estimate_band_shifts(lr, guides, ratio: int, psf_sigmas, *, geometry: Geometry | str = Geometry.AREA,
                         valid: np.ndarray | None = None, search: float = DEFAULT_SEARCH,
                         names: list[str] | None = None) -> list[BandShift]:
    """Per band of `lr` (L, h, w), the shift against the prediction from `guides` (G, h·ratio, w·ratio).

    `psf_sigmas` (one or L, HR pixels) as for the band's operator; `valid` ((h, w) bool) marks LR pixels with
    real data in both images. Raises MisregistrationError when a band's detail correlates clearly with the
    guides at an offset beyond `search` LR pixels but not within it.
    """
    lr = np.asarray(lr, dtype=np.float64)
    guides = np.asarray(guides, dtype=np.float64)
    if guides.ndim == 2:
        guides = guides[None]
    sigmas = np.broadcast_to(np.asarray(psf_sigmas, dtype=np.float64).reshape(-1), (lr.shape[0],))
    names = names or [f"band {k + 1}" for k in range(lr.shape[0])]
    lr, guides, valid = _centred_crop(lr, guides, valid, ratio)
    lr_shape = lr.shape[-2:]
    high_pass = _high_pass(lr_shape)
    guide_spectra = np.fft.rfft2(guides)
    reach = int(math.ceil(search * ratio))
    results, beyond = [], []
    for k in range(lr.shape[0]):
        mask = _interior(lr_shape, ratio, sigmas[k], search, valid)
        if mask.sum() < 64:
            results.append(BandShift(note=f"{names[k]}: too few pixels to measure a shift (area too small or "
                                          "mostly nodata); kept at 0"))
            continue
        fit = _Fit(lr[k], guide_spectra, _BandModel(sigmas[k], ratio, guides.shape[-2:], geometry), mask, high_pass)
        scores, lags = fit.coarse_search(OUT_OF_RANGE * reach)
        inside = np.zeros_like(scores, dtype=bool)
        inside[(OUT_OF_RANGE - 1) * reach:(OUT_OF_RANGE + 1) * reach + 1,
               (OUT_OF_RANGE - 1) * reach:(OUT_OF_RANGE + 1) * reach + 1] = True
        best_in = np.unravel_index(np.argmax(np.where(inside, scores, -np.inf)), scores.shape)
        best_out = np.unravel_index(np.argmax(np.where(inside, -np.inf, scores)), scores.shape)
        if scores[best_out] > max(MIN_CORRELATION, 1.5 * scores[best_in]):
            beyond.append(lags[:, best_out[0], best_out[1]])
            results.append(BandShift(note=f"{names[k]}: matches the guide best beyond the ±{search:g} px searched"))
            continue
        shift = lags[:, best_in[0], best_in[1]]
        p = fit.prediction(shift)
        shift = fit.refine(p, shift)
        p = fit.prediction(shift)
        shift = fit.refine(p, shift)
        correlation = fit.correlation(p, shift)
        quadrants = []
        rows, cols = np.nonzero(mask)
        mid_r, mid_c = np.median(rows), np.median(cols)
        for qr in (True, False):
            for qc in (True, False):
                part = mask & ((np.arange(lr_shape[0])[:, None] < mid_r) == qr) \
                    & ((np.arange(lr_shape[1])[None, :] < mid_c) == qc)
                if part.sum() >= 16:
                    quadrants.append(fit.refine(p, shift, part, steps=3))
        stderr = float(np.std(quadrants, axis=0, ddof=1).max() / math.sqrt(len(quadrants))) \
            if len(quadrants) >= 2 else float("inf")
        if np.abs(shift).max() > search:
            note = f"{names[k]}: the best fit lies at the edge of the ±{search:g} px search; kept at 0"
            trusted = False
        elif correlation < MIN_CORRELATION:
            note = (f"{names[k]}: the guide predicts too little of this band's detail (correlation "
                    f"{correlation:.2f}; flat, water or cloud?) to measure a shift; kept at 0")
            trusted = False
        elif not stderr <= MAX_STDERR:
            note = f"{names[k]}: the shift is too uncertain (±{stderr:.2f} px) to use; kept at 0"
            trusted = False
        else:
            note, trusted = "", True
        results.append(BandShift(float(shift[0]), float(shift[1]), stderr, correlation, trusted, note))
    _check_overlap(results, beyond, names, search)
    return results


def _check_overlap(results: list[BandShift], beyond: list[np.ndarray], names: list[str], search: float) -> None:
    """MisregistrationError when no band could be measured within the search range and at least half of the bands
    agree (within a pixel) on a clear match beyond it: the inputs are offset, not merely hard to register."""
    if any(r.trusted for r in results) or 2 * len(beyond) < len(results) or not beyond:
        return
    offset = np.median(beyond, axis=0)
    if np.abs(np.asarray(beyond) - offset).max() > 1.0:
        return
    raise MisregistrationError(
        f"the {', '.join(names)} bands match the guide best about {offset[0]:+.1f} rows and {offset[1]:+.1f} columns "
        f"(of their own pixels) away from where the georeferencing puts them, beyond the ±{search:g} px that are "
        "corrected: the inputs do not overlap as their georeferencing claims. Load both layers in QGIS and compare "
        "them (e.g. with the transparency slider or the Map Swipe tool); re-export or georeference them onto the same "
        "footprint")


def _apart(band: BandShift, reference: np.ndarray) -> bool:
    """Whether a trusted band's own shift departs from `reference` by more than its error and its drift allow."""
    distance = float(np.hypot(band.rows - reference[0], band.cols - reference[1]))
    return distance > max(3 * band.stderr, DRIFT_PER_MISFIT * (1 - band.correlation), MIN_SPLIT)


def pooled(shifts: list[BandShift]) -> BandShift:
    """One shift for bands that share a focal plane or a file: the inverse-variance mean of the trusted bands that
    agree with the best-predicted one (a band that is really apart must not pull the others)."""
    trusted = [s for s in shifts if s.trusted]
    if not trusted:
        return BandShift(note="no band's shift could be trusted; kept at 0")
    anchor = max(trusted, key=lambda s: s.correlation)
    trusted = [s for s in trusted if not _apart(s, np.array([anchor.rows, anchor.cols]))] or [anchor]
    w = np.array([1.0 / max(s.stderr, 1e-3) ** 2 for s in trusted])
    rows = float(np.sum(w * [s.rows for s in trusted]) / w.sum())
    cols = float(np.sum(w * [s.cols for s in trusted]) / w.sum())
    return BandShift(rows, cols, float(1.0 / math.sqrt(w.sum())),
                     float(np.mean([s.correlation for s in trusted])), True)


@dataclass
class Registration:
    """The measured shifts of one group of coarse bands (one file or focal plane): per band, and the pooled one that
    the operator uses for every band of the group (steadier: on APEX, B11 and B12 predicted from the visible and
    near-infrared guides drift by 0.3 px where the red-edge bands are within 0.01)."""

    names: list[str]
    bands: list[BandShift]
    pooled: BandShift

    def shifts(self) -> list[tuple[float, float]]:
        """The shift the operator uses for each band: the group's pooled shift, unless the band's own estimate
        departs from it by more than three standard errors and more than `DRIFT_PER_MISFIT` · (1 − correlation),
        the drift a band that the guides predict imperfectly shows with no shift at all."""
        pooled = np.asarray(self.pooled.shift)
        return [b.shift if b.trusted and _apart(b, pooled) else tuple(float(v) for v in pooled) for b in self.bands]

    @property
    def trusted(self) -> bool:
        return self.pooled.trusted

    def as_record(self) -> dict:
        """Plain data for the run record, the metadata and the report."""
        return {"shifts": [[round(a, 4), round(b, 4)] for a, b in self.shifts()],
                "rows": round(self.pooled.shift[0], 4), "cols": round(self.pooled.shift[1], 4),
                "stderr": round(self.pooled.stderr, 4) if self.pooled.trusted else None,
                "trusted": self.pooled.trusted, "note": self.pooled.note,
                "bands": {n: {"rows": round(b.rows, 4), "cols": round(b.cols, 4),
                              "correlation": round(b.correlation, 3), "trusted": b.trusted}
                          for n, b in zip(self.names, self.bands)}}


def measure(lr, guides, ratio: int, psf_sigmas, *, geometry: Geometry | str = Geometry.AREA,
            valid: np.ndarray | None = None, search: float = DEFAULT_SEARCH, names: list[str] | None = None
            ) -> Registration:
    """`estimate_band_shifts` and their pooled shift, for the bands of one group."""
    names = list(names or [f"band {k + 1}" for k in range(np.shape(lr)[0])])
    bands = estimate_band_shifts(lr, guides, ratio, psf_sigmas, geometry=geometry, valid=valid, search=search,
                                 names=names)
    pool = pooled(bands)
    if not pool.trusted:
        notes = "; ".join(b.note for b in bands if b.note)
        pool = BandShift(note=f"no shift could be measured ({notes})" if notes else pool.note)
    return Registration(names, bands, pool)


def median_record(records: list[dict], what: str) -> dict:
    """One registration record (`Registration.as_record`) from several of one group, measured on parts of one area
    (crops, windows, tiles): per axis the median of those that measured a shift, with the median's standard error;
    the first record as it is when none did."""
    trusted = [r for r in records if r["trusted"]]
    if not trusted:
        return dict(records[0])
    return {**trusted[0], "shifts": np.median([r["shifts"] for r in trusted], axis=0).tolist(),
            "rows": float(np.median([r["rows"] for r in trusted])),
            "cols": float(np.median([r["cols"] for r in trusted])),
            "stderr": float(np.median([r["stderr"] for r in trusted]) / math.sqrt(len(trusted))),
            "note": f"median of {len(trusted)} of {len(records)} {what}"}


def describe(label: str, record: dict, pixel_m: float | None = None) -> tuple[str, bool]:
    """(one log line for a group's registration record, whether it deserves a warning)."""
    if not record.get("trusted"):
        return f"{label}: co-registration kept a zero shift — {record.get('note') or 'not measured'}", False
    rows, cols = record["rows"], record["cols"]
    size = math.hypot(rows, cols)
    metres = f" ({cols * pixel_m:+.1f} m east, {-rows * pixel_m:+.1f} m north)" if pixel_m else ""
    text = (f"{label}: measured shift {rows:+.3f} rows, {cols:+.3f} columns of its pixels{metres}, "
            f"±{record['stderr']:.3f}; corrected (the output stays on the guide's grid)")
    if size > WARN_SHIFT:
        text += (f". A shift of {size:.2f} px is large: these inputs were resampled, reprojected or come from "
                 "different sensors; without this correction the sharpened bands would be blurred and displaced")
    return text, size > WARN_SHIFT
