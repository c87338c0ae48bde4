"""Image-quality metrics for fused / sharpened images.

Every function takes the reference first and the estimate second, as arrays of shape
(bands, rows, cols) (a 2-D array is taken as a single band). NumPy arrays and torch tensors are
accepted; everything is computed in float64 with NumPy/SciPy (torch is never imported here).

Conventions (see each docstring for details):

* ``sre`` / ``msre``: 10*log10(||x_b||^2 / ||x_b - x^_b||^2) per band, in dB; mean over bands.
* ``sam``: mean spectral angle in **degrees** over the pixels where both spectra are non-zero.
* ``ssim`` / ``mssim``: Wang et al. SSIM with an 11x11 Gaussian window (sigma 1.5, truncated at 3.5
  sigma), K1 = 0.01, K2 = 0.03, population (co)variances, averaged over the pixels whose window lies
  inside the image -- the convention of ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=...)``.
* ``ergas``: (100 / ratio) * sqrt(mean_b(MSE_b / mean(x_b)^2)), ``ratio`` being the resolution ratio
  (e.g. 2 for 20 m -> 10 m, 4 for a 1:4 pan-sharpening), as in Vivone's toolbox.
* ``psnr``: 10*log10(data_range^2 / MSE) over the whole cube.
* ``q_index``: Wang-Bovik universal image quality index per band, sliding ``block_size`` window with
  step 1 over the valid region (Wang's ``img_qi``), averaged over bands.
* ``q2n``: Garzelli & Nencini's Q2^n, following Vivone's ``q2n.m`` / ``onions_quality.m``.

Invalid input (different shapes, NaN or inf, wrong number of dimensions) raises a ``ValueError``
subclass (:class:`~sure_core.errors.InputShapeError` or
:class:`~sure_core.errors.InvalidInputValueError`).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .errors import InputShapeError, InvalidInputValueError

__all__ = ["sre", "msre", "sam", "ssim", "mssim", "ergas", "psnr", "q_index", "q2n", "scores",
           "hypercomplex_conjugate", "hypercomplex_multiply"]

# SSIM constants (Wang et al. 2004; skimage's gaussian_weights=True defaults).
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------
def _to_numpy(a, name: str) -> np.ndarray:
    """NumPy float64 view/copy of an array-like or a torch tensor (without importing torch)."""
    if hasattr(a, "detach") and hasattr(a, "cpu") and hasattr(a, "numpy"):  # torch.Tensor
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputValueError(f"{name}: cannot be converted to a float array ({exc}).") from exc
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise InputShapeError(f"{name}: expected an array of shape (bands, rows, cols), got shape "
                              f"{arr.shape}.")
    if arr.size == 0:
        raise InputShapeError(f"{name}: the array is empty (shape {arr.shape}).")
    return arr


def _check_pair(ref, est) -> tuple[np.ndarray, np.ndarray]:
    x = _to_numpy(ref, "reference")
    y = _to_numpy(est, "estimate")
    if x.shape != y.shape:
        raise InputShapeError(f"reference and estimate must have the same shape (bands, rows, cols); "
                              f"got {x.shape} and {y.shape}.")
    for name, arr in (("reference", x), ("estimate", y)):
        if not np.isfinite(arr).all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(np.isinf(arr).sum())
            raise InvalidInputValueError(f"{name} contains {n_nan} NaN and {n_inf} infinite values; "
                                         f"metrics need finite data (mask or fill them first).")
    return x, y


def _db(num, den):
    """10*log10(num/den) with +inf for a zero denominator (perfect reconstruction)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(num / den)


# --------------------------------------------------------------------------------------------------
# simple metrics
# --------------------------------------------------------------------------------------------------
def sre(ref, est) -> np.ndarray:
    """Signal-to-reconstruction error per band, in dB: 10*log10(||x_b||^2 / ||x_b - x^_b||^2).

    Returns an array of length ``bands``; a band reconstructed exactly gives +inf.
    """
    x, y = _check_pair(ref, est)
    signal = np.sum(x * x, axis=(1, 2))
    err = np.sum((x - y) ** 2, axis=(1, 2))
    return _db(signal, err)


def msre(ref, est) -> float:
    """Mean of :func:`sre` over the bands, in dB."""
    return float(np.mean(sre(ref, est)))


def _spectra(ref, est) -> tuple[np.ndarray, np.ndarray]:
    """The checked pair as (bands, pixels): one spectrum per column."""
    x, y = _check_pair(ref, est)
    return x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)


def sam(ref, est) -> float:
    """Spectral angle mapper in degrees.

    Mean over pixels p of arccos(<x_p, x^_p> / (||x_p|| ||x^_p||)), with the cosine clipped to
    [-1, 1]. Pixels where either spectrum has zero norm are skipped; NaN is returned if no pixel is
    left.
    """
    x, y = _spectra(ref, est)
    dot = np.einsum("bp,bp->p", x, y)
    nx = np.sqrt(np.einsum("bp,bp->p", x, x))
    ny = np.sqrt(np.einsum("bp,bp->p", y, y))
    valid = (nx > 0) & (ny > 0)
    if not np.any(valid):
        return float("nan")
    cos = np.clip(dot[valid] / (nx[valid] * ny[valid]), -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def sam_global(ref, est) -> float:
    """Spectral angle in degrees from sums over pixels: arccos(Σ_p <x_p, x^_p> / Σ_p ||x_p|| ||x^_p||), the
    index of Vivone et al.'s pansharpening toolbox. Bright pixels weigh more than in `sam` (the mean of the
    per-pixel angles), where dark pixels with noisy spectra dominate. NaN when every pixel has zero norm."""
    x, y = _spectra(ref, est)
    norms = np.sqrt(np.einsum("bp,bp->p", x, x) * np.einsum("bp,bp->p", y, y))
    if not np.any(norms > 0):
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.einsum("bp,bp->", x, y) / norms.sum(), -1.0, 1.0))))


def ergas(ref, est, ratio) -> float:
    """ERGAS: (100 / ratio) * sqrt(mean_b(MSE_b / mean(x_b)^2)).

    ``ratio`` is the ratio between the low and the high resolution pixel sizes (e.g. 2 when 20 m bands
    are sharpened to 10 m, 4 for a 1:4 pan-sharpening), as in Vivone's toolbox ``ERGAS.m``
    (sewar's ``r`` argument is ``1/ratio``). A band with zero mean in the reference makes ERGAS +inf,
    unless it is reconstructed exactly (then it adds no error).
    """
    if not np.isscalar(ratio) or not np.isfinite(ratio) or ratio <= 0:
        raise InvalidInputValueError(f"ergas: ratio must be a positive number, got {ratio!r}.")
    x, y = _check_pair(ref, est)
    mse_b = np.mean((x - y) ** 2, axis=(1, 2))
    mean_b = np.mean(x, axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = mse_b / mean_b ** 2
    rel = np.where(mse_b == 0, 0.0, rel)  # 0/0 (zero band reconstructed exactly) counts as no error
    return float(100.0 / ratio * np.sqrt(np.mean(rel)))


def psnr(ref, est, data_range=1.0) -> float:
    """Peak signal-to-noise ratio over the whole cube: 10*log10(data_range^2 / MSE), in dB (+inf if
    the estimate is exact)."""
    if not np.isfinite(data_range) or data_range <= 0:
        raise InvalidInputValueError(f"psnr: data_range must be a positive number, got {data_range!r}.")
    x, y = _check_pair(ref, est)
    return float(_db(float(data_range) ** 2, np.mean((x - y) ** 2)))


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------
def ssim(ref, est, data_range=1.0) -> np.ndarray:
    """Per-band SSIM (Wang et al. 2004), returned as an array of length ``bands``.

    Gaussian window sigma = 1.5 truncated at 3.5 sigma (11 x 11), K1 = 0.01, K2 = 0.03,
    C1 = (K1 L)^2, C2 = (K2 L)^2 with L = ``data_range``, population (biased) variances and
    covariance. The SSIM map is averaged over the pixels at least 5 pixels from the border, i.e. where
    the window lies entirely inside the image -- the same numbers as
    ``skimage.metrics.structural_similarity(x_b, y_b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``. Images need at least 11 x 11 pixels.
    """
    if not np.isfinite(data_range) or data_range <= 0:
        raise InvalidInputValueError(f"ssim: data_range must be a positive number, got {data_range!r}.")
    x, y = _check_pair(ref, est)
    radius = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)  # 5, as scipy.ndimage.gaussian_filter computes it
    win = 2 * radius + 1
    if x.shape[1] < win or x.shape[2] < win:
        raise InputShapeError(f"ssim needs images of at least {win} x {win} pixels, got "
                              f"{x.shape[1]} x {x.shape[2]}.")

    def smooth(a):
        # Gaussian filter over rows and cols only (not across bands); border values are cropped below,
        # so the boundary mode does not matter.
        return ndimage.gaussian_filter(a, sigma=(0.0, _SSIM_SIGMA, _SSIM_SIGMA), truncate=_SSIM_TRUNCATE,
                                       mode="reflect")

    ux, uy = smooth(x), smooth(y)
    vx = smooth(x * x) - ux * ux
    vy = smooth(y * y) - uy * uy
    vxy = smooth(x * y) - ux * uy
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    crop = smap[:, radius:-radius, radius:-radius]
    return crop.mean(axis=(1, 2))


def mssim(ref, est, data_range=1.0) -> float:
    """Mean of :func:`ssim` over the bands."""
    return float(np.mean(ssim(ref, est, data_range=data_range)))


# --------------------------------------------------------------------------------------------------
# Wang-Bovik Q (UIQI)
# --------------------------------------------------------------------------------------------------
def _box_sums_valid(a: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``a`` (bands, rows, cols) over every size x size window lying inside the image."""
    s = np.zeros((a.shape[0], a.shape[1] + 1, a.shape[2] + 1))
    s[:, 1:, 1:] = a.cumsum(axis=1).cumsum(axis=2)
    return s[:, size:, size:] - s[:, :-size, size:] - s[:, size:, :-size] + s[:, :-size, :-size]


def q_index(ref, est, block_size=32) -> float:
    """Wang-Bovik universal image quality index Q, averaged over bands.

    Per band, Q = 4 sigma_xy mu_x mu_y / ((sigma_x^2 + sigma_y^2)(mu_x^2 + mu_y^2)) is computed in a
    ``block_size`` x ``block_size`` window sliding with step 1 over the positions where the window lies
    inside the image, and averaged over the window positions (Wang's ``img_qi``; the 32-pixel window
    is the one used for "Q" in the pansharpening literature). Degenerate windows follow ``img_qi``:
    zero variances but non-zero means give 2 mu_x mu_y / (mu_x^2 + mu_y^2); zero means give 1.
    """
    x, y = _check_pair(ref, est)
    block_size = int(block_size)
    if block_size < 2 or block_size > min(x.shape[1:]):
        raise InputShapeError(f"q_index: block_size must be between 2 and the image size "
                              f"{min(x.shape[1:])}, got {block_size}.")
    n = float(block_size * block_size)
    sx = _box_sums_valid(x, block_size)
    sy = _box_sums_valid(y, block_size)
    sxx = _box_sums_valid(x * x, block_size)
    syy = _box_sums_valid(y * y, block_size)
    sxy = _box_sums_valid(x * y, block_size)
    mul = sx * sy
    sq = sx * sx + sy * sy
    numerator = 4.0 * (n * sxy - mul) * mul
    den1 = n * (sxx + syy) - sq
    den = den1 * sq
    qmap = np.ones_like(den)
    only_mean = (den1 == 0) & (sq != 0)
    qmap[only_mean] = 2.0 * mul[only_mean] / sq[only_mean]
    ok = den != 0
    qmap[ok] = numerator[ok] / den[ok]
    return float(np.mean(qmap.mean(axis=(1, 2))))


# --------------------------------------------------------------------------------------------------
# hypercomplex (2^n-on) algebra and Q2^n
# --------------------------------------------------------------------------------------------------
def hypercomplex_conjugate(z: np.ndarray) -> np.ndarray:
    """Conjugate of 2^n-ons stored along axis 0: the real part is kept, the others are negated."""
    out = -np.asarray(z, dtype=np.float64)
    out[0] = -out[0]
    return out


def hypercomplex_multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of 2^n-ons stored along axis 0 (components first, any trailing shape).

    A 2^n-on is a pair (a, b) of 2^(n-1)-ons (``a`` = first half of the components) and
    (a, b)(c, d) = (a c - d* b, d a + b c*), down to real numbers. This gives the complex numbers,
    Hamilton's quaternions with components (1, i, j, k) (i j = k), the octonions, the sedenions...

    Vivone's toolbox (``onion_mult.m``) uses (a, b)(c, d) = (a c - d* b, a* d* + c b*) instead; that
    product equals this one with a fixed set of output components negated (0-based component 3 of a
    quaternion; 3, 5 and 6 of an octonion; ...), an orthogonal map, so the norm of any sum of
    products -- hence Q2^n -- is the same with either.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n = p.shape[0]
    if q.shape[0] != n or n & (n - 1):
        raise InputShapeError(f"hypercomplex numbers need the same power-of-two number of components, "
                              f"got {p.shape[0]} and {q.shape[0]}.")
    return _hc_mult(p, q)


def _hc_mult(p, q):
    n = p.shape[0]
    if n == 1:
        return p * q
    h = n // 2
    a, b = p[:h], p[h:]
    c, d = q[:h], q[h:]
    first = _hc_mult(a, c) - _hc_mult(hypercomplex_conjugate(d), b)
    second = _hc_mult(d, a) + _hc_mult(b, hypercomplex_conjugate(c))
    return np.concatenate([first, second], axis=0)


def _q2n_blocks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Q| of every block. x, y: (components, blocks, pixels per block), components a power of two."""
    npix = x.shape[-1]
    if npix < 2:
        raise InputShapeError("q2n: blocks need at least 2 pixels.")
    # Band-wise normalisation of each block by the reference block's mean and (sample) std, then +1
    # (norm_blocco.m). A band whose reference block is constant (e.g. a zero padding band) is only
    # shifted: x -> 1, y -> y - mean_x + 1.
    # Constancy is tested with ptp: the mean/std of equal values need not be exact in floating point.
    flat_x = np.ptp(x, axis=-1, keepdims=True) == 0
    flat_y = np.ptp(y, axis=-1, keepdims=True) == 0
    mu = np.where(flat_x, x[..., :1], x.mean(axis=-1, keepdims=True))
    sd = np.where(flat_x, 1.0, x.std(axis=-1, ddof=1, keepdims=True))
    z1 = (x - mu) / sd + 1.0
    z2 = hypercomplex_conjugate((y - mu) / sd + 1.0)

    k = npix / (npix - 1.0)  # unbiased (sample) estimates, as onions_quality.m
    m1 = z1.mean(axis=-1)  # (components, blocks)
    m2 = z2.mean(axis=-1)  # mean of the conjugated estimate = conjugate of its mean
    mod_m1_sq = np.sum(m1 * m1, axis=0)
    mod_m2_sq = np.sum(m2 * m2, axis=0)
    z1 = z1 - m1[..., None]
    z2 = z2 - m2[..., None]
    # sigma_z^2 + sigma_z'^2 and the hypercomplex covariance E[(z - Ez)(z' - Ez')*]
    # (= E[z z'*] - E[z] E[z']*, the product being bilinear), from centred data for accuracy
    var_sum = k * (np.sum(z1 * z1, axis=0) + np.sum(z2 * z2, axis=0)).mean(axis=-1)
    cov = k * _hc_mult(z1, z2).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_bias = 2.0 * np.sqrt(mod_m1_sq * mod_m2_sq) / (mod_m1_sq + mod_m2_sq)
        q = np.sqrt(np.sum(cov * cov, axis=0)) * mean_bias * 2.0 / var_sum
    # both blocks constant: only the mean term is left,
    # as onions_quality.m does when sigma_z^2 + sigma_z'^2 = 0
    constant = (flat_x & flat_y).all(axis=0)[..., 0]
    return np.where(constant, mean_bias, np.where(var_sum > 0, q, 0.0))


def q2n(ref, est, block_size=32, shift=32) -> float:
    """Q2^n index (Garzelli & Nencini 2009), following Vivone's toolbox ``q2n.m`` / ``onions_quality.m``.

    Convention:

    1. The images are extended by mirror symmetry (edge pixel repeated, as ``q2n.m``) at the bottom and
       right so that ``ceil(rows/shift) x ceil(cols/shift)`` blocks of ``block_size`` pixels, starting
       every ``shift`` pixels, fit.
    2. Zero bands are appended up to the next power of two (1 band stays real, 2 -> complex,
       3/4 -> quaternions, 5..8 -> octonions, 9..16 -> sedenions); each pixel is a 2^n-on z (reference)
       or z' (estimate).
    3. In each block, every band of both images is normalised by the **reference block's** band mean and
       sample standard deviation, then shifted by +1 (``norm_blocco.m``); a band whose reference block
       is constant is only shifted (the toolbox divides by eps there, which only differs for constant
       non-zero reference blocks).
    4. Per block, with sample (n-1) statistics and |.| the hypercomplex (Euclidean) norm,
       Q = |sigma_zz'| / (sigma_z sigma_z') * 2 |mean z| |mean z'| / (|mean z|^2 + |mean z'|^2)
       * 2 sigma_z sigma_z' / (sigma_z^2 + sigma_z'^2), where sigma_zz' = E[z z'*] - E[z] E[z']*
       uses the Cayley-Dickson product (:func:`hypercomplex_multiply`; the toolbox's variant gives the
       same |sigma_zz'|) and sigma_z^2 = E|z|^2 - |E z|^2. If both blocks are constant, Q is the mean term.
    5. Q2^n is the mean of Q over the blocks.

    Differences from the MATLAB code: no conversion to uint16 (the toolbox rounds and clips the data to
    uint16 first, which would destroy reflectances in [0, 1]), and step 3's handling of constant blocks.
    """
    x, y = _check_pair(ref, est)
    block_size = int(block_size)
    shift = int(shift)
    if block_size < 2 or shift < 1:
        raise InvalidInputValueError(f"q2n: block_size must be >= 2 and shift >= 1, got {block_size} "
                                     f"and {shift}.")
    bands, rows, cols = x.shape
    nr = math.ceil(rows / shift)
    nc = math.ceil(cols / shift)
    pad_r = max((nr - 1) * shift + block_size - rows, 0)
    pad_c = max((nc - 1) * shift + block_size - cols, 0)
    if pad_r or pad_c:
        widths = ((0, 0), (0, pad_r), (0, pad_c))
        x = np.pad(x, widths, mode="symmetric")
        y = np.pad(y, widths, mode="symmetric")
    n_comp = 1 << (bands - 1).bit_length()
    if n_comp > bands:
        zeros = np.zeros((n_comp - bands,) + x.shape[1:])
        x = np.concatenate([x, zeros], axis=0)
        y = np.concatenate([y, zeros], axis=0)

    def blocks(a):
        win = np.lib.stride_tricks.sliding_window_view(a, (block_size, block_size), axis=(1, 2))
        win = win[:, ::shift, ::shift][:, :nr, :nc]  # (components, nr, nc, block, block)
        return win.reshape(n_comp, nr * nc, block_size * block_size)

    qb = _q2n_blocks(blocks(x), blocks(y))
    return float(np.mean(qb))


# --------------------------------------------------------------------------------------------------
def scores(ref, est, ratio, data_range=1.0) -> dict:
    """All scalar metrics at once: ``{"msre", "sam", "mssim", "ergas", "psnr", "q2n"}`` (q2n with its
    defaults: 32-pixel blocks, step 32)."""
    x, y = _check_pair(ref, est)
    return {
        "msre": msre(x, y),
        "sam": sam(x, y),
        "mssim": mssim(x, y, data_range=data_range),
        "ergas": ergas(x, y, ratio),
        "psnr": psnr(x, y, data_range=data_range),
        "q2n": q2n(x, y),
    }
