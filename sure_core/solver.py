"""Train a guided network on one scene by SURE (or BP) and return the fused image with a run record.

The solver is the same for every fusion case: it takes a `FusionProblem`, a network factory and
`SolverOptions`, and reports progress through a callback that may ask to stop.

Two recipes are provided:
* `SolverOptions.paper()` — the paper's settings (sigmoid head predicting the whole image, width 64,
  Adam lr 1e-2 constant, ~3000 iterations, last iterate).
* `SolverOptions()` (the default, "fast") — the network predicts a correction to the back-projected
  input (zero-initialised head, so training starts from the back-projection), per-band input
  normalisation, a loss weighted per band by the inverse band energy (SURE stays unbiased band by band),
  a narrower network, a one-cycle learning-rate schedule and an average of the estimates over the last
  iterations. docs/method.md §3.3 describes them; docs/benchmarks.md and docs/decisions.md hold the measurements.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import guided_smoothing
from .error_estimate import ErrorEstimate, estimate_error, pooled
from .errors import FusionCancelled, SureFusionError
from .injection import DetailInjectionBase, InjectionFit, fit_injection
from .losses import BackProjectionLoss, SureLoss
from .networks import GuidedAttentionNet, inference_copy
from .problem import FusionProblem


@dataclass(frozen=True)
class SolverOptions:
    iterations: int = 300
    loss: str = "sure"                 # 'sure' or 'bp'
    learning_rate: float = 3e-3
    schedule: str = "onecycle"         # 'constant', 'cosine' or 'onecycle'
    width: int = 16
    skip_width: int = 8
    residual: bool = True              # predict a correction to a linear first estimate (see `base`)
    base: str = "injection"            # that first estimate: 'injection' (detail injection) or 'back_projection'
    refined_injection: bool | None = None  # injection gain + ring shrinkage in the first estimate (None: the case's)
    smoothing: bool | None = None      # guided smoothing of the output, strength by SURE (None: the case's: S2 with
                                       # the 10 m σ given; True/False: always/never, with the SURE loss)
    band_weighting: str = "relative"   # 'none' (paper) or 'relative' (1 / band energy)
    average_last: float = 0.2          # fraction of final iterations whose estimates are averaged (0 = last iterate)
    adam_eps: float = 1e-8             # the paper uses 1e-3, which damps small gradients
    epsilon: float = 1e-5              # finite-difference step of the Monte-Carlo divergence
    seed: int = 0
    device: str = "auto"
    threads: int | None = None         # CPU threads for torch (None: leave torch's default)
    progress_every: int | None = None  # callback interval; default 1 on CPU, 10 on CUDA (fewer host syncs)
    mixed_precision: bool = True       # CUDA only, and only for the BP loss (the SURE divergence needs float32)
    network: str = "auto"              # 'auto': train, and keep the network only where SURE says it beats the first
                                       # estimate (see `network_pays`); 'always'; 'never': the first estimate alone
    error_estimate: bool = True        # estimate each band's error after training (see `error_estimate`)

    @classmethod
    def paper(cls, **overrides) -> SolverOptions:
        base = cls(iterations=3000, learning_rate=1e-2, adam_eps=1e-3, schedule="constant", width=64, skip_width=32,
                   residual=False, band_weighting="none", average_last=0.0, smoothing=False)
        return replace(base, **overrides)

    def validated(self) -> SolverOptions:
        if self.loss not in ("sure", "bp"):
            raise SureFusionError(f"loss must be 'sure' or 'bp', got {self.loss!r}")
        if self.schedule not in ("constant", "cosine", "onecycle"):
            raise SureFusionError(f"schedule must be 'constant', 'cosine' or 'onecycle', got {self.schedule!r}")
        if self.band_weighting not in ("none", "relative"):
            raise SureFusionError(f"band_weighting must be 'none' or 'relative', got {self.band_weighting!r}")
        if self.base not in ("injection", "back_projection"):
            raise SureFusionError(f"base must be 'injection' or 'back_projection', got {self.base!r}")
        if self.iterations < 1:
            raise SureFusionError(f"iterations must be ≥ 1, got {self.iterations}")
        if not 0 <= self.average_last < 1:
            raise SureFusionError(f"average_last must lie in [0, 1), got {self.average_last}")
        if self.width < 1 or self.skip_width < 1 or self.learning_rate <= 0:
            raise SureFusionError("width, skip_width and learning_rate must be positive")
        if self.network not in ("auto", "always", "never"):
            raise SureFusionError(f"network must be 'auto', 'always' or 'never', got {self.network!r}")
        if self.network == "never" and not self.residual:
            raise SureFusionError("network='never' needs a first estimate: "
                                  "the paper's recipe (residual=False) has none")
        return self


@dataclass
class Progress:
    iteration: int       # 1-based
    iterations: int
    loss: float
    risk: float          # SURE estimate of the projected MSE per element (normalised scale); nan for BP
    elapsed: float
    eta: float


@dataclass
class RunRecord:
    options: dict
    device: str
    device_reason: str
    loss_history: list[float] = field(default_factory=list)
    risk_history: list[float] = field(default_factory=list)
    final_risk: float = float("nan")
    sigma: dict = field(default_factory=dict)                 # observation name → σ per band, data units
    recipe: dict = field(default_factory=dict)                # the fusion case's recipe (`FusionCase.recipe`)
    seconds: float = 0.0
    seconds_per_iteration: float = 0.0
    parameters: int = 0
    smoothing_strength: float = 0.0                           # h of the guided smoothing (0: none)
    cross_band_shrinkage: bool = False                        # first estimate's LR residuals mixed across bands
    smoothing_risks: dict = field(default_factory=dict)       # h → SURE of smoothing the guides
    network_applied: bool = True                              # False: the output is the first estimate
    network_gain: float = float("nan")                        # SURE gain of the network over the first estimate,
    network_gain_se: float = float("nan")                     # relative to the latter's risk, and its standard error
    network_decision: str = ""                                # why the network was or was not applied
    gain_history: list[float] = field(default_factory=list)   # per iteration, r_first − r_net over mean |r_first|
    base_risk_history: list[float] = field(default_factory=list)  # per iteration, r_first (SURE of the first estimate)
    iterations_run: int = 0
    registration: dict = field(default_factory=dict)          # group → measured shift (coregistration)
    error: ErrorEstimate | None = None                        # per-band error estimate, data units (see error_estimate)
    error_seconds: float = 0.0


ProgressCallback = Callable[[Progress], "bool | None"]


class ResidualEstimator(nn.Module):
    """x̂ = base(z) + scale · net([guides, first estimate], normalised), or the paper's x̂ = net(z) without `base`.

    `guide_channels` are input channels that steer the network without being output bands themselves (the
    MS or PAN image of a spectral guide); the S2 guides (10 m bands) are already in the first estimate.
    """

    def __init__(self, net: nn.Module, base: nn.Module | None, in_mean: torch.Tensor,
                 in_std: torch.Tensor, out_scale: torch.Tensor | None, guide_channels: list[int] | None = None):
        super().__init__()
        self.net = net
        self.base = base
        self.guide_channels = list(guide_channels or [])
        self.register_buffer("in_mean", in_mean)
        self.register_buffer("in_std", in_std)
        self.register_buffer("out_scale", out_scale if out_scale is not None else torch.ones(1))

    def network_input(self, z: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        return torch.cat([z[:, self.guide_channels], first], dim=1) if self.guide_channels else first

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # channels-last activations: oneDNN (CPU) and cuDNN convolutions run faster on them (measured on this
        # CPU: a training iteration 1.15–1.2× faster on a 192² px S2 crop, inference 1.3× on a 1116² px tile)
        if self.base is None:
            return self.net(((z - self.in_mean) / self.in_std).contiguous(memory_format=torch.channels_last))
        first = self.base(z)
        self.last_first = first.detach()   # for the loss to score the first estimate too (see losses.SureLoss)
        features = (self.network_input(z, first) - self.in_mean) / self.in_std
        return first + self.out_scale * self.net(features.contiguous(memory_format=torch.channels_last))


class FirstEstimateOnly(nn.Module):
    """x̂ = the first estimate: a model whose network did not beat it (`SolverOptions.network`)."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.base(z)


#: the network is kept when its SURE gain over the first estimate, less two standard errors, is at least this share of
#: the first estimate's risk (measurements: docs/decisions.md)
NETWORK_MIN_GAIN = 0.02
#: the decision is taken from this share of the iterations on, every tenth of them, over the last tenth
NETWORK_DECISION_FROM = 0.3


def network_pays(gains: torch.Tensor, base_risks: torch.Tensor, min_gain: float = NETWORK_MIN_GAIN,
                 margin: float = 2.0) -> tuple[bool, float, float]:
    """(whether the network's SURE gain over the first estimate is significant, the gain relative to the first
    estimate's risk, its standard error) from paired per-iteration gains r_first − r_net over a window: significant
    when the gain less `margin` standard errors reaches `min_gain`."""
    scale = float(base_risks.abs().mean().clamp_min(1e-30))
    mean = float(gains.mean()) / scale
    se = float(gains.std() / math.sqrt(max(len(gains), 1))) / scale if len(gains) > 1 else float("inf")
    return mean - margin * se >= min_gain, mean, se


class BackProjectionBase(nn.Module):
    """base(z) = the input channel holding each output band's own (back-projected) observation."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, self.channels]


def _base_channels(problem: FusionProblem) -> list[int] | None:
    """For each output channel, the input channel holding its own (back-projected) observation, if all have one."""
    source: list[int | None] = [None] * problem.out_channels
    for obs, sl in zip(problem.observations, problem.input_slices):
        if getattr(obs.operator, "bandwise", False):
            for k, ch in enumerate(obs.output_channels):
                source[ch] = sl.start + k
    return None if any(s is None for s in source) else source


def _spectral_guide_channels(problem: FusionProblem) -> list[int]:
    """Input channels observed at the target resolution through a non-band-wise operator (MS or PAN guides)."""
    return [ch for obs, sl in zip(problem.observations, problem.input_slices)
            if not obs.back_project and not getattr(obs.operator, "bandwise", False)
            for ch in range(sl.start, sl.stop)]


def _schedule(optimiser, options: SolverOptions):
    n = options.iterations
    if options.schedule == "constant":
        return None
    if options.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=n, eta_min=options.learning_rate * 0.02)
    return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=options.learning_rate, total_steps=n,
                                               pct_start=0.15, div_factor=10.0, final_div_factor=50.0,
                                               cycle_momentum=False)


def default_network(problem: FusionProblem, options: SolverOptions) -> nn.Module:
    guide = problem.guide_channels
    # residual recipe: the network sees [spectral guides, first estimate (one channel per output band)], guides
    # first; for S2 the guides are the 10 m bands, the first channels of the first estimate
    if options.residual:
        inputs = len(_spectral_guide_channels(problem)) + problem.out_channels
    else:
        inputs = problem.in_channels
    return GuidedAttentionNet(guide, inputs - guide, problem.out_channels, width=options.width,
                              skip_width=options.skip_width, output="linear" if options.residual else "sigmoid")


@dataclass
class TrainedModel:
    """A network trained on one scene, with what it needs to be applied to any window of that scene."""

    net: nn.Module
    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_scale: torch.Tensor | None
    guide_channels: list[int]
    injection: InjectionFit | None      # scene-wide first estimate (residual recipe with detail injection)
    options: SolverOptions
    smoothing_strength: float = 0.0     # guided smoothing of every output's coarse bands (see `guided_smoothing`)
    smoothing_sigma: torch.Tensor | None = None   # the guides' σ it weighs patches with (normalised scale)
    network_applied: bool = True        # False: every window gets the first estimate alone

    _inference_net: nn.Module | None = field(default=None, init=False, repr=False)

    def estimator(self, problem: FusionProblem, net: nn.Module | None = None) -> nn.Module:
        base = _first_estimate_base(problem, self.options, self.injection)
        if not self.network_applied:
            return FirstEstimateOnly(base)
        return ResidualEstimator(net or self.net, base, self.in_mean, self.in_std, self.out_scale, self.guide_channels)

    @torch.no_grad()
    def apply(self, problem: FusionProblem, window_statistics: bool = False) -> torch.Tensor:
        """x̂ (1, bands, rows, cols) of `problem` in its normalised scale. BatchNorm uses the statistics of the
        training crops (through a copy of the network folded for inference, built at the first call: apply a
        model once it is trained), or with `window_statistics` those of this window (as during training)."""
        if not window_statistics or not self.network_applied:
            if self._inference_net is None and self.network_applied:
                self._inference_net = inference_copy(self.net)
            return self.smoothed(problem, self.estimator(problem, self._inference_net)(problem.network_input()))
        self.net.train(True)
        try:
            return self.smoothed(problem, self.estimator(problem)(problem.network_input()))
        finally:
            self.net.eval()

    def refitted(self, problem: FusionProblem) -> Callable[[torch.Tensor], torch.Tensor]:
        """x̂(z) of another problem of this layout with this network, the first estimate fitted on that problem and
        the smoothing weighing its own guides' noise (the error estimate's self-check, see `error_estimate`)."""
        model = replace(self, injection=None)
        if self.smoothing_strength > 0:
            model.smoothing_sigma = guided_smoothing.guide_noise(*smoothing_guides(problem))
        estimator = model.estimator(problem)
        return lambda z: model.smoothed(problem, estimator(z))

    def smoothed(self, problem: FusionProblem, x_hat: torch.Tensor) -> torch.Tensor:
        """x̂ after the guided smoothing the model was trained with (unchanged when its strength is 0)."""
        if self.smoothing_strength <= 0:
            return x_hat
        guides, _ = smoothing_guides(problem)
        return guided_smoothing.smooth_channels(x_hat, smoothed_channels(problem), guides,
                                                self.smoothing_sigma.to(guides.device), self.smoothing_strength)


def smoothing_guides(problem: FusionProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """The bands observed at the target resolution (S2 10 m bands, MS or PAN guides) and their noise σ."""
    observed = [obs for obs in problem.observations if not obs.back_project]
    return torch.cat([obs.data for obs in observed]), torch.cat([obs.sigma for obs in observed])


def smoothed_channels(problem: FusionProblem) -> list[int]:
    """The output bands the smoothing acts on: those observed at a coarser resolution, whose fine detail comes
    from the guides (bands observed at the target resolution, like S2's 10 m bands, stay as estimated; leaving
    them out also saves a third of the smoothing's time on a 12-band S2 tile)."""
    return sorted({ch for obs in problem.observations if obs.back_project for ch in obs.output_channels})


def smooth_alone(problem: FusionProblem, x_hat: torch.Tensor) -> torch.Tensor:
    """x̂ (bands, H, W) after the guided smoothing with the strength SURE picks on this problem's guides (the
    first-estimate-only paths of the benchmarks; the solver itself goes through `train`)."""
    guides, noise = smoothing_guides(problem)
    choice = guided_smoothing.choose_strength([(guides, noise)])
    return guided_smoothing.smooth_channels(x_hat, smoothed_channels(problem), guides, choice.sigma, choice.strength)


def _smoothing_enabled(problem: FusionProblem, options: SolverOptions) -> bool:
    # like the SURE-tuned first estimate, the smoothing needs a risk estimate: the BP-only recipe goes without
    wanted = problem.guided_smoothing if options.smoothing is None else options.smoothing
    return wanted and options.loss == "sure" and any(not obs.back_project for obs in problem.observations)


def _first_estimate_base(problem: FusionProblem, options: SolverOptions, injection: InjectionFit | None
                         ) -> nn.Module | None:
    """The linear first estimate the network corrects (None for the paper's recipe, which has none)."""
    if not options.residual:
        return None
    if options.base == "injection":
        return DetailInjectionBase(problem, tune=options.loss == "sure", fit=injection,
                                   refined=options.refined_injection)
    return BackProjectionBase(_base_channels(problem))


def _recalibrate_batch_norm(net: nn.Module, estimators: list, inputs: list) -> None:
    """Replace BatchNorm running statistics by their average over the training problems (for tiled inference)."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad():
        for estimator, z in zip(estimators, inputs):
            estimator(z)
    net.eval()


def train(problems: list[FusionProblem], options: SolverOptions | None = None,
          callback: ProgressCallback | None = None,
          network_factory: Callable[[FusionProblem, SolverOptions], nn.Module] = default_network,
          ) -> tuple[TrainedModel, RunRecord, torch.Tensor | None]:
    """Train one network on one or several problems of the same layout (crops of one scene), one problem per
    iteration in turn. Returns the model, the run record and, for a single problem, x̂ as `solve` defines it
    (the train-mode estimate averaged over the last iterations); with several problems the model's weights are
    averaged over the last iterations instead and BatchNorm statistics are fixed to the crops' average.
    """
    options = (options or SolverOptions()).validated()
    problem = problems[0]
    device = problem.observations[0].data.device
    record = RunRecord(options=asdict(options), device=str(device), device_reason="",
                       registration=dict(problems[0].registration))
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(options.seed + 1)

    zs = [p.network_input() for p in problems]
    injection = None
    if options.residual:
        if _base_channels(problem) is None:
            raise SureFusionError("the residual recipe needs every output band among the network inputs; "
                                  "use residual=False")
        if options.base == "injection":
            # the BP-only recipe uses no risk estimate anywhere, so its first estimate is not SURE-tuned either
            injection = fit_injection(problems, tune=options.loss == "sure", refined=options.refined_injection)
            record.cross_band_shrinkage = any(s is not None and s.matrices is not None for s in injection.shrink)
    guides = _spectral_guide_channels(problem) if options.residual else []
    if not options.residual:  # the paper feeds the [0, 1]-scaled data as it is
        channels = zs[0].shape[1]
        mean = torch.zeros(1, channels, 1, 1, device=device)
        std = torch.ones(1, channels, 1, 1, device=device)
        out_scale = None
    else:  # the network sees the first estimate (and spectral guides), normalised band by band over all problems
        with torch.no_grad():
            features = torch.cat([
                torch.cat([z[:, guides], _first_estimate_base(p, options, injection)(z)], dim=1).flatten(2)
                for p, z in zip(problems, zs)], dim=2)
        mean = features.mean(dim=(0, 2))[None, :, None, None]
        std = features.std(dim=(0, 2))[None, :, None, None].clamp_min(1e-6)
        out_scale = std[:, len(guides):]
    net = network_factory(problem, options).to(device=device, memory_format=torch.channels_last)
    model = TrainedModel(net, mean, std, out_scale, guides, injection, options)
    estimators = [model.estimator(p).to(device) for p in problems]
    net.train()  # BatchNorm uses the statistics of this scene, as in the paper
    record.parameters = sum(p.numel() for p in net.parameters())

    band_weights = None
    if options.band_weighting == "relative":
        energy = [torch.stack([p.observations[g].network_input().pow(2).mean(dim=(-2, -1))
                               for p in problems]).mean(dim=0)
                  for g in range(len(problem.observations))]
        band_weights = [1.0 / e.clamp_min(1e-12) for e in energy]
        norm = torch.cat(band_weights).mean()
        band_weights = [w / norm for w in band_weights]
    loss_fn = SureLoss(band_weights, options.epsilon) if options.loss == "sure" else BackProjectionLoss(band_weights)

    optimiser = torch.optim.Adam(net.parameters(), lr=options.learning_rate, eps=options.adam_eps, amsgrad=True)
    scheduler = _schedule(optimiser, options)
    use_amp = device.type == "cuda" and options.mixed_precision and options.loss == "bp"
    if device.type == "cuda" and options.loss == "sure":
        torch.backends.cudnn.allow_tf32 = False  # the finite-difference divergence needs full float32
        torch.backends.cuda.matmul.allow_tf32 = False
    every = options.progress_every or (10 if device.type == "cuda" else 1)
    n_average = int(round(options.average_last * options.iterations))
    average = None
    averaged_weights = None
    losses = torch.zeros(options.iterations, device=device)
    risks = torch.zeros(options.iterations, device=device)
    # what the network adds, measured by SURE against the first estimate it corrects (paired, same probe)
    gains = torch.zeros(options.iterations, device=device)
    base_risks = torch.zeros(options.iterations, device=device)
    tracked = options.loss == "sure" and options.residual
    window = max(10, options.iterations // 10)
    stopped = False
    iterations_run = 0

    start = time.perf_counter()
    for it in range(0 if options.network == "never" else options.iterations):
        k = it % len(problems)
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            value = loss_fn(problems[k], estimators[k], zs[k], generator)
        value.loss.backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        losses[it] = value.loss.detach()
        risks[it] = value.risk
        iterations_run = it + 1
        if value.base_risk is not None:
            base_risks[it] = value.base_risk
            gains[it] = value.base_risk - value.risk
        if it >= options.iterations - n_average:
            if len(problems) == 1:
                est = value.estimate.detach()
                average = est.clone() if average is None else average + est
            else:
                params = [p.detach().clone() for p in net.parameters()]
                averaged_weights = params if averaged_weights is None else \
                    [a + p for a, p in zip(averaged_weights, params)]
        if callback is not None and ((it + 1) % every == 0 or it + 1 == options.iterations):
            elapsed = time.perf_counter() - start
            progress = Progress(it + 1, options.iterations, float(losses[it]), float(risks[it]), elapsed,
                                elapsed / (it + 1) * (options.iterations - it - 1))
            if callback(progress):
                raise FusionCancelled(f"stopped at iteration {it + 1} of {options.iterations} on request")
        if (options.network == "auto" and tracked and it + 1 < options.iterations and (it + 1) % window == 0
                and it + 1 >= NETWORK_DECISION_FROM * options.iterations):
            if not network_pays(gains[it + 1 - window:it + 1], base_risks[it + 1 - window:it + 1])[0]:
                stopped = True
                break
    model.network_applied = options.network != "never" and not stopped
    record.network_applied = model.network_applied
    record.iterations_run = iterations_run
    if tracked and iterations_run >= 2:
        tail = slice(max(0, iterations_run - window), iterations_run)
        _, record.network_gain, record.network_gain_se = network_pays(gains[tail], base_risks[tail])
    record.network_decision = _network_decision(options, tracked, stopped, record)
    if tracked and iterations_run:
        scale = float(base_risks[:iterations_run].abs().mean().clamp_min(1e-30))
        record.gain_history = (gains[:iterations_run] / scale).cpu().tolist()
        record.base_risk_history = base_risks[:iterations_run].cpu().tolist()
    result = None
    if not model.network_applied:
        if len(problems) == 1:
            with torch.no_grad():
                result = model.estimator(problem)(zs[0])
    elif len(problems) == 1:
        result = (average / n_average) if n_average else value.estimate.detach()
    else:
        if averaged_weights is not None:
            with torch.no_grad():
                for p, a in zip(net.parameters(), averaged_weights):
                    p.copy_(a / n_average)
        _recalibrate_batch_norm(net, estimators, zs)
    record.seconds_per_iteration = (time.perf_counter() - start) / max(iterations_run, 1)
    if _smoothing_enabled(problem, options):
        with torch.no_grad():
            choice = guided_smoothing.choose_strength([smoothing_guides(p) for p in problems], options.seed)
        model.smoothing_strength = record.smoothing_strength = choice.strength
        model.smoothing_sigma = choice.sigma
        record.smoothing_risks = choice.risks
        if result is not None:
            result = model.smoothed(problem, result)
    if options.error_estimate:
        error_start = time.perf_counter()
        record.error = _estimate_error(problems, model, estimators, result, options)
        record.error_seconds = time.perf_counter() - error_start
    record.seconds = time.perf_counter() - start
    record.loss_history = losses[:iterations_run].cpu().tolist()
    record.risk_history = risks[:iterations_run].cpu().tolist()
    if model.network_applied:
        tail = [r for r in record.risk_history[-max(n_average, 10):] if math.isfinite(r)]
    else:   # the output is the first estimate: its own risk
        recent = base_risks[max(0, iterations_run - window):iterations_run].cpu().tolist()
        tail = [r for r in recent if math.isfinite(r)]
    record.final_risk = float(np.mean(tail)) if tail else float("nan")
    return model, record, result


def _network_decision(options: SolverOptions, tracked: bool, stopped: bool, record: RunRecord) -> str:
    """One sentence for the log, the metadata and the report."""
    gain = (f"SURE gain {100 * record.network_gain:.1f} % ± {100 * record.network_gain_se:.1f} % of the first "
            f"estimate's risk" if math.isfinite(record.network_gain) else "")
    if options.network == "never":
        return "network not trained (NETWORK=never): the output is the linear first estimate"
    if stopped:
        return (f"network not applied: {gain} after {record.iterations_run} of {options.iterations} iterations, "
                f"below the {100 * NETWORK_MIN_GAIN:g} % it must significantly exceed; "
                "the output is the first estimate")
    if not tracked:
        return "network applied (no SURE to weigh it with: " + ("BP loss)" if options.loss != "sure" else
                                                               "the paper's recipe has no first estimate)")
    return f"network applied ({'NETWORK=always' if options.network == 'always' else 'it pays'}): {gain}"


def _estimate_error(problems: list[FusionProblem], model: TrainedModel, estimators: list, result: torch.Tensor | None,
                    options: SolverOptions) -> ErrorEstimate:
    """The per-band error estimate of the trained model's output on its training problems (one, or the crops of a
    scene: pooled), with the network as it ends training (BatchNorm in the mode it is left in), or the first
    estimate alone where the network was not applied. A network left in training mode (one problem) updates its
    BatchNorm running statistics at every pass, and those are what a scene's tiles are later fused with: they are
    put back as training left them."""
    kept = {name: buffer.clone() for name, buffer in model.net.named_buffers()} if model.net is not None else {}
    try:
        return _estimates_pooled(problems, model, estimators, result, options)
    finally:
        if kept:
            with torch.no_grad():
                for name, buffer in model.net.named_buffers():
                    buffer.copy_(kept[name])


def _estimates_pooled(problems: list[FusionProblem], model: TrainedModel, estimators: list,
                      result: torch.Tensor | None, options: SolverOptions) -> ErrorEstimate:
    """Each problem's estimate, pooled (see `_estimate_error`)."""
    estimates = []
    for problem, estimator in zip(problems, estimators):
        if not model.network_applied:
            estimator = model.estimator(problem)

        def fused(z, problem=problem, estimator=estimator):
            return model.smoothed(problem, estimator(z))

        with torch.no_grad():
            x_out = result[0] if result is not None else fused(problem.network_input())[0]
        estimates.append(estimate_error(problem, fused, x_out, model.refitted, epsilon=options.epsilon,
                                        seed=options.seed))
    return pooled(estimates)


def solve(problem: FusionProblem, options: SolverOptions | None = None,
          callback: ProgressCallback | None = None,
          network_factory: Callable[[FusionProblem, SolverOptions], nn.Module] = default_network,
          ) -> tuple[torch.Tensor, RunRecord]:
    """Train on `problem` and return (x̂ in the problem's normalised scale, (bands, rows, cols) on CPU, record).

    The problem's tensors must already be on the device given by `options.device` (see `prepare_device`).
    Raises FusionCancelled when the callback returns True.
    """
    _, record, result = train([problem], options, callback, network_factory)
    return result[0].float().cpu(), record
