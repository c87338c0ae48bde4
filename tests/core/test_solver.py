"""Solver: training improves on the back-projected input, seeded runs repeat, cancel stops, bad input errors."""
import numpy as np
import pytest
import torch

from sure_core import FusionCancelled, SolverOptions, s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.errors import (
    DeviceUnavailableError,
    ImageTooSmallError,
    InputShapeError,
    InvalidInputValueError,
    SureFusionError,
)
from sure_core.metrics import msre
from sure_core.simulation import simulate_s2

FAST = dict(device="cpu", threads=2, width=16, skip_width=8)
SHARPENED = list(s2.SHARPENED_BANDS)


@pytest.fixture(scope="module")
def sim(apex_crop):
    return simulate_s2(apex_crop, 30.0, seed=0)


def _back_projected(sim):
    problem, _ = s2_sharpening.build_problem(sim.y10, sim.y20, sim.y60, sim.sigma, "zero_phase")
    grouped = problem.network_input()[0].numpy() * float(problem.scale)
    return grouped[s2.grouped_to_spectral(s2.GROUP_10M + s2.GROUP_20M + s2.GROUP_60M)]


def test_short_sure_training_beats_back_projection(sim):
    risks = []
    out, record = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                        options=SolverOptions(iterations=30, network="always", **FAST),
                                        callback=lambda p: risks.append(p.risk))
    bp_score = msre(sim.truth[SHARPENED], _back_projected(sim)[SHARPENED])
    score = msre(sim.truth[SHARPENED], out[SHARPENED])
    assert out.shape == (12, 72, 72)
    assert score > bp_score + 4.0, (score, bp_score)
    assert len(record.loss_history) == 30 and np.isfinite(record.final_risk)
    assert record.sigma["20m"] == pytest.approx(list(sim.sigma["20m"]))


def test_sure_training_improves_the_network_estimate(sim):
    """The paper's recipe from a random network: its error falls as SURE trains it."""
    scores = []
    for iterations in (5, 60):
        out, _ = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                       options=SolverOptions.paper(iterations=iterations, **FAST))
        scores.append(msre(sim.truth[SHARPENED], out[SHARPENED]))
    assert scores[1] > scores[0] + 3.0, scores


def test_seeded_runs_are_bit_for_bit_repeatable(sim):
    opts = SolverOptions(iterations=3, seed=7, **FAST)
    a, ra = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, options=opts)
    b, rb = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, options=opts)
    assert np.array_equal(a, b) and ra.loss_history == rb.loss_history
    c, _ = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma,
                                 options=SolverOptions(iterations=3, seed=8, **FAST))
    assert not np.array_equal(a, c)


def test_callback_can_cancel_between_iterations(sim):
    seen = []

    def cancel_at_two(progress):
        seen.append(progress.iteration)
        return progress.iteration == 2

    with pytest.raises(FusionCancelled):
        s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma,
                              options=SolverOptions(iterations=50, **FAST), callback=cancel_at_two)
    assert seen == [1, 2]


def test_without_60m_bands_gives_ten_bands(sim):
    out, record = s2_sharpening.sharpen(sim.y10, sim.y20, options=SolverOptions(iterations=2, **FAST))
    assert out.shape == (10, 72, 72)
    assert s2_sharpening.output_band_names(False) == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert list(record.sigma) == ["10m", "20m"] and all(s > 0 for s in record.sigma["20m"])  # σ estimated
    assert record.recipe == {"refined_injection": True, "guided_smoothing": False, "cross_band_shrinkage": False}


@pytest.mark.parametrize("case,error,message", [
    ("y20_size", InputShapeError, "multiple of 2|exactly 1/2"),
    ("y60_size", InputShapeError, "1/6"),
    ("bands", InputShapeError, "shape \\(6, rows, cols\\)"),
    ("nan", InvalidInputValueError, "NaN"),
    ("sigma", InvalidInputValueError, "σ"),
    ("small", ImageTooSmallError, "PSF support"),
    ("cuda", DeviceUnavailableError, "no CUDA GPU"),
    ("loss", SureFusionError, "loss must be"),
])
def test_bad_input_raises_typed_errors(sim, case, error, message):
    y10, y20, y60, sigma, opts = sim.y10, sim.y20, sim.y60, None, SolverOptions(iterations=1, **FAST)
    if case == "y20_size":
        y20 = y20[:, :-1]
    elif case == "y60_size":
        y60 = y60[:, :, :-2]
    elif case == "bands":
        y20 = y20[:5]
    elif case == "nan":
        y20 = y20.copy()
        y20[0, 3, 3] = np.nan
    elif case == "sigma":
        sigma = {"20m": [-0.1] * 6}
    elif case == "small":
        y10, y20, y60, sigma = y10[:, :12, :12], y20[:, :6, :6], y60[:, :2, :2], sim.sigma
    elif case == "cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        opts = SolverOptions(iterations=1, **{**FAST, "device": "cuda"})
    elif case == "loss":
        opts = SolverOptions(iterations=1, loss="l2", **FAST)
    with pytest.raises(error, match=message):
        s2_sharpening.sharpen(y10, y20, y60, sigma=sigma, options=opts)
