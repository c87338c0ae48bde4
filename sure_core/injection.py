"""A linear first estimate that the network refines: guide detail injection plus a SURE-tuned back-projection.

For every band observed at low resolution through a band-wise operator A, the guide bands (observed at
the target resolution) are combined linearly, s = Σ_k w_k g_k + w_0, with the weights that make A s best
match the band's own observation (least squares at low resolution: regression-based detail injection,
exact for the model's own operator). The observation then corrects s where A sees it:

    x̂ = s + Aᵀ (AAᵀ + τ)⁻¹ (y − A s)

τ → 0 gives s + A†(y − A s) = A†y + (I − A†A) s (back-projection plus the guide's unseen detail); a
larger τ damps the frequencies where A is weak and the back-projection amplifies noise. τ is chosen per
band by minimising the closed-form SURE of this linear estimator: in the LR Fourier basis with AAᵀ = diag(λ)
and e = y − A s, the projected risk estimate is
    Σ_k (τ/(λ_k+τ))² |ê_k|² / (N λ_k) + 2σ² Σ_k 1/(λ_k+τ) − const.

Before the correction, s is filtered band by band by its frequency-dependent injection gain (`detail_gain`):
the guides' finest detail is shared by the band only in part (a SWIR band far less than a red-edge band),
and the gain, measured on the band's own observation and extrapolated, says how much.

Groups are estimated from the finest ratio to the coarsest, and each finished group joins the guides of
the next (cascade): the sharpened 20 m bands guide the 60 m bands.

The estimate is a fixed linear function of the network input z (y is recovered from the back-projection
in z), so the SURE divergence of the full estimator differentiates through it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import detail_gain
from .problem import FusionProblem

TAU_GRID = torch.cat([torch.zeros(1), torch.logspace(-6, 1, 57)])


def _degraded_guides(op, guides: torch.Tensor) -> torch.Tensor:
    """(bands, guides, h, w): each guide degraded by each band's operator; bands sharing a PSF share the work."""
    sigmas = getattr(op, "sigmas", None)
    if sigmas is None or len(set(sigmas)) > 1:
        return op.A(guides[:, None].expand(-1, op.bands, -1, -1).contiguous()).transpose(0, 1)
    # one PSF for the whole group (usual for hyperspectral bands): degrade the guides once
    single = type(op)([sigmas[0]] * guides.shape[0], op.ratio, op.hr_shape, op.geometry, op.cond,
                      guides.device, guides.dtype)
    return single.A(guides)[None].expand(op.bands, -1, -1, -1)


def _normal_equations(obs, guides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per band, the normal equations (gram (bands, k, k), rhs (bands, k)) of the least-squares fit of the band's
    observation by its degraded guides and a constant (k = guides + 1), in float64."""
    degraded = _degraded_guides(obs.operator, guides).double()          # (bands, guides, h, w)
    bands, n_guides = degraded.shape[:2]
    design = torch.cat([degraded.reshape(bands, n_guides, -1),
                        torch.ones_like(degraded[:, :1].reshape(bands, 1, -1))], dim=1)  # (bands, k, n)
    target = obs.data.double().reshape(bands, -1, 1)
    return design @ design.transpose(1, 2), (design @ target)[..., 0]


def _solve_weights(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    ridge = 1e-10 * gram.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + ridge * eye, rhs[..., None])[..., 0]


def _tau_scores(residual: torch.Tensor, gram_eigenvalues_full: torch.Tensor, sigma: torch.Tensor,
                grid: torch.Tensor = TAU_GRID) -> torch.Tensor:
    """(len(grid), bands) closed-form SURE (up to a constant) of x̂ = s + Aᵀ(AAᵀ+τ)⁻¹e for each candidate τ."""
    power = torch.fft.fft2(residual.double()).abs() ** 2 / (residual.shape[-1] * residual.shape[-2])
    lam = gram_eigenvalues_full.double().clamp_min(1e-12)
    var = sigma.double() ** 2
    scores = []
    for tau in grid.double().tolist():  # one pass per candidate keeps memory at one image's size
        fit = ((tau / (lam + tau)) ** 2 * power / lam).sum(dim=(-2, -1))
        scores.append(fit + 2 * var * (1.0 / (lam + tau)).sum(dim=(-2, -1)))
    return torch.stack(scores)


def sure_optimal_tau(residual: torch.Tensor, gram_eigenvalues_full: torch.Tensor, sigma: torch.Tensor,
                     grid: torch.Tensor = TAU_GRID) -> torch.Tensor:
    """Per band, the τ of `grid` minimising the SURE of x̂ = s + Aᵀ(AAᵀ+τ)⁻¹e for the LR residual e = y − A s.

    residual: (bands, h, w); gram_eigenvalues_full: (bands, h, w) eigenvalues of AAᵀ on the full FFT grid.
    """
    return grid.to(residual.device)[_tau_scores(residual, gram_eigenvalues_full, sigma, grid).argmin(dim=0)]


@dataclass
class InjectionFit:
    """The fitted first estimate: per observation group, the guide weights (bands, guides + 1), τ (bands,) and
    the injection gain table (bands, detail_gain.TABLE_SIZE), or None for no gain."""

    weights: list
    tau: list
    gain: list | None = None


def _order(problem: FusionProblem) -> list[int]:
    # groups are estimated from the finest ratio to the coarsest; with `cascade`, the estimates of finer
    # groups guide the coarser ones (the 20 m bands, B8A above all, guide the 60 m bands B1 and B9)
    return sorted(range(len(problem.observations)), key=lambda i: getattr(problem.observations[i].operator, "ratio", 1))


def _prediction(guides: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """s = Σ_k w_k g_k + w_0 per band: (n, bands, h, w) from guides (n, k, h, w)."""
    return torch.einsum("bk,nkhw->nbhw", w[:, :-1].to(guides.dtype), guides) + w[:, -1, None, None].to(guides.dtype)


def _step(obs, own: torch.Tensor, guides: torch.Tensor, w: torch.Tensor, tau: torch.Tensor,
          gain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(estimate s + Aᵀ(AAᵀ+τ)⁻¹(y − A s), the LR residual y − A s) for one low-resolution group, s filtered by
    its injection gain table when one is given."""
    op = obs.operator
    s = _prediction(guides, w)
    if gain is not None:
        s = detail_gain.apply_gain(s, gain)
    residual = op.observation_from_back_projection(own) - op.A(s)
    correction = torch.fft.irfft2(torch.fft.rfft2(residual) / (op.gram_eigenvalues + tau[:, None, None]), s=op.lr_shape)
    return s + op.A_adjoint(correction), residual


def _fit_gain(problems: list[FusionProblem], i: int, owns: list, guides: list, w: torch.Tensor) -> torch.Tensor:
    """The injection gain table of group i, measured on every problem's observation and pooled (see `detail_gain`)."""
    rings = [0, 0, 0]
    for p, own, g in zip(problems, owns, guides):
        op = p.observations[i].operator
        s = _prediction(g, w)[0].double()
        y = op.observation_from_back_projection(own[0]).double()
        rings = [a + b.cpu() for a, b in zip(rings, detail_gain.ring_sums(y, op.A(s), op.ratio))]
    return detail_gain.gain_table(*detail_gain.fit_decay(*rings)).to(w.device)


def fit_injection(problems: list[FusionProblem], tune: bool = True, cascade: bool = True,
                  gain: bool | None = None) -> InjectionFit:
    """Fit the weights, injection gains and τ of every group on one or several problems of the same layout (e.g.
    crops of one scene): the normal equations, the gain measurements and the SURE scores are summed over the
    problems, so the fit is scene-wide. `gain`: damp the guides' detail by its measured gain (None: the
    problem's `detail_gain`); without it the guides' detail is injected in full (the plain regression)."""
    first = problems[0]
    gain = first.detail_gain if gain is None else gain
    if all(obs.back_project for obs in first.observations):
        raise ValueError("detail injection needs at least one band observed at the target resolution")
    n = len(first.observations)
    fit = InjectionFit([None] * n, [None] * n, [None] * n)
    zs = [p.network_input() for p in problems]
    guides: list[list[torch.Tensor]] = [[] for _ in problems]
    with torch.no_grad():
        for i in _order(first):
            owns = [z[:, p.input_slices[i]] for p, z in zip(problems, zs)]
            if not first.observations[i].back_project:
                for g, own in zip(guides, owns):
                    g.append(own)  # observed at the target resolution: S2 10 m bands, or a spectral guide
                continue
            stacked = [torch.cat(g, dim=1) for g in guides]
            gram, rhs = map(sum, zip(*(_normal_equations(p.observations[i], g[0]) for p, g in zip(problems, stacked))))
            fit.weights[i] = w = _solve_weights(gram, rhs)
            if gain:
                fit.gain[i] = _fit_gain(problems, i, owns, stacked, w)
            zero = torch.zeros(first.observations[i].bands, dtype=zs[0].dtype, device=zs[0].device)
            steps = [_step(p.observations[i], own, g, w, zero, fit.gain[i]) for p, own, g in zip(problems, owns, stacked)]
            fit.tau[i] = zero
            if tune:
                scores = sum(_tau_scores(res[0], _full_eigenvalues(p.observations[i].operator), p.observations[i].sigma)
                             for p, (_, res) in zip(problems, steps))
                fit.tau[i] = TAU_GRID.to(zero.device)[scores.argmin(dim=0)].to(zero.dtype)  # as sure_optimal_tau, pooled
                steps = [_step(p.observations[i], own, g, w, fit.tau[i], fit.gain[i])
                         for p, own, g in zip(problems, owns, stacked)]
            if cascade:
                for g, (estimate, _) in zip(guides, steps):
                    g.append(estimate)
    return fit


class DetailInjectionBase(nn.Module):
    """base(z): observed target bands = their own input; low-resolution outputs = s + Aᵀ(AAᵀ + τ)⁻¹(y − A s).

    Fitted on `problem` itself, unless a scene-wide `fit` (see `fit_injection`) is given.
    """

    def __init__(self, problem: FusionProblem, tune: bool = True, cascade: bool = True, fit: InjectionFit | None = None,
                 gain: bool | None = None):
        super().__init__()
        self.problem = problem
        self.cascade = cascade
        self.order = _order(problem)
        self.fit = fit or fit_injection([problem], tune=tune, cascade=cascade, gain=gain)

    @property
    def weights(self) -> list:
        return self.fit.weights

    @property
    def tau(self) -> list:
        return self.fit.tau

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
            table = self.fit.gain[i] if self.fit.gain else None
            estimate, _ = _step(obs, own, torch.cat(guides, dim=1), self.fit.weights[i], self.fit.tau[i], table)
            out[:, obs.output_channels] = estimate
            if self.cascade:
                guides.append(estimate)
        return out


def _full_eigenvalues(op) -> torch.Tensor:
    """Eigenvalues of AAᵀ on the full (not half) LR FFT grid, for sums over all frequencies."""
    autocorr_lr = torch.fft.irfft2(op.gram_eigenvalues.double(), s=op.lr_shape)
    return torch.fft.fft2(autocorr_lr).real
