"""Guided non-local smoothing: what it keeps, what it removes, and the SURE that picks its strength."""
import numpy as np
import pytest
import torch

from sure_core import guided_smoothing as gs
from sure_core import s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.metrics import msre, sam
from sure_core.solver import SolverOptions

SHARPENED = list(s2.SHARPENED_BANDS)


def _scene(shape=(64, 64), seed=0):
    """Four guide bands of a piecewise-flat scene (a dark and a bright half, a bright square) with some texture."""
    rows, cols = shape
    base = np.full(shape, 0.1)
    base[:, cols // 2:] = 0.6
    base[rows // 4:rows // 2, cols // 8:cols // 4] = 0.9
    texture = 0.05 * np.sin(np.arange(cols) / 3.0)[None] * (np.arange(rows)[:, None] > rows // 2)
    levels = np.array([0.5, 0.8, 1.0, 1.4])[:, None, None]
    return torch.from_numpy(levels * (base + texture)[None])


def _noisy(clean, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    return clean + sigma[:, None, None] * torch.randn(clean.shape, generator=g, dtype=clean.dtype)


def test_a_constant_image_and_zero_strength_are_left_alone():
    clean = _scene()
    sigma = torch.full((4,), 0.02, dtype=torch.float64)
    guides = _noisy(clean, sigma, 0)
    constant = torch.full((3, 64, 64), 0.37, dtype=torch.float64)
    assert torch.allclose(gs.smooth(constant, guides, sigma, 1.0), constant, atol=1e-12)
    image = _noisy(clean, sigma, 1)
    assert gs.smooth(image, guides, sigma, 0.0) is image
    assert gs.smooth(image, guides, torch.zeros(4, dtype=torch.float64), 1.0) is image


def test_noise_is_removed_in_flat_areas_and_edges_are_kept():
    clean = _scene()
    sigma = torch.full((4,), 0.03, dtype=torch.float64)
    guides = _noisy(clean, sigma, 2)
    image = _noisy(clean, sigma, 3)        # other bands with the guides' structure and their own noise
    out = gs.smooth(image, guides, sigma, 0.9)
    flat = (slice(None), slice(40, 60), slice(4, 28))    # inside the dark half, away from edges and texture
    assert (out - clean)[flat].std() < 0.4 * (image - clean)[flat].std()
    # the step between the dark and the bright half is kept: column means on either side of it
    step_before = (clean[:, :, 33] - clean[:, :, 30]).mean()
    step_after = (out[:, :, 33] - out[:, :, 30]).mean()
    assert abs(float(step_after / step_before) - 1) < 0.03


def test_smoothing_is_local_so_windows_agree_with_the_whole_image():
    clean = _scene((72, 80), 4)
    sigma = torch.full((4,), 0.03, dtype=torch.float64)
    guides, image = _noisy(clean, sigma, 5), _noisy(clean, sigma, 6)
    whole = gs.smooth(image, guides, sigma, 1.2)
    window = (slice(None), slice(10, 60), slice(20, 75))
    part = gs.smooth(image[window], guides[window], sigma, 1.2)
    reach = gs.SEARCH + gs.PATCH
    inner = (slice(None), slice(reach, -reach), slice(reach, -reach))
    assert torch.allclose(part[inner], whole[window][inner], atol=1e-12)


def test_the_guide_sure_follows_the_true_risk_and_picks_a_near_best_strength():
    clean = _scene((64, 64), 7)
    sigma = torch.tensor([0.02, 0.03, 0.03, 0.05], dtype=torch.float64)
    strengths = (0.0, 0.5, 0.9, 1.5, 3.0)
    estimated, true = np.zeros(len(strengths)), np.zeros(len(strengths))
    draws = 6
    for seed in range(draws):
        noisy = _noisy(clean, sigma, 100 + seed)
        estimated += gs.guide_risks(noisy, sigma, strengths, torch.Generator().manual_seed(seed))
        true += [float((gs.smooth(noisy, noisy, sigma, h) - clean).pow(2).sum()) for h in strengths]
    # one draw's SURE scatters by about √(2/N) of the noise energy N·Σσ² (0.8 % here): within 1 % after 6 draws,
    # while the risks of the strengths differ by 4 % to 90 % of it
    noise_energy = float((sigma ** 2).sum()) * clean.shape[-1] * clean.shape[-2]
    assert np.allclose(estimated / draws, true / draws, rtol=0, atol=0.01 * noise_energy), \
        (estimated / draws, true / draws)
    noisy = _noisy(clean, sigma, 200)
    choice = gs.choose_strength([(noisy, sigma)], seed=0, strengths=strengths)
    truth = {h: float((gs.smooth(noisy, noisy, sigma, h) - clean).pow(2).sum()) for h in strengths}
    assert choice.strength > 0
    assert truth[choice.strength] <= 1.05 * min(truth.values()), (choice, truth)
    # seeded: the same probes, the same choice
    assert gs.choose_strength([(noisy, sigma)], seed=0, strengths=strengths).risks == choice.risks


def test_the_guides_sigma_is_bounded_by_the_cross_band_estimate():
    clean = _scene((96, 96), 12)
    sigma = torch.tensor([0.01, 0.01, 0.02, 0.02], dtype=torch.float64)
    noisy = _noisy(clean, sigma, 13)
    # a right σ stays, up to the cross-band estimate's own scatter (where the scene has almost no texture) ...
    assert torch.allclose(gs.guide_noise(noisy, sigma), sigma, rtol=0.05)
    # ... a σ five times too high (texture taken for noise) is brought down near the truth
    bounded = gs.guide_noise(noisy, 5 * sigma)
    assert (bounded < 1.5 * sigma).all() and (bounded > 0.7 * sigma).all(), bounded
    # and the strength is chosen, and the output smoothed, with the bounded σ
    choice = gs.choose_strength([(noisy, 5 * sigma)])
    assert torch.allclose(choice.sigma, bounded)


def test_small_images_search_less_and_the_smallest_come_back_unchanged():
    sigma = torch.full((4,), 0.03, dtype=torch.float64)
    tiny = _noisy(_scene((3, 3), 8), sigma, 9)
    assert torch.allclose(gs.smooth(tiny, tiny, sigma, 1.0), tiny)
    small = _noisy(_scene((8, 8), 8), sigma, 9)     # room for a search radius of 3 only
    out = gs.smooth(small, small, sigma, 1.0)
    assert torch.isfinite(out).all() and not torch.allclose(out, small)


def test_smoothing_lowers_the_spectral_angle_of_an_apex_first_estimate(apex):
    from sure_core.simulation import simulate_s2

    crop = np.ascontiguousarray(apex[:, 96:192, 96:192])   # has water and shadow, where the angle suffers
    sim = simulate_s2(crop, 30.0, seed=0)
    plain, smoothed = (s2_sharpening.first_estimate(sim.y10, sim.y20, sim.y60, sigma=sim.sigma, geometry="zero_phase",
                                                    smoothing=flag) for flag in (False, True))
    t = sim.truth[SHARPENED]
    assert sam(t, smoothed[SHARPENED]) < sam(t, plain[SHARPENED]) - 0.3
    assert msre(t, smoothed[SHARPENED]) > msre(t, plain[SHARPENED])


@pytest.mark.parametrize("loss, flag, sigma_given, applied", [
    ("sure", None, True, True),      # auto: σ of the 10 m bands given (the APEX protocol) → smoothed
    ("sure", None, False, False),    # auto: σ estimated from the data → not smoothed
    ("sure", True, False, True), ("sure", False, True, False), ("bp", True, True, False)])
def test_the_solver_smooths_the_sure_recipe_as_asked_and_records_the_strength(apex, loss, flag, sigma_given, applied):
    from sure_core.simulation import simulate_s2

    sim = simulate_s2(np.ascontiguousarray(apex[:, 96:192, 96:192]), 30.0, seed=0)
    options = SolverOptions(iterations=2, loss=loss, smoothing=flag, device="cpu", width=4, skip_width=2)
    _, record = s2_sharpening.sharpen(sim.y10, sim.y20, sim.y60, sigma=sim.sigma if sigma_given else None,
                                      options=options, geometry="zero_phase")
    assert (record.smoothing_strength > 0) is applied
    assert bool(record.smoothing_risks) is applied
