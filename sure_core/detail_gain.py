"""How much of a guide's detail a low-resolution band really shares, frequency by frequency.

Detail injection predicts a coarse band x from the fine guides as s = Σ w_k g_k + w_0, with weights fitted
where the band is observed (its low frequencies). At finer scales the band and its predictor drift apart: on
the APEX scene the gain Re⟨X, S⟩ / ‖S‖² between B11 (SWIR) and its prediction from the 10 m bands falls from
1.0 at 0.03 cycles/px to 0.3 at 0.35 and 0.05 at 0.7, while B8A keeps a gain of 1. Injecting the predictor's
full detail adds detail that the band does not have (B11: 21 dB SRE, against 26 dB with the right gain).

The gain is measured where it can be, on the band's own observation: in rings of radial frequency of the
low-resolution grid, β(f) = Re Σ Y·conj(A s) / Σ |A s|² (noise in y is independent of s, so β is unbiased),
and a decay β(f) = β₀·exp(−a f − b f²), a, b ≥ 0, is fitted to the rings (log-linear least squares weighted by
the predictor's energy) and extrapolated to the frequencies only the guides see. Both terms are needed: the
20 m SWIR bands decay like exp(−a f) over their long observed range, while the 60 m bands, observed up to a
sixth of it, extrapolate best with the quadratic term (on APEX the 3-term fit gave B9 26.8 dB against 25.2
with exp(−a f) alone). The result is one isotropic,
zero-phase filter per band, stored as a table over radial frequency, so a fit on some windows applies to any
other window of the scene.

Measured on the first estimate alone (no network), with exp(−a f) only, against no gain: APEX (3 seeds) MSRE
28.17 → 29.67 dB at SNR 40 and 24.20 → 25.52 dB at SNR 30; real S2 (reduced resolution) ERGAS 1.91 → 1.61
(20 m) and 0.89 → 0.77 (60 m) on the DSen2 crop, 5.29 → 4.99 and 4.37 → 2.77 on the vietnam crop; EO-1 HS+MS
ERGAS 4.68 → 4.59. The quadratic term then added +0.16 dB on APEX at both SNRs and lowered every real-crop ERGAS
(e.g. vietnam 60 m 2.70 → 2.49, with the residual shrinkage of `injection`). Used for Sentinel-2 only
(`FusionProblem.refined_injection`): on WorldView-2 it made ERGAS worse (4.68 → 5.23; the PAN, sharpened to the
MS sharpness and not perfectly registered, loses coherence with the MS bands for reasons that are not the
bands' own), and on a synthetic HS+MS pair it read a PSF mismatch as missing detail. A Wiener factor for the guides' noise was tried as well: +0.13 dB on APEX at SNR 30 with the true σ, but
worse on every real pair, where σ is estimated and includes texture.

Frequencies are in cycles per target-grid pixel; the radial frequency of a 2-D grid reaches √2/2.
"""
from __future__ import annotations

import math

import torch

from .operators import rfft_multiplicity

#: radial frequency grid (cycles per target pixel) of the stored gain tables
TABLE_STEP = 0.005
TABLE_SIZE = int(math.ceil(math.sqrt(0.5) / TABLE_STEP)) + 2
#: rings per low-resolution band to measure β on; a fit needs at least this many usable rings
RINGS = 8
MIN_RINGS = 3
#: the decay fit keeps rings whose gain is above this (it fits the log of the gain)
MIN_RING_GAIN = 0.02
MAX_BASE_GAIN = 1.5


def radial_frequency(shape: tuple[int, int], device=None, dtype=torch.float64) -> torch.Tensor:
    """|f| on the rfft2 grid of an image of `shape`, in cycles per pixel of that image."""
    fy = torch.fft.fftfreq(shape[0], device=device, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(shape[1], device=device, dtype=dtype)[None]
    return torch.sqrt(fy ** 2 + fx ** 2)


def ring_sums(y: torch.Tensor, s_lr: torch.Tensor, ratio: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per band and ring of the low-resolution grid: (Re Σ Y·conj(S), Σ |S|², Σ f·|S|²), for β and the ring's
    energy-weighted centre. y, s_lr: (bands, h, w) on the low-resolution grid of `ratio`. Sums over problems
    of one scene add up, because the rings are fixed in target-grid frequency."""
    y, s_lr = y.double(), s_lr.double()
    shape = y.shape[-2:]
    f = radial_frequency(shape, y.device) / ratio              # in target-grid cycles per pixel
    mult = rfft_multiplicity(shape, y.device)
    edges = torch.linspace(0.0, math.sqrt(0.5) / ratio * (1 + 1e-9), RINGS + 1, dtype=torch.float64, device=y.device)
    ring = (torch.bucketize(f, edges) - 1).clamp(0, RINGS - 1)
    ring = torch.where(f > 0, ring, torch.full_like(ring, RINGS))  # the DC term belongs to no ring
    big_y, big_s = torch.fft.rfft2(y), torch.fft.rfft2(s_lr)
    cross = (big_y * big_s.conj()).real * mult
    power = big_s.abs() ** 2 * mult

    def per_ring(v: torch.Tensor) -> torch.Tensor:
        out = v.new_zeros((v.shape[0], RINGS + 1))
        return out.index_add_(1, ring.flatten(), v.flatten(1))[:, :RINGS]

    return per_ring(cross), per_ring(power), per_ring(power * f)


def fit_decay(cross: torch.Tensor, power: torch.Tensor, moment: torch.Tensor) -> torch.Tensor:
    """Per band, (β₀, a, b) of β(f) = β₀·exp(−a f − b f²), a, b ≥ 0, fitted to the rings: (bands, 3). Bands with
    fewer than MIN_RINGS usable rings get (1, 0, 0) (no change)."""
    params = torch.zeros((cross.shape[0], 3), dtype=torch.float64)
    params[:, 0] = 1.0
    for band in range(cross.shape[0]):
        used = power[band] > 0
        gain = torch.where(used, cross[band] / power[band].clamp_min(1e-300), torch.zeros_like(power[band]))
        used &= gain > MIN_RING_GAIN
        if int(used.sum()) < MIN_RINGS:
            continue
        centre = (moment[band] / power[band].clamp_min(1e-300))[used]
        weight = (power[band][used] / power[band][used].sum()).sqrt()
        design = torch.stack([torch.ones_like(centre), -centre, -centre ** 2], dim=1) * weight[:, None]
        target = gain[used].log() * weight
        best = None
        # non-negative a and b: the full fit if it is feasible, else the better of the two one-term fits
        for columns in ((0, 1, 2), (0, 1), (0, 2)):
            solution = torch.linalg.lstsq(design[:, columns], target[:, None]).solution[:, 0]
            if (solution[1:] < 0).any():
                continue
            error = float(((design[:, columns] @ solution - target) ** 2).sum())
            if best is None or error < best[0]:
                best = (error, columns, solution)
        if best is None:
            continue
        _, columns, solution = best
        params[band] = 0.0
        params[band, list(columns)] = solution
        params[band, 0] = solution[0].exp().clamp(0.0, MAX_BASE_GAIN)
    return params


def gain_table(params: torch.Tensor) -> torch.Tensor:
    """(bands, TABLE_SIZE) gain β₀·exp(−a f − b f²) over the radial frequency grid, from (bands, 3) parameters."""
    f = torch.arange(TABLE_SIZE, dtype=torch.float64, device=params.device)[None] * TABLE_STEP
    base, linear, quadratic = params.double().unbind(dim=1)
    return base[:, None] * torch.exp(-linear[:, None] * f - quadratic[:, None] * f ** 2)


def apply_gain(s: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Filter s (..., bands, H, W) band by band with the radial gain `table` (bands, TABLE_SIZE), linearly
    interpolated; the mean (DC) is kept as it is."""
    shape = s.shape[-2:]
    position = radial_frequency(shape, s.device, torch.float64) / TABLE_STEP
    low = position.floor().long().clamp(0, TABLE_SIZE - 2)
    frac = (position - low).clamp(0, 1)
    t = table.to(s.device)
    gain = t[:, low] * (1 - frac) + t[:, low + 1] * frac            # (bands, H, W//2+1)
    gain[:, 0, 0] = 1.0
    spectrum = torch.fft.rfft2(s) * gain.to(torch.promote_types(s.dtype, torch.float32))
    return torch.fft.irfft2(spectrum, s=shape).to(s.dtype)
