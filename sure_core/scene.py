"""Whole scenes in bounded memory: one network trained on crops spread over the scene, applied window by window.

The paper trains on the whole image, so memory and time grow with the area. Here:

1. a few training crops are read across the scene; the case's sensor model (co-registration, spectral response,
   PSF) is fitted on them, and noise σ (median of the crops' estimates, where not given) and the normalising scale
   are fixed once for the scene;
2. one network and one first estimate (detail-injection weights and τ, see `injection.fit_injection`) are
   fitted on all crops together (`solver.train`), so every window is processed by the same function;
3. `runner.run` then fuses the scene tile by tile (`SceneModel.fuse`): with one fixed network (BatchNorm in
   inference mode) and one first estimate, tiles differ only near their own borders, which the halo cuts away.

Memory is bounded by the crop and tile sizes, not by the scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .device import resolve_device
from .errors import ImageTooSmallError
from .fusion_case import FusionCase, median_noise
from .solver import ProgressCallback, RunRecord, SolverOptions, TrainedModel, train
from .tiling import Window, plan_crops, plan_tiles, round_up


@dataclass(frozen=True)
class SceneOptions:
    crops: int = 4              # training crops spread over the scene
    crop_size: int = 192        # target-grid pixels per crop side
    window_statistics: bool = False  # BatchNorm statistics of each tile instead of the training crops'


def _arrays(data) -> list:
    if isinstance(data, dict):
        return [a for v in data.values() for a in _arrays(v)]
    if isinstance(data, (tuple, list)):
        return [a for v in data for a in _arrays(v)]
    return [] if data is None else [data]


def _target_shape(data) -> tuple[int, int]:
    """(rows, cols) of the finest array of a window's data: the target grid."""
    return max((tuple(np.shape(a)[-2:]) for a in _arrays(data)), key=lambda s: s[0] * s[1])


def _sub_window(data, window: Window, shape: tuple[int, int]):
    """The part of a window's data under `window` (target pixels); each array is cut at its own resolution."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _sub_window(v, window, shape) for k, v in data.items()}
    if isinstance(data, (tuple, list)):
        return type(data)(_sub_window(v, window, shape) for v in data)
    r = shape[0] // np.shape(data)[-2]
    rows = slice(window.row // r, (window.row + window.height) // r)
    cols = slice(window.col // r, (window.col + window.width) // r)
    return data[..., rows, cols]


def _max_scale(scales: list):
    return tuple(np.max(np.asarray(scales, dtype=np.float64), axis=0)) if np.ndim(scales[0]) else max(scales)


@dataclass
class SceneModel:
    """A network and first estimate fitted on one scene, with the scene's noise σ and scale: fuses any window."""

    case: FusionCase
    model: TrainedModel
    noise: dict
    scale: object
    crops: list[Window]
    record: RunRecord
    device: torch.device
    window_statistics: bool = False

    halo: int = 48                   # overlap of the parts a window is split into when it does not fit the GPU

    def fuse(self, data) -> np.ndarray:
        """The fused bands of one window's data (as `read` returns it), in output units.

        On a CUDA out-of-memory error the window is split into four overlapping parts (with `halo`) that are
        fused one by one, recursively, down to the size of the PSF support."""
        try:
            problem = self.case.problem(self.case.inputs(data), self.device, self.noise, self.scale)[0]
            return self.case.output(self.model.apply(problem, self.window_statistics)[0], problem)
        except torch.cuda.OutOfMemoryError:
            rows, cols = _target_shape(data)
            if min(rows, cols) < 4 * self.case.step + 2 * self.halo:
                raise
            torch.cuda.empty_cache()
            half = round_up(max(rows, cols) // 2, self.case.step)
            parts = plan_tiles(Window(0, 0, cols, rows), half, self.halo, self.case.step)
            out = None
            for part in parts:
                fused = self.fuse(_sub_window(data, part.read, (rows, cols)))
                if out is None:
                    out = np.zeros((fused.shape[0], rows, cols), dtype=fused.dtype)
                out[(slice(None), *part.core.slices())] = fused[(slice(None), *part.core_in_read())]
            return out


def train_scene(case: FusionCase, read: Callable[[Window], object], shape: tuple[int, int], *,
                options: SolverOptions | None = None, scene: SceneOptions = SceneOptions(),
                callback: ProgressCallback | None = None, log: Callable[[str], None] | None = None,
                crops: list[Window] | None = None) -> SceneModel:
    """Read `scene.crops` crops spread over a scene of `shape` (rows, cols) target pixels and train on them.

    `crops` replaces the planned crops (e.g. `choose_crops`' picks away from nodata). σ not given in the case is
    the median, per band, of the crops' estimates.
    """
    options = (options or SolverOptions()).validated()
    log = log or (lambda text: None)
    rows, cols = shape
    if rows % case.step or cols % case.step:
        raise ImageTooSmallError(f"the scene ({rows}×{cols} px) must be a multiple of {case.step} px on each side: "
                                 "crop it to whole coarse pixels")
    device, reason = resolve_device(options.device)
    crops = crops or plan_crops(Window(0, 0, cols, rows), scene.crops, scene.crop_size, case.step)
    crop_data = [read(w) for w in crops]
    case = case.fitted(crop_data)   # one sensor model (co-registration, response, PSF) for the whole scene
    crop_data = [case.inputs(d) for d in crop_data]
    noise = median_noise([case.noise(d) for d in crop_data])
    scale = _max_scale([case.scale(d) for d in crop_data])
    # crops must not be too small: on a real 240² px window, 120 px crops made the network worse than its own
    # first estimate (ERGAS 1.84–1.97 against 1.67), 168 px crops gave 1.69–1.71 and the whole window 1.65;
    # leaving the crop borders out of the loss or training on mirrored crops did not help (1.86, 2.04)
    problems = [case.problem(d, device, noise, scale)[0] for d in crop_data]
    del crop_data
    log(f"training one network on {len(crops)} crops of {crops[0].width}×{crops[0].height} px spread over the scene")
    model, record, _ = train(problems, options, callback)
    record.device_reason = reason
    record.sigma = noise
    record.recipe = case.recipe()
    return SceneModel(case, model, noise, scale, crops, record, device, scene.window_statistics)


def choose_crops(shape: tuple[int, int], count: int, size: int, step: int,
                 valid_fraction: Callable[[Window], float], candidates_per_crop: int = 3) -> list[Window]:
    """`count` training crops of a scene of `shape` (rows, cols) kept away from nodata: the crops `plan_crops`
    spreads over the scene, where each one with invalid pixels is swapped for the most valid of
    `candidates_per_crop` × `count` spread crops, when that one is more valid. `valid_fraction(window)` gives the
    share of valid pixels. Crops without valid pixels are dropped; none left raises ImageTooSmallError."""
    rows, cols = shape
    area = Window(0, 0, cols, rows)
    planned = plan_crops(area, count, size, step)
    fraction = {w: valid_fraction(w) for w in planned}
    if any(f < 1.0 for f in fraction.values()):
        pool = [w for w in plan_crops(area, count * candidates_per_crop, size, step) if w not in fraction]
        pool_fraction = {w: valid_fraction(w) for w in pool}
        pool.sort(key=lambda w: -pool_fraction[w])
        chosen = []
        for w in planned:
            if fraction[w] < 1.0 and pool and pool_fraction[pool[0]] > fraction[w]:
                w = pool.pop(0)
                fraction[w] = pool_fraction[w]
            chosen.append(w)
        planned = chosen
    crops = [w for w in planned if fraction[w] > 0]
    if not crops:
        raise ImageTooSmallError("no training crop of the scene holds valid data: is the area nodata everywhere?")
    return crops
