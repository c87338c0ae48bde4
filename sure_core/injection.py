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

The estimate is a fixed linear function of the network input z (y is recovered from the back-projection
in z), so the SURE divergence of the full estimator differentiates through it.
"""
from __future__ import annotations

import torch
from torch import nn

from .problem import FusionProblem

TAU_GRID = torch.cat([torch.zeros(1), torch.logspace(-6, 1, 57)])


def _fit_weights(obs, guides: torch.Tensor) -> torch.Tensor:
    """(bands, guides + 1) least-squares weights of the degraded guides (and a constant) for each band."""
    op = obs.operator
    n_guides = guides.shape[0]
    degraded = op.A(guides[:, None].expand(-1, op.bands, -1, -1).contiguous())  # (guides, bands, h, w)
    weights = []
    for b in range(op.bands):  # a few bands, each a small least-squares problem
        design = torch.cat([degraded[:, b].reshape(n_guides, -1), torch.ones_like(degraded[:1, b].reshape(1, -1))]).T
        target = obs.data[b].reshape(-1, 1)
        weights.append(torch.linalg.lstsq(design.double(), target.double()).solution[:, 0].to(guides.dtype))
    return torch.stack(weights)


def sure_optimal_tau(residual: torch.Tensor, gram_eigenvalues_full: torch.Tensor, sigma: torch.Tensor,
                     grid: torch.Tensor = TAU_GRID) -> torch.Tensor:
    """Per band, the τ of `grid` minimising the SURE of x̂ = s + Aᵀ(AAᵀ+τ)⁻¹e for the LR residual e = y − A s.

    residual: (bands, h, w); gram_eigenvalues_full: (bands, h, w) eigenvalues of AAᵀ on the full FFT grid.
    """
    power = torch.fft.fft2(residual.double()).abs() ** 2 / (residual.shape[-1] * residual.shape[-2])
    lam = gram_eigenvalues_full.double().clamp_min(1e-12)[None]
    tau = grid.double().to(residual.device)[:, None, None, None]
    fit = ((tau / (lam + tau)) ** 2 * power[None] / lam).sum(dim=(-2, -1))
    div = (1.0 / (lam + tau)).sum(dim=(-2, -1)) * (sigma.double() ** 2)[None]
    return grid.to(residual.device)[(fit + 2 * div).argmin(dim=0)]


class DetailInjectionBase(nn.Module):
    """base(z): guide outputs = their own input; low-resolution outputs = s + Aᵀ(AAᵀ + τ)⁻¹(y − A s)."""

    def __init__(self, problem: FusionProblem, tune: bool = True):
        super().__init__()
        z = problem.network_input()[0]
        self.problem = problem
        self.guide_channels = [c for obs, sl in zip(problem.observations, problem.input_slices)
                               if not obs.back_project for c in range(sl.start, sl.stop)]
        if not self.guide_channels:
            raise ValueError("detail injection needs at least one band observed at the target resolution")
        guides = z[self.guide_channels]
        self.weights, self.tau = [], []
        for obs in problem.observations:
            if not obs.back_project:
                self.weights.append(None)
                self.tau.append(None)
                continue
            w = _fit_weights(obs, guides)
            tau = torch.zeros(obs.bands, dtype=z.dtype, device=z.device)
            if tune:
                s = torch.einsum("bk,khw->bhw", w[:, :-1], guides) + w[:, -1, None, None]
                lam_full = _full_eigenvalues(obs.operator)
                tau = sure_optimal_tau(obs.data - obs.operator.A(s), lam_full, obs.sigma).to(z.dtype)
            self.weights.append(w)
            self.tau.append(tau)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = z.new_zeros((z.shape[0], self.problem.out_channels, *z.shape[-2:]))
        guides = z[:, self.guide_channels]
        for obs, sl, w, tau in zip(self.problem.observations, self.problem.input_slices, self.weights, self.tau):
            own = z[:, sl]
            if w is None:
                out[:, obs.output_channels] = own
                continue
            op = obs.operator
            s = torch.einsum("bk,nkhw->nbhw", w[:, :-1], guides) + w[:, -1, None, None]
            y = op.observation_from_back_projection(own)
            correction = torch.fft.irfft2(torch.fft.rfft2(y - op.A(s)) / (op.gram_eigenvalues + tau[:, None, None]),
                                          s=op.lr_shape)
            out[:, obs.output_channels] = s + op.A_adjoint(correction)
        return out


def _full_eigenvalues(op) -> torch.Tensor:
    """Eigenvalues of AAᵀ on the full (not half) LR FFT grid, for sums over all frequencies."""
    autocorr_lr = torch.fft.irfft2(op.gram_eigenvalues.double(), s=op.lr_shape)
    return torch.fft.fft2(autocorr_lr).real
