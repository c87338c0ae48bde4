"""Coarse bands observed sharper than their sensor model allows: measured against the guides, and brought back to it.

The first estimate trusts the operator A of a coarse band: its correction divides the band's residual by A's MTF,
and its regression matches the band to the guides degraded by A. When the band's real blur is narrower than A's,
its observation holds more fine contrast than A can produce from anything like the guides; the correction then
multiplies that excess by 1/MTF, the regression reaches for it with large weights of opposite sign, and the
sharpened 20 m bands pass it on to the 60 m ones (cascade), which multiplies it again.

The excess is measured per band as a Gaussian sharpness ratio: y ≈ exp(κ f²)·A(Σ w_k g_k + w_0), the weights and
κ fitted together by least squares over a grid of κ (f in cycles per target pixel; κ = 2π²(σ_A² − σ²) for a
true Gaussian blur σ narrower than A's σ_A, so κ ≤ 2π²σ_A²). Only the guides observed at the target resolution
predict the band (a sharpened finer group would carry its own excess). Part of κ is expected: a model that takes
the guides as the target's sharpness and blurs it with the band's full MTF finds the real band sharper by the
guides' own blur, 1/MTF_guide(f) = exp(2π²σ_g² f²). What exceeds that, κ − 2π²σ_g², contradicts the sensor model,
and the observation used by the first estimate is divided by exp((κ − 2π²σ_g²) f²) (the band mean is kept).
"""
from __future__ import annotations

import math

import torch

from .detail_gain import radial_frequency
from .operators import rfft_multiplicity

#: candidate κ as fractions of the band's largest, 2π²σ_A² (a data blur of zero width)
KAPPA_FRACTIONS = torch.linspace(0.0, 1.0, 81, dtype=torch.float64)
#: the fit's sums are kept per bin of f² (equal widths up to the LR grid's corner): exp(κ f²) varies by about 1 % at
#: most within a bin for every κ of the grid, and memory stays (bands, k, k, bins) on any window
BINS = 256
#: a band is taken for sharper than allowed only where the fit at the allowance leaves more residual than the best
#: fit by this many times the residual variance (the χ²₁ quantile of 99.9 %: a band observed as the model says is
#: taken for sharper once in a thousand). The residuals are whitened first (weighted by their own power in each
#: group of bins): the detail a band does not share with the guides has an image-like spectrum, and its few strong
#: low-frequency coefficients made unweighted fits at the allowance look significantly worse by chance.
SIGNIFICANCE = 10.83
#: coefficients per group of bins in which the residual's power is measured for the whitening
WHITENING_GROUP = 64


def _squared_frequency(op) -> torch.Tensor:
    """f² on the rfft2 grid of the operator's LR shape, f in cycles per target pixel."""
    return (radial_frequency(op.lr_shape, op.gram_eigenvalues.device) / op.ratio) ** 2


def _bin_centres(ratio: int, device=None) -> torch.Tensor:
    return (torch.arange(BINS, dtype=torch.float64, device=device) + 0.5) * (0.5 / ratio ** 2) / BINS


def _kappa_grid(op) -> torch.Tensor:
    """(bands, candidates) of κ for each band of `op`."""
    largest = 2 * math.pi ** 2 * torch.as_tensor(op.sigmas, dtype=torch.float64) ** 2
    return largest[:, None] * KAPPA_FRACTIONS.to(largest.device)[None]


def fit_sums(op, y: torch.Tensor, degraded: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The Parseval sums, per band and bin of f², of the least-squares fit of y by Σ w_k (A g_k) without the mean
    (the DC coefficient left out, as a constant in the fit would): (Re Σ G_k conj(G_l) (bands, k, k, BINS),
    Re Σ G_k conj(Y) (bands, k, BINS), Σ|Y|² (bands, BINS), the number of LR coefficients (BINS,)).
    y: (bands, h, w); degraded: (bands, k, h, w), the guides degraded by each band's operator. Sums over problems
    of one scene (one ratio) add up."""
    y_hat = torch.fft.rfft2(y.double()).flatten(1)                                     # (bands, freq)
    g_hat = torch.fft.rfft2(degraded.double()).flatten(2)                              # (bands, k, freq)
    mult = rfft_multiplicity(op.lr_shape, y_hat.device).clone()
    mult[0, 0] = 0.0
    mult = mult.flatten()
    position = _squared_frequency(op).flatten() / (0.5 / op.ratio ** 2) * BINS
    index = position.long().clamp(0, BINS - 1)
    bands, k = g_hat.shape[:2]
    gram = y_hat.new_zeros((bands, k, k, BINS), dtype=torch.float64)
    rhs = y_hat.new_zeros((bands, k, BINS), dtype=torch.float64)
    for a in range(k):  # a few guides: one (bands, freq) product at a time
        rhs[:, a].index_add_(1, index, (g_hat[:, a] * y_hat.conj()).real * mult)
        for b in range(a, k):
            gram[:, a, b].index_add_(1, index, (g_hat[:, a] * g_hat[:, b].conj()).real * mult)
            gram[:, b, a] = gram[:, a, b]
    energy = y_hat.new_zeros((bands, BINS), dtype=torch.float64).index_add_(1, index, y_hat.abs() ** 2 * mult)
    return gram, rhs, energy, mult.new_zeros(BINS).index_add_(0, index, mult)


def _fits(binned: tuple[torch.Tensor, ...], boost: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(bands, κ) the residual of the weighted least-squares fit for every κ: bins weighted by `weight` (bands,
    bins), the design boosted by `boost` (bands, κ, bins)."""
    binned_gram, binned_rhs, energy = binned
    gram = torch.einsum("bklj,bcj,bj->bckl", binned_gram, boost ** 2, weight)
    rhs = torch.einsum("bkj,bcj,bj->bck", binned_rhs, boost, weight)
    ridge = 1e-10 * gram.diagonal(dim1=-2, dim2=-1).mean(dim=-1).clamp_min(1e-300)[..., None, None]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    weights = torch.linalg.solve(gram + ridge * eye, rhs[..., None])[..., 0]
    return (energy * weight).sum(dim=-1)[:, None] - (weights * rhs).sum(dim=-1), weights


def _residual_power(binned: tuple[torch.Tensor, ...], count: torch.Tensor, boost: torch.Tensor) -> torch.Tensor:
    """(bands, bins) the residual's power per coefficient of the unweighted fit with `boost` (bands, 1, bins),
    averaged over consecutive bins holding WHITENING_GROUP coefficients or more."""
    binned_gram, binned_rhs, energy = binned
    _, w = _fits(binned, boost, torch.ones_like(energy))
    w, b = w[:, 0], boost[:, 0]
    per_bin = (energy - 2 * torch.einsum("bk,bkj,bj->bj", w, binned_rhs, b)
               + torch.einsum("bk,bklj,bl,bj->bj", w, binned_gram, w, b ** 2)).clamp_min(0.0)
    group = torch.div(torch.cumsum(count, 0) - count, WHITENING_GROUP, rounding_mode="floor").long()
    group = torch.where(count > 0, group, torch.full_like(group, -1))
    groups = int(group.max()) + 1
    used = group.clamp_min(0)
    power = per_bin.new_zeros((per_bin.shape[0], groups)).index_add_(1, used, per_bin * (count > 0))
    counts = count.new_zeros(groups).index_add_(0, used, count)
    return (power / counts.clamp_min(1.0))[:, used] * (count > 0)


def excess(op, sums: tuple[torch.Tensor, ...], guide_psf_sigma: float) -> torch.Tensor | None:
    """(bands,) the κ by which each band of `op` is sharper than its model allows, from the summed `fit_sums`: the
    κ of least (whitened) residual less the guides' own 2π²σ_g², where that is significant (see SIGNIFICANCE), else
    0; None when no band exceeds."""
    binned_gram, binned_rhs, energy, count = sums
    allowed = 2 * math.pi ** 2 * guide_psf_sigma ** 2
    kappa = torch.cat([_kappa_grid(op).to(energy.device), torch.full_like(energy[:, :1], allowed)], dim=1)
    boost = torch.exp(kappa[:, :, None] * _bin_centres(op.ratio, energy.device)[None, None])   # (bands, κ, bins)
    binned = (binned_gram, binned_rhs, energy)
    power = _residual_power(binned, count, boost[:, -1:])
    floor = 1e-12 * power.amax(dim=1, keepdim=True).clamp_min(1e-300)
    weight = torch.where(count > 0, 1.0 / power.clamp_min(1e-300).maximum(floor), torch.zeros_like(power))
    residual, _ = _fits(binned, boost, weight)                                          # (bands, κ)
    grid, at_allowance = residual[:, :-1], residual[:, -1]
    best = grid.min(dim=1).values.clamp_min(0.0)
    variance = best / (count.sum() - binned_gram.shape[1]).clamp_min(1.0)
    # the smallest κ among near-ties (a flat residual, e.g. a constant band, gives κ = 0)
    chosen = (grid <= (best + 1e-9 * (energy * weight).sum(dim=1).clamp_min(1e-300))[:, None]).double().argmax(dim=1)
    extra = (kappa[:, :-1].gather(1, chosen[:, None])[:, 0] - allowed).clamp_min(0.0)
    extra = torch.where(at_allowance - best > SIGNIFICANCE * variance, extra, torch.zeros_like(extra))
    return extra if bool((extra > 0).any()) else None


def desharpen(op, y: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """y (..., bands, h, w) on the LR grid of `op`, each band divided by exp(κ f²) (its mean kept)."""
    gain = torch.exp(-kappa.to(torch.float64)[:, None, None] * _squared_frequency(op))
    spectrum = torch.fft.rfft2(y) * gain.to(torch.promote_types(y.dtype, torch.float32))
    return torch.fft.irfft2(spectrum, s=op.lr_shape).to(y.dtype)
