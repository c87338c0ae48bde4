"""How wrong each fused band is, in the data's units, estimated without ground truth.

For a band observed at a coarse resolution, y = A x + n, the projected SURE (`losses.per_band_sure`) is an
unbiased estimate of ‖P(x̂ − x)‖², P = A†A: the error in what the band's own observation measures. The rest,
‖(I − P)(x̂ − x)‖², lies in the finer detail only the guides (10 m bands, MS or PAN image) see, where no
statistic of y reaches. Two parts stand for it:

- *noise*: the input noise the estimator carries into that detail (mostly the guides' own), by Monte-Carlo:
  E‖(I − P) J ñ‖², ñ drawn with the inputs' σ, J ñ by a finite difference. As good as σ: an estimated σ that
  takes fine texture for noise makes this part too large;
- *detail*: a reduced-resolution self-check of the same estimator (Wald's protocol): every input degraded once
  more by the band's ratio d, fused again, and the result's error in the detail the degraded observation lacks,
  measured against the band's own observation with its noise taken out. Unbiased at that scale: the self-check
  sees y only through A y, and (I − P)'s share of y's noise is independent of A y. Its own noise part (measured
  as above) is taken out, the full-resolution one stands for it.

The self-check assumes the band relates to the guides one octave finer as it does where it is observed. So the
guides are degraded not with their own sensor blur but with the blur that keeps the band's sharpness relative
to them: the band's gain over its least-squares prediction from the guides, measured in the rings of its
observed frequencies from half its Nyquist up, is fitted as a Gaussian relative MTF exp(−2π²Δf²), and the
guides' blur σ_x (fine pixels) makes the degraded pair show the same curve in its own pixels:
σ_x² = σ_b² − (d² − 1)Δ, σ_b the band's blur for a degradation by d (a Gaussian relative blur of Δ px² is d²
times larger in pixels one scale coarser). The lower rings are left out of the fit because they carry the
scene's large-area mixing, not a roll-off (docs/error-estimate.md measures what a fit over all rings cost);
a band sharper than the guides predict keeps its negative Δ.

The self-check crops the area to a multiple of its ratios; the band's observation near the cut was blurred
with pixels the crop left out, which the circular operators of the degraded problem wrap around from the far
side, so a cropped self-check leaves SEAM_MARGIN pixels of the band's grid at the edges out of its measure (on
APEX, 198 px cut to 192, the seam made B8A's self-check error 17× its value on the uncut 192 px; 4 px removes
it). An uncropped one keeps its edges: there they are like the full problem's.

A band observed at a ratio r above d (the Sentinel-2 60 m bands, d = 2) is checked on its own grid: the
self-check's result brought there, its error in the octave the degraded observation lacks; that octave stands
for the whole unobserved range. How well all this tracks the truth: docs/benchmarks.md (make bench-error).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from . import detail_gain
from .injection import _normal_equations, _prediction, _solve_weights
from .losses import per_band_sure
from .operators import BlurDecimate
from .problem import FusionProblem, Observation
from .psf import gaussian_taps, geometry_offset, psf_support

#: Monte-Carlo draws of the divergence and of the noise propagation (each one forward pass of the estimator)
PROBES = 8
#: draws for the self-check's own noise part (a small correction)
SELF_CHECK_PROBES = 4
#: finite-difference step of J ñ, in units of the noise draw (the estimator is nearly linear in its noise)
NOISE_STEP = 1e-2
#: the smallest guide blur of the self-check, fine pixels (σ_x² may come out negative for bands that lose detail
#: against the guides much faster than a blur would, like the SWIR bands)
MIN_GUIDE_BLUR = 0.25
#: self-checks whose guide blurs differ by less than this (fine pixels) are run once, and at most this many
BLUR_TOLERANCE = 0.05
MAX_SELF_CHECKS = 8
#: pixels of the band's grid left out at the edges of a cropped self-check's measure (see the module docstring)
SEAM_MARGIN = 4
#: the relative MTF is fitted to the rings from this frequency (target-grid cycles per pixel, times the band's
#: ratio: 1/4 is half the band's Nyquist) up
ROLL_OFF_FROM = 0.25
#: the self-check's coarse grids need this many pixels on a side for the fits it runs
MIN_SELF_CHECK_LR = 4

Estimator = Callable[[torch.Tensor], torch.Tensor]            # z (1, in, H, W) → x̂ (1, out, H, W)
EstimatorFactory = Callable[[FusionProblem], Estimator]     # a problem of the same layout → its estimator


@dataclass
class ErrorEstimate:
    """Per output channel, mean squared errors over the area in data units² (NaN: channel observed at the target
    resolution, or no self-check possible for `detail`), and the band's peak value (for a PSNR)."""

    mse: list[float]
    mse_sd: list[float]          # Monte-Carlo standard deviation of `mse`
    projected: list[float]       # in what the band's observation measures (projected SURE)
    noise_detail: list[float]    # the inputs' noise carried into the finer detail
    detail: list[float]          # the self-check's error in the finer detail
    peak: list[float]            # the band's largest observed value
    pixels: int                  # target pixels the estimate covers

    @property
    def rmse(self) -> list[float]:
        return [math.sqrt(m) if m == m else float("nan") for m in self.mse]

    @property
    def rmse_sd(self) -> list[float]:
        """Standard deviation of the RMSE (delta method), from the Monte-Carlo draws."""
        return [sd / (2 * r) if r > 0 else sd ** 0.5 for sd, r in zip(self.mse_sd, self.rmse)]

    @property
    def psnr(self) -> list[float]:
        """20 log₁₀(peak / RMSE) per band, dB."""
        return [20 * math.log10(p / r) if r > 0 and p > 0 else float("nan") for p, r in zip(self.peak, self.rmse)]


def pooled(estimates: list[ErrorEstimate]) -> ErrorEstimate:
    """One estimate for several areas (tiles, training crops): the pixel-weighted mean of each part."""
    if len(estimates) == 1:
        return estimates[0]
    weights = [e.pixels for e in estimates]
    total = sum(weights)

    def mean(field_name: str) -> list[float]:
        return [sum(w * v for w, v in zip(weights, values)) / total
                for values in zip(*(getattr(e, field_name) for e in estimates))]

    sd = [math.sqrt(sum((w * s) ** 2 for w, s in zip(weights, values))) / total
          for values in zip(*(e.mse_sd for e in estimates))]
    peak = [max(values) for values in zip(*(e.peak for e in estimates))]
    return ErrorEstimate(mean("mse"), sd, mean("projected"), mean("noise_detail"), mean("detail"), peak, total)


# --------------------------------------------------------------------------------------------- full resolution
def _noise_draw(problem: FusionProblem, generator: torch.Generator) -> torch.Tensor:
    """One draw of the network input's noise: σ-scaled white noise for bands observed at the target resolution,
    the back-projection of σ-scaled white noise for the coarse groups."""
    parts = []
    for obs in problem.observations:
        white = torch.randn(obs.data.shape, generator=generator, device=obs.data.device, dtype=obs.data.dtype)
        noise = obs.sigma[:, None, None] * white
        parts.append(obs.operator.A_dagger(noise) if obs.back_project else noise)
    return torch.cat(parts)[None]


def _split(obs: Observation, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per band, the mean energy of `values` (bands, H, W) inside and outside what `obs` measures (P = A†A)."""
    inside = obs.operator.project(values, cond=0.0)
    return inside.pow(2).mean(dim=(-2, -1)), (values - inside).pow(2).mean(dim=(-2, -1))


@torch.no_grad()
def _full_resolution(problem: FusionProblem, estimator: Estimator, x_out: torch.Tensor, probes: int,
                     epsilon: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per channel (NaN outside the coarse groups), over the Monte-Carlo draws: projected SURE (mean, sd of the
    mean), noise inside and outside the observed part (mean, sd of the mean), per target pixel."""
    z = problem.network_input()
    x_hat = estimator(z)
    pixels = problem.hr_shape[0] * problem.hr_shape[1]
    sure, inside, outside = [], [], []
    for _ in range(probes):
        probe = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        jac_probe = (estimator(z + epsilon * probe) - x_hat) / epsilon
        row = torch.full((problem.out_channels,), float("nan"), dtype=torch.float64)
        for obs, terms in zip(problem.observations, per_band_sure(problem, x_out[None], jac_probe, probe)):
            if obs.back_project:
                row[obs.output_channels] = terms.double().cpu() / pixels
        sure.append(row)
        jac_noise = (estimator(z + NOISE_STEP * _noise_draw(problem, generator)) - x_hat)[0] / NOISE_STEP
        row_in, row_out = (torch.full((problem.out_channels,), float("nan"), dtype=torch.float64) for _ in range(2))
        for obs in problem.observations:
            if obs.back_project:
                energy_in, energy_out = _split(obs, jac_noise[obs.output_channels])
                row_in[obs.output_channels] = energy_in.double().cpu()
                row_out[obs.output_channels] = energy_out.double().cpu()
        inside.append(row_in)
        outside.append(row_out)

    def stats(rows):
        stacked = torch.stack(rows)
        spread = stacked.std(dim=0) / math.sqrt(len(rows)) if len(rows) > 1 else torch.zeros_like(stacked[0])
        return stacked.mean(dim=0), spread

    return dict(zip(("sure", "sure_sd", "inside", "inside_sd", "outside", "outside_sd"),
                    (*stats(sure), *stats(inside), *stats(outside))))


# --------------------------------------------------------------------------------------------- self-check
def _kernel_norm(sigma: float, ratio: int, geometry) -> float:
    """‖k‖₂ of the degradation kernel: white noise of σ comes out of it with σ‖k‖."""
    kernel, _ = gaussian_taps(sigma, geometry_offset(geometry, ratio))
    return float((kernel ** 2).sum() ** 0.5)


def _relative_blur(obs: Observation, guides: torch.Tensor) -> torch.Tensor:
    """Per band of a coarse group, Δ (fine px²) of the Gaussian relative MTF exp(−2π²Δf²) of the band over its
    least-squares prediction from the guides, fitted to the gain in rings of its observed frequencies (see
    `detail_gain`); 0 where too few rings are usable."""
    gram, rhs = _normal_equations(obs, guides)
    prediction = _prediction(guides[None], _solve_weights(gram, rhs))[0]
    cross, power, moment = detail_gain.ring_sums(obs.data, obs.operator.A(prediction), obs.operator.ratio)
    delta = torch.zeros(obs.bands, dtype=torch.float64)
    for band in range(obs.bands):
        usable = power[band] > 0
        gain = torch.where(usable, cross[band] / power[band].clamp_min(1e-300), torch.zeros_like(power[band]))
        centre = moment[band] / power[band].clamp_min(1e-300)
        usable &= (gain > detail_gain.MIN_RING_GAIN) & (centre >= ROLL_OFF_FROM / obs.operator.ratio)
        if int(usable.sum()) < detail_gain.MIN_RINGS:
            continue
        centre = centre[usable]
        weight = (power[band][usable] / power[band][usable].sum()).sqrt()
        design = torch.stack([torch.ones_like(centre), -2 * math.pi ** 2 * centre ** 2], dim=1) * weight[:, None]
        delta[band] = torch.linalg.lstsq(design, (gain[usable].log() * weight)[:, None]).solution[1, 0]
    return delta


@dataclass
class _Check:
    """The self-check's layout: degradation d, the cropped full-resolution size, the coarse groups' indices."""
    d: int
    rows: int
    cols: int
    groups: list[int]
    cropped: bool       # the area was cut to a multiple of the grids' ratios


def _layout(problem: FusionProblem) -> _Check | None:
    """The self-check's layout, or None when the area is too small for it (every grid it blurs must hold the PSF's
    support, and the coarsest a few pixels)."""
    groups = [i for i, obs in enumerate(problem.observations) if obs.back_project]
    if not groups or not all(isinstance(problem.observations[i].operator, BlurDecimate) for i in groups):
        return None
    ratios = [problem.observations[i].operator.ratio for i in groups]
    geometry = problem.observations[groups[0]].operator.geometry
    d = min(ratios)
    step = d * math.lcm(*ratios)
    rows, cols = (n // step * step for n in problem.hr_shape)
    side = min(rows, cols)

    def fits(size: int, ratio: int) -> bool:
        return size >= psf_support(geometry_offset(geometry, ratio))

    blurred = [(side // r, d) for r in [1, *ratios]]                     # the inputs degraded by d
    blurred += [(side // d, r) for r in ratios]                          # the coarse operators on the coarser grid
    blurred += [(side // d, r // d) for r in ratios if r > d]           # results brought to a coarse band's grid
    if side // (d * max(ratios)) < MIN_SELF_CHECK_LR or not all(fits(size, ratio) for size, ratio in blurred):
        return None
    return _Check(d, rows, cols, groups, (rows, cols) != tuple(problem.hr_shape))


def _degraded(data: torch.Tensor, sigmas, d: int, geometry) -> torch.Tensor:
    return BlurDecimate(sigmas, d, data.shape[-2:], geometry, device=data.device, dtype=data.dtype).A(data)


def _reduced_problem(problem: FusionProblem, check: _Check, guide_blur: float) -> FusionProblem:
    """The problem degraded once more by d: coarse groups with their own blur for a ratio d (σ·d/r), the guides with
    `guide_blur`; σ's scaled by the degradation's kernel norm; operators on the d times coarser grid."""
    geometry = problem.observations[check.groups[0]].operator.geometry
    observations = []
    for obs in problem.observations:
        ratio = getattr(obs.operator, "ratio", 1)
        data = obs.data[:, :check.rows // ratio, :check.cols // ratio]
        if obs.back_project:
            op = obs.operator
            blur = [s * check.d / ratio for s in op.sigmas]
            operator = BlurDecimate(op.sigmas, ratio, (check.rows // check.d, check.cols // check.d), op.geometry,
                                    op.cond, data.device, data.dtype)
        else:
            blur, operator = [guide_blur] * obs.bands, obs.operator
        norms = torch.tensor([_kernel_norm(s, check.d, geometry) for s in blur], dtype=obs.sigma.dtype,
                             device=obs.sigma.device)
        observations.append(Observation(obs.name, _degraded(data, blur, check.d, geometry), operator,
                                        obs.sigma * norms, obs.output_channels, obs.back_project, obs.weight))
    return FusionProblem(observations, problem.out_channels, (check.rows // check.d, check.cols // check.d),
                         problem.guide_channels, problem.scale, problem.refined_injection, problem.guided_smoothing,
                         problem.cross_band_shrinkage)


def _interior(values: torch.Tensor) -> torch.Tensor:
    """`values` (…, h, w) less SEAM_MARGIN pixels on every side (fewer on small grids: 3/4 of each side is kept)."""
    m = min(SEAM_MARGIN, min(values.shape[-2:]) // 8)
    return values[..., m:values.shape[-2] - m, m:values.shape[-1] - m] if m else values


def _checked_error(problem: FusionProblem, check: _Check, index: int,
                   values: torch.Tensor, truth: bool) -> torch.Tensor:
    """Per band of coarse group `index`, the mean energy, outside what its degraded observation measures, of the
    self-check's result `values` (bands, h, w) minus the band's observation (`truth`), or of `values` alone (a noise
    propagation), on the band's own grid (less the crop's seam), less the observation's noise there when `truth`."""
    obs = problem.observations[index]
    op = obs.operator
    ratio, d = op.ratio, check.d
    y = obs.data[:, :check.rows // ratio, :check.cols // ratio]
    if ratio > d:  # from the self-check's grid to the band's: the part of the band's blur not yet applied
        rest = [math.sqrt(max(s ** 2 - (s * d / ratio) ** 2, 1e-6)) / d for s in op.sigmas]
        values = BlurDecimate(rest, ratio // d, values.shape[-2:], op.geometry, device=values.device,
                              dtype=values.dtype).A(values)
    error = values - y if truth else values
    degradation = BlurDecimate([s * d / ratio for s in op.sigmas], d, y.shape[-2:], op.geometry,
                               device=y.device, dtype=y.dtype)
    outside = error - degradation.project(error, cond=0.0)
    outside = (_interior(outside) if check.cropped else outside).pow(2).mean(dim=(-2, -1))
    if truth:
        outside = outside - obs.sigma ** 2 * (1 - 1 / d ** 2)
    return outside.double().cpu()


def _grouped_blurs(wanted: dict) -> dict[float, list]:
    """{guide blur: the (group, band) pairs checked with it}: blurs within BLUR_TOLERANCE share one self-check, and
    at most MAX_SELF_CHECKS are run (one per Sentinel-2 coarse band; a hyperspectral layer has a hundred): evenly
    spaced quantiles of the wanted blurs, each band checked with the nearest."""
    values = sorted(set(wanted.values()))
    kept: list[float] = []
    for value in values:
        if not kept or value - kept[-1] >= BLUR_TOLERANCE:
            kept.append(value)
    if len(kept) > MAX_SELF_CHECKS:
        kept = [values[round(q * (len(values) - 1) / (MAX_SELF_CHECKS - 1))] for q in range(MAX_SELF_CHECKS)]
    groups: dict[float, list] = {}
    for member, value in wanted.items():
        groups.setdefault(min(kept, key=lambda b: abs(b - value)), []).append(member)
    return groups


@torch.no_grad()
def _self_check(problem: FusionProblem, reduced_estimator: EstimatorFactory, generator: torch.Generator,
                probes: int) -> torch.Tensor:
    """Per channel, the self-check's error in the detail the band's observation lacks, its own noise part taken out
    (≥ 0), per pixel of the band's grid; NaN where there is no self-check."""
    detail = torch.full((problem.out_channels,), float("nan"), dtype=torch.float64)
    check = _layout(problem)
    if check is None:
        return detail
    guides = torch.cat([obs.data for obs in problem.observations if not obs.back_project])
    wanted = {}
    for index in check.groups:
        obs = problem.observations[index]
        delta = _relative_blur(obs, guides)
        for band in range(obs.bands):
            own = obs.operator.sigmas[band] * check.d / obs.operator.ratio
            wanted[(index, band)] = math.sqrt(max(own ** 2 - (check.d ** 2 - 1) * float(delta[band]),
                                                  MIN_GUIDE_BLUR ** 2))
    for blur, members in _grouped_blurs(wanted).items():
        reduced = _reduced_problem(problem, check, blur)
        estimator = reduced_estimator(reduced)
        z = reduced.network_input()
        x_hat = estimator(z)
        noise = torch.zeros((problem.out_channels,), dtype=torch.float64)
        for _ in range(probes):
            jac_noise = (estimator(z + NOISE_STEP * _noise_draw(reduced, generator)) - x_hat)[0] / NOISE_STEP
            for index in {i for i, _ in members}:
                channels = problem.observations[index].output_channels
                noise[channels] += _checked_error(problem, check, index, jac_noise[channels], False) / probes
        for index, band in members:
            channels = problem.observations[index].output_channels
            measured = _checked_error(problem, check, index, x_hat[0, channels], True)[band]
            detail[channels[band]] = max(0.0, float(measured - noise[channels[band]]))
    return detail


# --------------------------------------------------------------------------------------------- together
def estimate_error(problem: FusionProblem, estimator: Estimator, x_out: torch.Tensor,
                   reduced_estimator: EstimatorFactory | None = None, *, probes: int = PROBES, epsilon: float = 1e-5,
                   seed: int = 0) -> ErrorEstimate:
    """The error estimate of the fused image `x_out` (bands, H, W; normalised scale) of `problem`.

    `estimator(z)` is the fusion as a function of the network input (the network, first estimate and smoothing as
    trained); `reduced_estimator(p)` returns that function for another problem of the same layout, with what is
    fitted to the data (the first estimate) refitted on it, for the self-check (None: no self-check, detail NaN).
    Results in data units (× problem.scale²).
    """
    generator = torch.Generator(device=problem.observations[0].data.device)
    generator.manual_seed(seed + 7)
    full = _full_resolution(problem, estimator, x_out, probes, epsilon, generator)
    detail = (_self_check(problem, reduced_estimator, generator, SELF_CHECK_PROBES) if reduced_estimator is not None
              else torch.full((problem.out_channels,), float("nan"), dtype=torch.float64))
    # SURE of the observed part is unbiased but noisy, and a σ set too high pulls it down (even below 0); the noise
    # passed into that part is a floor it cannot be below
    use_sure = full["sure"] >= full["inside"]
    projected = torch.where(use_sure, full["sure"], full["inside"])
    projected_sd = torch.where(use_sure, full["sure_sd"], full["inside_sd"])
    mse = projected + full["outside"] + torch.nan_to_num(detail, nan=0.0)
    mse_sd = (projected_sd ** 2 + full["outside_sd"] ** 2).sqrt()
    scale = float(problem.scale if problem.scale is not None else 1.0) ** 2
    peak = torch.full((problem.out_channels,), float("nan"), dtype=torch.float64)
    for obs in problem.observations:
        if obs.back_project:
            peak[obs.output_channels] = obs.data.amax(dim=(-2, -1)).double().cpu()
    peak = peak * math.sqrt(scale)

    def units(v: torch.Tensor) -> list[float]:
        return [float(x) * scale for x in v]

    return ErrorEstimate(units(mse), units(mse_sd), units(projected), units(full["outside"]), units(detail),
                         [float(p) for p in peak], problem.hr_shape[0] * problem.hr_shape[1])
