"""The per-band error estimate as people read it: RMSE ± its Monte-Carlo spread and PSNR, in the output's units.

The same numbers go to the log, the GeoTIFF metadata and the report (sure_core.error_estimate makes them). No QGIS
here.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

from .core_loader import core_module

COVERS = ("Estimated without ground truth: the root-mean-square error of each fused band over the area, against "
          "the band as a noise-free sensor with the output's pixel size would see it. It adds SURE for what the "
          "band's own coarse pixels measure, the input noise carried into the finer detail (Monte-Carlo), and "
          "the error in that finer detail measured by a self-check one resolution step coarser (the inputs "
          "degraded once more and fused by the same network), assuming the band relates to the fine bands as it "
          "does one step coarser. '±' is the Monte-Carlo spread only. Against known truth (docs/error-estimate.md)"
          " it came within 0.72–1.30 times the true RMSE on the Sentinel-2 bands of a simulated scene and two real "
          "crops (25 of 28 bands within 20 %), 0.68–0.94 on a WorldView-2 pair, and a median of 0.99 (0.47–3.1) on "
          "the 128 bands of an EO-1 hyperspectral pair. Bands observed at the output resolution are not estimated.")


NO_SELF_CHECK = ("No self-check: the area is too small for it (under 96 × 96 px with 60 m bands, 32 × 32 px "
                 "without), so the error in the finer detail is left out and these RMSEs are lower bounds")


@dataclass
class BandError:
    rmse: float
    rmse_sd: float        # Monte-Carlo standard deviation
    psnr: float           # dB, peak = the band's largest observed value
    observed: float       # RMSE of the parts: what the band's own pixels measure,
    noise: float          # the input noise carried into the finer detail,
    detail: float         # the finer detail itself (self-check; NaN: none was possible)


def band_errors(records: list, channel_names: list[str]) -> dict[str, BandError]:
    """{band name: BandError} pooled over the distinct run records that carry an estimate (tiles, or one record
    for a scene model), in channel order; bands without an estimate are left out."""
    estimates, seen = [], set()
    for record in records:
        if getattr(record, "error", None) is not None and id(record) not in seen:
            seen.add(id(record))
            estimates.append(record.error)
    if not estimates:
        return {}
    pooled = core_module("error_estimate").pooled(estimates)
    out = {}
    for k, name in enumerate(channel_names):
        if math.isfinite(pooled.mse[k]):
            out[name] = BandError(pooled.rmse[k], pooled.rmse_sd[k], pooled.psnr[k], _root(pooled.projected[k]),
                                  _root(pooled.noise_detail[k]), _root(pooled.detail[k]))
    return out


def _root(value: float) -> float:
    return math.sqrt(max(value, 0.0)) if math.isfinite(value) else float("nan")


def error_log_lines(errors: dict[str, BandError], units: str) -> list[str]:
    """Log lines: one summary line, then one line per band."""
    if not errors:
        return []
    lines = [f"Estimated error per band (RMSE ± Monte-Carlo spread, in {units}; PSNR against the band's peak):"]
    lines += [f"  {name}: RMSE {e.rmse:.4g} ± {e.rmse_sd:.2g}, PSNR {e.psnr:.1f} dB" for name, e in errors.items()]
    unchecked = [name for name, e in errors.items() if not math.isfinite(e.detail)]
    if unchecked:
        lines.append(f"  {NO_SELF_CHECK} ({', '.join(unchecked)})")
    return lines


def error_metadata(errors: dict[str, BandError]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(dataset items, {band name: band items}) for the output's metadata."""
    if not errors:
        return {}, {}
    dataset = {"ESTIMATED_RMSE": ", ".join(f"{n}={e.rmse:.6g}" for n, e in errors.items()),
               "ESTIMATED_ERROR_COVERS": COVERS}
    bands = {n: {"ESTIMATED_RMSE": f"{e.rmse:.6g}", "ESTIMATED_RMSE_MC_SD": f"{e.rmse_sd:.3g}",
                 "ESTIMATED_PSNR_DB": f"{e.psnr:.2f}",
                 "ESTIMATED_RMSE_PARTS": (f"observed {e.observed:.4g}, noise in finer detail {e.noise:.4g}, "
                                          f"finer detail {e.detail:.4g}")}
             for n, e in errors.items()}
    return dataset, bands


def error_table_html(errors: dict[str, BandError], units: str) -> str:
    """The report's table, with the sentence on what the numbers cover."""
    if not errors:
        return "<p><em>No error estimate (the run made none).</em></p>"
    head = ("<tr><th>band</th><th>RMSE</th><th>± (Monte-Carlo)</th><th>PSNR dB</th><th>observed part</th>"
            "<th>noise in finer detail</th><th>finer detail (self-check)</th></tr>")
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{e.rmse:.4g}</td><td>{e.rmse_sd:.2g}</td><td>{e.psnr:.1f}</td>"
                   f"<td>{e.observed:.4g}</td><td>{e.noise:.4g}</td><td>{e.detail:.4g}</td></tr>"
                   for n, e in errors.items())
    note = (f"<p><strong>{html.escape(NO_SELF_CHECK)}.</strong></p>"
            if any(not math.isfinite(e.detail) for e in errors.values()) else "")
    return (f"<p>In {html.escape(units)}; the parts are RMSEs whose squares add up to the total's square.</p>"
            f"<table>{head}{rows}</table>{note}<p><small>{html.escape(COVERS)}</small></p>")
