"""Co-registration: shifted operators stay exact, known shifts are recovered, untrustworthy ones fall back to zero."""
import numpy as np
import pytest
import torch

from sure_core import coregistration, s2_sharpening
from sure_core import sentinel2 as s2
from sure_core.coregistration import BandShift, MisregistrationError, Registration
from sure_core.operators import BlurDecimate
from sure_core.simulation import simulate_s2
from tests.conftest import shared_file

SHIFTS = ((0.3, -0.7), (-1.2, 0.45), (0.05, 0.0))


def _op(shifts, ratio=2, geometry="area", cond=1e-3, hr=(36, 42)):
    return BlurDecimate((1.1, 0.9, 1.4), ratio, hr, geometry, cond=cond, dtype=torch.float64, shifts=shifts)


@pytest.mark.parametrize("ratio,geometry", [(2, "area"), (3, "zero_phase"), (6, "area")])
def test_shifted_operator_adjoint_and_projection(ratio, geometry):
    op = _op(SHIFTS, ratio, geometry, cond=0.0, hr=(12 * ratio, 14 * ratio))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, *op.hr_shape, generator=gen, dtype=torch.float64)
    y = torch.randn(3, *op.lr_shape, generator=gen, dtype=torch.float64)
    assert torch.isclose((op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum(), rtol=1e-12)
    px = op.project(x)
    assert torch.allclose(op.project(px), px, atol=1e-9)
    assert torch.allclose(op.A(px), op.A(x), atol=1e-10)


def test_shifted_inverse_gram_matches_dense_solve():
    op = BlurDecimate((1.1,), 2, (16, 18), "area", cond=1e-3, dtype=torch.float64, shifts=[(0.37, -0.81)])
    n = op.lr_shape[0] * op.lr_shape[1]
    eye = torch.eye(op.hr_shape[0] * op.hr_shape[1], dtype=torch.float64).reshape(-1, 1, *op.hr_shape)
    a = op.A(eye).reshape(-1, n).T
    y = torch.randn(1, *op.lr_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dense = torch.linalg.solve(a @ a.T + 1e-3 * torch.eye(n, dtype=torch.float64), y.reshape(-1))
    assert torch.allclose(op.inv_gram(y).reshape(-1), dense, rtol=1e-8, atol=1e-10)


def test_zero_shift_is_todays_operator_bit_for_bit():
    x = torch.randn(3, 36, 42, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plain, zero = _op(None), _op([(0.0, 0.0)] * 3)
    assert zero.shifts == ()
    assert torch.equal(plain.A(x), zero.A(x))
    assert torch.equal(plain.kernel_fft, zero.kernel_fft)


def test_whole_pixel_shift_moves_the_content_down_right():
    """The sign convention: a band whose content lies (1, 2) of its pixels down/right is the unshifted
    observation rolled by (1, 2)."""
    x = torch.randn(3, 36, 42, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    moved = _op([(1.0, 2.0)]).A(x)
    assert torch.allclose(moved, torch.roll(_op(None).A(x), shifts=(1, 2), dims=(-2, -1)), atol=1e-12)


def _shifted_s2(truth, shift, snr=30.0, seed=0, group_60m=None):
    shifts = {"20m": [shift], "60m": [group_60m if group_60m is not None else shift]}
    return simulate_s2(truth, snr, seed=seed, geometry="area", shifts=shifts)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.23, -0.61), (-1.3, 0.8)])
def test_known_shift_recovered_on_simulated_s2(apex, shift):
    """Within 0.02 of a coarse pixel at 30 dB, for the 20 m and the 60 m group, up to the ±1.5 px search."""
    sim = _shifted_s2(apex, shift)
    records = s2_sharpening.measure_registration({"10m": sim.y10, "20m": sim.y20, "60m": sim.y60})
    for key in ("20m", "60m"):
        assert records[key]["trusted"], records[key]["note"]
        assert abs(records[key]["rows"] - shift[0]) <= 0.02 and abs(records[key]["cols"] - shift[1]) <= 0.02


def test_known_shift_recovered_on_real_texture():
    """A real S2 crop (DSen2, aligned): its 20 m bands re-observed from the 10 m bands' texture with a known shift."""
    from osgeo import gdal

    path = shared_file("S2A_MSIL1C_20170527_T33UUB.mat")
    im10 = gdal.Open(f'HDF5:"{path}"://im10').ReadAsArray().transpose(0, 2, 1)[:, :192, :192].astype(np.float64)
    im20 = gdal.Open(f'HDF5:"{path}"://im20').ReadAsArray().transpose(0, 2, 1)[:, :96, :96].astype(np.float64)
    up = torch.nn.functional.interpolate(torch.from_numpy(im20)[None], scale_factor=2, mode="bicubic")[0]
    hr = 0.5 * up + 0.5 * torch.from_numpy(im10[[2, 3, 3, 3, 3, 3]])   # real 20 m spectra, 10 m detail
    shift = (0.37, -0.52)
    op = BlurDecimate(s2.group_sigmas(s2.GROUP_20M), 2, (192, 192), "area", dtype=torch.float64, shifts=[shift])
    y = op.A(hr).numpy()
    y += np.random.default_rng(0).normal(0, 0.001 * y.std(), y.shape)
    registration = coregistration.measure(y, im10, 2, s2.group_sigmas(s2.GROUP_20M), names=list(s2.GROUP_20M))
    assert registration.trusted
    assert abs(registration.pooled.rows - shift[0]) <= 0.02 and abs(registration.pooled.cols - shift[1]) <= 0.02


def test_flat_scene_keeps_zero_shift_and_says_why():
    rng = np.random.default_rng(0)
    guides = 0.3 + 0.001 * rng.standard_normal((4, 96, 96))
    lr = 0.3 + 0.001 * rng.standard_normal((6, 48, 48))
    registration = coregistration.measure(lr, guides, 2, s2.group_sigmas(s2.GROUP_20M), names=list(s2.GROUP_20M))
    assert not registration.trusted
    assert registration.shifts() == [(0.0, 0.0)] * 6
    assert "predicts too little" in registration.pooled.note
    assert registration.as_record()["trusted"] is False


def test_offset_beyond_the_search_range_is_an_error(apex):
    sim = _shifted_s2(apex, (3.0, -2.0), snr=40.0)
    with pytest.raises(MisregistrationError, match="do not overlap as their georeferencing claims"):
        coregistration.measure(sim.y20, sim.y10, 2, s2.group_sigmas(s2.GROUP_20M))


def test_nodata_pixels_are_left_out(apex):
    """A block of constant-filled nodata in both images does not pull the estimate."""
    shift = (0.4, 0.3)
    sim = _shifted_s2(apex, shift)
    y20, y10 = sim.y20.copy(), sim.y10.copy()
    y20[:, 10:40, 10:40] = 0.0
    y10[:, 20:80, 20:80] = 0.0
    valid = np.ones((99, 99), dtype=bool)
    valid[8:42, 8:42] = False
    registration = coregistration.measure(y20, y10, 2, s2.group_sigmas(s2.GROUP_20M), valid=valid)
    assert abs(registration.pooled.rows - shift[0]) <= 0.02 and abs(registration.pooled.cols - shift[1]) <= 0.02


def test_a_band_apart_from_its_group_keeps_its_own_shift():
    near = [BandShift(0.50, 0.50, 0.005, 0.99, True) for _ in range(3)]
    apart = BandShift(-0.30, 0.60, 0.005, 0.99, True)        # 0.8 px from the others, precisely measured
    drift = BandShift(0.60, 0.75, 0.05, 0.75, True)          # 0.27 px off, but a poorly predicted band
    records = [*near, apart, drift]
    registration = Registration(["a", "b", "c", "d", "e"], records, coregistration.pooled(records))
    shifts = registration.shifts()
    assert shifts[3] == (-0.30, 0.60)
    assert shifts[4] == shifts[0] == registration.pooled.shift


def test_registration_restores_a_shifted_first_estimate(apex):
    sim = _shifted_s2(apex, (0.5, -0.5))
    truth = sim.truth[list(s2.SHARPENED_BANDS)]

    def error(registration):
        est = s2_sharpening.first_estimate(sim.y10, sim.y20, sim.y60, geometry="area", registration=registration)
        return float(np.sqrt(((est[list(s2.SHARPENED_BANDS)] - truth) ** 2).mean()))

    aligned = simulate_s2(apex, 30.0, seed=0, geometry="area")
    reference = float(np.sqrt(((s2_sharpening.first_estimate(aligned.y10, aligned.y20, aligned.y60, geometry="area",
                                                             registration="off")[list(s2.SHARPENED_BANDS)]
                                - truth) ** 2).mean()))
    assert error("off") > 2.5 * reference
    assert error("auto") < 1.1 * reference


def test_the_case_of_a_scene_fixes_one_registration_from_its_crops(apex):
    sim = _shifted_s2(apex, (0.25, 0.5))
    crops = [{"10m": sim.y10[:, r:r + 96, c:c + 96], "20m": sim.y20[:, r // 2:(r + 96) // 2, c // 2:(c + 96) // 2],
              "60m": sim.y60[:, r // 6:(r + 96) // 6, c // 6:(c + 96) // 6]} for r, c in ((0, 0), (96, 96), (0, 96))]
    case = s2_sharpening.Sentinel2Case().fitted(crops)
    assert abs(case.registration["20m"]["rows"] - 0.25) <= 0.03 and abs(case.registration["20m"]["cols"] - 0.5) <= 0.03
    problem = case.problem(crops[0], "cpu", case.noise(crops[0]), 1.0)[0]
    assert problem.registration == case.registration
    assert problem.observations[1].operator.shifts == tuple(tuple(s) for s in case.registration["20m"]["shifts"])


# ------------------------------------------------------------------------------------------------- guided pairs
def _paris():
    from scipy.io import loadmat

    data = loadmat(str(shared_file("paris_data_hs_ms.mat")))
    return (np.ascontiguousarray(data["HSim"].transpose(2, 0, 1), dtype=np.float64),
            np.ascontiguousarray(data["MSim"].transpose(2, 0, 1), dtype=np.float64))


def test_hyperspectral_shift_measured_on_components_and_psf_not_inflated():
    """EO-1: Hyperion degraded ×3 with a known shift. The real pair is itself offset by about (−0.04, −0.17) HS px,
    so the shift is checked as the difference between a shifted and an unshifted degradation of the same cube."""
    from sure_core import hsms, pair_fusion
    from sure_core.psf import sigma_from_mtf

    truth, ms = _paris()
    sigma = sigma_from_mtf(0.3, 3)
    models = {}
    for shift in ((0.0, 0.0), (0.6, -0.9)):
        hs = pair_fusion.degrade(truth, 3, sigma, "area", shift)
        models[shift] = hsms.fit_sensor_model(hs, ms)
    moved = models[(0.6, -0.9)].mean_shift - models[(0.0, 0.0)].mean_shift
    assert np.abs(moved - (0.6, -0.9)).max() <= 0.03
    assert models[(0.6, -0.9)].shifts.shape == (truth.shape[0], 2)
    # a misregistration read as blur widened the PSF (σ 2.34 without the correction at 0.5 px); with it, σ stays put
    assert abs(models[(0.6, -0.9)].psf_sigma[0] - models[(0.0, 0.0)].psf_sigma[0]) <= 0.1
    off = hsms.fit_sensor_model(pair_fusion.degrade(truth, 3, sigma, "area", (0.6, -0.9)), ms, coregistration="off")
    assert off.psf_sigma[0] > models[(0.6, -0.9)].psf_sigma[0] + 0.3 and off.shifts is None


def test_ms_bands_registered_one_by_one_against_the_pan():
    """WorldView-2 style: two MS bands offset from the others (two detector arrays) keep their own shifts."""
    from sure_core import pair_fusion, pansharpening

    rng = np.random.default_rng(0)
    from scipy import ndimage
    base = ndimage.gaussian_filter(rng.random((256, 256)), 1.5)
    truth = np.stack([base * (1 + 0.2 * k) + 0.05 * ndimage.gaussian_filter(rng.random((256, 256)), 3)
                      for k in range(4)])
    pan = truth.mean(axis=0)
    shifts = [(0.3, 0.2), (0.3, 0.2), (-0.4, 0.5), (-0.4, 0.5)]
    sigma = pansharpening.get_sensor("generic").ms_psf_sigma(4, 4)
    ms = np.stack([pair_fusion.degrade(truth[k:k + 1], 4, sigma[k], "area", shifts[k])[0] for k in range(4)])
    model = pansharpening.fit_sensor_model(ms, pan, match_pan_mtf=False)
    np.testing.assert_allclose(model.shifts, shifts, atol=0.03)
    assert model.registration["trusted"]


def test_scene_model_takes_the_median_shift_of_its_windows():
    from sure_core.pair_fusion import SensorModel, mean_sensor_model

    def model(shift, trusted=True):
        record = {"shifts": [list(shift)] * 2, "rows": shift[0], "cols": shift[1], "stderr": 0.01, "trusted": trusted,
                  "note": ""}
        return SensorModel(3, np.ones(2), np.ones((1, 2)), np.zeros(1), np.array([shift] * 2), record)

    merged = mean_sensor_model([model((0.5, 0.1)), model((0.52, 0.12)), model((3.0, 3.0), trusted=False),
                                model((0.49, 0.3))])
    np.testing.assert_allclose(merged.shifts, [[0.5, 0.12]] * 2)
    assert "median of 3 of 4 windows" in merged.registration["note"]
