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

Groups are estimated from the finest ratio to the coarsest, and each finished group joins the guides of
the next (cascade): the sharpened 20 m bands guide the 60 m bands.

The estimate is a fixed linear function of the network input z (y is recovered from the back-projection
in z), so the SURE divergence of the full estimator differentiates through it.
"""
from __future__ import annotations

import torch
from torch import nn

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


def _fit_weights(obs, guides: torch.Tensor) -> torch.Tensor:
    """(bands, guides + 1) least-squares weights of the degraded guides (and a constant) for each band.

    Solved band by band through the (guides + 1)² normal equations, all bands at once.
    """
    degraded = _degraded_guides(obs.operator, guides).double()          # (bands, guides, h, w)
    bands, n_guides = degraded.shape[:2]
    design = torch.cat([degraded.reshape(bands, n_guides, -1),
                        torch.ones_like(degraded[:, :1].reshape(bands, 1, -1))], dim=1)  # (bands, k, n)
    target = obs.data.double().reshape(bands, 1, -1)
    gram = design @ design.transpose(1, 2)
    ridge = 1e-10 * gram.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None]
    eye = torch.eye(n_guides + 1, dtype=gram.dtype, device=gram.device)
    rhs = (design @ target.transpose(1, 2))
    return torch.linalg.solve(gram + ridge * eye, rhs)[..., 0].to(guides.dtype)


def sure_optimal_tau(residual: torch.Tensor, gram_eigenvalues_full: torch.Tensor, sigma: torch.Tensor,
                     grid: torch.Tensor = TAU_GRID) -> torch.Tensor:
    """Per band, the τ of `grid` minimising the SURE of x̂ = s + Aᵀ(AAᵀ+τ)⁻¹e for the LR residual e = y − A s.

    residual: (bands, h, w); gram_eigenvalues_full: (bands, h, w) eigenvalues of AAᵀ on the full FFT grid.
    """
    power = torch.fft.fft2(residual.double()).abs() ** 2 / (residual.shape[-1] * residual.shape[-2])
    lam = gram_eigenvalues_full.double().clamp_min(1e-12)
    var = sigma.double() ** 2
    scores = []
    for tau in grid.double().tolist():  # one pass per candidate keeps memory at one image's size
        fit = ((tau / (lam + tau)) ** 2 * power / lam).sum(dim=(-2, -1))
        scores.append(fit + 2 * var * (1.0 / (lam + tau)).sum(dim=(-2, -1)))
    return grid.to(residual.device)[torch.stack(scores).argmin(dim=0)]


class DetailInjectionBase(nn.Module):
    """base(z): guide outputs = their own input; low-resolution outputs = s + Aᵀ(AAᵀ + τ)⁻¹(y − A s)."""

    def __init__(self, problem: FusionProblem, tune: bool = True, cascade: bool = True):
        super().__init__()
        self.problem = problem
        self.cascade = cascade
        if all(obs.back_project for obs in problem.observations):
            raise ValueError("detail injection needs at least one band observed at the target resolution")
        # groups are estimated from the finest ratio to the coarsest; with `cascade`, the estimates of finer
        # groups guide the coarser ones (the 20 m bands, B8A above all, guide the 60 m bands B1 and B9)
        self.order = sorted(range(len(problem.observations)),
                            key=lambda i: getattr(problem.observations[i].operator, "ratio", 1))
        self.weights: list = [None] * len(problem.observations)
        self.tau: list = [None] * len(problem.observations)
        z = problem.network_input()
        with torch.no_grad():
            self._run(z, fit=True, tune=tune)

    def _run(self, z: torch.Tensor, fit: bool = False, tune: bool = False) -> torch.Tensor:
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
            op = obs.operator
            g = torch.cat(guides, dim=1)
            if fit:
                self.weights[i] = _fit_weights(obs, g[0])
                self.tau[i] = torch.zeros(obs.bands, dtype=z.dtype, device=z.device)
            w, tau = self.weights[i], self.tau[i]
            s = torch.einsum("bk,nkhw->nbhw", w[:, :-1], g) + w[:, -1, None, None]
            residual = op.observation_from_back_projection(own) - op.A(s)
            if fit and tune:
                self.tau[i] = tau = sure_optimal_tau(residual[0], _full_eigenvalues(op), obs.sigma).to(z.dtype)
            correction = torch.fft.irfft2(torch.fft.rfft2(residual) / (op.gram_eigenvalues + tau[:, None, None]),
                                          s=op.lr_shape)
            estimate = s + op.A_adjoint(correction)
            out[:, obs.output_channels] = estimate
            if self.cascade:
                guides.append(estimate)
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._run(z)


def _full_eigenvalues(op) -> torch.Tensor:
    """Eigenvalues of AAᵀ on the full (not half) LR FFT grid, for sums over all frequencies."""
    autocorr_lr = torch.fft.irfft2(op.gram_eigenvalues.double(), s=op.lr_shape)
    return torch.fft.fft2(autocorr_lr).real
