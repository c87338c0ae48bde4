"""One fusion run from plain values, for every kind of input: a `FusionRequest` (what to fuse, with which choices)
→ `prepare` (inputs opened and checked, the area planned, σ parsed, the core's fusion case built) → `run` (the
GeoTIFF written through the core's runner, see `fusion_run.write_area`).

No QGIS: the three algorithms translate their parameters into a request, the batch runner reads requests from
its manifest, benchmarks and scripts build them directly. Errors are `RasterIOError`s (and the core's
`SureFusionError`s) with messages for the end user.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

from . import pair_cases, pair_inputs, s2_inputs
from .core_loader import core_module
from .fusion_run import FusionResult, RunSettings
from .io_errors import RasterInputError
from .raster_stack import OpenedInputs, Window

KINDS = ("s2", "hsms", "pan")
#: each kind's changes to the core's fast recipe (SolverOptions field → value), used where no value is given.
#: pansharpening — bench-pan (WorldView-2, 320² px): 60 iterations at width 8 gave Q8 0.8881 in 167 s; 150
#: iterations 0.8880 in 625 s; the core's 300 iterations at width 16 would take 20–40 min on a 2-core CPU for no gain
RECIPES = {"s2": {}, "hsms": {}, "pan": {"iterations": 60, "width": 8}}
#: per pair kind: (low layer role, high layer role) — also the core case's observation names, lower-cased
PAIR_ROLES = {"hsms": ("HS", "MS"), "pan": ("MS", "PAN")}


@dataclass
class FusionRequest:
    """What to fuse. `sources`: for 's2' {'product': path} or {'10m', '20m'[, '60m']: path}; for a pair
    {'low': path, 'high': path} (HS and MS, or MS and PAN). `choices`: the case's own options — 's2': with_60m
    (products); 'hsms': `pair_cases.hsms_plan`'s keywords; 'pan': `pair_cases.pan_plan`'s."""
    kind: str
    sources: dict[str, str]
    settings: RunSettings                 # its σ is filled from `noise_sigma` by `prepare`
    noise_sigma: str = ""                 # NOISE_SIGMA as written ('' or 'auto': estimate)
    extent: tuple | None = None           # (xmin, ymin, xmax, ymax) in the inputs' CRS; None: all
    window: tuple | None = None           # (col, row, width, height) pixels of the output grid, instead of `extent`
    labels: dict[str, str] = field(default_factory=dict)   # how messages name each source
    scene_name: str | None = None
    choices: dict = field(default_factory=dict)


@dataclass
class PreparedRun:
    """A request with its inputs open and checked, ready to `run`."""
    request: FusionRequest
    inputs: OpenedInputs                  # s2_inputs.SentinelInputs or pair_inputs.RasterPair
    window: Window
    settings: RunSettings
    band_names: list[str]
    plan: pair_cases.PairPlan | None = None   # pairs: the core case, output bands, provenance
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def units(self) -> str:
        return self.inputs.units

    @property
    def scene_name(self) -> str:
        return self.inputs.scene_name


def prepare(request: FusionRequest, extent_for: Callable[[str], tuple | None] | None = None) -> PreparedRun:
    """Open and check the request's inputs, plan its area, parse its σ and build its case (nothing is trained).
    `extent_for(crs_wkt)`, when given, sets the request's extent in the CRS of the inputs once they are open (a
    QGIS extent parameter is read in a CRS)."""
    if request.kind == "s2":
        return _prepare_s2(request, extent_for)
    if request.kind in PAIR_ROLES:
        return _prepare_pair(request, extent_for)
    raise RasterInputError(f"unknown kind of fusion {request.kind!r}: use one of {', '.join(KINDS)}")


def run(prepared: PreparedRun, target: str, progress=None, log=None, before_commit=None) -> FusionResult:
    """Fuse the prepared request into the GeoTIFF `target` (see `sharpening.run_sharpening`,
    `pair_run.run_pair_fusion`)."""
    if prepared.request.kind == "s2":
        from .sharpening import run_sharpening
        return run_sharpening(prepared.inputs, prepared.window, target, prepared.settings, progress=progress, log=log,
                              before_commit=before_commit)
    from .pair_run import run_pair_fusion
    plan = prepared.plan
    return run_pair_fusion(prepared.inputs, prepared.window, target, prepared.settings, plan.case, plan.bands,
                             provenance=plan.provenance, progress=progress, log=log, before_commit=before_commit)


# ---------------------------------------------------------------------------------------------- Sentinel-2
def _prepare_s2(request: FusionRequest, extent_for) -> PreparedRun:
    s2 = core_module("sentinel2")
    core_groups = {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M}
    if request.sources.get("product"):
        inputs = s2_inputs.open_s2_product(request.sources["product"], core_groups,
                                           with_60m=request.choices.get("with_60m", True))
    else:
        paths = {k: request.sources[k] for k in ("10m", "20m", "60m") if request.sources.get(k)}
        labels = {k: request.labels.get(k, f"the {k} raster") for k in core_groups}
        inputs = s2_inputs.open_band_rasters(paths, core_groups, labels, scene_name=request.scene_name)
    groups = {k: core_groups[k] for k in inputs.groups}
    band_names = [n for n in s2.SPECTRAL_ORDER if any(n in g for g in groups.values())]
    settings = replace(request.settings, sigma=parse_s2_sigma(request.noise_sigma, band_names, groups))
    if extent_for is not None:
        request.extent = extent_for(inputs.grid_10m.crs_wkt)
    window = inputs.stack.plan(_extent(request, inputs.grid_10m))
    info = [f"Scene {inputs.scene_name}: {window.width}×{window.height} px at 10 m, {_solver_line(settings)}; "
            f"values in {inputs.units}"]
    return PreparedRun(request, inputs, window, settings, band_names, warnings=list(inputs.warnings), info=info)


def parse_s2_sigma(text: str, band_names: list[str], groups: dict[str, tuple[str, ...]]) -> dict | None:
    """NOISE_SIGMA → {'10m': [...], ...} (the observation names) or None (estimate)."""
    text = (text or "").strip()
    if not text or text.lower() == "auto":
        return None
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise RasterInputError(
            f"NOISE_SIGMA {text!r} is not a list of numbers: give one number, or {len(band_names)} comma-separated "
            f"numbers for {', '.join(band_names)}, or leave it empty to estimate σ") from None
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if len(values) not in (1, len(band_names)) or bad:
        if bad:
            problem = f"{', '.join(f'{v:g}' for v in bad)} {'is' if len(bad) == 1 else 'are'} not finite and ≥ 0"
        else:
            problem = f"{len(values)} values were given"
        raise RasterInputError(f"NOISE_SIGMA needs 1 or {len(band_names)} finite values ≥ 0 ({', '.join(band_names)}), "
                               f"but {problem}: {text!r}")
    if len(values) == 1:
        values = values * len(band_names)
    by_band = dict(zip(band_names, values))
    return {key: [by_band[n] for n in names] for key, names in groups.items()}


# ---------------------------------------------------------------------------------------------- pairs
def _prepare_pair(request: FusionRequest, extent_for) -> PreparedRun:
    low_role, high_role = PAIR_ROLES[request.kind]
    pair = pair_inputs.open_pair(request.sources["low"], request.sources["high"],
                                 low_label=request.labels.get("low", f"the {low_role} layer"),
                                 high_label=request.labels.get("high", f"the {high_role} layer"),
                                 single_band_high=request.kind == "pan", scene_name=request.scene_name)
    make = pair_cases.hsms_plan if request.kind == "hsms" else pair_cases.pan_plan
    plan = make(pair, coregistration=request.settings.coregistration, **request.choices)
    if extent_for is not None:
        request.extent = extent_for(pair.high.grid.crs_wkt)
    window = pair.stack.plan(_extent(request, pair.high.grid))
    names = (low_role.lower(), high_role.lower())
    sigma = parse_pair_sigma(request.noise_sigma, pair, names, (low_role, high_role))
    settings = replace(request.settings, sigma=sigma)
    info = [f"{pair.low.label}: {pair.low.band_count} band(s); {pair.high.label}: {pair.high.band_count} band(s); "
            f"ratio {pair.ratio}; area {window.width}×{window.height} px on the {high_role} grid; "
            f"{_solver_line(settings)}; values in {pair.units}", *plan.log]
    return PreparedRun(request, pair, window, settings, list(plan.bands.names), plan=plan, info=info)


def parse_pair_sigma(text: str, pair: pair_inputs.RasterPair, names: tuple[str, str], roles: tuple[str, str]
                     ) -> dict | None:
    """NOISE_SIGMA ('σ of the low layer[; σ of the high one]', each one value or one per band) → {observation
    name: [...] or None} ('hs' and 'ms', 'ms' and 'pan'), or None to estimate everything."""
    text = (text or "").strip()
    if not text or text.lower() == "auto":
        return None
    parts = text.split(";")
    if len(parts) > 2:
        raise RasterInputError(f"Noise σ {text!r} has more than two ';'-separated parts: give the {roles[0]}'s σ, "
                               f"optionally '; ' and the {roles[1]}'s σ")
    sigma = {}
    for key, part, raster in zip(names, parts, (pair.low, pair.high)):
        sigma[key] = _sigma_values(part, raster, text) if part.strip() else None
    return sigma


def _sigma_values(part: str, raster, text: str) -> list[float]:
    try:
        values = [float(v) for v in part.split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) not in (1, raster.band_count) or any(not math.isfinite(v) or v < 0 for v in values):
        raise RasterInputError(f"Noise σ {text!r}: {raster.label} needs 1 or {raster.band_count} finite values ≥ 0 "
                               f"(comma-separated), got {part.strip()!r}; leave it empty to estimate σ")
    return values


# ---------------------------------------------------------------------------------------------- shared
def _extent(request: FusionRequest, grid) -> tuple | None:
    """The request's extent, or its pixel window as the extent it covers on the output grid."""
    if request.window is None:
        return request.extent
    col, row, width, height = request.window
    return (grid.x0 + col * grid.pixel, grid.y0 - (row + height) * grid.pixel_y,
            grid.x0 + (col + width) * grid.pixel, grid.y0 - row * grid.pixel_y)


def _solver_line(settings: RunSettings) -> str:
    options = settings.options
    return (f"{options.iterations} iterations, loss {options.loss}, seed {options.seed}, "
            f"{options.threads} CPU thread(s)")
