"""How much of a guide's detail a low-resolution band really shares, frequency by frequency (the injection gain).

Detail injection predicts a coarse band from the fine guides, s = Σ w_k g_k + w_0, with weights fitted where the
band is observed (its low frequencies). At finer scales the band and its predictor drift apart (a SWIR band shares
far less of the 10 m bands' finest detail than a red-edge band), and injecting all of it adds detail the band does
not have. So the gain is measured on the band's own observation, in rings of radial frequency of the
low-resolution grid, β(f) = Re Σ Y·conj(A s) / Σ |A s|² (unbiased: the noise in y is independent of s), and a
decay is fitted to the rings and extrapolated to the frequencies only the guides see:
- below LORENTZIAN_MIN_RATIO (S2's 20 m bands, a third of the spectrum observed) β(f) = β₀·exp(−a f − b f²),
  a, b ≥ 0, by log-linear least squares weighted by the predictor's energy;
- from LORENTZIAN_MIN_RATIO on (S2's 60 m bands, a sixth observed) β(f) = β₀ / (1 + c f²): over so short a range
  a curvature is not identifiable, and this two-parameter Wiener form extrapolates stably.
The result is one isotropic, zero-phase filter per band, a table over radial frequency, so a fit on some windows
applies to any window of the scene. Used for Sentinel-2 only (`FusionProblem.refined_injection`). The
measurements behind each choice: docs/decisions.md, "The injection gain".

Frequencies are in cycles per target-grid pixel; the radial frequency of a 2-D grid reaches √2/2.
"""
from __future__ import annotations

import math
from collections import OrderedDict

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


#: interpolated gains by (shape, device, dtype, table), least recently used first: a scene's tiles share one table
#: per group and a few window shapes, and interpolating it on a tile's grid took a tenth of the first estimate
_GAIN_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
GAIN_CACHE_BYTES = 128 * 2 ** 20


def _interpolated_gain(table: torch.Tensor, shape: tuple[int, int], device, dtype: torch.dtype) -> torch.Tensor:
    """(bands, H, W//2+1) gain of `table` on the rfft2 grid of `shape`, in `dtype`; the DC at 1."""
    key = (tuple(shape), str(device), dtype, tuple(table.shape), table.detach().double().cpu().numpy().tobytes())
    if key in _GAIN_CACHE:
        _GAIN_CACHE.move_to_end(key)
        return _GAIN_CACHE[key]
    position = radial_frequency(shape, device, torch.float64) / TABLE_STEP
    low = position.floor().long().clamp(0, TABLE_SIZE - 2)
    frac = (position - low).clamp(0, 1)
    t = table.to(device)
    gain = t[:, low] * (1 - frac) + t[:, low + 1] * frac            # (bands, H, W//2+1)
    gain[:, 0, 0] = 1.0
    gain = gain.to(dtype)
    _GAIN_CACHE[key] = gain
    total = sum(g.numel() * g.element_size() for g in _GAIN_CACHE.values())
    while total > GAIN_CACHE_BYTES and len(_GAIN_CACHE) > 1:
        _, evicted = _GAIN_CACHE.popitem(last=False)
        total -= evicted.numel() * evicted.element_size()
    return gain


def apply_gain(s: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Filter s (..., bands, H, W) band by band with the radial gain `table` (bands, TABLE_SIZE), linearly
    interpolated; the mean (DC) is kept as it is."""
    shape = s.shape[-2:]
    gain = _interpolated_gain(table, shape, s.device, torch.promote_types(s.dtype, torch.float32))
    spectrum = torch.fft.rfft2(s) * gain
    return torch.fft.irfft2(spectrum, s=shape).to(s.dtype)
