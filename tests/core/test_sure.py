"""The SURE loss is an unbiased estimate of the projected MSE (docs/method.md §2.1)."""
import numpy as np
import pytest
import torch

from sure_core import s2_sharpening
from sure_core.losses import BackProjectionLoss, SureLoss
from sure_core.networks import GuidedAttentionNet
from sure_core.simulation import simulate_s2


def _true_projected_error(problem, x_hat, truth_grouped):
    total, elements = 0.0, 0
    for obs in problem.observations:
        diff = x_hat[0, obs.output_channels] - truth_grouped[obs.output_channels]
        if obs.back_project:
            diff = obs.operator.project(diff, cond=0.0)
        total += float(diff.pow(2).sum())
        elements += diff.numel()
    return total / elements


@pytest.mark.parametrize("snr", [30.0])
def test_sure_matches_projected_mse_of_a_frozen_network(apex_crop, snr):
    torch.manual_seed(0)
    net = GuidedAttentionNet(4, 8, 12, width=8, skip_width=4).double()
    order = [s2_sharpening.s2.SPECTRAL_ORDER.index(n)
             for n in s2_sharpening.s2.GROUP_10M + s2_sharpening.s2.GROUP_20M + s2_sharpening.s2.GROUP_60M]
    # an estimator that overfits noticeably, so that the divergence term matters: sharpened input + network
    def estimator(z):
        return 0.7 * z + 0.3 * net(z)

    sure, truth_err = [], []
    with torch.no_grad():
        for draw in range(30):
            sim = simulate_s2(apex_crop, snr, seed=100 + draw)
            problem, _ = s2_sharpening.build_problem(sim.y10, sim.y20, sim.y60, sim.sigma, "zero_phase",
                                                     cond=0.0, dtype=torch.float64)
            z = problem.network_input()
            gen = torch.Generator().manual_seed(draw)
            value = SureLoss(epsilon=1e-6)(problem, estimator, z, gen)
            truth = torch.from_numpy(sim.truth[order] / float(problem.scale))
            sure.append(float(value.risk))
            truth_err.append(_true_projected_error(problem, value.estimate, truth))
    sure, truth_err = np.array(sure), np.array(truth_err)
    diff = sure - truth_err
    stderr = diff.std(ddof=1) / np.sqrt(len(diff))
    # unbiased: the mean difference is within a few percent and within 3 standard errors
    assert abs(diff.mean()) < 0.03 * truth_err.mean(), (sure.mean(), truth_err.mean())
    assert abs(diff.mean()) < 3 * stderr + 1e-12
    # and it tracks the error draw by draw, not only on average
    assert np.corrcoef(sure, truth_err)[0, 1] > 0.5


def test_bp_loss_of_the_identity_estimator_is_zero_but_sure_is_not(apex_crop):
    """Returning the noisy input fits the data perfectly: BP sees no error, SURE sees the noise."""
    sim = simulate_s2(apex_crop, 30.0, seed=1)
    problem, _ = s2_sharpening.build_problem(sim.y10, sim.y20, sim.y60, sim.sigma, "zero_phase", cond=0.0,
                                             dtype=torch.float64)
    z = problem.network_input()
    bp = BackProjectionLoss()(problem, lambda t: t, z)
    sure = np.mean([float(SureLoss(epsilon=1e-6)(problem, lambda t: t, z, torch.Generator().manual_seed(k)).risk)
                    for k in range(8)])
    assert float(bp.loss) < 1e-12
    order = [s2_sharpening.s2.SPECTRAL_ORDER.index(n)
             for n in s2_sharpening.s2.GROUP_10M + s2_sharpening.s2.GROUP_20M + s2_sharpening.s2.GROUP_60M]
    truth = torch.from_numpy(sim.truth[order] / float(problem.scale))
    true_err = _true_projected_error(problem, z, truth)
    assert sure == pytest.approx(true_err, rel=0.1)
