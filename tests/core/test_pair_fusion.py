"""The pair engine (HS+MS and pansharpening): sensor-model estimation, checks, and a short training."""
import numpy as np
import pytest
import torch

from sure_core import pair_fusion as pf
from sure_core.errors import InputShapeError, InvalidInputValueError
from sure_core.metrics import ergas
from sure_core.solver import SolverOptions, _spectral_guide_channels, default_network


def smooth_scene(bands: int, size: int, endmembers: int = 4, seed: int = 0) -> np.ndarray:
    """A positive scene: smooth random abundances of a few random spectra, with some sharp edges."""
    rng = np.random.default_rng(seed)
    spectra = rng.uniform(0.1, 1.0, (bands, endmembers))
    freq = np.fft.fftfreq(size)
    lowpass = np.exp(-(freq[:, None] ** 2 + freq[None] ** 2) / (2 * 0.06 ** 2))
    fields = np.fft.ifft2(np.fft.fft2(rng.normal(size=(endmembers, size, size))) * lowpass).real
    fields += (rng.uniform(size=(endmembers, 1, 1)) > 0.5) * (np.arange(size)[None, :, None] > size // 2)
    abundances = np.exp(2 * fields / fields.std())
    return np.einsum("be,ehw->bhw", spectra, abundances / abundances.sum(axis=0))


def test_infer_ratio_and_its_errors():
    assert pf.infer_ratio(np.zeros((3, 10, 12)), np.zeros((1, 40, 48))) == 4
    with pytest.raises(InputShapeError, match="integer"):
        pf.infer_ratio(np.zeros((3, 10, 10)), np.zeros((1, 25, 25)))
    with pytest.raises(InputShapeError, match="finer"):
        pf.infer_ratio(np.zeros((3, 40, 40)), np.zeros((1, 10, 10)))
    with pytest.raises(InputShapeError, match="both axes"):
        pf.infer_ratio(np.zeros((3, 10, 10)), np.zeros((1, 30, 20)))


def test_estimate_response_recovers_a_known_non_negative_response_and_offset():
    rng = np.random.default_rng(1)
    x = smooth_scene(12, 96)
    truth = rng.uniform(0, 1, (3, 12)) * (rng.uniform(size=(3, 12)) > 0.4)
    offset = np.array([0.5, -0.2, 0.0])
    guide = np.einsum("gl,lhw->ghw", truth, x) + offset[:, None, None]
    lr = pf.degrade(x, 3, 1.4)
    response, est_offset = pf.estimate_response(lr, guide, 3, 1.4)
    assert (response >= 0).all()
    # the scene has 4 endmembers: only R applied to the scene's spectra is identifiable, so compare predictions
    predicted = np.einsum("gl,lhw->ghw", response, x) + est_offset[:, None, None]
    assert np.abs(predicted - guide).max() < 1e-6 * np.abs(guide).max()


def test_estimate_psf_sigma_finds_the_blur_of_the_pair():
    x = smooth_scene(20, 120, endmembers=6, seed=2)
    rng = np.random.default_rng(2)
    guide = np.einsum("gl,lhw->ghw", rng.uniform(0, 1, (4, 20)), x)
    for true_sigma in (1.2, 2.0):
        lr = pf.degrade(x, 4, true_sigma)
        assert pf.estimate_psf_sigma(lr, guide, 4) == pytest.approx(true_sigma, rel=0.1)


def test_sensor_model_checks():
    with pytest.raises(InputShapeError, match="guide bands"):
        pf.SensorModel(2, np.array([1.0]), np.ones((2, 5))).validated(5, 3)
    with pytest.raises(InvalidInputValueError, match="all-zero"):
        pf.SensorModel(2, np.array([1.0]), np.zeros((1, 5))).validated(5, 1)
    with pytest.raises(InvalidInputValueError, match="PSF"):
        pf.SensorModel(2, np.array([-1.0]), np.ones((1, 5))).validated(5, 1)
    with pytest.raises(InputShapeError, match="ratio"):
        pf.SensorModel(1, np.array([1.0]), np.ones((1, 5))).validated(5, 1)
    lr, guide = np.ones((5, 8, 8)), np.ones((1, 16, 16))
    guide[0, 0, 0] = np.nan
    model = pf.SensorModel(2, np.array([1.0]), np.ones((1, 5)))
    with pytest.raises(InvalidInputValueError, match="NaN"):
        pf.build_problem(lr, guide, model)
    with pytest.raises(InputShapeError, match="exactly"):
        pf.build_problem(lr, np.ones((1, 18, 16)), model)


def test_noise_sigma_is_given_by_observation_name():
    x = smooth_scene(4, 32)
    model = pf.SensorModel(2, np.array([1.0]), np.full((1, 4), 0.25))
    lr, guide = pf.degrade(x, 2, 1.0), np.einsum("gl,lhw->ghw", model.response, x)
    _, sigma = pf.build_problem(lr, guide, model, {"lr": [0.1, 0.2, 0.3, 0.4]})
    assert sigma["lr"] == [0.1, 0.2, 0.3, 0.4]
    assert sigma["guide"] == pytest.approx(pf.estimate_noise_sigma(guide).tolist())   # left out: estimated
    _, sigma = pf.build_problem(lr, guide, model, {"ms": 0.5, "pan": 0.25}, names=("ms", "pan"))
    assert sigma == {"pan": [0.25], "ms": [0.5] * 4}
    with pytest.raises(InvalidInputValueError, match="observations are"):
        pf.build_problem(lr, guide, model, {"hs": 0.5})


def test_the_network_sees_the_spectral_guide_and_the_first_estimate():
    x = smooth_scene(6, 48)
    model = pf.SensorModel(3, np.array([1.5]), np.full((2, 6), 1 / 6))
    problem, _ = pf.build_problem(pf.degrade(x, 3, 1.5), np.einsum("gl,lhw->ghw", model.response, x), model)
    assert _spectral_guide_channels(problem) == [0, 1]
    net = default_network(problem, SolverOptions())
    assert net.enc0[0].in_channels == 2 and net.enc1[0].in_channels == 6


def test_short_sure_training_beats_interpolation_and_keeps_the_first_estimate_quality():
    torch.set_num_threads(1)
    x = smooth_scene(16, 60, seed=3)
    rng = np.random.default_rng(3)
    response = rng.uniform(0, 1, (3, 16))
    ratio, sigma = 3, 1.5
    lr = pf.degrade(x, ratio, sigma)
    lr = lr + rng.normal(0, 0.01 * lr.std(), lr.shape)
    guide = np.einsum("gl,lhw->ghw", response, x)
    guide = guide + rng.normal(0, 0.01 * guide.std(), guide.shape)
    model = pf.SensorModel(ratio, np.array([sigma]), *pf.estimate_response(lr, guide, ratio, sigma))
    nearest = np.repeat(np.repeat(lr, ratio, axis=1), ratio, axis=2)
    first = pf.first_estimate(lr, guide, model)
    fused, record = pf.fuse(lr, guide, model, options=SolverOptions(iterations=40, threads=1, device="cpu"))
    assert fused.shape == x.shape
    assert ergas(x, fused, ratio) < 0.6 * ergas(x, nearest, ratio)
    assert ergas(x, fused, ratio) < 1.1 * ergas(x, first, ratio)
    assert np.isfinite(record.final_risk) and list(record.sigma) == ["guide", "lr"]


def test_gaps_are_filled_from_the_guide_and_nodata_stays_out_of_the_sensor_model():
    x = smooth_scene(6, 48, seed=7)
    rng = np.random.default_rng(7)
    response = rng.uniform(0, 1, (3, 6))
    lr, guide = pf.degrade(x, 3, 1.4), np.einsum("gl,lhw->ghw", response, x)
    invalid = np.zeros(lr.shape[1:], dtype=bool)
    invalid[:, :5] = True
    flat = lr.copy()
    flat[:, invalid] = lr[:, ~invalid].mean(axis=1)[:, None]
    filled = pf.fill_from_guide(flat, guide, invalid, 3)
    assert np.array_equal(filled[:, ~invalid], lr[:, ~invalid])
    assert np.abs(filled - lr)[:, invalid].mean() < 0.2 * np.abs(flat - lr)[:, invalid].mean()
    valid = pf.regression_mask(invalid, np.zeros(guide.shape[1:], dtype=bool), 3)
    assert valid[:, :6].sum() == 0 and valid[:, 6:].all()          # one lr pixel of margin
    # the PSF estimate: the flat fill pulls it far off (2.34 here), the valid pixels give the gap-free answer
    clean = pf.estimate_psf_sigma(lr, guide, 3)
    assert abs(clean - 1.4) < 0.1
    assert pf.estimate_psf_sigma(flat, guide, 3, valid=valid) == pytest.approx(clean)
    assert abs(pf.estimate_psf_sigma(flat, guide, 3) - 1.4) > 0.5
    masked, _ = pf.estimate_response(flat, guide, 3, 1.4, valid=valid)
    assert np.allclose(masked, pf.estimate_response(lr, guide, 3, 1.4)[0], atol=1e-4)
    # a window with almost no valid pixel keeps its fill and its estimate instead of failing
    nearly = np.ones_like(invalid)
    nearly[0, 0] = False
    assert np.array_equal(pf.fill_from_guide(flat, guide, nearly, 3), flat)
    assert pf.regression_mask(nearly, np.zeros(guide.shape[1:], dtype=bool), 3).sum() == 0
    pf.estimate_response(flat, guide, 3, 1.4, valid=~nearly)
