"""HS+MS fusion: sensor-model estimation, the Gaussian/matrix SRF options, bad inputs and short real runs."""
import numpy as np
import pytest
import torch

from sure_core import SolverOptions, hsms, pair_fusion
from sure_core.errors import InputShapeError, InvalidInputValueError
from sure_core.metrics import ergas
from sure_core.operators import BlurDecimate
from tests.conftest import shared_file

# the network always applied: these tests measure short training runs, not the NETWORK=auto decision
FAST = dict(iterations=30, width=8, skip_width=4, threads=1, device="cpu", network="always")


def smooth_fields(bands: int, size: int, seed: int, scale: float = 3.0) -> np.ndarray:
    """Positive, spatially correlated random images (a stand-in for abundance-like spectra)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    fields = gaussian_filter(rng.standard_normal((bands, size, size)), (0, scale, scale), mode="wrap")
    fields /= fields.std(axis=(1, 2), keepdims=True)
    return 1.0 + 0.3 * fields


def synthetic_scene(bands: int, size: int = 48, ratio: int = 3, sigma: float = 1.4, seed: int = 0,
                    endmembers: int = 5, noise: float = 0.0):
    """x (bands, size, size) = smooth spectra mixed by smooth abundances; hs = H x (+ noise)."""
    rng = np.random.default_rng(seed)
    abundances = smooth_fields(endmembers, size, seed, scale=2.0)
    wl = np.linspace(0, 1, bands)
    spectra = np.stack([0.3 + 0.2 * np.sin(2 * np.pi * (k + 1) * wl / 3 + rng.uniform(0, 6))
                        for k in range(endmembers)])
    x = np.einsum("kl,khw->lhw", spectra, abundances)
    hs = pair_fusion.degrade(x, ratio, sigma, "area")
    hs = hs + noise * rng.standard_normal(hs.shape)
    return x, hs


# ----------------------------------------------------------------------------------------------------------------
# sensor-model estimation
# ----------------------------------------------------------------------------------------------------------------
def test_estimate_response_recovers_a_known_nonnegative_response():
    rng = np.random.default_rng(1)
    bands, ratio, sigma = 10, 3, 1.4
    x = smooth_fields(bands, 48, seed=2, scale=1.5)  # independent bands
    hs = pair_fusion.degrade(x, ratio, sigma, "area")
    response = rng.uniform(0, 1, (4, bands)) * (rng.uniform(size=(4, bands)) > 0.4)
    offset = np.array([0.1, 0.0, -0.05, 0.2])
    ms = np.einsum("gl,lhw->ghw", response, x) + offset[:, None, None]
    r_hat, o_hat = pair_fusion.estimate_response(hs, ms, ratio, sigma, geometry="area")
    np.testing.assert_allclose(r_hat, response, atol=1e-6)
    np.testing.assert_allclose(o_hat, offset, atol=1e-6)
    # with noise on both images the estimate stays close, and non-negative
    ms_noisy = ms + 0.005 * rng.standard_normal(ms.shape)
    hs_noisy = hs + 0.005 * rng.standard_normal(hs.shape)
    r_noisy, _ = pair_fusion.estimate_response(hs_noisy, ms_noisy, ratio, sigma, geometry="area")
    assert (r_noisy >= 0).all()
    assert np.abs(r_noisy - response).max() < 0.1


def test_gaussian_srf_gets_gain_and_offset_fitted():
    bands = 30
    wl = np.linspace(450, 900, bands)
    x, hs = synthetic_scene(bands)
    from sure_core.spectral_response import gaussian_response, preset_bands
    table = preset_bands("landsat8", ["B2", "B3", "B4", "B5"])
    shape = gaussian_response(hsms._hs_table(bands, wl, None), table)
    ms = 2.0 * np.einsum("gl,lhw->ghw", shape, x) + 0.1
    model = hsms.fit_sensor_model(hs, ms, srf="gaussian", hs_wavelengths=wl / 1000.0, ms_sensor="landsat8:B2,B3,B4,B5",
                             psf_sigma=1.4)
    np.testing.assert_allclose(model.response, 2.0 * shape, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.offset, 0.1, atol=1e-6)
    assert model.ratio == 3 and np.allclose(model.psf_sigma, 1.4)
    # the same through explicit MS wavelengths/FWHMs, and through the matrix itself (offset only is fitted)
    same = hsms.fit_sensor_model(hs, ms, srf="gaussian", hs_wavelengths=wl, ms_wavelengths=table.centres_nm,
                            ms_fwhm=table.fwhm_nm, psf_sigma=1.4)
    np.testing.assert_allclose(same.response, model.response, rtol=1e-9)
    given = hsms.fit_sensor_model(hs, ms, srf=2.0 * shape, psf_sigma=1.4)
    np.testing.assert_allclose(given.offset, 0.1, atol=1e-6)


def test_psf_sigma_is_estimated_near_the_truth():
    x, hs = synthetic_scene(20, size=60, sigma=1.5, endmembers=6, seed=3)
    rng = np.random.default_rng(3)
    ms = np.einsum("gl,lhw->ghw", rng.uniform(0, 1, (4, 20)), x)
    model = hsms.fit_sensor_model(hs, ms, psf_sigma="estimate")
    assert abs(model.psf_sigma[0] - 1.5) < 0.3


def test_the_first_estimate_takes_each_sigma_for_its_own_image():
    x, hs = synthetic_scene(12, size=48, seed=5)
    rng = np.random.default_rng(5)
    ms = np.einsum("gl,lhw->ghw", rng.uniform(0, 1, (3, 12)), x)
    model = hsms.fit_sensor_model(hs, ms, psf_sigma=1.4)
    sigma_hs, sigma_ms = 0.02, 0.001
    estimate, _ = hsms.first_estimate_hs_ms(hs, ms, sigma_hs=sigma_hs, sigma_ms=sigma_ms, sensor_model=model)
    same = pair_fusion.first_estimate(hs, ms, model, {"lr": sigma_hs, "guide": sigma_ms})
    swapped = pair_fusion.first_estimate(hs, ms, model, {"lr": sigma_ms, "guide": sigma_hs})
    assert np.array_equal(estimate, same)
    assert not np.allclose(estimate, swapped)    # the two σ's reach different places


# ----------------------------------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair():
    x, hs = synthetic_scene(12)
    ms = np.stack([x[:4].mean(0), x[4:8].mean(0), x[8:].mean(0)])
    return hs, ms


def test_non_integer_ratio(pair):
    hs, ms = pair
    with pytest.raises(InputShapeError, match="integer"):
        hsms.fit_sensor_model(hs[:, :15, :15], ms[:, :40, :40])
    with pytest.raises(InputShapeError, match="same integer"):
        hsms.fit_sensor_model(hs[:, :16, :12], ms)


def test_given_ratio_must_match_and_be_integer(pair):
    hs, ms = pair
    with pytest.raises(InputShapeError, match="integer"):
        hsms.fit_sensor_model(hs, ms, ratio=2.5)
    with pytest.raises(InputShapeError, match="give 3"):
        hsms.fit_sensor_model(hs, ms, ratio=2)


def test_ms_coarser_than_hs(pair):
    hs, ms = pair
    with pytest.raises(InputShapeError, match="finer"):
        hsms.fit_sensor_model(ms, hs)


def test_gaussian_needs_wavelengths(pair):
    hs, ms = pair
    with pytest.raises(InvalidInputValueError, match="hs_wavelengths"):
        hsms.fit_sensor_model(hs, ms, srf="gaussian", ms_sensor="landsat8:B2,B3,B4")
    with pytest.raises(InvalidInputValueError, match="ms_sensor"):
        hsms.fit_sensor_model(hs, ms, srf="gaussian", hs_wavelengths=np.linspace(450, 900, 12))
    with pytest.raises(InputShapeError, match="12 HS bands"):
        hsms.fit_sensor_model(hs, ms, srf="gaussian", hs_wavelengths=np.linspace(450, 900, 10),
                              ms_sensor="landsat8:B2,B3,B4")
    with pytest.raises(InputShapeError, match="name its bands"):
        hsms.fit_sensor_model(hs, ms, srf="gaussian", hs_wavelengths=np.linspace(450, 900, 12), ms_sensor="sentinel2")
    with pytest.raises(InvalidInputValueError, match="B6"):  # SWIR band outside a VNIR HS range
        hsms.fit_sensor_model(hs, ms, srf="gaussian", hs_wavelengths=np.linspace(450, 900, 12),
                              ms_sensor="landsat8:B2,B3,B6")


def test_bad_matrix_and_mode(pair, tmp_path):
    hs, ms = pair
    with pytest.raises(InputShapeError, match="transpose"):
        hsms.fit_sensor_model(hs, ms, srf=np.ones((12, 3)))
    with pytest.raises(InvalidInputValueError, match="negative"):
        hsms.fit_sensor_model(hs, ms, srf=-np.ones((3, 12)))
    path = tmp_path / "r.csv"
    path.write_text("\n".join(",".join(["0.1"] * 11) for _ in range(3)))
    with pytest.raises(InputShapeError, match="11 columns"):
        hsms.fit_sensor_model(hs, ms, srf=str(path))
    with pytest.raises(InvalidInputValueError, match="'estimate', 'gaussian'"):
        hsms.fit_sensor_model(hs, ms, srf="guess")


def test_nan_and_bad_psf(pair):
    hs, ms = pair
    bad = hs.copy()
    bad[0, 3, 4] = np.nan
    with pytest.raises(InvalidInputValueError, match="hyperspectral.*NaN"):
        hsms.fuse_hs_ms(bad, ms)
    bad = ms.copy()
    bad[1, 0, 0] = np.inf
    with pytest.raises(InvalidInputValueError, match="multispectral.*NaN or infinite"):
        hsms.fuse_hs_ms(hs, bad)
    with pytest.raises(InvalidInputValueError, match="psf_sigma"):
        hsms.fit_sensor_model(hs, ms, psf_sigma=-1.0)
    with pytest.raises(InputShapeError, match=r"\(bands, rows, cols\)"):
        hsms.fit_sensor_model(hs[0, 0], ms)


# ----------------------------------------------------------------------------------------------------------------
# short runs
# ----------------------------------------------------------------------------------------------------------------
def back_projection(hs: np.ndarray, ratio: int, sigma: float) -> np.ndarray:
    op = BlurDecimate([sigma] * hs.shape[0], ratio, (hs.shape[1] * ratio, hs.shape[2] * ratio), "area",
                      dtype=torch.float64)
    return op.A_dagger(torch.as_tensor(hs)).numpy()


def test_short_run_on_a_crop_of_the_real_pair_beats_the_back_projection():
    from scipy.io import loadmat
    from scipy.ndimage import zoom

    data = loadmat(str(shared_file("paris_data_hs_ms.mat")))
    truth = data["HSim"].transpose(2, 0, 1)[:, :48, :48].astype(np.float64)
    ms = data["MSim"].transpose(2, 0, 1)[:, :48, :48].astype(np.float64)
    sigma = 1.48  # MTF 0.3 at Nyquist for ×3
    clean = pair_fusion.degrade(truth, 3, sigma, "area")
    noise = np.sqrt((clean ** 2).mean() / 1e3)
    hs = clean + noise * np.random.default_rng(0).standard_normal(clean.shape)
    fused, record, model = hsms.fuse_hs_ms(hs, ms, options=SolverOptions(**FAST))
    assert fused.shape == truth.shape and np.isfinite(fused).all()
    assert model.ratio == 3 and model.response.shape == (9, 128)
    assert len(record.loss_history) == FAST["iterations"]
    cubic = np.stack([zoom(b, 3, order=3, grid_mode=True, mode="reflect") for b in hs])
    e_fused = ergas(truth, fused, 3)
    e_bp = ergas(truth, back_projection(hs, 3, sigma), 3)
    e_cubic = ergas(truth, cubic, 3)
    # measured: fused 5.49, cubic 6.91, back-projection 11.9
    assert e_fused < 0.85 * e_cubic and e_fused < 0.6 * e_bp, (e_fused, e_bp, e_cubic)


def test_two_hundred_band_synthetic_run():
    bands, ratio = 220, 3
    x, hs = synthetic_scene(bands, size=48, seed=4, noise=0.002)
    rng = np.random.default_rng(5)
    ms = np.einsum("gl,lhw->ghw", rng.uniform(0, 1, (6, bands)) / bands, x)
    fused, record, model = hsms.fuse_hs_ms(hs, ms, psf_sigma=1.4, options=SolverOptions(**{**FAST, "iterations": 10}))
    assert fused.shape == (bands, 48, 48) and np.isfinite(fused).all()
    assert model.response.shape == (6, bands)
    e_bp = ergas(x, back_projection(hs, ratio, 1.4), ratio)
    assert ergas(x, fused, ratio) < 0.5 * e_bp  # the 6 MS bands pin the 5 endmember spectra: measured 0.05 vs 1.25
