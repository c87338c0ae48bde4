"""The guided attention network of Deep SURE for Sentinel-2 (docs/method.md §3.2).

A guide stream (the bands observed at full resolution) builds an encoder–decoder without resampling; its
decoder features weight, through feature-refinement units (FRU), a second stream fed with the
back-projected low-resolution bands. Modules are shared across depths, as in the paper: with width 64
and skip width 32 the network has 148,012 parameters.

`output="sigmoid"` is the paper's head (outputs in (0, 1)). `output="linear"` with a zero-initialised head
makes the network start from a zero correction, used by the residual recipe of the solver.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="reflect" if k > 1 else "zeros", bias=bias)


def _conv_bn_act(cin: int, cout: int, k: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(cin, cout, k)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class FeatureRefinementUnit(nn.Module):
    """FRU(guide, x) = LReLU(BN(Conv1×1 x) ⊙ sigmoid(softplus(Conv1×1 guide))): attention weights in [0.5, 1)."""

    def __init__(self, width: int, norm: bool = True):
        super().__init__()
        self.feature = _conv(width, width, 1)
        self.norm = nn.BatchNorm2d(width, affine=False) if norm else nn.Identity()
        self.weight = nn.Sequential(_conv(width, width, 1), nn.Softplus(), nn.Sigmoid())
        self.act = nn.LeakyReLU(0.2)

    def forward(self, guide: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.feature(x)) * self.weight(guide))


class GuidedAttentionNet(nn.Module):
    """s2_attention_net: input channels = [guide bands, back-projected bands]; outputs `out_channels`."""

    def __init__(self, guide_channels: int, lowres_channels: int, out_channels: int, width: int = 64,
                 skip_width: int = 32, depth: int = 5, norm: bool = True, output: str = "sigmoid"):
        super().__init__()
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")
        self.guide_channels = guide_channels
        self.depth = depth
        self.enc0 = _conv_bn_act(guide_channels, width, 3, norm)
        self.enc = _conv_bn_act(width, width, 3, norm)
        self.skip = _conv_bn_act(width, skip_width, 1, norm)
        self.dec = _conv_bn_act(width + skip_width, width, 3, norm)
        self.enc1 = _conv_bn_act(lowres_channels, width, 3, norm)
        self.conv = _conv(width, width, 3)
        self.fru = FeatureRefinementUnit(width, norm)
        self.head = _conv(width, out_channels, 1)
        self.output = output
        if output == "linear":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        guide, lowres = z[:, :self.guide_channels], z[:, self.guide_channels:]
        encoded = [self.enc0(guide)]
        for _ in range(self.depth - 1):
            encoded.append(self.enc(encoded[-1]))
        decoded = self.enc(encoded[-1])
        t = self.enc1(lowres)
        for skip_source in reversed(encoded):
            decoded = self.dec(torch.cat([self.skip(skip_source), decoded], dim=1))
            t = self.fru(decoded, self.conv(t))
        out = self.head(t)
        return torch.sigmoid(out) if self.output == "sigmoid" else out


class _SoftplusSigmoidGate(nn.Module):
    """sigmoid(softplus(a)) computed as 1 − ½·sigmoid(ln 2 − a), with ln 2 − a folded into the convolution:
    sigmoid(log(1 + eᵃ)) = (1 + eᵃ)/(2 + eᵃ) = 1 − ½/(1 + e^(a − ln 2)). One transcendental pass instead of two."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, guide: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(guide)).mul_(-0.5).add_(1.0)


def _negated_shifted(conv: nn.Conv2d, shift: float) -> nn.Conv2d:
    out = copy.deepcopy(conv)
    with torch.no_grad():
        out.weight.neg_()
        if out.bias is None:
            out.bias = nn.Parameter(torch.zeros(out.out_channels, device=out.weight.device, dtype=out.weight.dtype))
        out.bias.neg_().add_(shift)
    return out


def inference_copy(net: nn.Module) -> nn.Module:
    """A copy of a trained `GuidedAttentionNet` for inference with its BatchNorm running statistics: each
    BatchNorm folded into the convolution before it, the FRU gate computed with one sigmoid, in-place
    activations, channels-last weights. Same outputs up to float rounding; measured 1.45× faster on a
    1116² px Sentinel-2 tile on this CPU (2 threads, channels-last input). Other modules are copied as they are."""
    out = copy.deepcopy(net).eval()
    for module in out.modules():
        if isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(module[0], nn.Conv2d) \
                and isinstance(module[1], nn.BatchNorm2d) and module[1].track_running_stats:
            module[0] = fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
        if isinstance(module, nn.LeakyReLU):
            module.inplace = True
        if isinstance(module, FeatureRefinementUnit):
            if isinstance(module.norm, nn.BatchNorm2d) and module.norm.track_running_stats:
                module.feature = fuse_conv_bn_eval(module.feature, module.norm)
                module.norm = nn.Identity()
            conv, *rest = module.weight
            if [type(m) for m in rest] == [nn.Softplus, nn.Sigmoid] and rest[0].beta == 1:
                module.weight = _SoftplusSigmoidGate(_negated_shifted(conv, math.log(2.0)))
    for p in out.parameters():
        p.requires_grad_(False)
    return out.to(memory_format=torch.channels_last)
