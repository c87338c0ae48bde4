"""Cross-band ring matrices: the LR residuals of a group shrunk together, each band borrowing its neighbours'."""
import numpy as np
import pytest
import torch

from sure_core import s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.injection import DetailInjectionBase, fit_injection
from sure_core.metrics import msre, sam
from sure_core.operators import BlurDecimate, Identity
from sure_core.problem import FusionProblem, Observation

SHARPENED = list(s2.SHARPENED_BANDS)


def _field(shape, seed, slope=1.0):
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None]
    f = np.maximum(np.sqrt(fy ** 2 + fx ** 2), 1.0 / shape[0])
    return np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) / f ** slope, s=shape)


def _problem(cross_band: bool, sigma=(0.02, 0.03), shape=(96, 96), seed=0):
    """A guide and two bands seen at half resolution; both bands hold, besides a multiple of the guide, one field
    the guide does not predict (so their LR residuals are alike) and their own noise."""
    guide = _field(shape, 1) + 5.0
    common = _field(shape, 2)
    truth = np.stack([0.8 * guide + 1.0 * common, 1.2 * guide + 0.7 * common])
    op = BlurDecimate([0.9, 1.1], 2, shape, "zero_phase", cond=1e-3, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    y = op.A(torch.from_numpy(truth)) + torch.from_numpy(np.asarray(sigma)[:, None, None]
                                                         * rng.standard_normal((2, *op.lr_shape)))
    observations = [Observation("guide", torch.from_numpy(guide[None]), Identity(1), torch.zeros(1), [0],
                                back_project=False),
                    Observation("bands", y, op, torch.tensor(sigma, dtype=torch.float64), [1, 2])]
    problem = FusionProblem(observations, out_channels=3, hr_shape=shape, guide_channels=1,
                            cross_band_shrinkage=cross_band)
    return problem, truth


def _estimate(problem, **options) -> np.ndarray:
    with torch.no_grad():
        return DetailInjectionBase(problem, **options)(problem.network_input())[0, 1:].numpy()


def test_a_noisy_band_borrows_the_residual_of_a_clean_band_that_shares_it():
    """What the observations see of the error (its projection A†A): the noisy band's falls from about the noise
    it was left with to a sixteenth, the clean band's stays."""
    errors = {}
    for cross_band in (False, True):
        problem, truth = _problem(cross_band, sigma=(1.0, 0.05))
        fit = fit_injection([problem])
        assert (fit.shrink[1].matrices is not None) is cross_band
        op = problem.observations[1].operator
        projected = op.project(torch.from_numpy(_estimate(problem, fit=fit) - truth), cond=0.0)
        errors[cross_band] = projected.pow(2).sum(dim=(1, 2))
    assert errors[True][0] < 0.1 * errors[False][0], errors
    assert errors[True][1] < 1.05 * errors[False][1], errors


def test_without_noise_the_matrices_keep_the_residual():
    problem, truth = _problem(True, sigma=(1e-7, 1e-7))
    matrices = fit_injection([problem]).shrink[1].matrices
    assert torch.allclose(matrices, torch.eye(2, dtype=matrices.dtype).expand_as(matrices), atol=2e-3), matrices
    assert np.allclose(_estimate(problem), _estimate(problem, tune=False), atol=1e-4 * np.abs(truth).max())


def test_the_first_estimate_with_ring_matrices_stays_affine_in_the_input():
    problem, _ = _problem(True)
    base = DetailInjectionBase(problem)
    z = problem.network_input()
    rng = np.random.default_rng(5)
    d1, d2 = (torch.from_numpy(rng.standard_normal(z.shape)) for _ in range(2))
    with torch.no_grad():
        f0, f1, f2, f12 = base(z), base(z + d1), base(z + d2), base(z + d1 + d2)
    assert torch.allclose(f12 - f0, (f1 - f0) + (f2 - f0), atol=1e-9 * float((f1 - f0).abs().max()))


def test_scene_crops_pool_their_normal_equations():
    """Fitted on two crops at once, the matrices solve the summed normal equations: the same as one fit on a crop
    whose data is both crops' (here: the same crop twice gives the one-crop fit)."""
    problem, _ = _problem(True)
    once = fit_injection([problem]).shrink[1].matrices
    twice = fit_injection([problem, problem]).shrink[1].matrices
    assert torch.allclose(once, twice, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("given, expected", [(("10m", "20m", "60m"), True), (("20m", "60m"), True),
                                             (("10m", "20m"), False), (("10m",), False)])
def test_s2_uses_the_matrices_only_with_the_coarse_bands_sigma_given(given, expected):
    rng = np.random.default_rng(0)
    y10, y20, y60 = rng.uniform(1, 2, (4, 60, 60)), rng.uniform(1, 2, (6, 30, 30)), rng.uniform(1, 2, (2, 10, 10))
    sigma = {key: 0.01 for key in given}
    problem, _ = s2_sharpening.build_problem(y10, y20, y60, sigma)
    assert problem.cross_band_shrinkage is expected


def test_ring_matrices_lower_the_spectral_angle_of_an_apex_first_estimate(apex):
    from sure_core.simulation import simulate_s2

    sim = simulate_s2(np.ascontiguousarray(apex[:, 96:192, 96:192]), 30.0, seed=0)
    problem, _ = s2_sharpening.build_problem(sim.y10, sim.y20, sim.y60, sim.sigma, "zero_phase")
    t = sim.truth[SHARPENED]
    scores = {}
    for cross_band in (False, True):
        problem.cross_band_shrinkage = cross_band
        with torch.no_grad():
            grouped = DetailInjectionBase(problem)(problem.network_input())[0].numpy()
        estimate = grouped[s2.grouped_to_spectral(s2.GROUP_10M + s2.GROUP_20M + s2.GROUP_60M)] * float(problem.scale)
        scores[cross_band] = (msre(t, estimate[SHARPENED]), sam(t, estimate[SHARPENED]))
    assert scores[True][0] > scores[False][0] and scores[True][1] < scores[False][1] - 0.05, scores


@pytest.mark.parametrize("factor", [2.0, 3.0])
def test_a_sigma_given_too_high_does_not_break_the_matrices(apex, factor):
    """With σ overestimated, SURE rewards a band that weighs its own residual below zero (the divergence term turns
    negative): unconstrained, the APEX first estimate fell from 26.4 to 13.5 dB with σ twice too high. The own
    weight is kept ≥ 0, and the matrices then do no worse than the per-band factors."""
    from sure_core.simulation import simulate_s2

    sim = simulate_s2(np.ascontiguousarray(apex[:, 96:192, 96:192]), 30.0, seed=0)
    sigma = {key: factor * value for key, value in sim.sigma.items()}
    problem, _ = s2_sharpening.build_problem(sim.y10, sim.y20, sim.y60, sigma, "zero_phase")
    t = sim.truth[SHARPENED]
    scores = {}
    for cross_band in (False, True):
        problem.cross_band_shrinkage = cross_band
        fit = fit_injection([problem])
        if cross_band:
            for shrink in fit.shrink[1:]:
                own = shrink.matrices.diagonal(dim1=-2, dim2=-1)
                assert (own >= 0).all()
        with torch.no_grad():
            grouped = DetailInjectionBase(problem, fit=fit)(problem.network_input())[0].numpy()
        estimate = grouped[s2.grouped_to_spectral(s2.GROUP_10M + s2.GROUP_20M + s2.GROUP_60M)] * float(problem.scale)
        scores[cross_band] = msre(t, estimate[SHARPENED])
    assert scores[True] > scores[False] - 0.1, scores
