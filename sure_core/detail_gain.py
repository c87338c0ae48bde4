"""How much of a guide's detail a low-resolution band really shares, frequency by frequency.

Detail injection predicts a coarse band x from the fine guides as s = Σ w_k g_k + w_0, with weights fitted
where the band is observed (its low frequencies). At finer scales the band and its predictor drift apart: on
the APEX scene the gain Re⟨X, S⟩ / ‖S‖² between B11 (SWIR) and its prediction from the 10 m bands falls from
1.0 at 0.03 cycles/px to 0.3 at 0.35 and 0.05 at 0.7, while B8A keeps a gain of 1. Injecting the predictor's
full detail adds detail that the band does not have (B11: 21 dB SRE, against 26 dB with the right gain).

The gain is measured where it can be, on the band's own observation: in rings of radial frequency of the
low-resolution grid, β(f) = Re Σ Y·conj(A s) / Σ |A s|² (noise in y is independent of s, so β is unbiased),
and a decay is fitted to the rings and extrapolated to the frequencies only the guides see. Two families,
chosen by how much of the spectrum the band's observation covers:
- groups observed at a ratio below LORENTZIAN_MIN_RATIO (S2's 20 m bands: rings up to 0.35 cycles per target
  pixel) fit β(f) = β₀·exp(−a f − b f²), a, b ≥ 0 (log-linear least squares weighted by the predictor's
  energy). Both terms are needed: the SWIR bands decay like exp(−a f) over their long observed range;
- groups observed at a ratio of LORENTZIAN_MIN_RATIO or more (S2's 60 m bands: rings up to 0.12) fit
  β(f) = β₀ / (1 + c f²). Over a sixth of the spectrum a curvature is not identifiable:
  with the three-term decay, B9's b was set by the last one or two noisy rings (APEX, SNR 30, seeds 0/1/2:
  gain 0.43 / 0.73 / 0.15 at 0.44 cycles/px, against a true 0.35) and B9's SRE spread over 24.0–26.8 dB. The
  two-parameter form is the Wiener gain between a shared detail and an unshared one whose spectrum falls two
  powers of f more slowly; it follows APEX's true B9 gain within 0.12 from 0 to 0.45 cycles/px in all six runs
  (SNR 40 and 30, three seeds; the three-term decay was up to 0.38 off), B9's SRE becomes 26.5–27.4 dB at
  SNR 30 and 28.3–28.7 dB at SNR 40 (24.0–26.8 and 24.9–28.6 before), and the first estimate's MSRE / SAM
  (smoothed, 3 seeds) 26.39 → 26.55 dB / 3.17 → 3.04° at SNR 30 and 30.17 → 30.39 dB / 2.38 → 2.16° at 40.
  The price, on the real crops' reduced-resolution protocol: 60 m ERGAS 0.760 → 0.775 (DSen2) and 2.488 →
  2.559 (vietnam). There, measured against the reference (the 60 m band as the sensor's MTF blurred it), the
  60 m bands' gains fall to about 0 by 0.15–0.2 cycles per pixel, and the heavier tail keeps more detail.
The result is one isotropic, zero-phase filter per band, stored as a table over radial frequency, so a fit on
some windows applies to any other window of the scene.

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
#: groups observed at this ratio or coarser extrapolate their gain with the two-parameter Lorentzian
LORENTZIAN_MIN_RATIO = 4
#: candidate c of β₀ / (1 + c f²) (with c = 0): half-gain frequencies 1/√c from 3 down to 0.01 cycles per pixel
LORENTZIAN_GRID = torch.logspace(-1, 4, 241, dtype=torch.float64)


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


def _usable_rings(cross: torch.Tensor, power: torch.Tensor, moment: torch.Tensor, band: int):
    """(ring centres, gains β, relative energies) of one band's usable rings (energy > 0, β > MIN_RING_GAIN), or
    None when fewer than MIN_RINGS are usable."""
    used = power[band] > 0
    gain = torch.where(used, cross[band] / power[band].clamp_min(1e-300), torch.zeros_like(power[band]))
    used &= gain > MIN_RING_GAIN
    if int(used.sum()) < MIN_RINGS:
        return None
    centre = (moment[band] / power[band].clamp_min(1e-300))[used]
    return centre, gain[used], power[band][used] / power[band][used].sum()


def _no_change(bands: int) -> torch.Tensor:
    """(bands, 4) parameters of a gain of 1 at every frequency."""
    params = torch.zeros((bands, 4), dtype=torch.float64)
    params[:, 0] = 1.0
    return params


def fit_decay(cross: torch.Tensor, power: torch.Tensor, moment: torch.Tensor) -> torch.Tensor:
    """Per band, the parameters (β₀, a, b, 0) (see `gain_table`) of β(f) = β₀·exp(−a f − b f²), a, b ≥ 0, fitted
    to the rings: (bands, 4). Bands with fewer than MIN_RINGS usable rings get a gain of 1 (no change)."""
    params = _no_change(cross.shape[0])
    for band in range(cross.shape[0]):
        rings = _usable_rings(cross, power, moment, band)
        if rings is None:
            continue
        centre, gain, energy = rings
        weight = energy.sqrt()
        design = torch.stack([torch.ones_like(centre), -centre, -centre ** 2], dim=1) * weight[:, None]
        target = gain.log() * weight
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


def fit_lorentzian(cross: torch.Tensor, power: torch.Tensor, moment: torch.Tensor) -> torch.Tensor:
    """Per band, the parameters (β₀, 0, 0, c) (see `gain_table`) of β(f) = β₀ / (1 + c f²), c ≥ 0, fitted to the
    rings by least squares weighted by the predictor's energy (β's variance is inversely proportional to it):
    β₀ in closed form for each c of a log-spaced grid, the c with the least residual kept. (bands, 4); bands with
    fewer than MIN_RINGS usable rings get a gain of 1 (no change)."""
    params = _no_change(cross.shape[0])
    candidates = torch.cat([torch.zeros(1, dtype=torch.float64), LORENTZIAN_GRID])
    for band in range(cross.shape[0]):
        rings = _usable_rings(cross, power, moment, band)
        if rings is None:
            continue
        centre, gain, energy = rings
        shape = 1.0 / (1.0 + candidates[:, None] * centre[None] ** 2)          # (candidates, rings)
        base = ((energy * gain * shape).sum(dim=1) / (energy * shape ** 2).sum(dim=1)).clamp(0.0, MAX_BASE_GAIN)
        residual = (energy * (gain - base[:, None] * shape) ** 2).sum(dim=1)
        best = int(residual.argmin())
        params[band, 0] = base[best]
        params[band, 3] = candidates[best]
    return params


def fit_gain(cross: torch.Tensor, power: torch.Tensor, moment: torch.Tensor, ratio: int) -> torch.Tensor:
    """(bands, 4) gain parameters of a group observed at `ratio`, from its `ring_sums`: the Lorentzian for
    ratios of LORENTZIAN_MIN_RATIO and more (a short observed range), the three-term decay below (module doc)."""
    fit = fit_lorentzian if ratio >= LORENTZIAN_MIN_RATIO else fit_decay
    return fit(cross, power, moment)


def gain_table(params: torch.Tensor) -> torch.Tensor:
    """(bands, TABLE_SIZE) gain β₀·exp(−a f − b f²) / (1 + c f²) over the radial frequency grid, from (bands, 4)
    parameters (β₀, a, b, c)."""
    f = torch.arange(TABLE_SIZE, dtype=torch.float64, device=params.device)[None] * TABLE_STEP
    base, linear, quadratic, lorentz = params.double().unbind(dim=1)
    return (base[:, None] * torch.exp(-linear[:, None] * f - quadratic[:, None] * f ** 2)
            / (1.0 + lorentz[:, None] * f ** 2))


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
