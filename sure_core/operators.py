"""Linear observation operators with `A`, `A_adjoint`, `inv_gram` ((AAᵀ + c)⁻¹) and `A_dagger`.

`BlurDecimate` is the spatial operator H = S_r B of one group of bands: a circular blur by a per-band
Gaussian PSF followed by keeping every r-th pixel. All its work is done by FFT, and the spectra are built
once per (PSF σ's, ratio, shape, geometry, device, dtype) and shared by every operator with the same key.
(AAᵀ + c)⁻¹ uses the polyphase trick: AAᵀ is circulant on the LR grid with the r-decimated
autocorrelation of the PSF as kernel, so it is diagonal in the LR Fourier basis.

`Identity` (observed at full resolution) and `SpectralResponse` (y = R x over the band axis) complete the
set needed by the three fusion problems. Operators act on tensors shaped (..., bands, rows, cols).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ImageTooSmallError, InputShapeError
from .psf import Geometry, gaussian_taps, geometry_offset, psf_support, shifted_gaussian_taps


@dataclass(frozen=True)
class _SpectraKey:
    sigmas: tuple
    ratio: int
    hr_shape: tuple
    geometry: str
    device: str
    dtype: torch.dtype
    shifts: tuple = ()      # per band (rows, cols) in LR pixels; () for none


#: operator spectra by key, least recently used first; bounded, because a scene processed tile by tile meets
#: many window shapes (unbounded, it grew by ~45 MB per S2 window shape of ~1.2k² px: 14 windows, 1.0 → 1.7 GB).
#: A full S2 tile's 100 tiles meet 16 shapes, 4 per row of tiles: 384 MB holds two rows' worth, so the spectra are
#: built once per shape and group (32 builds, against 72 with 256 MB: ~0.2 s each)
_SPECTRA_CACHE: OrderedDict[_SpectraKey, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
SPECTRA_CACHE_BYTES = 384 * 2 ** 20


def _cached_spectra(key: _SpectraKey) -> tuple[torch.Tensor, torch.Tensor]:
    if key in _SPECTRA_CACHE:
        _SPECTRA_CACHE.move_to_end(key)
        return _SPECTRA_CACHE[key]
    spectra = _build_spectra(key)
    _SPECTRA_CACHE[key] = spectra
    total = sum(t.numel() * t.element_size() for pair in _SPECTRA_CACHE.values() for t in pair)
    while total > SPECTRA_CACHE_BYTES and len(_SPECTRA_CACHE) > 1:
        _, evicted = _SPECTRA_CACHE.popitem(last=False)
        total -= sum(t.numel() * t.element_size() for t in evicted)
    return spectra


def _embed_kernel(kernel: np.ndarray, first_tap: int, hr_shape: tuple[int, int], first_col: int | None = None
                  ) -> np.ndarray:
    """Place `kernel` on a periodic HR canvas so that circular convolution computes
    (B x)[n] = Σ_t kernel[t] x[n + first_tap + t] (`first_col`: another first tap along the columns)."""
    rows, cols = hr_shape
    taps_r, taps_c = kernel.shape
    canvas = np.zeros(hr_shape, dtype=np.float64)
    ir = (-(first_tap + np.arange(taps_r))) % rows
    ic = (-((first_tap if first_col is None else first_col) + np.arange(taps_c))) % cols
    np.add.at(canvas, (ir[:, None], ic[None, :]), kernel)
    return canvas


def _build_spectra(key: _SpectraKey) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = key.hr_shape
    r = key.ratio
    kernel_ffts, gram_eigs = [], []
    for k, sigma in enumerate(key.sigmas):
        k_hat = kernel_spectrum(sigma, r, key.hr_shape, key.geometry, key.shifts[k] if key.shifts else (0.0, 0.0))
        autocorr = np.fft.irfft2(np.abs(k_hat) ** 2, s=key.hr_shape)
        gram_eigs.append(np.fft.rfft2(autocorr[::r, ::r]).real)
        kernel_ffts.append(k_hat)
    complex_dtype = torch.complex64 if key.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.complex128
    real_dtype = torch.float32 if complex_dtype is torch.complex64 else torch.float64
    k_hat_t = torch.as_tensor(np.stack(kernel_ffts), dtype=complex_dtype, device=key.device)
    # AAᵀ is symmetric positive semi-definite: clip round-off negatives so (λ + c) stays ≥ c.
    eig_t = torch.as_tensor(np.clip(np.stack(gram_eigs), 0.0, None), dtype=real_dtype, device=key.device)
    return k_hat_t, eig_t


def kernel_spectrum(sigma: float, ratio: int, hr_shape: tuple[int, int], geometry: Geometry | str = Geometry.ZERO_PHASE,
                    shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """rfft2 of one band's blur kernel on the periodic HR canvas (complex128).

    `shift` (rows, cols) in LR pixels is how far the band's content lies from where its nominal geometry puts it
    (positive: down / right): the LR sample j then sees the scene around HR pixel r·j + offset − r·shift, so the
    kernel is the same Gaussian sampled around that centre. It stays real, so H, Hᵀ and (HHᵀ + c)⁻¹ stay exact."""
    offset = geometry_offset(geometry, ratio)
    if shift[0] == 0 and shift[1] == 0:
        kernel, first = gaussian_taps(sigma, offset)
        return np.fft.rfft2(_embed_kernel(kernel, first, hr_shape))
    kernel, first_row, first_col = shifted_gaussian_taps(sigma, offset - ratio * shift[0], offset - ratio * shift[1])
    return np.fft.rfft2(_embed_kernel(kernel, first_row, hr_shape, first_col))


def rfft_multiplicity(shape: tuple[int, int], device=None, dtype=torch.float64) -> torch.Tensor:
    """(rows, cols//2 + 1): how many full-spectrum coefficients each rfft2 coefficient of a (rows, cols) image stands
    for — 2 for the columns whose mirror image rfft2 leaves out, 1 for the DC and (even cols) Nyquist columns."""
    m = torch.full((shape[-1] // 2 + 1,), 2.0, device=device, dtype=dtype)
    m[0] = 1.0
    if shape[-1] % 2 == 0:
        m[-1] = 1.0
    return m.expand(shape[0], -1)


def _float_for_fft(x: torch.Tensor) -> torch.Tensor:
    # FFTs in half precision are restricted on CUDA and inaccurate anyway: operators always run in ≥ float32.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class LinearOperator:
    """Interface shared by the observation operators."""

    cond: float = 0.0

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (math notation)
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        raise NotImplementedError

    def inv_gram(self, y: torch.Tensor, cond: float | None = None) -> torch.Tensor:
        """(AAᵀ + c I)⁻¹ y."""
        raise NotImplementedError

    def A_dagger(self, y: torch.Tensor, cond: float | None = None) -> torch.Tensor:  # noqa: N802
        """Regularised pseudo-inverse (back-projection) Aᵀ (AAᵀ + c I)⁻¹ y."""
        return self.A_adjoint(self.inv_gram(y, cond))

    def project(self, x: torch.Tensor, cond: float | None = None) -> torch.Tensor:
        """A† A x, the orthogonal projection onto range(Aᵀ) when c = 0."""
        return self.A_dagger(self.A(x), cond)

    def back_projection_trace(self, cond: float | None = None) -> torch.Tensor:
        """Per band: tr(A†A†ᵀ) = tr((AAᵀ + c)⁻² AAᵀ), the noise energy of a unit-σ back-projection."""
        raise NotImplementedError


def _shift_tuple(shifts, bands: int) -> tuple:
    """() when every shift is zero (today's operator, bit for bit), else one (rows, cols) float pair per band."""
    if shifts is None:
        return ()
    pairs = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    if len(pairs) == 1:
        pairs = np.repeat(pairs, bands, axis=0)
    if pairs.shape != (bands, 2) or not np.isfinite(pairs).all():
        raise InputShapeError(f"give one finite (rows, cols) shift or one per band ({bands}), got {np.shape(shifts)}")
    if not pairs.any():
        return ()
    return tuple((float(a), float(b)) for a, b in pairs)


class BlurDecimate(LinearOperator):
    """H = S_r B for a group of bands sharing a ratio r; one Gaussian PSF σ (HR pixels) per band, and optionally one
    sub-pixel shift per band (`shifts`: (rows, cols) in LR pixels, see `kernel_spectrum`) measured by
    `coregistration`."""

    bandwise = True  # observed band k is a degraded copy of target band k

    def __init__(self, sigmas: Sequence[float], ratio: int, hr_shape: tuple[int, int],
                 geometry: Geometry | str = Geometry.ZERO_PHASE, cond: float = 1e-3,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 shifts: Sequence[Sequence[float]] | None = None):
        if int(ratio) != ratio or ratio < 1:
            raise InputShapeError(f"the resolution ratio must be a positive integer, got {ratio}")
        self.ratio = int(ratio)
        self.hr_shape = (int(hr_shape[0]), int(hr_shape[1]))
        self.geometry = Geometry.parse(geometry)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.cond = float(cond)
        rows, cols = self.hr_shape
        if rows % self.ratio or cols % self.ratio:
            raise InputShapeError(
                f"the high-resolution size {rows}×{cols} is not a multiple of the ratio {self.ratio}: "
                f"crop it to {rows - rows % self.ratio}×{cols - cols % self.ratio}")
        support = psf_support(geometry_offset(self.geometry, self.ratio))
        if rows < support or cols < support:
            raise ImageTooSmallError(
                f"the image ({rows}×{cols} high-resolution pixels) is smaller than the PSF support "
                f"({support}×{support}); use an area of at least {support}×{support} pixels")
        self.lr_shape = (rows // self.ratio, cols // self.ratio)
        self.shifts = _shift_tuple(shifts, len(self.sigmas))
        key = _SpectraKey(self.sigmas, self.ratio, self.hr_shape, self.geometry.value, str(torch.device(device)), dtype,
                          self.shifts)
        self.kernel_fft, self.gram_eigenvalues = _cached_spectra(key)

    @property
    def bands(self) -> int:
        return len(self.sigmas)

    def _check(self, t: torch.Tensor, shape: tuple[int, int], what: str) -> None:
        if t.shape[-3:] != (self.bands, *shape):
            raise InputShapeError(
                f"{what} has shape {tuple(t.shape[-3:])}, expected {(self.bands, *shape)} (bands, rows, cols)")

    def A(self, x):  # noqa: N802
        self._check(x, self.hr_shape, "high-resolution input")
        x = _float_for_fft(x)
        blurred = torch.fft.irfft2(torch.fft.rfft2(x) * self.kernel_fft, s=self.hr_shape)
        return blurred[..., ::self.ratio, ::self.ratio]

    def A_adjoint(self, y):  # noqa: N802
        self._check(y, self.lr_shape, "low-resolution input")
        y = _float_for_fft(y)
        up = y.new_zeros((*y.shape[:-2], *self.hr_shape))
        up[..., ::self.ratio, ::self.ratio] = y
        return torch.fft.irfft2(torch.fft.rfft2(up) * self.kernel_fft.conj(), s=self.hr_shape)

    def inv_gram(self, y, cond=None):
        self._check(y, self.lr_shape, "low-resolution input")
        c = self.cond if cond is None else cond
        y = _float_for_fft(y)
        return torch.fft.irfft2(torch.fft.rfft2(y) / (self.gram_eigenvalues + c), s=self.lr_shape)

    def observation_from_back_projection(self, u: torch.Tensor, cond: float | None = None) -> torch.Tensor:
        """Recover y from u = A†y (the inverse of the back-projection on range(Aᵀ)): y = (AAᵀ + c)(AAᵀ)⁻¹ A u."""
        c = self.cond if cond is None else cond
        lam = self.gram_eigenvalues.clamp_min(1e-12)
        return torch.fft.irfft2(torch.fft.rfft2(self.A(u)) * ((lam + c) / lam), s=self.lr_shape)

    def back_projection_trace(self, cond=None):
        c = self.cond if cond is None else cond
        lam = self.gram_eigenvalues
        ratio = lam / (lam + c) ** 2
        return (ratio * rfft_multiplicity(self.lr_shape, lam.device, lam.dtype)).sum(dim=(-2, -1))


class Identity(LinearOperator):
    """Bands observed at the target resolution (the 10 m bands of Sentinel-2)."""

    bandwise = True

    def __init__(self, bands: int, cond: float = 0.0):
        self._bands = bands
        self.cond = float(cond)

    @property
    def bands(self) -> int:
        return self._bands

    def A(self, x):  # noqa: N802
        return x

    def A_adjoint(self, y):  # noqa: N802
        return y

    def inv_gram(self, y, cond=None):
        c = self.cond if cond is None else cond
        return y / (1.0 + c)

    def back_projection_trace(self, cond=None):
        raise NotImplementedError("Identity groups are used directly, not back-projected")


class SpectralResponse(LinearOperator):
    """y = R x over the band axis: each observed band is a weighted sum of the target bands."""

    def __init__(self, response: torch.Tensor | np.ndarray, cond: float = 0.0):
        response = torch.as_tensor(response)
        if response.ndim != 2:
            raise InputShapeError("a spectral response must be a (observed bands × target bands) matrix, "
                                  f"got shape {tuple(response.shape)}")
        self.response = response
        self.cond = float(cond)

    @property
    def bands(self) -> int:
        return self.response.shape[0]

    def A(self, x):  # noqa: N802
        return torch.einsum("ob,...bhw->...ohw", self.response.to(x.dtype), x)

    def A_adjoint(self, y):  # noqa: N802
        return torch.einsum("ob,...ohw->...bhw", self.response.to(y.dtype), y)

    def inv_gram(self, y, cond=None):
        c = self.cond if cond is None else cond
        identity = torch.eye(self.bands, dtype=self.response.dtype, device=self.response.device)
        gram = self.response @ self.response.T + c * identity
        return torch.einsum("ob,...bhw->...ohw", torch.linalg.inv(gram).to(y.dtype), y)
