"""Pansharpening: sensor presets, PAN-weight estimation, PAN sharpening, QNR, short runs at ratios 2/3/4, bad input."""
import math

import numpy as np
import pytest
from scipy import ndimage

from sure_core import SolverOptions
from sure_core.cross_band_noise import cross_band_noise_sigma
from sure_core.errors import InputShapeError, InvalidInputValueError
from sure_core.metrics import ergas, q2n, q_index
from sure_core.pair_fusion import degrade
from sure_core.pan_sensors import SENSORS, get_sensor, mtf_from_sigma, pan_to_ms_sharpness_sigma
from sure_core.pansharpening import fit_sensor_model, pansharpen, prepare, sharpen_pan, sharpened_noise_factor
from sure_core.quality_no_reference import block_q, qnr
from tests.conftest import shared_file

# the network always applied: these tests measure short training runs, not the NETWORK=auto decision
FAST = SolverOptions(iterations=12, width=8, skip_width=4, device="cpu", threads=1, seed=0, network="always")


def synthetic_scene(size: int, bands: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (bands, size, size) scene of three materials with sharp-edged and smooth abundances, and their spectra."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    abundances = np.stack([
        ndimage.gaussian_filter(rng.random((size, size)), 1.0) * 0.6 + ((xx - 0.4) ** 2 + (yy - 0.5) ** 2 < 0.08),
        ndimage.gaussian_filter(rng.random((size, size)), 2.0) + 0.8 * ((xx > 0.55) & (yy < 0.45)),
        ndimage.gaussian_filter(rng.random((size, size)), 0.7) * 0.8 + 0.5 * (np.sin(9 * xx + 4 * yy) > 0.3),
    ])
    spectra = rng.uniform(40.0, 300.0, (3, bands))
    return np.einsum("kb,khw->bhw", spectra, abundances) + 20.0, spectra


def interpolated(ms: np.ndarray, ratio: int) -> np.ndarray:
    """Cubic-spline interpolation onto the PAN grid with 'area' alignment (MS pixel j centred at r·j + (r−1)/2)."""
    size = ms.shape[1] * ratio
    coords = (np.arange(size) - (ratio - 1) / 2.0) / ratio
    grid = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([ndimage.map_coordinates(b, grid, order=3, mode="nearest") for b in ms])


# ------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("key", sorted(SENSORS))
def test_preset_sigma_has_the_published_mtf_gain_at_nyquist(key):
    sensor = SENSORS[key]
    bands = len(sensor.ms_bands) or 5
    ratio = sensor.ratio or 4
    for sigma, gain in zip(sensor.ms_psf_sigma(bands, ratio), sensor.ms_mtf_for(bands)):
        # Gaussian MTF at the MS Nyquist frequency 1/(2·ratio) cycles per PAN pixel
        assert math.exp(-2 * math.pi ** 2 * sigma ** 2 / (2 * ratio) ** 2) == pytest.approx(gain, rel=1e-9)
        assert mtf_from_sigma(sigma, ratio) == pytest.approx(gain, rel=1e-9)
    assert mtf_from_sigma(sensor.pan_psf_sigma(ratio), ratio) == pytest.approx(sensor.pan_mtf)


def test_presets_hold_the_toolbox_gains_and_reduced_products():
    wv2 = get_sensor("WV2")
    assert wv2 is get_sensor("WorldView-2") is SENSORS["worldview2"]
    assert wv2.ms_mtf_for(8).tolist() == [0.35] * 7 + [0.27] and wv2.pan_mtf == 0.11 and wv2.ratio == 4
    assert get_sensor("QB").ms_mtf_for(4).tolist() == [0.34, 0.32, 0.30, 0.22]
    assert get_sensor("ikonos").ms_mtf_for(4).tolist() == [0.26, 0.28, 0.29, 0.28]
    assert get_sensor("Pléiades").ratio == 4 and get_sensor("landsat9").ratio == 2
    # WorldView-3 4-band bundle = bands 2, 3, 5, 7 of the toolbox's 'WV3_4bands'
    assert get_sensor("wv3").ms_mtf_for(4).tolist() == [0.355, 0.360, 0.365, 0.335]
    assert get_sensor("generic").ms_mtf_for(150).shape == (150,)
    with pytest.raises(InputShapeError, match="generic"):
        wv2.ms_mtf_for(6)
    with pytest.raises(InvalidInputValueError, match="worldview2"):
        get_sensor("sentinel-17")


def test_pan_to_ms_sharpness_sigma_composes_gaussians():
    g_ms, g_pan = 0.35, 0.11
    rel = pan_to_ms_sharpness_sigma(g_ms, g_pan)
    sigma_ms = math.sqrt(-2 * math.log(g_ms)) / math.pi  # PAN pixels, gain at 1/2 cycle per pixel
    # blurring an MS-sharp image by σ_rel gives the PAN's gain at the PAN Nyquist
    assert math.exp(-math.pi ** 2 * (sigma_ms ** 2 + rel ** 2) / 2) == pytest.approx(g_pan)
    assert pan_to_ms_sharpness_sigma(0.2, 0.3) == 0.0


# ------------------------------------------------------------------------------------------ sensor model
def test_pan_weight_estimation_recovers_known_weights():
    truth, _ = synthetic_scene(96, bands=5, seed=1)
    # three materials make five bands collinear: give each band texture of its own so the weights are identifiable
    rng = np.random.default_rng(7)
    truth = truth + 60 * ndimage.gaussian_filter(rng.random((5, 96, 96)), (0, 3, 3))
    weights = np.array([0.1, 0.3, 0.0, 0.25, 0.2])
    pan = np.einsum("b,bhw->hw", weights, truth) + 12.0
    sigma = get_sensor("generic").ms_psf_sigma(5, 4)
    ms = degrade(truth, 4, sigma)
    model = fit_sensor_model(ms, pan, sensor="generic", match_pan_mtf=False)
    assert model.ratio == 4 and np.allclose(model.psf_sigma, sigma)
    np.testing.assert_allclose(model.response[0], weights, atol=0.01)
    assert model.offset[0] == pytest.approx(12.0, abs=1.0)


def test_given_weights_keep_them_and_estimate_the_offset_from_the_means():
    truth, _ = synthetic_scene(48, bands=3)
    pan = truth.sum(axis=0) / 3 - 7.0
    ms = degrade(truth, 4, 1.5)
    model = fit_sensor_model(ms, pan, weights=[1 / 3] * 3, psf_sigma=1.5, match_pan_mtf=False)
    np.testing.assert_allclose(model.response, [[1 / 3] * 3])
    assert model.offset[0] == pytest.approx(-7.0, abs=0.2)


def test_sharpen_pan_undoes_the_relative_blur_and_keeps_the_mean():
    truth, _ = synthetic_scene(128, bands=1, seed=3)
    image = truth[0]
    blurred = ndimage.gaussian_filter(image, 0.6, mode="wrap")
    sharpened = sharpen_pan(blurred, 0.6)
    inner = (slice(20, -20),) * 2
    before = np.sqrt(((blurred - image)[inner] ** 2).mean())
    after = np.sqrt(((sharpened - image)[inner] ** 2).mean())
    assert after < 0.5 * before
    assert sharpened.mean() == pytest.approx(blurred.mean(), rel=1e-3)
    assert sharpen_pan(blurred, 0.0) is blurred
    noise = np.random.default_rng(0).standard_normal((256, 256))
    factor = np.std(sharpen_pan(noise, 0.5)) / np.std(noise)
    assert factor == pytest.approx(sharpened_noise_factor(0.5), rel=0.05) and factor > 1.5


def test_prepare_sharpens_the_pan_by_the_preset_gains():
    truth, _ = synthetic_scene(64, bands=4)
    pan, ms = truth.mean(axis=0), degrade(truth, 4, get_sensor("quickbird").ms_psf_sigma(4, 4))
    _, guide, model, relative = prepare(ms, pan, sensor="quickbird")
    expected = pan_to_ms_sharpness_sigma(float(np.mean([0.34, 0.32, 0.30, 0.22])), 0.15)
    assert relative == pytest.approx(expected, rel=1e-6) and relative > 0.3
    assert guide.shape == (1, 64, 64) and not np.allclose(guide[0], pan)
    _, unchanged, _, none = prepare(ms, pan, sensor="quickbird", match_pan_mtf=False)
    assert none == 0.0 and np.array_equal(unchanged[0], pan)


def test_cross_band_noise_sees_through_shared_texture():
    from sure_core.noise import estimate_noise_sigma

    rng = np.random.default_rng(11)
    texture = ndimage.gaussian_filter(rng.standard_normal((128, 128)), 0.7) * 400   # fine detail shared by bands
    clean = np.stack([g * texture + 300 for g in (0.6, 0.8, 1.0, 1.3, 0.9)])
    true_sigma = np.array([1.0, 2.0, 4.0, 2.0, 1.0])
    noisy = clean + true_sigma[:, None, None] * rng.standard_normal(clean.shape)
    estimate = cross_band_noise_sigma(noisy, guides=texture[None])
    np.testing.assert_allclose(estimate, true_sigma, rtol=0.3)
    assert (estimate_noise_sigma(noisy) > 3 * true_sigma).all()  # the single-band estimate takes texture for noise
    assert (cross_band_noise_sigma(clean, guides=texture[None]) < 0.05).all()


# ------------------------------------------------------------------------------------------ runs
@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_short_run_beats_interpolation_at_each_ratio(ratio):
    truth, _ = synthetic_scene(48, bands=4, seed=ratio)
    pan = np.einsum("b,bhw->hw", [0.2, 0.3, 0.3, 0.2], truth)
    ms = degrade(truth, ratio, get_sensor("generic").ms_psf_sigma(4, ratio))
    fused, record, model = pansharpen(ms, pan, options=FAST, match_pan_mtf=False, sigma_ms=0.1, sigma_pan=0.1)
    assert fused.shape == truth.shape and model.ratio == ratio and np.isfinite(fused).all()
    assert len(record.loss_history) == FAST.iterations
    baseline = ergas(truth, interpolated(ms, ratio), ratio)
    assert ergas(truth, fused, ratio) < 0.4 * baseline  # measured 0.20-0.24


def test_hyperspectral_pansharpening_many_bands():
    truth, _ = synthetic_scene(32, bands=100, seed=5)
    pan = truth[20:60].mean(axis=0)
    ms = degrade(truth, 2, 1.0)
    fused, _, model = pansharpen(ms, pan[None], psf_sigma=1.0, options=FAST, match_pan_mtf=False)
    assert fused.shape == (100, 32, 32) and model.response.shape == (1, 100)
    assert ergas(truth, fused, 2) < 0.6 * ergas(truth, interpolated(ms, 2), 2)  # measured 0.42


def test_short_run_on_a_worldview2_crop_beats_interpolation():
    from scipy.io import loadmat

    data = loadmat(str(shared_file("imgWV2.mat")))
    truth = data["I_MS"][96:160, 96:160].transpose(2, 0, 1).astype(np.float64)   # 64×64 MS reference
    pan = data["I_PAN"][384:640, 384:640].astype(np.float64)                    # the PAN over it
    wv2 = get_sensor("worldview2")
    # Wald protocol: degrade both by 4 with the WV2 MTF Gaussians ('area'), fuse back to 64×64
    ms_lr = degrade(truth, 4, wv2.ms_psf_sigma(8, 4))
    pan_lr = degrade(pan[None], 4, wv2.pan_psf_sigma(4))[0]
    fused, _, _ = pansharpen(ms_lr, pan_lr, sensor="WV2", options=FAST)
    base = interpolated(ms_lr, 4)
    assert ergas(truth, fused, 4) < 0.8 * ergas(truth, base, 4)   # measured 5.65 against 8.36
    assert q2n(truth, fused) > q2n(truth, base) + 0.15             # measured 0.851 against 0.576


def test_the_pan_is_sharpened_once_per_window_and_twice_per_scene_crop(monkeypatch):
    """The PAN brought to the MS sharpness is made once for a window (the sensor-model fit's is reused), and twice
    per training crop of a scene (the fit, then the problem): not once per σ estimate, scale and problem."""
    from sure_core import pansharpening, scene
    from sure_core.tiling import Window

    truth, _ = synthetic_scene(64, bands=4, seed=5)
    pan, ms = truth.mean(axis=0), truth.reshape(4, 16, 4, 16, 4).mean(axis=(2, 4))
    calls = []
    real = pansharpening.sharpen_pan
    monkeypatch.setattr(pansharpening, "sharpen_pan", lambda *a, **k: calls.append(1) or real(*a, **k))
    options = SolverOptions(iterations=1, width=4, skip_width=2, device="cpu", threads=1, network="never",
                            error_estimate=False)
    pansharpen(ms, pan, sensor="worldview2", options=options)
    assert len(calls) == 1

    calls.clear()

    def read(w):
        rs, cs = w.slices()
        return ms[:, rs.start // 4:rs.stop // 4, cs.start // 4:cs.stop // 4], pan[rs, cs]

    crops = [Window(0, 0, 32, 32), Window(32, 32, 32, 32)]
    scene.train_scene(pansharpening.PanMsCase(sensor="worldview2", ratio=4), read, (64, 64), options=options,
                      crops=crops)
    assert len(calls) == 2 * len(crops)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("ms_shape, pan_shape, kwargs, error, match", [
    ((4, 16, 16), (16, 16), {}, InputShapeError, "finer"),
    ((4, 16, 16), (3, 64, 64), {}, InputShapeError, "single band"),
    ((4, 16, 16), (40, 40), {}, InputShapeError, "integer"),
    ((4, 16, 16), (64, 48), {}, InputShapeError, "integer"),
    ((4, 16, 16), (64, 64), {"ratio": 2}, InputShapeError, "ratio of 2"),
    ((4, 16, 16), (64, 64), {"ratio": 2.5}, InputShapeError, "integer"),
    ((4, 16, 16), (64, 64), {"weights": [1, 2, 3]}, InputShapeError, "one PAN weight per MS band"),
    ((4, 16, 16), (64, 64), {"weights": [1, -2, 3, 1]}, InvalidInputValueError, "≥ 0"),
    ((4, 16, 16), (64, 64), {"psf_sigma": "auto"}, InvalidInputValueError, "estimate"),
    ((4, 16, 16), (64, 64), {"psf_sigma": [1, 2]}, InputShapeError, "PSF σ"),
    ((4, 16, 16), (64, 64), {"sensor": "hubble"}, InvalidInputValueError, "unknown sensor"),
    ((6, 16, 16), (64, 64), {"sensor": "quickbird"}, InputShapeError, "generic"),
])
def test_bad_inputs_raise_clear_errors(ms_shape, pan_shape, kwargs, error, match):
    rng = np.random.default_rng(0)
    with pytest.raises(error, match=match):
        fit_sensor_model(rng.random(ms_shape) + 1, rng.random(pan_shape) + 1, **kwargs)


@pytest.mark.parametrize("target", ["ms", "pan"])
def test_nan_is_refused_before_any_work(target):
    rng = np.random.default_rng(0)
    ms, pan = rng.random((4, 16, 16)), rng.random((64, 64))
    (ms if target == "ms" else pan)[3, 5] = np.nan
    with pytest.raises(InvalidInputValueError, match="NaN"):
        pansharpen(ms, pan, options=FAST)


# ------------------------------------------------------------------------------------------ QNR
def test_block_q_matches_the_sliding_q_index_on_a_single_window():
    rng = np.random.default_rng(2)
    x, y = rng.random((1, 32, 32)) + 1, rng.random((1, 32, 32)) + 1
    y += 0.5 * x
    assert block_q(x, y, 32)[0] == pytest.approx(q_index(x, y, block_size=32), rel=1e-9)


def test_qnr_is_perfect_for_consistent_images_and_drops_with_distortion():
    rng = np.random.default_rng(4)
    pan_lr = ndimage.gaussian_filter(rng.random((32, 32)), 1.0) * 100 + 50
    ms = np.stack([1.5 * pan_lr + 10, 0.7 * pan_lr + 5 + rng.random((32, 32)), pan_lr ** 1.2])
    replicate = np.ones((4, 4))
    pan = np.kron(pan_lr, replicate)                       # block-constant: its block means are pan_lr
    fused = np.stack([np.kron(b, replicate) for b in ms])  # every block relation of the MS kept
    perfect = qnr(fused, ms, pan, 4)
    assert perfect.d_lambda == pytest.approx(0, abs=1e-12) and perfect.d_s == pytest.approx(0, abs=1e-12)
    assert perfect.qnr == pytest.approx(1.0) and perfect.pan_lr_from == "block mean"
    noisy = qnr(fused + rng.normal(0, 20, fused.shape), ms, pan, 4, pan_lr=pan_lr)
    assert noisy.d_lambda > 0.01 and noisy.d_s > 0.01 and noisy.qnr < 0.98
    with pytest.raises(InputShapeError, match="multiple"):
        qnr(fused[:, :120, :120], ms[:, :30, :30], pan[:120, :120], 4)

