"""Tests of sure_core.metrics against independent implementations, on real data (APEX, 12 bands).

References used:
* sewar 0.4.6 (installed for tests): ``psnr``, ``ergas`` (its ``r`` is 1/ratio), ``ssim`` with a
  Gaussian 11x11 sigma-1.5 window in 'valid' mode (the skimage convention), and ``sam``. sewar's
  ``sam`` reshapes to (pixels, bands) and then takes the angle between *columns*, i.e. between band
  images; it is fed the cube laid out as (1, bands, pixels) so that its columns are pixel spectra.
  It returns radians. sewar's ``uqi`` is not used: it averages with ``uniform_filter`` (window means)
  but keeps Wang's sums formula (N * mean - mean * mean), so it is not the UIQI; ``q_index`` is checked
  against a plain-loop transcription of Wang's ``img_qi`` instead.
* scikit-image's ``structural_similarity``, only when skimage is importable (it is not a project
  dependency).
* plain-loop formulas written here (SRE, SAM with zero pixels, UIQI, Q2^n per block with an explicit
  quaternion table, NumPy complex numbers, and Vivone's own product for 16 components).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import sure_core.metrics as M

REPO_ROOT = Path(__file__).resolve().parents[2]
APEX = REPO_ROOT.parent / "shared" / "data" / "apex_gt.mat"

sewar = pytest.importorskip("sewar.full_ref", reason="sewar (a test dependency) is not installed")


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def apex():
    if not APEX.exists():
        pytest.skip(f"real test image not found: {APEX} (the shared data folder beside the repository)")
    from scipy.io import loadmat

    cube = loadmat(str(APEX))["Xm_im"].astype(np.float64)  # 198 x 198 x 12, reflectance x 1e4
    assert cube.shape == (198, 198, 12)
    cube = np.ascontiguousarray(cube.transpose(2, 0, 1))
    return cube / cube.max()


def degrade(x, blur=1.0, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    y = ndimage.gaussian_filter(x, sigma=(0, blur, blur)) if blur else x.copy()
    return y + noise * rng.standard_normal(x.shape)


@pytest.fixture(scope="module")
def pair(apex):
    return apex, degrade(apex)


def hwc(a):
    """Bands-first to channels-last, as sewar and skimage expect."""
    return np.ascontiguousarray(np.moveaxis(a, 0, -1))


# --------------------------------------------------------------------------------------------------
# SRE, PSNR, ERGAS, SAM
# --------------------------------------------------------------------------------------------------
def test_sre_and_msre_match_plain_formula(pair):
    x, y = pair
    expected = []
    for b in range(x.shape[0]):
        num = float(np.sum(x[b] ** 2))
        den = float(np.sum((x[b] - y[b]) ** 2))
        expected.append(10 * math.log10(num / den))
    got = M.sre(x, y)
    assert got.shape == (x.shape[0],)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert M.msre(x, y) == pytest.approx(np.mean(expected), rel=1e-10)
    assert np.all(np.isinf(M.sre(x, x)))


def test_psnr_matches_sewar(pair):
    x, y = pair
    assert M.psnr(x, y) == pytest.approx(sewar.psnr(hwc(x), hwc(y), MAX=1.0), rel=1e-10)
    assert M.psnr(x, y, data_range=2.0) == pytest.approx(sewar.psnr(hwc(x), hwc(y), MAX=2.0), rel=1e-10)
    assert M.psnr(x, x) == math.inf


@pytest.mark.parametrize("ratio", [2, 4, 6])
def test_ergas_matches_sewar(pair, ratio):
    x, y = pair
    # sewar: 100 * r * sqrt(mean(RMSE_b^2 / mean_b^2)) with r = high/low resolution = 1/ratio
    assert M.ergas(x, y, ratio) == pytest.approx(sewar.ergas(hwc(x), hwc(y), r=1.0 / ratio), rel=1e-10)
    assert M.ergas(x, x, ratio) == 0.0


def test_sam_matches_sewar_in_degrees(pair):
    x, y = pair
    b = x.shape[0]
    # sewar takes angles between the columns of a (H*W, C) matrix: give it (1, bands, pixels)
    ref_rad = sewar.sam(x.reshape(1, b, -1), y.reshape(1, b, -1))
    assert M.sam(x, y) == pytest.approx(math.degrees(ref_rad), rel=1e-9)
    assert M.sam(x, x) == pytest.approx(0.0, abs=1e-5)


def test_sam_skips_zero_pixels_like_a_plain_loop(apex):
    x = apex[:, :30, :30].copy()
    y = degrade(x, blur=0, noise=0.02, seed=3)
    x[:, 0, :5] = 0.0  # zero reference spectra
    y[:, 1, :4] = 0.0  # zero estimated spectra
    y[:, 2, 0] = -x[:, 2, 0]  # opposite spectrum: 180 degrees
    angles = []
    for r in range(x.shape[1]):
        for c in range(x.shape[2]):
            u, v = x[:, r, c], y[:, r, c]
            nu = math.sqrt(sum(t * t for t in u))
            nv = math.sqrt(sum(t * t for t in v))
            if nu == 0 or nv == 0:
                continue
            cos = sum(a * b for a, b in zip(u, v)) / (nu * nv)
            angles.append(math.degrees(math.acos(min(1.0, max(-1.0, cos)))))
    assert len(angles) == 30 * 30 - 9
    assert M.sam(x, y) == pytest.approx(sum(angles) / len(angles), rel=1e-9)
    assert math.isnan(M.sam(np.zeros((3, 4, 4)), np.ones((3, 4, 4))))


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------
def test_ssim_matches_sewar_gaussian_valid(pair):
    from sewar.utils import Filter

    x, y = pair[0][:, :96, :96], pair[1][:, :96, :96]
    spec = dict(fltr=Filter.GAUSSIAN, sigma=1.5, ws=11)
    expected = [sewar.ssim(x[b], y[b], ws=11, MAX=1.0, fltr_specs=spec, mode="valid")[0]
                for b in range(x.shape[0])]
    got = M.ssim(x, y, data_range=1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert M.mssim(x, y) == pytest.approx(np.mean(expected), rel=1e-9)
    # data_range enters C1, C2
    exp2 = sewar.ssim(x[0], y[0], ws=11, MAX=0.5, fltr_specs=spec, mode="valid")[0]
    assert M.ssim(x[:1], y[:1], data_range=0.5)[0] == pytest.approx(exp2, rel=1e-9)
    np.testing.assert_allclose(M.ssim(x, x), 1.0, rtol=1e-12)


def test_ssim_matches_skimage(pair):
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (optional check)")
    x, y = pair
    expected = [skm.structural_similarity(x[b], y[b], gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0)
                for b in range(x.shape[0])]
    np.testing.assert_allclose(M.ssim(x, y, data_range=1.0), expected, rtol=1e-9)


# --------------------------------------------------------------------------------------------------
# Wang-Bovik Q
# --------------------------------------------------------------------------------------------------
def uiqi_loop(a, b, block):
    """Wang's img_qi transcribed with explicit windows (population statistics)."""
    vals = []
    for r in range(a.shape[0] - block + 1):
        for c in range(a.shape[1] - block + 1):
            u = a[r:r + block, c:c + block]
            v = b[r:r + block, c:c + block]
            mu, mv = u.mean(), v.mean()
            su, sv = u.var(), v.var()
            suv = ((u - mu) * (v - mv)).mean()
            if (su + sv) * (mu * mu + mv * mv) != 0:
                vals.append(4 * suv * mu * mv / ((su + sv) * (mu * mu + mv * mv)))
            elif mu * mu + mv * mv != 0:
                vals.append(2 * mu * mv / (mu * mu + mv * mv))
            else:
                vals.append(1.0)
    return np.mean(vals)


@pytest.mark.parametrize("block", [8, 32])
def test_q_index_matches_window_loop(pair, block):
    x, y = pair[0][:, 50:90, 60:100], pair[1][:, 50:90, 60:100]
    expected = np.mean([uiqi_loop(x[b], y[b], block) for b in range(x.shape[0])])
    assert M.q_index(x, y, block_size=block) == pytest.approx(expected, rel=1e-7)
    assert M.q_index(x, x, block_size=block) == pytest.approx(1.0, rel=1e-9)


def test_q_index_degenerate_windows():
    x = np.full((1, 10, 10), 0.5)
    y = np.full((1, 10, 10), 0.25)
    # constant windows: only the mean term 2 mx my / (mx^2 + my^2) is left
    assert M.q_index(x, y, block_size=4) == pytest.approx(2 * 0.5 * 0.25 / (0.25 + 0.0625))
    assert M.q_index(np.zeros((1, 10, 10)), np.zeros((1, 10, 10)), block_size=4) == 1.0


# --------------------------------------------------------------------------------------------------
# hypercomplex product
# --------------------------------------------------------------------------------------------------
def hamilton(p, q):
    """Hamilton's quaternion product, components (1, i, j, k) on axis 0."""
    a1, b1, c1, d1 = p
    a2, b2, c2, d2 = q
    return np.array([a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
                     a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
                     a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
                     a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2])


def conj(z):
    return np.concatenate([z[:1], -z[1:]])


def toolbox_product(p, q):
    """The product of Vivone's onion_mult.m: (a, b)(c, d) = (a c - d* b, a* d* + c b*)."""
    n = p.shape[0]
    if n == 1:
        return p * q
    h = n // 2
    a, b, c, d = p[:h], p[h:], q[:h], q[h:]
    return np.concatenate([toolbox_product(a, c) - toolbox_product(conj(d), b),
                           toolbox_product(conj(a), conj(d)) + toolbox_product(c, conj(b))])


def test_hypercomplex_product_properties():
    rng = np.random.default_rng(1)
    x, y, z = rng.standard_normal((3, 16, 50))
    # complex numbers and Hamilton quaternions
    zc = M.hypercomplex_multiply(x[:2], y[:2])
    ref = (x[0] + 1j * x[1]) * (y[0] + 1j * y[1])
    np.testing.assert_allclose(zc, [ref.real, ref.imag], atol=1e-12)
    np.testing.assert_allclose(M.hypercomplex_multiply(x[:4], y[:4]), hamilton(x[:4], y[:4]), atol=1e-12)
    mul = M.hypercomplex_multiply
    # quaternions associative, octonions alternative; both normed
    np.testing.assert_allclose(mul(mul(x[:4], y[:4]), z[:4]), mul(x[:4], mul(y[:4], z[:4])), atol=1e-12)
    np.testing.assert_allclose(mul(mul(x[:8], x[:8]), y[:8]), mul(x[:8], mul(x[:8], y[:8])), atol=1e-12)
    for n in (2, 4, 8):
        np.testing.assert_allclose(np.linalg.norm(mul(x[:n], y[:n]), axis=0),
                                   np.linalg.norm(x[:n], axis=0) * np.linalg.norm(y[:n], axis=0), rtol=1e-12)
    # z z* = |z|^2 for every 2^n-on, sedenions included
    zz = mul(x, M.hypercomplex_conjugate(x))
    np.testing.assert_allclose(zz[0], np.sum(x * x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(zz[1:], 0.0, atol=1e-12)
    # Vivone's product differs from Cayley-Dickson's only by fixed signs of output components
    for n in (4, 8, 16):
        t, s = toolbox_product(x[:n], y[:n]), mul(x[:n], y[:n])
        signs = np.sign(t[:, 0] * s[:, 0])
        np.testing.assert_allclose(t, signs[:, None] * s, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Q2^n
# --------------------------------------------------------------------------------------------------
def mirror_index(n, total):
    """Indices of a length-`total` symmetric extension (edge repeated) of range(n), like q2n.m."""
    idx = list(range(n))
    while len(idx) < total:
        idx += idx[::-1][: total - len(idx)]
    return idx[:total]


def q_block_formula(z1, z2, product):
    """Q of one block from the formula of Garzelli & Nencini.

    z1, z2: normalised reference / estimate, (components, pixels); product: hypercomplex product.
    """
    n = z1.shape[1]
    m1, m2 = z1.mean(axis=1), z2.mean(axis=1)
    var1 = np.sum((z1 - m1[:, None]) ** 2) / (n - 1)
    var2 = np.sum((z2 - m2[:, None]) ** 2) / (n - 1)
    cov = (product(z1, conj(z2)).sum(axis=1) - n * product(m1, conj(m2))) / (n - 1)
    s1, s2 = math.sqrt(var1), math.sqrt(var2)
    a1, a2 = np.linalg.norm(m1), np.linalg.norm(m2)
    return (np.linalg.norm(cov) / (s1 * s2) * (2 * a1 * a2 / (a1 ** 2 + a2 ** 2))
            * (2 * s1 * s2 / (var1 + var2)))


def q2n_reference(x, y, block, shift, product):
    """Q2^n by loops over blocks, following the steps of q2n.m / onions_quality.m."""
    bands, rows, cols = x.shape
    nr, nc = math.ceil(rows / shift), math.ceil(cols / shift)
    ri = mirror_index(rows, (nr - 1) * shift + block)
    ci = mirror_index(cols, (nc - 1) * shift + block)
    x, y = x[:, ri][:, :, ci], y[:, ri][:, :, ci]
    ncomp = 2 ** math.ceil(math.log2(bands))
    x = np.concatenate([x, np.zeros((ncomp - bands,) + x.shape[1:])])
    y = np.concatenate([y, np.zeros((ncomp - bands,) + y.shape[1:])])
    qs = []
    for j in range(nr):
        for i in range(nc):
            bx = x[:, j * shift:j * shift + block, i * shift:i * shift + block].reshape(ncomp, -1)
            by = y[:, j * shift:j * shift + block, i * shift:i * shift + block].reshape(ncomp, -1)
            z1, z2 = np.empty_like(bx), np.empty_like(by)
            for k in range(ncomp):
                mu, sd = bx[k].mean(), bx[k].std(ddof=1)
                sd = sd if sd > 0 else 1.0
                z1[k] = (bx[k] - mu) / sd + 1
                z2[k] = (by[k] - mu) / sd + 1
            qs.append(q_block_formula(z1, z2, product))
    return float(np.mean(qs))


@pytest.mark.parametrize("bands", [1, 2, 3, 4, 8, 12])
def test_q2n_identity_is_one(apex, bands):
    x = apex[:bands]
    assert M.q2n(x, x) == pytest.approx(1.0, abs=1e-6)
    assert M.q2n(x[:, :70, :50], x[:, :70, :50], block_size=32, shift=16) == pytest.approx(1.0, abs=1e-6)


def test_q2n_single_quaternion_block(pair):
    x, y = pair[0][3:7, 100:132, 40:72], pair[1][3:7, 100:132, 40:72]  # 4 bands, one 32 x 32 block
    z1, z2 = np.empty((4, 1024)), np.empty((4, 1024))
    for k in range(4):
        mu, sd = x[k].mean(), x[k].std(ddof=1)
        z1[k] = ((x[k] - mu) / sd + 1).ravel()
        z2[k] = ((y[k] - mu) / sd + 1).ravel()
    expected = q_block_formula(z1, z2, hamilton)
    assert 0.3 < expected < 1.0
    assert M.q2n(x, y, block_size=32, shift=32) == pytest.approx(expected, rel=1e-9)
    # Vivone's quaternion table (i j = -k ...) gives the same value
    assert q_block_formula(z1, z2, toolbox_product) == pytest.approx(expected, rel=1e-12)


def test_q2n_two_bands_is_complex_q(pair):
    x, y = pair[0][1:3, :32, :32], pair[1][1:3, :32, :32]
    mu, sd = x.mean(axis=(1, 2)), x.std(axis=(1, 2), ddof=1)
    zx = ((x - mu[:, None, None]) / sd[:, None, None] + 1).reshape(2, -1)
    zy = ((y - mu[:, None, None]) / sd[:, None, None] + 1).reshape(2, -1)
    a, b = zx[0] + 1j * zx[1], zy[0] + 1j * zy[1]
    cov = np.mean((a - a.mean()) * np.conj(b - b.mean()))
    va, vb = np.mean(np.abs(a - a.mean()) ** 2), np.mean(np.abs(b - b.mean()) ** 2)
    ma, mb = abs(a.mean()), abs(b.mean())
    expected = abs(cov) / math.sqrt(va * vb) * 2 * ma * mb / (ma ** 2 + mb ** 2) * 2 * math.sqrt(va * vb) / (va + vb)
    assert M.q2n(x, y) == pytest.approx(expected, rel=1e-9)


def test_q2n_one_band_is_uiqi_of_normalised_blocks(pair):
    x, y = pair[0][5:6, :64, :64], pair[1][5:6, :64, :64]
    vals, vals_padded = [], []
    for r in (0, 32):
        for c in (0, 32):
            u, v = x[0, r:r + 32, c:c + 32], y[0, r:r + 32, c:c + 32]
            mu, sd = u.mean(), u.std(ddof=1)
            u, v = (u - mu) / sd + 1, (v - mu) / sd + 1
            vals.append(abs(uiqi_loop(u, v, 32)))  # UIQI of the single window, absolute value
            # with a zero band appended, both normalise to the constant 1: the covariance and the
            # variances are unchanged, the means' moduli become sqrt(mean^2 + 1)
            cov = np.mean((u - u.mean()) * (v - v.mean()))
            var_u, var_v = u.var(), v.var()
            a2, b2 = u.mean() ** 2 + 1, v.mean() ** 2 + 1
            vals_padded.append(abs(cov) * 2 / (var_u + var_v) * 2 * math.sqrt(a2 * b2) / (a2 + b2))
    got = M.q2n(x, y)
    assert got == pytest.approx(np.mean(vals), rel=1e-9)
    assert 0 < got < 1
    x2 = np.concatenate([x, np.zeros_like(x)])
    y2 = np.concatenate([y, np.zeros_like(y)])
    got2 = M.q2n(x2, y2)
    assert got2 == pytest.approx(np.mean(vals_padded), rel=1e-9)
    assert got <= got2 < 1  # the constant padding band only makes the mean term more lenient
    assert got2 == pytest.approx(got, abs=1e-3)


def test_q2n_padding_and_overlap_match_toolbox_loops(pair):
    # 12 bands -> sedenions, 40 x 40 -> mirror-extended to 64 x 64, 3 x 3 overlapping blocks;
    # reference uses Vivone's product
    x, y = pair[0][:, 20:60, 120:160], pair[1][:, 20:60, 120:160]
    expected = q2n_reference(x, y, block=32, shift=16, product=toolbox_product)
    assert M.q2n(x, y, block_size=32, shift=16) == pytest.approx(expected, rel=1e-9)
    # image smaller than a block (20 x 20 -> 32 x 32); 8 bands, octonions
    xs, ys = pair[0][:8, :20, :20], pair[1][:8, :20, :20]
    assert M.q2n(xs, ys) == pytest.approx(q2n_reference(xs, ys, 32, 32, toolbox_product), rel=1e-9)


def test_q2n_three_bands_equal_four_with_zero_band(pair):
    x, y = pair[0][:3, :64, :64], pair[1][:3, :64, :64]
    x4 = np.concatenate([x, np.zeros((1, 64, 64))])
    y4 = np.concatenate([y, np.zeros((1, 64, 64))])
    assert M.q2n(x, y) == pytest.approx(M.q2n(x4, y4), rel=1e-12)
    assert M.q2n(x, y) == pytest.approx(q2n_reference(x, y, 32, 32, hamilton), rel=1e-9)


def test_q2n_constant_blocks():
    x = np.full((3, 32, 32), 0.3)
    y = np.full((3, 32, 32), 0.33)
    # both constant: only the mean term, with z = (1, 1, 1, 1), z' = (1.03, 1.03, 1.03, 1) (+1 shift)
    a2, b2 = 4.0, 3 * 1.03 ** 2 + 1
    assert M.q2n(x, y) == pytest.approx(2 * math.sqrt(a2 * b2) / (a2 + b2), rel=1e-12)
    assert M.q2n(x, x) == 1.0
    # constant reference, varying estimate: no covariance, Q = 0
    y = y + np.random.default_rng(0).random(y.shape) * 1e-3
    assert M.q2n(x, y) == 0.0


def test_q2n_decreases_with_noise(apex):
    x = apex[:, :96, :96]
    values = [M.q2n(x, degrade(x, blur=1.0, noise=s, seed=7)) for s in (0.0, 0.005, 0.02, 0.05, 0.1)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert 0.0 < values[-1] < values[0] < 1.0
    # unrelated data scores near zero
    noise = np.random.default_rng(2).random(x.shape)
    assert abs(M.q2n(x, noise)) < 0.2


# --------------------------------------------------------------------------------------------------
# scores, input types, errors
# --------------------------------------------------------------------------------------------------
def test_scores_collects_the_scalars(pair):
    x, y = pair[0][:, :64, :64], pair[1][:, :64, :64]
    s = M.scores(x, y, ratio=2)
    assert set(s) == {"msre", "sam", "mssim", "ergas", "psnr", "q2n"}
    assert s["msre"] == M.msre(x, y)
    assert s["sam"] == M.sam(x, y)
    assert s["mssim"] == M.mssim(x, y)
    assert s["ergas"] == M.ergas(x, y, 2)
    assert s["psnr"] == M.psnr(x, y)
    assert s["q2n"] == M.q2n(x, y)
    assert all(isinstance(v, float) for v in s.values())


def test_torch_tensors_accepted(pair):
    torch = pytest.importorskip("torch")
    x, y = pair[0][:4, :40, :40], pair[1][:4, :40, :40]
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    assert M.psnr(tx, ty) == pytest.approx(M.psnr(x.astype(np.float32), y.astype(np.float32)), rel=1e-12)
    assert M.q2n(tx, ty) == pytest.approx(M.q2n(x, y), rel=1e-4)


METRIC_CALLS = {
    "sre": M.sre, "msre": M.msre, "sam": M.sam, "ssim": M.ssim, "mssim": M.mssim, "psnr": M.psnr,
    "ergas": lambda a, b: M.ergas(a, b, 4), "q_index": lambda a, b: M.q_index(a, b, block_size=8),
    "q2n": M.q2n, "scores": lambda a, b: M.scores(a, b, 4),
}


@pytest.mark.parametrize("name", sorted(METRIC_CALLS))
def test_invalid_inputs_raise_value_error(name):
    f = METRIC_CALLS[name]
    rng = np.random.default_rng(0)
    a = rng.random((4, 16, 16)) + 0.1
    with pytest.raises(ValueError, match="same shape"):
        f(a, a[:, :, :15])
    with pytest.raises(ValueError, match="same shape"):
        f(a, a[:3])
    bad = a.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        f(a, bad)
    with pytest.raises(ValueError, match="NaN"):
        f(bad, a)
    bad[1, 2, 3] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        f(a, bad)
    with pytest.raises(ValueError, match="bands, rows, cols"):
        f(a[None], a[None])


def test_sam_global_is_the_angle_of_the_summed_products(apex):
    """The toolbox index: one arccos of sums, which a plain loop reproduces; 0 for equal images, scale-free,
    and it weighs a dark pixel's wrong spectrum less than the mean of the per-pixel angles does."""
    x = apex[:, :6, :7]
    rng = np.random.default_rng(1)
    y = x * rng.uniform(0.9, 1.1, x.shape)
    num = sum(float(x[:, i, j] @ y[:, i, j]) for i in range(6) for j in range(7))
    den = sum(float(np.linalg.norm(x[:, i, j]) * np.linalg.norm(y[:, i, j])) for i in range(6) for j in range(7))
    assert M.sam_global(x, y) == pytest.approx(math.degrees(math.acos(num / den)), rel=1e-9)
    assert M.sam_global(x, x) == pytest.approx(0.0, abs=1e-5)
    assert M.sam_global(x, 3.0 * y) == pytest.approx(M.sam_global(x, y), rel=1e-9)
    dark = y.copy()
    dark[:, 0, 0] = x[::-1, 0, 0] * 0.01      # a dark pixel with a reversed spectrum
    x_dark = x.copy()
    x_dark[:, 0, 0] *= 0.01
    assert M.sam(x_dark, dark) - M.sam(x_dark, y) > 2 * (M.sam_global(x_dark, dark) - M.sam_global(x_dark, y))
    assert math.isnan(M.sam_global(np.zeros((3, 4, 4)), np.ones((3, 4, 4))))
