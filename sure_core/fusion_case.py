"""A fusion case: what is particular to one kind of input, behind one interface the runner uses.

Three cases: Sentinel-2 (`s2_sharpening.Sentinel2Case`), hyperspectral + multispectral (`hsms.HsMsCase`) and
pansharpening (`pansharpening.PanMsCase`, both on `pair_fusion.PairCase`). A case owns its σ (given by
observation name; the rest estimated), its scale, the fitting of its sensor model (co-registration, spectral
response, PSF, PAN weights), the building of its observations, its recipe (decided once, recorded in the run
record) and its output bands. Operators, losses, the first estimate, the solver and the smoothing know no case.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from .problem import FusionProblem


class FusionCase(Protocol):
    #: observation names, in the problem's order: the keys of σ everywhere (given, estimated, `RunRecord.sigma`)
    observations: tuple[str, ...]
    #: the coarsest resolution ratio: windows lie on multiples of it (target-grid pixels)
    step: int
    #: σ the user gave by observation name (data units); the others are estimated
    sigma: dict

    def window_fitted(self, data) -> FusionCase:
        """This case with its sensor model fitted on one window's data (trained on that window alone)."""

    def fitted(self, samples: list) -> FusionCase:
        """This case with one sensor model for a scene, fitted on a few windows of it (the training crops)."""

    def inputs(self, data):
        """One window's data as its problem sees them (e.g. the PAN brought to the MS sharpness), made once per
        window: `noise`, `scale` and `problem` take this, the sensor-model fits (`window_fitted`, `fitted`) the
        data as read."""

    def noise(self, data) -> dict:
        """σ by observation name (data units) for one window: the given ones, the rest estimated."""

    def scale(self, data):
        """The normalising scale of one window's data (a scene uses the largest over its crops)."""

    def problem(self, data, device: torch.device | str = "cpu", noise: dict | None = None, scale=None
                ) -> tuple[FusionProblem, dict]:
        """The window's problem and the σ used by observation name (data units); `noise` and `scale` fixed for a
        scene, else the window's own (σ given, or estimated)."""

    def output(self, x_hat: torch.Tensor, problem: FusionProblem) -> np.ndarray:
        """The estimate (bands, rows, cols, the problem's scale) as output bands in data units."""

    def recipe(self) -> dict:
        """The case's one recipe decision: {'refined_injection', 'guided_smoothing', 'cross_band_shrinkage'}."""


def median_noise(estimates: list[dict]) -> dict:
    """One σ per band for a scene from its windows' estimates (by observation name): the median."""
    return {key: np.median(np.stack([np.asarray(e[key], dtype=np.float64) for e in estimates]), axis=0).tolist()
            for key in estimates[0]}
