"""Guided non-local smoothing of the fused image, its strength chosen by SURE on the guides.

Why. A fused band gets its fine detail from the fine guides, noise included, and the projected SURE only sees
what the band's own observation sees. In flat, dark areas that noise turns the pixel's spectrum; averaging each
pixel with the pixels whose guide patches look like its own removes it where the guides say the scene is the
same, and leaves edges and texture alone.

What. For pixel p and a neighbour q within `search` pixels (every one up to `dense`, then every `stride`-th row
and column), d(p, q) is the mean over the guide bands and a (2·patch+1)² patch of the squared difference of the
guides, each divided by its noise σ, so patches that differ by noise only have d ≈ 2. The weight is
exp(−max(d − 2, 0) / (2h²)) (1 for the pixel itself), and every band given is replaced by its weighted mean:
the weights come from the guides alone, so a pixel's spectrum is averaged as a whole. h = 0 leaves the image as
it is. The solver smooths only the bands observed at a coarser resolution (`smoothed_channels`).

Strength. The same filter applied to the guides is a denoiser of observations with known noise, so its risk has
an unbiased estimate (SURE, Monte-Carlo divergence): ‖D(g) − g‖² − N·Σσ² + 2·div D(g); h is the value of a small
grid with the least estimated risk (0 when none beats leaving the guides alone). That SURE needs the guides' true
σ, so Sentinel-2 problems smooth by default only when the 10 m σ is given (`s2_sharpening.build_problem`;
`SolverOptions.smoothing` overrides). Measurements (gains, search radius, patch size, what was tried):
docs/decisions.md, "The guided smoothing".
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

#: candidate strengths h (0 = no smoothing)
STRENGTHS = (0.0, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0)
#: neighbours are searched in a disc of radius SEARCH: every pixel up to DENSE_SEARCH, beyond it every
#: SPARSE_STRIDE-th row and column (230 offsets in the half disc instead of 686)
SEARCH = 21
DENSE_SEARCH = 7
SPARSE_STRIDE = 2
PATCH = 1
#: guides whose σ is below this fraction of the largest σ are whitened with it (σ = 0 would divide by 0)
MIN_RELATIVE_SIGMA = 1e-3
#: finite-difference step of the divergence probe, in units of the noise
PROBE_STEP = 1e-3


def _whitened(guides: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    floor = sigma.max() * MIN_RELATIVE_SIGMA
    return guides / sigma.clamp_min(floor).to(guides.dtype)[:, None, None]


@cache
def _half_disc_offsets(search: int, dense: int, stride: int) -> tuple[tuple[int, int], ...]:
    """The offsets (dy, dx) of half the search disc (the other half is served by symmetry): every one up to radius
    `dense`, beyond it those on the `stride` lattice."""
    offsets = []
    for dy in range(0, search + 1):
        for dx in range(-search, search + 1):
            r2 = dy * dy + dx * dx
            if (dy == 0 and dx <= 0) or r2 > search * search:
                continue
            if r2 > dense * dense and (dy % stride or dx % stride):
                continue
            offsets.append((dy, dx))
    return tuple(offsets)


def _nonlocal_means(image: torch.Tensor, guides: torch.Tensor, sigma: torch.Tensor, strengths: list[float],
                    search: int, patch: int) -> torch.Tensor:
    """(len(strengths), *image.shape): the guided non-local mean of `image` for each strength > 0. The patch
    distances do not depend on h, so one pass over the offsets serves every strength; and the weight of q for p
    is the weight of p for q, so each distance map serves an offset and its opposite (measured: 1.4× faster)."""
    rows, cols = image.shape[-2:]
    if guides.shape[-2:] != (rows, cols):
        raise ValueError(f"guides are {tuple(guides.shape[-2:])} px but the image is {(rows, cols)} px")
    search = min(search, (min(rows, cols) - 1 - patch) // 2)
    flat = image.reshape(-1, rows, cols)
    if search < 1:  # too small to reflect: no neighbours to average with
        return flat.expand(len(strengths), -1, -1, -1).reshape(len(strengths), *image.shape).clone()
    # distances are computed on the image grown by `search` on every side (the opposite offset reads them shifted)
    grown = (rows + 2 * search, cols + 2 * search)
    reach = 2 * search + patch
    white = F.pad(_whitened(guides, sigma)[None], (reach,) * 4, mode="reflect")[0]
    values = F.pad(flat[None], (search,) * 4, mode="reflect")[0]
    centre = white[:, search:search + grown[0] + 2 * patch, search:search + grown[1] + 2 * patch]
    size = 2 * patch + 1
    scale = torch.tensor([-1.0 / (2.0 * h ** 2) for h in strengths], dtype=white.dtype,
                         device=white.device)[:, None, None]
    total = flat.expand(len(strengths), -1, -1, -1).clone()            # the pixel itself, weight 1
    norm = flat.new_ones((len(strengths), 1, rows, cols))
    difference = torch.empty_like(centre)
    inner = (slice(search, search + rows), slice(search, search + cols))
    # in-place and fused operations: 1.8× faster than plain expressions on a 1024² px, 12-band tile
    for dy, dx in _half_disc_offsets(search, min(DENSE_SEARCH, search), SPARSE_STRIDE):
        shifted = white[:, search + dy:search + dy + grown[0] + 2 * patch,
                        search + dx:search + dx + grown[1] + 2 * patch]
        squared = torch.sub(centre, shifted, out=difference).square_().sum(dim=0)
        distance = F.avg_pool2d(squared[None, None], size, stride=1)[0]
        distance = distance.mul_(1.0 / guides.shape[0]).sub_(2.0).clamp_(min=0.0)
        weight = torch.exp(distance * scale).to(flat.dtype)[:, None]          # (K, 1, grown rows, grown cols)
        # offset (dy, dx): weight at p, value at p + offset
        forward = weight[..., inner[0], inner[1]]
        total.addcmul_(forward, values[None, :, search + dy:search + dy + rows, search + dx:search + dx + cols])
        norm.add_(forward)
        # offset (−dy, −dx): weight w(p − offset, p) = the map at p − offset, value at p − offset
        backward = weight[..., search - dy:search - dy + rows, search - dx:search - dx + cols]
        total.addcmul_(backward, values[None, :, search - dy:search - dy + rows, search - dx:search - dx + cols])
        norm.add_(backward)
    return (total / norm).reshape(len(strengths), *image.shape)


def smooth(image: torch.Tensor, guides: torch.Tensor, sigma: torch.Tensor, strength: float,
           search: int = SEARCH, patch: int = PATCH) -> torch.Tensor:
    """The guided non-local mean of `image` (..., bands, H, W) with weights from `guides` (G, H, W), whose
    noise std is `sigma` (G,). Borders are reflected. strength = 0 returns `image` unchanged."""
    if strength <= 0 or float(sigma.max()) <= 0:
        return image
    return _nonlocal_means(image, guides, sigma, [float(strength)], search, patch)[0]


def smooth_channels(image: torch.Tensor, channels: list[int], guides: torch.Tensor, sigma: torch.Tensor,
                    strength: float) -> torch.Tensor:
    """`image` (..., bands, H, W) with only `channels` smoothed (see `smooth`); the others are left as they are."""
    if strength <= 0 or not channels:
        return image
    out = image.clone()
    out[..., channels, :, :] = smooth(image[..., channels, :, :], guides, sigma, strength)
    return out


def guide_risks(guides: torch.Tensor, sigma: torch.Tensor, strengths, generator: torch.Generator | None = None,
                search: int = SEARCH, patch: int = PATCH) -> list[float]:
    """SURE of smoothing the guides (G, H, W) with each strength: an unbiased estimate of ‖D(g) − g_true‖²
    (sum over bands and pixels), with one Monte-Carlo probe (shared by the strengths) for the divergence.
    Computed in float64; strength 0 (no smoothing) scores the noise energy N·Σσ²."""
    g = guides.double()
    s = sigma.double().to(g.device)
    noise_energy = float((s ** 2).sum()) * g.shape[-2] * g.shape[-1]
    active = [float(h) for h in strengths if h > 0]
    risks = {0.0: noise_energy}
    if active and float(s.max()) > 0:
        probe = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device) * s[:, None, None]
        moved = g + PROBE_STEP * probe
        plain = _nonlocal_means(g, g, s, active, search, patch)
        shifted = _nonlocal_means(moved, moved, s, active, search, patch)
        for k, h in enumerate(active):
            divergence = float((probe * (shifted[k] - plain[k])).sum()) / PROBE_STEP
            risks[h] = float((plain[k] - g).pow(2).sum()) - noise_energy + 2.0 * divergence
    return [risks.get(float(h), noise_energy) for h in strengths]


def guide_noise(guides: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The guides' σ for the smoothing: the smaller of the σ in use and the cross-band estimate (`cross_band_noise`).

    Both are upper bounds of the noise on real scenes, where texture passes for noise, and a σ set too high
    whitens texture into "noise" and smooths it away (docs/decisions.md, "The guided smoothing"). A right σ lies
    below the cross-band bound and is kept.
    """
    from .cross_band_noise import cross_band_noise_sigma

    if min(guides.shape[-2:]) < 16:
        return sigma
    cross = torch.as_tensor(cross_band_noise_sigma(guides.detach().double().cpu().numpy()), dtype=sigma.dtype,
                            device=sigma.device)
    return torch.minimum(sigma, cross)


@dataclass
class SmoothingChoice:
    strength: float
    risks: dict          # h → SURE of smoothing the guides with h, summed over the problems scored
    sigma: torch.Tensor | None = None   # the guides' σ the weights use (see `guide_noise`)


def choose_strength(guide_sets: list[tuple[torch.Tensor, torch.Tensor]], seed: int = 0,
                    strengths: tuple = STRENGTHS) -> SmoothingChoice:
    """The strength with the least guide SURE, pooled over (guides, σ) pairs (e.g. the training crops of a
    scene), and the guides' σ to smooth with: per band the median over the pairs of `guide_noise`, one σ for
    every window of a scene, so that all tiles are smoothed alike. Seeded: the probes are drawn from `seed`."""
    sigma = torch.stack([guide_noise(g, s) for g, s in guide_sets]).median(dim=0).values
    totals = [0.0] * len(strengths)
    for i, (g, _) in enumerate(guide_sets):
        generator = torch.Generator(device=g.device)
        generator.manual_seed(seed + 7919 * i)
        totals = [a + b for a, b in zip(totals, guide_risks(g, sigma, strengths, generator))]
    risks = {float(h): r for h, r in zip(strengths, totals)}
    return SmoothingChoice(min(risks, key=risks.get), risks, sigma)
