"""The HTML run report: the estimated error per band, the loss curve (inline SVG), σ per band, timings, device,
quick-look.

Self-contained HTML (no scripts, no external files), so it opens in the Processing results viewer and any
browser; no matplotlib needed.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .error_report import error_table_html

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def svg_curves(series: list[list[float]], title: str, y_label: str, width: int = 560, height: int = 240) -> str:
    """A line chart of one or more curves over the iterations (NaN points are skipped)."""
    finite = [v for s in series for v in s if math.isfinite(v)]
    if not finite:
        return f"<p><em>{html.escape(title)}: no finite values (the BP loss has no SURE risk).</em></p>"
    lo, hi = min(finite), max(finite)
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 1e-3
    n = max(len(s) for s in series)
    left, right, top, bottom = 70, 12, 28, 36
    pw, ph = width - left - right, height - top - bottom

    def xy(i: int, v: float) -> str:
        x = left + (i / max(n - 1, 1)) * pw
        y = top + (1 - (v - lo) / (hi - lo)) * ph
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = top + (1 - k / 4) * ph
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">iteration (1–{n})</text>')
    parts.append(f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    for k, s in enumerate(series):
        points = " ".join(xy(i, v) for i, v in enumerate(s) if math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{COLOURS[k % len(COLOURS)]}" stroke-width="1.5" '
                     f'points="{points}"/>')
    if len(series) > 1:
        for k in range(min(len(series), 8)):
            parts.append(f'<text x="{left + pw - 60}" y="{top + 14 + 13 * k}" fill="{COLOURS[k]}">tile {k + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def build_report(result, inputs, settings, quicklook_png: bytes | None = None, *,
                 title: str = "Sentinel-2 sharpening (Deep SURE)", pixels: str = "px at 10 m",
                 quicklook_caption: str = "Quick-look (false colour B12-B8A-B5): before (20 m) | after (10 m)",
                 extra_rows: list[tuple[str, str]] | None = None, smoothing: bool = True) -> str:
    """The whole report as one HTML string. `result` is a FusionResult; `inputs` has scene_name, units,
    provenance and warnings (SentinelInputs, RasterPair). The keywords adapt the wording to the algorithm
    (`smoothing`: whether it has the guided smoothing, whose strength is then listed)."""
    records = result.records
    first = records[0]
    options = first.options
    summary = [
        ("output", result.path),
        ("scene", inputs.scene_name),
        ("units", inputs.units),
        ("area", f"{result.window.width}×{result.window.height} {pixels}, {len(result.tiles)} tile(s)"
                 + (f", {result.skipped_tiles} all-nodata tile(s) skipped" if result.skipped_tiles else "")),
        ("loss", options["loss"]),
        ("iterations", options["iterations"]),
        ("seed", options["seed"]),
        ("network width", options["width"]),
        ("learning rate", options["learning_rate"]),
        ("device", f"{result.device} — {result.device_reason}"),
        ("network", result.network_decision),
        *([("guided smoothing h (SURE choice, 0 = none)", result.smoothing)] if smoothing else []),
        ("wall time", f"{result.seconds:.1f} s ({sum(r.seconds_per_iteration for r in records) / len(records):.3f} "
                      f"s per iteration)"),
        ("network parameters", f"{first.parameters:,}"),
    ] + [(k.lower().replace("_", " "), v) for k, v in inputs.provenance.items()] + list(extra_rows or [])
    sigma_rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{result.sigma_by_band[n]:.6g}</td></tr>"
                         for n in result.band_names if n in result.sigma_by_band)
    look = ""
    if quicklook_png:
        encoded = base64.b64encode(quicklook_png).decode("ascii")
        look = (f"<h2>{html.escape(quicklook_caption)}</h2>"
                f'<img alt="before and after" src="data:image/png;base64,{encoded}"/>')
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in inputs.warnings)
    registration = "".join(f"<li>{html.escape(text)}</li>" for text, _ in getattr(result, "registration_log", []))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>SURE Fusion — {html.escape(Path(result.path).stem)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:64em}} th{{text-align:left;padding-right:1em;
vertical-align:top}} td{{padding-right:1em}} table{{border-collapse:collapse;margin-bottom:1em}}
h2{{font-size:1.1em;margin-top:1.5em}}</style></head><body>
<h1>{html.escape(title)}: {html.escape(Path(result.path).name)}</h1>
{_table(summary)}
{f'<h2>Warnings</h2><ul>{warnings}</ul>' if warnings else ''}
<h2>Estimated error per band</h2>
{error_table_html(result.error_by_band(), inputs.units)}
{f'<h2>Co-registration (where the coarse bands lay; the output is on the guide grid)</h2><ul>{registration}</ul>'
 if registration else ''}
<h2>Training curve</h2>
{svg_curves([r.loss_history for r in records], f"{options['loss'].upper()} loss", "loss (normalised)")}
<h2>Noise σ per band ({html.escape(inputs.units)})</h2>
<table><tr><th>band</th><th>σ</th></tr>{sigma_rows}</table>
{look}
</body></html>
"""
