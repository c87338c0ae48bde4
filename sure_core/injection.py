"""A linear first estimate that the network refines: guide detail injection plus a SURE-tuned back-projection.

For every band observed at low resolution through a band-wise operator A, the guide bands (observed at the target
resolution) are combined linearly, s = Σ_k w_k g_k + w_0, with the weights that make A s best match the band's
own observation (regression-based detail injection, exact for the model's own operator). The observation then
corrects s where A sees it:

    x̂ = s + Aᵀ (AAᵀ)⁻¹ H (y − A s)

with H a shrinkage of the LR residual e = y − A s in the LR Fourier basis (where AAᵀ = diag(λ)). H = 1 would pass
all of y's noise, amplified where λ is small, so H is chosen by SURE, per band, in two steps:
1. a Tikhonov factor g_k = λ_k/(λ_k + τ), τ from a grid by the closed-form SURE of x̂ = s + Aᵀ(AAᵀ + τ)⁻¹e,
       Σ_k (τ/(λ_k+τ))² |ê_k|² / (n λ_k) + 2σ² Σ_k 1/(λ_k+τ) − const   (n: LR pixels);
2. one factor r per ring R of LR frequency on top, H_k = min(1, r g_k), r = Σ_R g(|ê|² − nσ²)/λ / Σ_R g²|ê|²/λ,
   interpolated between ring centres (no steps in frequency, which would make tiles disagree); the mean (DC) is
   never shrunk. When the group's σ is given (`FusionProblem.cross_band_shrinkage`), one matrix per ring instead:
   band k's corrected residual is Σ_l M_kl g_l e_l, row k chosen by band k's SURE, M_kk ≥ 0 (a σ set too high
   makes SURE reward a negative own weight).

Before the correction, s is filtered band by band by its injection gain (`detail_gain`). The gain and the ring
factors make the *refined* injection, used where it was validated: Sentinel-2 (`FusionProblem.refined_injection`);
the guided pairs keep the plain regression and τ alone. Groups are estimated from the finest ratio to the
coarsest, each finished group joining the guides of the next (the sharpened 20 m bands guide the 60 m bands).
The estimate is a fixed linear function of the network input z, so the SURE divergence of the full estimator
differentiates through it. Measurements behind each step: docs/decisions.md, "The linear first estimate".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from . import detail_gain, sharpness
from .operators import rfft_multiplicity
from .problem import FusionProblem

TAU_GRID = torch.cat([torch.zeros(1), torch.logspace(-6, 1, 57)])
#: at most this many rings of LR radial frequency (equal width over [0, √½] cycles per LR pixel), with one SURE
#: factor each
SHRINK_RINGS = 16
#: a ring factor above 1 gives back part of what τ took where τ shrank too much; H itself stays ≤ 1
MAX_RING_FACTOR = 10.0


def _degraded_guides(op, guides: torch.Tensor) -> torch.Tensor:
    """(bands, guides, h, w): each guide degraded by each band's operator; bands sharing a PSF share the work."""
    sigmas = getattr(op, "sigmas", None)
    shifts = getattr(op, "shifts", ())
    if sigmas is None or len(set(sigmas)) > 1 or len(set(shifts)) > 1:
        return op.A(guides[:, None].expand(-1, op.bands, -1, -1).contiguous()).transpose(0, 1)
    # one PSF for the whole group (usual for hyperspectral bands): degrade the guides once
    single = type(op)([sigmas[0]] * guides.shape[0], op.ratio, op.hr_shape, op.geometry, op.cond,
                      guides.device, guides.dtype, shifts[:1] or None)
    return single.A(guides)[None].expand(op.bands, -1, -1, -1)


def _normal_equations(obs, guides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per band, the normal equations (gram (bands, k, k), rhs (bands, k)) of the least-squares fit of the band's
    observation by its degraded guides and a constant (k = guides + 1), in float64."""
    return _fit_equations(_degraded_guides(obs.operator, guides), obs.data)


def _fit_equations(degraded: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`_normal_equations` from the guides degraded by each band's operator (bands, guides, h, w) and y."""
    degraded = degraded.double()
    bands, n_guides = degraded.shape[:2]
    design = torch.cat([degraded.reshape(bands, n_guides, -1),
                        torch.ones_like(degraded[:, :1].reshape(bands, 1, -1))], dim=1)  # (bands, k, n)
    target = y.double().reshape(bands, -1, 1)
    return design @ design.transpose(1, 2), (design @ target)[..., 0]


def _solve_weights(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    ridge = 1e-10 * gram.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + ridge * eye, rhs[..., None])[..., 0]


def _ring_count(op) -> int:
    """Rings for a LR grid: about one per 6 LR pixels of its smaller side, 2 to SHRINK_RINGS (few coefficients per
    ring make the factors noisy: on 16×16 px HS crops 16 rings did worse than one factor per band)."""
    return int(min(SHRINK_RINGS, max(2, min(op.lr_shape) // 6)))


def _ring_position(op, rings: int) -> torch.Tensor:
    """Radial frequency of every coefficient of the rfft2 grid of the operator's LR shape, in ring widths."""
    return detail_gain.radial_frequency(op.lr_shape, op.gram_eigenvalues.device) / math.sqrt(0.5) * rings


def _ring_map(op, table: torch.Tensor) -> torch.Tensor:
    """(..., h, w//2+1): a table (..., rings) of values per ring (factors per band, or matrix entries) interpolated
    linearly between ring centres over the rfft2 grid of the operator's LR shape."""
    rings = table.shape[-1]
    centre = (_ring_position(op, rings) - 0.5).clamp(0, rings - 1)
    low = centre.floor().long().clamp(max=max(rings - 2, 0))
    frac = (centre - low).clamp(0, 1)
    high = (low + 1).clamp(max=rings - 1)
    return table[..., low] * (1 - frac) + table[..., high] * frac


def _residual_spectrum(op, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(λ, rfft2 multiplicity, rfft2 of the residual) of the LR residual (bands, h, w), in float64, for the SURE
    sums."""
    lam = op.gram_eigenvalues.double().clamp_min(1e-12)
    return lam, rfft_multiplicity(op.lr_shape, lam.device), torch.fft.rfft2(residual.double())


def _tau_scores(spectrum: tuple, op, sigma: torch.Tensor) -> torch.Tensor:
    """(len(TAU_GRID), bands) closed-form SURE (up to a constant) of x̂ = s + Aᵀ(AAᵀ+τ)⁻¹e for each candidate τ;
    `spectrum` from `_residual_spectrum`."""
    lam, mult, coefficients = spectrum
    power = coefficients.abs() ** 2 / (op.lr_shape[0] * op.lr_shape[1]) * mult
    var = sigma.double()[:, None, None] ** 2
    scores = []
    for tau in TAU_GRID.double().tolist():
        scores.append(((tau / (lam + tau)) ** 2 * power / lam + 2 * var * mult / (lam + tau)).sum(dim=(-2, -1)))
    return torch.stack(scores)


def _ring_sums(spectrum: tuple, op, sigma: torch.Tensor, rings: int, tau: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per band and ring: (Σ g(|ê|² − nσ²)/λ, Σ g²|ê|²/λ), g = λ/(λ+τ), over the full LR spectrum: the SURE-optimal
    ring factor is their ratio. `spectrum` from `_residual_spectrum`. Sums over problems of one scene add up."""
    lam, mult, coefficients = spectrum
    power = coefficients.abs() ** 2
    shape = op.lr_shape
    ring = _ring_position(op, rings).long().clamp(max=rings - 1).flatten()
    g = lam / (lam + tau.double()[:, None, None])
    var = (sigma.double() ** 2 * shape[0] * shape[1])[:, None, None]
    cross = g * (power - var) * mult / lam
    square = g * g * power * mult / lam

    def per_ring(v: torch.Tensor) -> torch.Tensor:
        return v.new_zeros((v.shape[0], rings)).index_add_(1, ring, v.flatten(1))

    return per_ring(cross), per_ring(square)


def _ring_normal_equations(spectrum: tuple, op, sigma: torch.Tensor, rings: int, tau: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The normal equations of the SURE-optimal cross-band ring matrices (see `Shrinkage.from_normal_equations`):
    per output band k and ring, (Σ Re(v vᴴ)/λ_k, Σ Re(v ē_k)/λ_k − nσ_k² Σ g_k/λ_k · e_k-th unit vector), with
    v = G e the Tikhonov-shrunk residuals of all bands at a coefficient; shapes (bands, rings, bands, bands) and
    (bands, rings, bands). Sums over problems of one scene add up."""
    lam, mult, coefficients = spectrum
    bands, n = coefficients.shape[0], op.lr_shape[0] * op.lr_shape[1]
    ring = _ring_position(op, rings).long().clamp(max=rings - 1).flatten()
    g = lam / (lam + tau.double()[:, None, None])
    v, e = (g * coefficients).flatten(1), coefficients.flatten(1)               # (bands, coefficients)
    weight = (mult / lam).flatten(1)                                             # per output band
    outer = (v[:, None] * v[None].conj()).real.reshape(bands * bands, -1)        # (bands², coefficients)
    gram = v.new_zeros((bands, rings, bands * bands), dtype=torch.float64)
    rhs = v.new_zeros((bands, rings, bands), dtype=torch.float64)
    for k in range(bands):
        gram[k].index_add_(0, ring, (outer * weight[k]).T)
        rhs[k].index_add_(0, ring, ((v * e[k].conj()).real * weight[k]).T)
        penalty = (g[k].flatten() * weight[k]) * n * float(sigma[k]) ** 2
        rhs[k, :, k] -= v.new_zeros(rings, dtype=torch.float64).index_add_(0, ring, penalty)
    return gram.reshape(bands, rings, bands, bands), rhs


@dataclass
class Shrinkage:
    """H of one group: the Tikhonov τ (bands,), then either nothing (τ alone), one factor per band and ring
    (`rings`, (bands, rings)) or one matrix per ring that mixes the bands' residuals (`matrices`,
    (rings, bands, bands))."""

    tau: torch.Tensor
    rings: torch.Tensor | None
    matrices: torch.Tensor | None = None

    @classmethod
    def tikhonov(cls, tau: torch.Tensor) -> Shrinkage:
        return cls(tau, None)

    @classmethod
    def from_sums(cls, tau: torch.Tensor, cross: torch.Tensor, square: torch.Tensor) -> Shrinkage:
        factors = torch.where(square > 0, cross / square.clamp_min(1e-300), torch.ones_like(square))
        return cls(tau, factors.clamp(0.0, MAX_RING_FACTOR))

    @classmethod
    def from_normal_equations(cls, tau: torch.Tensor, gram: torch.Tensor, rhs: torch.Tensor) -> Shrinkage:
        """Cross-band ring matrices M (rings, bands, bands): band k's corrected residual is Σ_l M_kl g_l e_l at each
        coefficient of the ring. Row k of M minimises band k's projected SURE, Σ |m·v − e_k|²/λ_k + 2nσ_k² m_k
        Σ g_k/λ_k: the other bands' residuals carry independent noise, so they cost no divergence and help where
        the bands' residuals are alike (the SWIR pair B11/B12 correlate at 0.94 on APEX). A row whose own weight
        m_k comes out negative (SURE's answer to a σ set too high) is refitted with m_k = 0, from the other bands'
        residuals alone. A rank-deficient ring (a band whose residual is zero) gets a tiny ridge."""
        bands = gram.shape[-1]
        ridge = 1e-9 * gram.diagonal(dim1=-2, dim2=-1).mean(dim=-1).clamp_min(1e-300)[..., None, None]
        eye = torch.eye(bands, dtype=gram.dtype, device=gram.device)
        gram = gram + ridge * eye
        rows = torch.linalg.solve(gram, rhs[..., None])[..., 0]                 # (bands, rings, bands)
        own = torch.arange(bands, device=gram.device)
        negative = rows[own, :, own] < 0                                        # (bands, rings)
        if negative.any():  # a band's own residual weighted below 0: refit that row from the other bands alone
            pinned = torch.zeros_like(gram[..., 0, :])                          # (bands, rings, bands)
            pinned[own, :, own] = negative.to(gram.dtype)
            keep = 1.0 - pinned
            refit = gram * keep[..., :, None] * keep[..., None, :] + torch.diag_embed(pinned)
            rows = torch.where(negative[..., None], torch.linalg.solve(refit, (rhs * keep)[..., None])[..., 0], rows)
        return cls(tau, None, rows.transpose(0, 1).contiguous())

    def over_gram(self, op) -> torch.Tensor:
        """(bands, h, w//2+1) H/λ on the rfft2 grid of the operator's LR shape for band-wise shrinkage (τ alone or
        with ring factors): min(1/λ, r/(λ + τ)), written so that a vanishing λ stays finite where τ > 0."""
        lam = op.gram_eigenvalues
        tikhonov = 1.0 / (lam + self.tau.to(lam)[:, None, None])
        if self.rings is None:
            return tikhonov
        m = torch.minimum(tikhonov * _ring_map(op, self.rings).to(lam), 1.0 / lam)
        m[:, 0, 0] = 1.0 / lam[:, 0, 0]  # the band mean is observed with n times a pixel's SNR: never shrunk by a ring
        return m

    def apply(self, op, spectrum: torch.Tensor) -> torch.Tensor:
        """(AAᵀ)⁻¹ H applied to the rfft2 `spectrum` (..., bands, h, w//2+1) of a LR residual."""
        if self.matrices is None:
            return spectrum * self.over_gram(op)
        lam = op.gram_eigenvalues
        shrunk = spectrum * (lam / (lam + self.tau.to(lam)[:, None, None]))
        matrices = _ring_map(op, self.matrices.permute(1, 2, 0))                 # (bands, bands, h, w//2+1)
        mixed = torch.einsum("klhw,...lhw->...khw", matrices.to(spectrum), shrunk)
        mixed[..., 0, 0] = spectrum[..., 0, 0]  # the band means are never shrunk
        return mixed / lam


@dataclass
class InjectionFit:
    """The fitted first estimate, per observation group: the guide weights (bands, guides + 1), the residual's
    `Shrinkage` (None: H = 1), the injection gain (bands, detail_gain.TABLE_SIZE) (None: no gain) and the
    sharpness in excess of the sensor model by which the observation is divided (bands,) (None: none, see
    `sharpness`)."""

    weights: list
    shrink: list
    gain: list
    excess: list | None = None

    def excess_of(self, i: int) -> torch.Tensor | None:
        return self.excess[i] if self.excess else None


def _order(problem: FusionProblem) -> list[int]:
    # groups are estimated from the finest ratio to the coarsest; with `cascade`, the estimates of finer
    # groups guide the coarser ones (the 20 m bands, B8A above all, guide the 60 m bands B1 and B9)
    return sorted(range(len(problem.observations)), key=lambda i: getattr(problem.observations[i].operator, "ratio", 1))


def _prediction(guides: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """s = Σ_k w_k g_k + w_0 per band: (n, bands, h, w) from guides (n, k, h, w)."""
    return torch.einsum("bk,nkhw->nbhw", w[:, :-1].to(guides.dtype), guides) + w[:, -1, None, None].to(guides.dtype)


def _observed(op, own: torch.Tensor, excess: torch.Tensor | None) -> torch.Tensor:
    """The group's observation y, recovered from its network input (A†y), divided by its excess sharpness if any."""
    y = op.observation_from_back_projection(own)
    return y if excess is None else sharpness.desharpen(op, y, excess)


def _step(obs, own: torch.Tensor, guides: torch.Tensor, w: torch.Tensor, shrink: Shrinkage | None,
          gain: torch.Tensor | None, excess: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(estimate s + Aᵀ(AAᵀ)⁻¹H(y − A s), the LR residual y − A s) for one low-resolution group; s is filtered by
    its injection gain table, y by its excess sharpness and the residual shrunk by its ring factors when they are
    given."""
    op = obs.operator
    s = _prediction(guides, w)
    if gain is not None:
        s = detail_gain.apply_gain(s, gain)
    residual = _observed(op, own, excess) - op.A(s)
    spectrum = torch.fft.rfft2(residual)
    spectrum = spectrum / op.gram_eigenvalues if shrink is None else shrink.apply(op, spectrum)
    return s + op.A_adjoint(torch.fft.irfft2(spectrum, s=op.lr_shape)), residual


def _fit_gain(problems: list[FusionProblem], i: int, owns: list, guides: list, w: torch.Tensor,
              excess: torch.Tensor | None) -> torch.Tensor:
    """The injection gain table of group i, measured on every problem's observation and pooled (see `detail_gain`)."""
    rings = [0, 0, 0]
    for p, own, g in zip(problems, owns, guides):
        op = p.observations[i].operator
        s = _prediction(g, w)[0].double()
        y = _observed(op, own[0], excess).double()
        rings = [a + b.cpu() for a, b in zip(rings, detail_gain.ring_sums(y, op.A(s), op.ratio))]
    ratio = problems[0].observations[i].operator.ratio
    return detail_gain.gain_table(detail_gain.fit_gain(*rings, ratio)).to(w.device)


def _fit_excess(problems: list[FusionProblem], i: int, owns: list, degraded: list, observed: int
                ) -> torch.Tensor | None:
    """The excess sharpness of group i (see `sharpness`), measured on every problem against the first `observed`
    guides (those observed at the target resolution) of its `degraded` guides, and pooled; None where the problem
    does not say the guides' blur, or no band exceeds."""
    blur = problems[0].guide_psf_sigma
    if blur is None:
        return None
    sums = None
    for p, own, d in zip(problems, owns, degraded):
        op = p.observations[i].operator
        measured = sharpness.fit_sums(op, op.observation_from_back_projection(own[0]), d[:, :observed])
        sums = measured if sums is None else [a + b for a, b in zip(sums, measured)]
    return sharpness.excess(problems[0].observations[i].operator, sums, blur)


def fit_injection(problems: list[FusionProblem], tune: bool = True, cascade: bool = True,
                  refined: bool | None = None) -> InjectionFit:
    """Fit the weights, injection gains and shrinkage of every group on one or several problems of the same layout (e.g.
    crops of one scene): the normal equations, the gain measurements and the SURE scores are summed over the
    problems, so the fit is scene-wide. `refined`: the injection gain and the ring factors (None: the problem's
    `refined_injection`); without them the guides' detail is injected in full and H has τ alone. `tune`: shrink
    the residual by SURE; without it (the BP-only recipe, which uses no risk estimate) H = 1."""
    first = problems[0]
    refined = first.refined_injection if refined is None else refined
    if all(obs.back_project for obs in first.observations):
        raise ValueError("detail injection needs at least one band observed at the target resolution")
    n = len(first.observations)
    fit = InjectionFit([None] * n, [None] * n, [None] * n, [None] * n)
    zs = [p.network_input() for p in problems]
    guides: list[list[torch.Tensor]] = [[] for _ in problems]
    observed = 0  # guide channels observed at the target resolution: the first ones (their groups come first)
    with torch.no_grad():
        for i in _order(first):
            owns = [z[:, p.input_slices[i]] for p, z in zip(problems, zs)]
            if not first.observations[i].back_project:
                for g, own in zip(guides, owns):
                    g.append(own)  # observed at the target resolution: S2 10 m bands, or a spectral guide
                observed += first.observations[i].bands
                continue
            stacked = [torch.cat(g, dim=1) for g in guides]
            degraded = [_degraded_guides(p.observations[i].operator, g[0]) for p, g in zip(problems, stacked)]
            # measured against the observed guides alone: a sharpened finer group carries its own excess
            fit.excess[i] = excess = _fit_excess(problems, i, owns, degraded, observed)
            gram, rhs = map(sum, zip(*(_fit_equations(d, p.observations[i].data if excess is None else
                                                      _observed(p.observations[i].operator, own[0], excess))
                                       for p, own, d in zip(problems, owns, degraded))))
            del degraded
            fit.weights[i] = w = _solve_weights(gram, rhs)
            if refined:
                fit.gain[i] = _fit_gain(problems, i, owns, stacked, w, excess)
            steps = [_step(p.observations[i], own, g, w, None, fit.gain[i], excess)
                     for p, own, g in zip(problems, owns, stacked)]
            if tune:
                spectra = [_residual_spectrum(p.observations[i].operator, res[0])
                           for p, (_, res) in zip(problems, steps)]
                scores = sum(_tau_scores(sp, p.observations[i].operator, p.observations[i].sigma)
                             for p, sp in zip(problems, spectra))
                tau = TAU_GRID.to(w.device)[scores.argmin(dim=0)]
                fit.shrink[i] = Shrinkage.tikhonov(tau)
                if refined:
                    rings = _ring_count(first.observations[i].operator)
                    if first.cross_band_shrinkage and first.observations[i].bands > 1:
                        equations = [_ring_normal_equations(sp, p.observations[i].operator, p.observations[i].sigma,
                                                            rings, tau) for p, sp in zip(problems, spectra)]
                        fit.shrink[i] = Shrinkage.from_normal_equations(tau, *map(sum, zip(*equations)))
                    else:
                        sums = [_ring_sums(sp, p.observations[i].operator, p.observations[i].sigma, rings, tau)
                                for p, sp in zip(problems, spectra)]
                        fit.shrink[i] = Shrinkage.from_sums(tau, *map(sum, zip(*sums)))
                steps = [_step(p.observations[i], own, g, w, fit.shrink[i], fit.gain[i], excess)
                         for p, own, g in zip(problems, owns, stacked)]
            if cascade:
                for g, (estimate, _) in zip(guides, steps):
                    g.append(estimate)
    return fit


class DetailInjectionBase(nn.Module):
    """base(z): observed target bands = their own input; low-resolution outputs = s + Aᵀ(AAᵀ)⁻¹H(y − A s).

    Fitted on `problem` itself, unless a scene-wide `fit` (see `fit_injection`) is given.
    """

    def __init__(self, problem: FusionProblem, tune: bool = True, cascade: bool = True, fit: InjectionFit | None = None,
                 refined: bool | None = None):
        super().__init__()
        self.problem = problem
        self.cascade = cascade
        self.order = _order(problem)
        self.fit = fit or fit_injection([problem], tune=tune, cascade=cascade, refined=refined)

    @property
    def weights(self) -> list:
        return self.fit.weights

    @property
    def shrink(self) -> list:
        return self.fit.shrink

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = z.new_zeros((z.shape[0], self.problem.out_channels, *z.shape[-2:]))
        guides = []
        for i in self.order:
            obs, sl = self.problem.observations[i], self.problem.input_slices[i]
            own = z[:, sl]
            if not obs.back_project:
                if getattr(obs.operator, "bandwise", False):  # observed target bands (S2 10 m) are their own estimate
                    out[:, obs.output_channels] = own
                guides.append(own)  # a spectral guide (MS or PAN) only guides
                continue
            estimate, _ = _step(obs, own, torch.cat(guides, dim=1), self.fit.weights[i], self.fit.shrink[i],
                                self.fit.gain[i], self.fit.excess_of(i))
            out[:, obs.output_channels] = estimate
            if self.cascade:
                guides.append(estimate)
        return out

