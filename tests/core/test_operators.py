"""Operators: adjoint identity, projection idempotence, BP mean preservation, caching, geometry."""
import itertools

import numpy as np
import pytest
import torch

from sure_core.errors import ImageTooSmallError, InputShapeError
from sure_core.operators import _SPECTRA_CACHE, BlurDecimate, Identity, SpectralResponse
from sure_core.psf import gaussian_taps

RATIOS = (2, 3, 4, 6)
GEOMETRIES = ("zero_phase", "area")


def _op(ratio, geometry, lr=(7, 6), cond=1e-3, sigmas=None):
    # realistic PSFs: MTF at Nyquist between 0.2 and 0.4, i.e. σ ≈ 0.43–0.57 LR pixels
    sigmas = sigmas or tuple(ratio * s for s in (0.43, 0.5, 0.57))
    hr = (lr[0] * ratio, lr[1] * ratio)
    if min(hr) < 16:  # keep the image larger than the PSF support
        k = -(-16 // min(hr))
        hr = (hr[0] * k, hr[1] * k)
    return BlurDecimate(sigmas, ratio, hr, geometry, cond=cond, dtype=torch.float64)


@pytest.mark.parametrize("ratio,geometry,lr", [(r, g, lr) for r, g in itertools.product(RATIOS, GEOMETRIES)
                                               for lr in ((7, 6), (9, 9), (8, 11))])
def test_adjoint_identity(ratio, geometry, lr):
    op = _op(ratio, geometry, lr)
    gen = torch.Generator().manual_seed(ratio)
    x = torch.randn(op.bands, *op.hr_shape, generator=gen, dtype=torch.float64)
    y = torch.randn(op.bands, *op.lr_shape, generator=gen, dtype=torch.float64)
    lhs = (op.A(x) * y).sum()
    rhs = (x * op.A_adjoint(y)).sum()
    assert torch.isclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ratio,geometry", list(itertools.product(RATIOS, GEOMETRIES)))
def test_projection_is_idempotent_and_orthogonal(ratio, geometry):
    op = _op(ratio, geometry, (9, 7), cond=0.0)
    x = torch.randn(op.bands, *op.hr_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    px = op.project(x)
    assert torch.allclose(op.project(px), px, atol=1e-9)
    # orthogonal: the residual is orthogonal to the projection
    assert abs(float(((x - px) * px).sum())) < 1e-8 * float((x * x).sum())
    # the projection keeps what A sees
    assert torch.allclose(op.A(px), op.A(x), atol=1e-10)


@pytest.mark.parametrize("ratio", RATIOS)
def test_inverse_gram_matches_dense_solve(ratio):
    op = _op(ratio, "area", (4, 5), cond=1e-3, sigmas=(1.1,))
    n = op.lr_shape[0] * op.lr_shape[1]
    # dense A from its action on unit vectors
    eye = torch.eye(op.hr_shape[0] * op.hr_shape[1], dtype=torch.float64).reshape(-1, 1, *op.hr_shape)
    a = op.A(eye).reshape(-1, n).T
    y = torch.randn(1, *op.lr_shape, dtype=torch.float64)
    dense = torch.linalg.solve(a @ a.T + 1e-3 * torch.eye(n, dtype=torch.float64), y.reshape(-1))
    assert torch.allclose(op.inv_gram(y).reshape(-1), dense, rtol=1e-8, atol=1e-10)
    # the trace used by the SURE constant
    dagger = a.T @ torch.linalg.inv(a @ a.T + 1e-3 * torch.eye(n, dtype=torch.float64))
    assert torch.isclose(op.back_projection_trace()[0], torch.trace(dagger.T @ dagger), rtol=1e-8)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("cond", [0.0, 1e-3])
def test_back_projection_keeps_the_mean(ratio, cond):
    """mean(BP y) = mean(y) / (r² (λ_DC + c)): the mean is kept up to the PSF's aliasing onto DC and c."""
    op = _op(ratio, "zero_phase", (6, 6), cond=cond)
    y = torch.rand(op.bands, *op.lr_shape, dtype=torch.float64) + 2.0
    u = op.A_dagger(y)
    dc = op.gram_eigenvalues[:, 0, 0]
    expected = y.mean(dim=(-2, -1)) / (ratio ** 2 * (dc + cond))
    assert torch.allclose(u.mean(dim=(-2, -1)), expected, rtol=1e-10)
    # for realistic PSFs that gain is within 1 % of 1 / (1 + c r²)
    assert torch.allclose(expected / y.mean(dim=(-2, -1)), torch.full_like(dc, 1 / (1 + cond * ratio ** 2)), rtol=1e-2)


def test_geometry_centres_the_footprint():
    """In the area geometry a point at the centre of an r×r block shows up only in that block's LR pixel."""
    for ratio in (2, 3, 6):
        op = BlurDecimate((0.3,), ratio, (ratio * 8, ratio * 8), "area", dtype=torch.float64)
        x = torch.zeros(1, *op.hr_shape, dtype=torch.float64)
        block = torch.zeros_like(x)
        block[0, 3 * ratio:4 * ratio, 5 * ratio:6 * ratio] = 1.0  # HR block of LR pixel (3, 5)
        y = op.A(block)
        assert int(y[0].argmax()) == 3 * op.lr_shape[1] + 5
        # symmetric response around the block: equal weight to the neighbours on either side
        assert torch.isclose(y[0, 2, 5], y[0, 4, 5]) and torch.isclose(y[0, 3, 4], y[0, 3, 6])
    # zero phase: LR pixel j is centred on HR pixel r·j
    op = BlurDecimate((0.3,), 2, (16, 16), "zero_phase", dtype=torch.float64)
    x = torch.zeros(1, 16, 16, dtype=torch.float64)
    x[0, 6, 10] = 1.0
    y = op.A(x)
    assert int(y[0].argmax()) == 3 * 8 + 5


def test_psf_taps_sum_to_one_and_follow_offset():
    k, first = gaussian_taps(2.0, 2.5)
    assert np.isclose(k.sum(), 1.0)
    taps = np.arange(k.shape[0]) + first
    centre = (k.sum(axis=1) * taps).sum()
    assert np.isclose(centre, 2.5, atol=1e-6)


def test_spectra_are_built_once_per_key():
    before = len(_SPECTRA_CACHE)
    a = BlurDecimate((1.0, 2.0), 2, (40, 44), "area", dtype=torch.float64)
    b = BlurDecimate((1.0, 2.0), 2, (40, 44), "area", dtype=torch.float64)
    assert a.kernel_fft is b.kernel_fft and len(_SPECTRA_CACHE) == before + 1


def test_bad_sizes_raise_clear_errors():
    with pytest.raises(InputShapeError, match="multiple of the ratio"):
        BlurDecimate((1.0,), 2, (41, 40))
    with pytest.raises(ImageTooSmallError, match="PSF support"):
        BlurDecimate((1.0,), 2, (10, 10))
    with pytest.raises(InputShapeError, match="positive integer"):
        BlurDecimate((1.0,), 2.5, (40, 40))
    op = BlurDecimate((1.0,), 2, (40, 40))
    with pytest.raises(InputShapeError, match="expected"):
        op.A(torch.zeros(1, 42, 40))


def test_identity_and_spectral_response_adjoints():
    r = torch.rand(3, 7, dtype=torch.float64)
    op = SpectralResponse(r)
    x = torch.randn(7, 5, 6, dtype=torch.float64)
    y = torch.randn(3, 5, 6, dtype=torch.float64)
    assert torch.isclose((op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum())
    assert torch.allclose(op.A(op.A_dagger(y, cond=0.0)), y, atol=1e-8)
    ident = Identity(4)
    assert torch.equal(ident.A(x), x) and torch.equal(ident.A_adjoint(y), y)
