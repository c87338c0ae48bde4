"""Training losses: the projected SURE loss with a Monte-Carlo divergence, and the BP-only loss.

For an observation group with operator A, input u = A†y and noise σ per band (docs/method.md §2):
  data term        ‖A†(A x̂ − y)‖²                      (BP groups)   or ‖A x̂ − y‖² (direct groups)
  divergence term  Σ b ⊙ σ² A†(AAᵀ + c)⁻¹ A Ĵ          (BP groups)   or Σ b ⊙ σ² A Ĵ
where b ~ N(0, I) is one probe over the whole network input and Ĵ ≈ (f(z + εb) − f(z))/ε.
SURE = data + 2·divergence − tr(Σ_u) is an unbiased estimate of the projected squared error; BP-only
drops the divergence (the paper's BP-DIP baseline). Both losses are per-band sums, weighted per band.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .problem import FusionProblem

Estimator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LossValue:
    loss: torch.Tensor      # what is minimised (weighted)
    risk: torch.Tensor      # unweighted SURE estimate of the projected MSE per element (nan for BP)
    estimate: torch.Tensor  # x̂ of this step, (1, bands, rows, cols)
    base_risk: torch.Tensor | None = None  # the same SURE, same probe, of the first estimate the network corrects


def _risk(problem: FusionProblem, x_hat: torch.Tensor, jac_probe: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Unweighted SURE of the projected MSE per element of an estimate, given its Jacobian-probe product."""
    combined = [d + 2.0 * v for d, v in zip(_per_band_data(problem, x_hat),
                                            _per_band_divergence(problem, jac_probe, probe))]
    return sum((c - obs.noise_constant()).sum() for c, obs in zip(combined, problem.observations)) / _elements(problem)


def _per_band_data(problem: FusionProblem, x_hat: torch.Tensor) -> list[torch.Tensor]:
    terms = []
    for obs in problem.observations:
        residual = obs.operator.A(x_hat[0, obs.output_channels]) - obs.data
        if obs.back_project:
            residual = obs.operator.A_dagger(residual)
        terms.append(residual.pow(2).sum(dim=(-2, -1)))
    return terms


def _per_band_divergence(problem: FusionProblem, jac_probe: torch.Tensor, probe: torch.Tensor) -> list[torch.Tensor]:
    terms = []
    for obs, sl in zip(problem.observations, problem.input_slices):
        seen = obs.operator.A(jac_probe[0, obs.output_channels])
        if obs.back_project:
            seen = obs.operator.A_dagger(obs.operator.inv_gram(seen))
        terms.append(obs.sigma.pow(2) * (probe[0, sl] * seen).sum(dim=(-2, -1)))
    return terms


def per_band_sure(problem: FusionProblem, x_hat: torch.Tensor, jac_probe: torch.Tensor, probe: torch.Tensor
                  ) -> list[torch.Tensor]:
    """Per observation group, per band: the SURE of the band's projected squared error (summed over its pixels),
    data + 2·divergence − tr(Σ_u), for one probe and its Jacobian-vector product (normalised scale)."""
    return [t - obs.noise_constant() for t, obs in zip(_data_and_divergence(problem, x_hat, jac_probe, probe),
                                                       problem.observations)]


def _data_and_divergence(problem, x_hat, jac_probe, probe) -> list[torch.Tensor]:
    data, divergence = _per_band_data(problem, x_hat), _per_band_divergence(problem, jac_probe, probe)
    return [d + 2.0 * v for d, v in zip(data, divergence)]


def _elements(problem: FusionProblem) -> int:
    rows, cols = problem.hr_shape
    return sum(obs.bands * (rows * cols if obs.back_project else obs.data.shape[-2] * obs.data.shape[-1])
               for obs in problem.observations)


class BackProjectionLoss:
    """Σ_groups w ‖A†(A x̂ − y)‖²: the data terms only (BP-DIP)."""

    forward_passes = 1

    def __init__(self, band_weights: list[torch.Tensor] | None = None):
        self.band_weights = band_weights

    def _weighted(self, problem, terms):
        weights = self.band_weights or [None] * len(terms)
        total = 0.0
        for obs, t, w in zip(problem.observations, terms, weights):
            total = total + obs.weight * (t if w is None else t * w).sum()
        return total

    def __call__(self, problem: FusionProblem, estimator: Estimator, z: torch.Tensor,
                 generator: torch.Generator | None = None) -> LossValue:
        x_hat = estimator(z)
        loss = self._weighted(problem, _per_band_data(problem, x_hat))
        return LossValue(loss, torch.full((), float("nan"), device=z.device), x_hat)


class SureLoss(BackProjectionLoss):
    """Projected SURE with a single Monte-Carlo probe and a forward-difference Jacobian-vector product."""

    forward_passes = 2

    def __init__(self, band_weights: list[torch.Tensor] | None = None, epsilon: float = 1e-5):
        super().__init__(band_weights)
        self.epsilon = epsilon

    def __call__(self, problem, estimator, z, generator=None) -> LossValue:
        x_hat = estimator(z)
        first = getattr(estimator, "last_first", None)   # the first estimate at z, when the estimator has one
        probe = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        jac_probe = (estimator(z + self.epsilon * probe) - x_hat) / self.epsilon
        combined = _data_and_divergence(problem, x_hat, jac_probe, probe)
        loss = self._weighted(problem, combined)
        with torch.no_grad():
            const = sum((c - obs.noise_constant()).sum() for c, obs in zip(combined, problem.observations))
            risk = const / _elements(problem)
            # the first estimate scored with the same probe: the difference of the two risks has little of the
            # probe's noise, so what the network adds is measured precisely (the solver's NETWORK decision)
            base_risk = None if first is None else \
                _risk(problem, first, (estimator.last_first - first) / self.epsilon, probe)
        return LossValue(loss, risk, x_hat, base_risk)
