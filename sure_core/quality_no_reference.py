"""Full-resolution (no reference) pansharpening quality: QNR = (1 − D_λ)^α (1 − D_s)^β (Alparone et al. 2008).

Without a reference image, QNR checks that the fused image keeps the relations the inputs show:

* spectral distortion D_λ: the Q index between every pair of fused bands should equal the Q index between the
  same pair of MS bands at their own resolution,
      D_λ = ( 2/(L(L−1)) Σ_{i<j} |Q(F_i, F_j) − Q(M_i, M_j)|^p )^(1/p);
* spatial distortion D_s: the Q index between each fused band and the PAN should equal the Q index between
  the MS band and the PAN degraded to the MS resolution,
      D_s = ( 1/L Σ_i |Q(F_i, P) − Q(M_i, P_LR)|^q )^(1/q).

Convention: the original paper's, as coded in Vivone et al.'s toolbox (`D_lambda.m`, `D_s.m` with
`flag_orig_paper = 1`): Q is Wang and Bovik's index computed in **non-overlapping** blocks and averaged over
the blocks; the blocks are `block_size` pixels (32) at the PAN resolution and block_size/ratio pixels at the MS
resolution, so both cover the same ground. p = q = α = β = 1. (The toolbox's default "1.0" variant instead
compares the fused image with the MS *interpolated* to the PAN grid and a re-interpolated degraded PAN, which
ties the index to one interpolator; we do not.) `metrics.q_index` is the sliding-window Q of the
reduced-resolution protocol; here the blocks do not overlap, as in the toolbox's `blockproc` calls, so the
block statistics are computed here in one vectorised pass.

The degraded PAN P_LR is passed by the caller (degrade it with the PAN's MTF, as the reduced-resolution
protocol does); when it is not given, the PAN is averaged over ratio×ratio blocks (the 'area' pixel model), and
the result says so (`pan_lr_from`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputShapeError, InvalidInputValueError


@dataclass(frozen=True)
class QNR:
    qnr: float
    d_lambda: float
    d_s: float
    pan_lr_from: str   # 'given' or 'block mean'


def _cube(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputShapeError(f"{name} must be (bands, rows, cols), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputValueError(f"{name} contains NaN or inf")
    return a


def _blocks(a: np.ndarray, size: int) -> np.ndarray:
    """(bands, rows, cols) → (bands, blocks, size²), non-overlapping blocks in row-major order."""
    b, h, w = a.shape
    if h % size or w % size:
        raise InputShapeError(f"QNR needs image sides that are multiples of its block size: {h}×{w} px with "
                              f"{size}-px blocks; crop the images to a multiple of {size} px")
    return a.reshape(b, h // size, size, w // size, size).transpose(0, 1, 3, 2, 4).reshape(b, -1, size * size)


def block_q(x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Mean over non-overlapping size×size blocks of Q = 4 cov·μx·μy / ((var_x + var_y)(μx² + μy²)).

    x and y are (bands, rows, cols) of equal shape; returns one value per band. A block where the
    denominator is zero counts as 1 when both blocks are equal and 0 otherwise.
    """
    bx, by = _blocks(x, size), _blocks(y, size)
    mx, my = bx.mean(-1), by.mean(-1)
    dx, dy = bx - mx[..., None], by - my[..., None]
    vx, vy, cxy = (dx * dx).mean(-1), (dy * dy).mean(-1), (dx * dy).mean(-1)
    den = (vx + vy) * (mx * mx + my * my)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(den > 0, 4.0 * cxy * mx * my / den, np.where(np.all(bx == by, axis=-1), 1.0, 0.0))
    return q.mean(axis=-1)


def block_mean(image: np.ndarray, ratio: int) -> np.ndarray:
    """(bands, H, W) averaged over ratio×ratio blocks → (bands, H/ratio, W/ratio)."""
    b, h, w = image.shape
    return image.reshape(b, h // ratio, ratio, w // ratio, ratio).mean(axis=(2, 4))


def d_lambda(fused, ms, ratio: int, block_size: int = 32, p: float = 1.0) -> float:
    """Spectral distortion between the fused bands (PAN grid) and the MS bands (their own grid)."""
    f, m = _cube("fused", fused), _cube("ms", ms)
    n = f.shape[0]
    if m.shape[0] != n or n < 2:
        raise InputShapeError(f"D_λ needs the same number (≥ 2) of fused and MS bands, got {n} and {m.shape[0]}")
    i, j = np.triu_indices(n, k=1)
    q_fused = block_q(f[i], f[j], block_size)
    q_ms = block_q(m[i], m[j], block_size // ratio)
    return float(np.mean(np.abs(q_fused - q_ms) ** p) ** (1.0 / p))


def d_s(fused, ms, pan, pan_lr, ratio: int, block_size: int = 32, q: float = 1.0) -> float:
    """Spatial distortion: Q(fused band, PAN) against Q(MS band, PAN at the MS resolution)."""
    f, m = _cube("fused", fused), _cube("ms", ms)
    p, plr = _cube("pan", pan), _cube("pan_lr", pan_lr)
    if f.shape[1:] != p.shape[1:] or m.shape[1:] != plr.shape[1:]:
        raise InputShapeError(f"fused {f.shape[1:]} must match the PAN {p.shape[1:]}, and the MS {m.shape[1:]} the "
                              f"degraded PAN {plr.shape[1:]}")
    q_high = block_q(f, np.broadcast_to(p, f.shape), block_size)
    q_low = block_q(m, np.broadcast_to(plr, m.shape), block_size // ratio)
    return float(np.mean(np.abs(q_high - q_low) ** q) ** (1.0 / q))


def qnr(fused, ms, pan, ratio: int, *, pan_lr=None, block_size: int = 32, p: float = 1.0, q: float = 1.0,
        alpha: float = 1.0, beta: float = 1.0) -> QNR:
    """QNR, D_λ and D_s of a fused image (bands, H, W) given the MS (bands, H/r, W/r) and PAN (H, W) it came from.

    `pan_lr`: the PAN degraded to the MS grid (recommended: its MTF-matched Gaussian then decimation, as in the
    reduced-resolution protocol); default: ratio×ratio block means. `block_size` (PAN pixels) must be a
    multiple of `ratio`, and the image sides multiples of `block_size`.
    """
    f, m, pn = _cube("fused", fused), _cube("ms", ms), _cube("pan", pan)
    if pn.shape[0] != 1:
        raise InputShapeError(f"the PAN must have one band, got {pn.shape[0]}")
    if int(ratio) != ratio or ratio < 1 or block_size % ratio:
        raise InvalidInputValueError(f"the ratio must be a positive integer dividing the block size {block_size}, "
                                     f"got {ratio}")
    if f.shape[1] != m.shape[1] * ratio or f.shape[2] != m.shape[2] * ratio:
        raise InputShapeError(f"fused {f.shape[1:]} is not {ratio}× the MS {m.shape[1:]}")
    source = "given"
    if pan_lr is None:
        pan_lr, source = block_mean(pn, ratio), "block mean"
    dl = d_lambda(f, m, ratio, block_size, p)
    ds = d_s(f, m, pn, pan_lr, ratio, block_size, q)
    return QNR(float((1 - dl) ** alpha * (1 - ds) ** beta), dl, ds, source)
