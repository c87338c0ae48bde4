"""A linear first estimate that the network refines: back-projection plus injected guide detail.

For every band observed at low resolution through a band-wise operator A, the guide bands (observed at
the target resolution) are combined linearly so that A(Σ_k w_k g_k + w_0) best matches the band's own
observation (least squares at low resolution). The high-resolution detail of that synthetic band that A
cannot see, (I − A†A)·synthetic, is added to the back-projection A†y. This is regression-based detail
injection (as in MTF-GLP with regression), here exact for the model's own operator.

The estimate is a fixed linear function of the network input z, so it is differentiated through like the
network itself when the SURE divergence is computed.
"""
from __future__ import annotations

import torch
from torch import nn

from .problem import FusionProblem


def _fit_weights(obs, guides: torch.Tensor) -> torch.Tensor:
    """(bands, guides + 1) least-squares weights of the degraded guides (and a constant) for each band."""
    op = obs.operator
    n_guides = guides.shape[0]
    # degrade every guide with every band's PSF: (guides, bands, h, w)
    degraded = op.A(guides[:, None].expand(-1, op.bands, -1, -1).contiguous())
    weights = []
    for b in range(op.bands):
        design = torch.cat([degraded[:, b].reshape(n_guides, -1), torch.ones_like(degraded[:1, b].reshape(1, -1))]).T
        target = obs.data[b].reshape(-1, 1)
        weights.append(torch.linalg.lstsq(design.double(), target.double()).solution[:, 0].to(guides.dtype))
    return torch.stack(weights)


class DetailInjectionBase(nn.Module):
    """base(z): for guide outputs their own input; for low-resolution outputs A†y + (I − A†A)(W g)."""

    def __init__(self, problem: FusionProblem):
        super().__init__()
        z = problem.network_input()[0]
        self.problem = problem
        self.guide_channels = [c for obs, sl in zip(problem.observations, problem.input_slices)
                               if not obs.back_project for c in range(sl.start, sl.stop)]
        if not self.guide_channels:
            raise ValueError("detail injection needs at least one band observed at the target resolution")
        guides = z[self.guide_channels]
        self.weights = [_fit_weights(obs, guides) if obs.back_project else None for obs in problem.observations]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = z.new_zeros((z.shape[0], self.problem.out_channels, *z.shape[-2:]))
        guides = z[:, self.guide_channels]
        for obs, sl, w in zip(self.problem.observations, self.problem.input_slices, self.weights):
            own = z[:, sl]
            if w is None:
                out[:, obs.output_channels] = own
                continue
            synthetic = torch.einsum("bk,nkhw->nbhw", w[:, :-1], guides) + w[:, -1, None, None]
            out[:, obs.output_channels] = own + synthetic - obs.operator.project(synthetic)
        return out
