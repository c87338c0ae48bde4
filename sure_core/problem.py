"""What was observed: a fusion problem is a list of observation groups of one unknown image.

Each `Observation` says which channels of the unknown image x it sees, through which operator A
(blur+decimate, identity, spectral response), with which noise σ per observed band, and how it is fed
to the network: back-projected to the target grid (A†y, for low-resolution groups) or as it is (for
groups observed at the target resolution). The three fusion cases only differ in their observations.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import InputShapeError, InvalidInputValueError
from .operators import LinearOperator


@dataclass
class Observation:
    name: str
    data: torch.Tensor                 # (bands, rows, cols), already in the problem's normalised scale
    operator: LinearOperator
    sigma: torch.Tensor                # (bands,) noise std in the same scale
    output_channels: list[int]         # channels of x that `operator` acts on
    back_project: bool = True          # network input A†y (True) or y (False)
    weight: float = 1.0                # weight of the whole group in the loss

    def __post_init__(self):
        if self.data.ndim != 3:
            raise InputShapeError(f"observation {self.name!r} must be (bands, rows, cols), "
                                  f"got shape {tuple(self.data.shape)}")
        if not torch.isfinite(self.data).all():
            raise InvalidInputValueError(f"observation {self.name!r} contains NaN or inf: "
                                         "mask or fill nodata before fusing")
        self.sigma = torch.as_tensor(self.sigma, dtype=self.data.dtype, device=self.data.device).reshape(-1)
        if self.sigma.numel() == 1:
            self.sigma = self.sigma.expand(self.data.shape[0]).clone()
        if self.sigma.numel() != self.data.shape[0]:
            raise InputShapeError(f"observation {self.name!r} has {self.data.shape[0]} bands "
                                  f"but {self.sigma.numel()} noise σ values")
        if not torch.isfinite(self.sigma).all() or (self.sigma < 0).any():
            raise InvalidInputValueError(f"noise σ of {self.name!r} must be finite and ≥ 0, got {self.sigma.tolist()}")

    @property
    def bands(self) -> int:
        return self.data.shape[0]

    def network_input(self) -> torch.Tensor:
        return self.operator.A_dagger(self.data) if self.back_project else self.data

    def noise_constant(self) -> torch.Tensor:
        """Per band: the trace term tr(Σ_u) that turns the SURE loss into an unbiased risk estimate."""
        var = self.sigma ** 2
        if self.back_project:
            return var * self.operator.back_projection_trace()
        return var * (self.data.shape[-2] * self.data.shape[-1])


@dataclass
class FusionProblem:
    observations: list[Observation]
    out_channels: int
    hr_shape: tuple[int, int]
    guide_channels: int = 0            # the first input channels that steer the network (the guide stream)
    scale: torch.Tensor | None = None  # multiply the normalised output by this to get data units
    refined_injection: bool = True     # first estimate with the injection gain and ring-wise shrinkage (injection)
    guided_smoothing: bool = True      # output smoothed by the guides' non-local means (S2: when their σ is given)
    cross_band_shrinkage: bool = False  # refined injection: LR residuals shrunk by cross-band ring matrices (S2
                                        # when the coarse bands' σ is given; see injection)
    registration: dict = field(default_factory=dict)  # group name → `coregistration.Registration.as_record()`
    guide_psf_sigma: float | None = None  # first estimate: the guides' own blur (target pixels), by which a coarse
                                          # band may look sharper than its operator, and more is divided out (see
                                          # `sharpness`); None: not checked
    input_slices: list[slice] = field(init=False)

    def __post_init__(self):
        start = 0
        self.input_slices = []
        for obs in self.observations:
            self.input_slices.append(slice(start, start + obs.bands))
            start += obs.bands
            if max(obs.output_channels) >= self.out_channels:
                raise InputShapeError(f"observation {obs.name!r} refers to output channel "
                                      f"{max(obs.output_channels)} of {self.out_channels}")

    @property
    def in_channels(self) -> int:
        return self.input_slices[-1].stop

    def network_input(self) -> torch.Tensor:
        """z = concatenation of every group's network input, batch of 1."""
        return torch.cat([obs.network_input() for obs in self.observations], dim=0)[None]
