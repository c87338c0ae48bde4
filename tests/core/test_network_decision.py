"""NETWORK=auto/always/never: the paired SURE gain of the network over the first estimate, and what it decides."""
import numpy as np
import pytest
import torch

from sure_core import SolverOptions, s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.losses import SureLoss
from sure_core.simulation import simulate_s2
from sure_core.solver import NETWORK_MIN_GAIN, FirstEstimateOnly, network_pays, train

FAST = dict(device="cpu", threads=2, width=8, skip_width=4)


@pytest.fixture(scope="module")
def sim(apex_crop):
    return simulate_s2(apex_crop, 30.0, seed=0)


def test_network_pays_reads_a_significant_gain():
    rng = np.random.default_rng(0)
    base = torch.full((40,), 2.0, dtype=torch.float64)
    clear = torch.as_tensor(0.2 + 0.02 * rng.standard_normal(40))     # 10 % ± 0.16 %
    noisy = torch.as_tensor(0.06 + 0.5 * rng.standard_normal(40))     # 10.5 % ± 4.3 %: not significant
    assert network_pays(clear, base)[0] and network_pays(clear, base)[1] == pytest.approx(0.1, abs=0.01)
    assert not network_pays(noisy, base)[0]
    assert not network_pays(torch.full((40,), 0.5 * NETWORK_MIN_GAIN * 2.0, dtype=torch.float64), base)[0]
    # the rules replayed by benchmarks/network_gain.py: a lower least gain; no margin for the noise
    assert network_pays(torch.full((40,), 0.5 * NETWORK_MIN_GAIN * 2.0, dtype=torch.float64), base,
                        min_gain=0.5 * NETWORK_MIN_GAIN)[0]
    assert network_pays(noisy, base, margin=0.0)[0]


def test_first_estimate_scored_with_the_same_probe(sim):
    """The loss's base risk is exactly the SURE of the first estimate alone under the same probe."""
    problem, _ = s2_sharpening.build_problem(sim.y10, sim.y20, sim.y60, sim.sigma, "zero_phase")
    model, _, _ = train([problem], SolverOptions(iterations=2, network="always", **FAST))
    z = problem.network_input()
    loss = SureLoss()
    together = loss(problem, model.estimator(problem), z, torch.Generator().manual_seed(5))
    alone = loss(problem, FirstEstimateOnly(model.estimator(problem).base), z, torch.Generator().manual_seed(5))
    assert together.base_risk is not None and alone.base_risk is None
    assert float(together.base_risk) == pytest.approx(float(alone.risk), rel=1e-4, abs=1e-9)


def test_never_gives_the_first_estimate_without_training(sim):
    out, record = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                        options=SolverOptions(iterations=50, network="never", **FAST))
    first = s2_sharpening.first_estimate(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                         smoothing=record.smoothing_strength > 0)
    assert record.iterations_run == 0 and not record.network_applied
    assert "NETWORK=never" in record.network_decision
    np.testing.assert_allclose(out, first, rtol=1e-4, atol=1e-4 * np.abs(first).max())


def test_auto_stops_where_the_first_estimate_leaves_nothing_to_gain(apex_crop):
    """Coarse bands that are exact linear mixes of the 10 m bands, observed without noise: the first estimate is
    already right, the network cannot beat it, and training stops at the first decision point."""
    rng = np.random.default_rng(0)
    truth = apex_crop / apex_crop.max()
    x10 = truth[[s2.SPECTRAL_ORDER.index(n) for n in s2.GROUP_10M]]
    mixed = truth.copy()
    for name in s2.GROUP_20M + s2.GROUP_60M:
        mixed[s2.SPECTRAL_ORDER.index(name)] = np.tensordot(rng.uniform(0.1, 0.5, 4), x10, axes=1)
    clean = simulate_s2(mixed, 80.0, seed=0)
    out, record = s2_sharpening.sharpen(clean.y10, clean.y20, clean.y60, sigma=clean.sigma, geometry="zero_phase",
                                        options=SolverOptions(iterations=100, network="auto", **FAST))
    assert not record.network_applied and record.iterations_run == 30
    assert "network not applied" in record.network_decision and "SURE gain" in record.network_decision
    first = s2_sharpening.first_estimate(clean.y10, clean.y20, clean.y60, sigma=clean.sigma, geometry="zero_phase",
                                         smoothing=record.smoothing_strength > 0)
    np.testing.assert_allclose(out, first, rtol=1e-4, atol=1e-4 * np.abs(first).max())


def test_auto_keeps_a_network_that_clearly_beats_a_poor_first_estimate(sim):
    """With the back-projection as first estimate the network has much to add: SURE says so and it stays."""
    out, record = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                        options=SolverOptions(iterations=60, network="auto", base="back_projection",
                                                              **FAST))
    assert record.network_applied and record.iterations_run == 60
    assert record.network_gain - 2 * record.network_gain_se > NETWORK_MIN_GAIN
    assert "network applied" in record.network_decision


def test_scene_model_without_network_fuses_windows_with_the_first_estimate(apex):
    from sure_core.runner import run_to_array
    from sure_core.scene import SceneOptions

    sim = simulate_s2(apex[:, :96, :96], 80.0, seed=1)
    data = {"10m": sim.y10, "20m": sim.y20, "60m": sim.y60}

    def read(w):
        return {k: v[:, w.row // r:(w.row + w.height) // r, w.col // r:(w.col + w.width) // r]
                for (k, v), r in zip(data.items(), (1, 2, 6))}, None

    case = s2_sharpening.Sentinel2Case(registration="off")
    out, done = run_to_array(case, read, (96, 96), 12, options=SolverOptions(iterations=5, network="never", **FAST),
                             training="scene", tile_size=48, halo=12, scene=SceneOptions(crops=2, crop_size=48))
    assert not done.scene.record.network_applied and np.isfinite(out).all()
    assert np.abs(out).max() > 0
