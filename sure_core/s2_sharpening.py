"""Sentinel-2 sharpening: the 20 m (and 60 m) bands brought to 10 m, guided by the 10 m bands."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from . import sentinel2 as s2
from .errors import InputShapeError, InvalidInputValueError
from .operators import BlurDecimate, Identity
from .problem import FusionProblem, Observation
from .psf import Geometry
from .solver import ProgressCallback, RunRecord, SolverOptions, smooth_alone

DEFAULT_COND = 1e-3
#: how σ is estimated when not given (`estimate_sigma`), for the output's provenance
SIGMA_ESTIMATOR = ("per band, the smaller of the wavelet MAD and the cross-band estimate (finest-scale detail that "
                   "the other bands and the finer bands on the band's grid do not explain)")


def _as_array(name: str, a, bands: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != bands:
        raise InputShapeError(f"{name} must be an array of shape ({bands}, rows, cols), got {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputValueError(f"{name} contains NaN or inf: fill or mask nodata before sharpening")
    return a


def _check_ratio(name: str, a: np.ndarray, hr_shape: tuple[int, int], ratio: int) -> None:
    expected = (hr_shape[0] // ratio, hr_shape[1] // ratio)
    if hr_shape[0] % ratio or hr_shape[1] % ratio or a.shape[1:] != expected:
        raise InputShapeError(
            f"{name} is {a.shape[1]}×{a.shape[2]} px but the 10 m bands are {hr_shape[0]}×{hr_shape[1]} px: at a "
            f"ratio of {ratio} the 10 m size must be a multiple of {ratio} and {name} exactly 1/{ratio} of it "
            f"(expected {hr_shape[0] / ratio:g}×{hr_shape[1] / ratio:g}); crop the inputs to a common extent on the "
            f"{10 * ratio} m grid")


def recipe(sigma_given: dict) -> dict:
    """The Sentinel-2 recipe, decided here once from the σ the user gave ({observation name: σ or None}, one key per
    observation of the problem).

    The guided smoothing picks its strength by a SURE that needs the 10 m bands' true σ: with σ estimated from the
    data (too high on textured scenes) it smoothed real detail (demo sample ERGAS 0.930 → 0.957), so it is on when
    that σ is given (as in the APEX protocol) and off otherwise, unless SolverOptions.smoothing says. The cross-band
    ring matrices of the first estimate need the coarse bands' σ given too: with σ estimated they changed the real
    crops by about 1 % (DSen2 first-estimate ERGAS 1.233 → 1.247), APEX gained 0.2 dB.
    """
    given = {key for key, value in sigma_given.items() if value is not None}
    return {"refined_injection": True, "guided_smoothing": "10m" in given,
            "cross_band_shrinkage": all(key in given for key in sigma_given if key != "10m")}


def build_problem(y10, y20, y60=None, sigma: dict | None = None, geometry: Geometry | str = Geometry.AREA,
                  cond: float = DEFAULT_COND, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32, scale: float | None = None,
                  registration: str | dict = "off", choices: dict | None = None) -> tuple[FusionProblem, dict]:
    """The S2 problem in grouped band order [10 m, 20 m, 60 m]; inputs are (bands, rows, cols) arrays.

    `sigma` maps '10m'/'20m'/'60m' to per-band noise std in data units; missing groups are estimated.
    `registration`: 'auto' measures each coarse group's sub-pixel shift against the 10 m bands (`coregistration`),
    'off' assumes none, a dict gives records as `measure_registration` returns them (one scene, many windows).
    Returns the problem (data divided by one global scale, as in the paper: the maximum of the inputs unless
    `scale` is given, e.g. one scale for every window of a scene) and the σ used (data units). `choices`: the
    recipe (`recipe`; by default that of the σ given here).
    """
    y10 = _as_array("the 10 m bands (B2, B3, B4, B8)", y10, 4)
    y20 = _as_array("the 20 m bands (B5, B6, B7, B8A, B11, B12)", y20, 6)
    hr = y10.shape[1:]
    _check_ratio("the 20 m image", y20, hr, 2)
    groups = [("10m", y10, s2.GROUP_10M, 1), ("20m", y20, s2.GROUP_20M, 2)]
    if y60 is not None:
        y60 = _as_array("the 60 m bands (B1, B9)", y60, 2)
        _check_ratio("the 60 m image", y60, hr, 6)
        groups.append(("60m", y60, s2.GROUP_60M, 6))
    scale = max(float(g[1].max()) for g in groups) if scale is None else float(scale)
    if scale <= 0:
        raise InvalidInputValueError("all input bands are zero or negative: is this area nodata?")
    sigma = dict(sigma or {})
    if choices is None:
        choices = recipe({key: sigma.get(key) for key, *_ in groups})
    scaled = {key: data / scale for key, data, *_ in groups}
    registration = measure_registration(scaled, geometry) if registration == "auto" else \
        {} if registration == "off" else dict(registration)
    observations, channel = [], 0
    for key, _data, names, ratio in groups:
        normalised = torch.as_tensor(scaled[key], dtype=dtype, device=device)
        if key in sigma and sigma[key] is not None:
            given = np.broadcast_to(np.asarray(sigma[key], dtype=np.float64), (len(names),))
            if not np.isfinite(given).all() or (given < 0).any():
                raise InvalidInputValueError(f"noise σ for the {key} bands must be finite and ≥ 0, "
                                             f"got {given.tolist()}")
            sig = given / scale
            sigma[key] = given.tolist()
        else:
            sig = estimate_sigma(key, scaled, geometry, registration)
            sigma[key] = (sig * scale).tolist()
        shift = registration.get(key)
        operator = Identity(len(names)) if ratio == 1 else BlurDecimate(
            s2.group_sigmas(names), ratio, hr, geometry, cond, device, dtype,
            shifts=shift["shifts"] if shift else None)
        observations.append(Observation(key, normalised, operator, torch.as_tensor(sig, dtype=dtype, device=device),
                                        list(range(channel, channel + len(names))), back_project=ratio > 1))
        channel += len(names)
    problem = FusionProblem(observations, out_channels=channel, hr_shape=hr, guide_channels=4,
                           scale=torch.tensor(scale), refined_injection=choices["refined_injection"],
                           guided_smoothing=choices["guided_smoothing"],
                           cross_band_shrinkage=choices["cross_band_shrinkage"], registration=registration,
                           guide_psf_sigma=max(s2.group_sigmas(s2.GROUP_10M)))  # the blurriest: the most allowed
    return problem, sigma


def measure_registration(data: dict, geometry: Geometry | str = Geometry.AREA) -> dict:
    """Per coarse group of `data` ({'10m', '20m'[, '60m']}: (bands, rows, cols), one unit), the record of its shift
    against the 10 m bands (`coregistration.Registration.as_record`)."""
    from . import coregistration

    return {key: coregistration.measure(data[key], data["10m"], ratio, s2.group_sigmas(names), geometry=geometry,
                                        names=list(names)).as_record()
            for key, names, ratio in (("20m", s2.GROUP_20M, 2), ("60m", s2.GROUP_60M, 6)) if key in data}


def median_registration(records: list[dict]) -> dict:
    """One registration for a scene from its crops' records (`coregistration.median_record`, per group)."""
    from .coregistration import median_record

    return {key: median_record([r[key] for r in records], "training crops") for key in records[0]}


def _band_shifts(registration: dict | None, key: str, bands: int) -> np.ndarray:
    """(bands, 2): the shift (rows, cols) of each band of group `key` in its own pixels (zero when not measured)."""
    record = (registration or {}).get(key)
    return np.asarray(record["shifts"], dtype=np.float64) if record else np.zeros((bands, 2))


def _finer_bands_on_grid(key: str, data: dict, geometry: Geometry | str, shift=(0.0, 0.0),
                         registration: dict | None = None) -> np.ndarray | None:
    """The finer groups' bands brought to the grid of group `key` (blurred with the group's mean PSF, displaced by
    `shift` as measured for the group, and decimated), as predictors of its texture: the 10 m bands for the 20 m
    group, the 10 m and 20 m bands (at the 20 m group's mean shift) for the 60 m group; None for the 10 m group."""
    if key == "10m":
        return None
    names = s2.GROUP_20M if key == "20m" else s2.GROUP_60M
    psf = float(np.mean(s2.group_sigmas(names)))          # in 10 m pixels
    ratio = 2 if key == "20m" else 6
    sources = [BlurDecimate([psf] * 4, ratio, data["10m"].shape[1:], geometry, dtype=torch.float64, shifts=[shift])
               .A(torch.from_numpy(data["10m"])).numpy()]
    if key == "60m":   # the 60 m content relative to the 20 m content, in 60 m pixels
        relative = np.asarray(shift) - _band_shifts(registration, "20m", 6).mean(axis=0) / 3
        sources.append(BlurDecimate([psf / 2] * 6, 3, data["20m"].shape[1:], geometry, dtype=torch.float64,
                                    shifts=[relative]).A(torch.from_numpy(data["20m"])).numpy())
    return np.concatenate(sources)


def estimate_sigma(key: str, data: dict, geometry: Geometry | str = Geometry.AREA, registration: dict | None = None
                   ) -> np.ndarray:
    """Noise σ per band of group `key` of `data` ({'10m', '20m'[, '60m']}: (bands, rows, cols) arrays, one unit).

    The smaller of the wavelet estimate and the cross-band one (`cross_band_noise.bounded_noise_sigma`), the coarse
    groups' texture predicted also by the finer bands brought to their grid. Both are upper bounds on real scenes,
    where texture passes for noise, and an upper bound makes SURE shrink real detail. Measured on the real crops of
    `benchmarks.s2_real` (degraded by 2), wavelet σ → this σ: DSen2 20 m 21–67 → 6–11 DN, 60 m 14–19 → 1.3–2.6 DN;
    vietnam 20 m 66–75 → 8–22 DN, 60 m 9–31 → 5–22 DN; the first estimate's ERGAS went 1.531 → 1.233 (20 m) and
    0.775 → 0.541 (60 m) on DSen2, 4.930 → 4.157 and 2.559 → 2.404 on vietnam (with σ = 0: 1.191 / 0.541 and
    4.124 / 2.159). On APEX's white noise it stays near the truth: SNR 30, 20 m 0.0047–0.0096 against
    0.0041–0.0095 (the wavelet estimate: 0.0078–0.0199); SNR 40, 0.0023–0.0040 against 0.0013–0.0030.
    """
    from .coregistration import fourier_shift
    from .cross_band_noise import bounded_noise_sigma

    shifts = _band_shifts(registration, key, data[key].shape[0])
    if np.ptp(shifts, axis=0).max() <= 0.02:   # one shift for the group: its bands predict each other too
        return bounded_noise_sigma(data[key], _finer_bands_on_grid(key, data, geometry, shifts[0], registration))
    # bands registered apart: each against the finer bands at its own shift and its neighbours moved onto it (with
    # the neighbours left out, σ came out 1.2–2.5× too high on the DSen2 crop)
    sigmas = []
    for k, shift in enumerate(shifts):
        aligned = np.stack([band if j == k else fourier_shift(band, *(shift - shifts[j]))
                            for j, band in enumerate(data[key])])
        sigmas.append(bounded_noise_sigma(aligned, _finer_bands_on_grid(key, data, geometry, shift, registration))[k])
    return np.asarray(sigmas)



def output_band_names(with_60m: bool) -> list[str]:
    names = s2.GROUP_10M + s2.GROUP_20M + (s2.GROUP_60M if with_60m else ())
    return [n for n in s2.SPECTRAL_ORDER if n in names]


def first_estimate(y10, y20, y60=None, *, sigma: dict | None = None, geometry: Geometry | str = Geometry.AREA,
                   cond: float = DEFAULT_COND, tune: bool = True, refined: bool | None = None,
                   smoothing: bool = False, registration: str | dict = "auto") -> np.ndarray:
    """The solver's linear first estimate alone (no network), in spectral order and the input unit, on the CPU.

    What the fast recipe starts from; used by the benchmarks to show what the network adds. `tune` switches the
    SURE-tuned correction, `refined` the injection gain and ring-wise shrinkage (see `injection`), `smoothing`
    the guided smoothing the solver applies to its output, with the strength SURE picks (see `guided_smoothing`).
    """
    from .injection import DetailInjectionBase

    problem, _ = build_problem(y10, y20, y60, sigma, geometry, cond, registration=registration)
    with torch.no_grad():
        grouped = DetailInjectionBase(problem, tune=tune, refined=refined)(problem.network_input())[0]
        if smoothing:
            grouped = smooth_alone(problem, grouped)
        grouped = grouped.numpy()
    names = s2.GROUP_10M + s2.GROUP_20M + (s2.GROUP_60M if y60 is not None else ())
    return grouped[s2.grouped_to_spectral(names)] * float(problem.scale)


def sharpen(y10, y20, y60=None, *, sigma: dict | None = None, options: SolverOptions | None = None,
            geometry: Geometry | str = Geometry.AREA, cond: float = DEFAULT_COND,
            callback: ProgressCallback | None = None, registration: str | dict = "auto"
            ) -> tuple[np.ndarray, RunRecord]:
    """Sharpen Sentinel-2 bands to 10 m.

    Inputs are arrays (bands, rows, cols) in any consistent unit (DN or reflectance): y10 = B2,B3,B4,B8;
    y20 = B5,B6,B7,B8A,B11,B12 at half the size; optional y60 = B1,B9 at a sixth. Returns the 12 (or 10
    without y60) bands in spectral order (`output_band_names`) on the 10 m grid, in the input unit, and
    the run record. `geometry='area'` is right for georeferenced data, 'zero_phase' reproduces the paper.
    `registration` as for `build_problem`: by default each coarse group's shift is measured and corrected, so the
    output bands lie on the 10 m bands' grid.
    """
    from .runner import fuse_window

    case = Sentinel2Case(y60 is not None, sigma, geometry, cond, registration)
    fused, record, _ = fuse_window(case, {"10m": y10, "20m": y20, **({"60m": y60} if y60 is not None else {})},
                                   options, callback)
    return fused, record


@dataclass
class Sentinel2Case:
    """The Sentinel-2 fusion case (`fusion_case.FusionCase`): the 20 m (and 60 m) bands brought to 10 m.

    Window data: {'10m': (4, rows, cols), '20m': (6, rows/2, cols/2)[, '60m': (2, rows/6, cols/6)]}, nodata filled.
    The sensor model is fixed (band PSFs from `sentinel2`) but for each coarse group's sub-pixel shift
    (`registration`: 'auto' measures it per window, or once per scene in `fitted`; 'off'; or records).
    """

    with_60m: bool = True
    sigma: dict | None = None           # {'10m', '20m', '60m'}: σ per band given (data units); missing: estimated
    geometry: Geometry | str = Geometry.AREA
    cond: float = DEFAULT_COND
    registration: str | dict = "auto"

    @property
    def observations(self) -> tuple[str, ...]:
        return ("10m", "20m", "60m") if self.with_60m else ("10m", "20m")

    @property
    def step(self) -> int:
        return 6 if self.with_60m else 2

    def band_names(self) -> list[str]:
        return output_band_names(self.with_60m)

    def band_descriptions(self) -> list[str]:
        """'B5 (704 nm)': the band name and centre wavelength, as QGIS shows it in the band list."""
        centres = {b.name: b.centre_nm for b in s2.BANDS}
        return [f"{n} ({centres[n]:.0f} nm)" for n in self.band_names()]

    def recipe(self) -> dict:
        return recipe({key: (self.sigma or {}).get(key) for key in self.observations})

    def provenance(self) -> dict[str, str]:
        return {} if self.sigma else {"NOISE_SIGMA_SOURCE": f"estimated: {SIGMA_ESTIMATOR}"}

    def window_fitted(self, data: dict) -> Sentinel2Case:
        return self   # with registration 'auto', `build_problem` measures the window's shifts

    def fitted(self, samples: list[dict]) -> Sentinel2Case:
        """This case with the scene's registration fixed from its training crops (every window then uses it)."""
        if self.registration != "auto":
            return self
        return replace(self, registration=median_registration([measure_registration(d, self.geometry)
                                                               for d in samples]))

    def inputs(self, data: dict) -> dict:
        return data

    def noise(self, data: dict) -> dict:
        return self.problem(data)[1]

    def scale(self, data: dict) -> float:
        return max(float(np.max(a)) for a in data.values())

    def problem(self, data: dict, device="cpu", noise: dict | None = None, scale=None) -> tuple[FusionProblem, dict]:
        return build_problem(data["10m"], data["20m"], data.get("60m"), self.sigma if noise is None else noise,
                             self.geometry, self.cond, device, scale=scale, registration=self.registration,
                             choices=self.recipe())

    def output(self, x_hat: torch.Tensor, problem: FusionProblem) -> np.ndarray:
        grouped = s2.GROUP_10M + s2.GROUP_20M + (s2.GROUP_60M if self.with_60m else ())
        return x_hat[s2.grouped_to_spectral(grouped)].float().cpu().numpy() * float(problem.scale)


def minimum_size(with_60m: bool, sigma_given: bool, geometry: Geometry | str = Geometry.AREA) -> int:
    """The smallest side, in 10 m pixels, of an area `sharpen` accepts (a multiple of the coarsest ratio).

    Every coarse group's blur must fit on the 10 m grid (its PSF support); with σ estimated, every band needs
    `noise.MIN_SIDE` pixels on its own grid, and the 60 m σ estimate also blurs the 20 m bands onto the 60 m grid
    (ratio 3 on the 20 m grid). 16 without 60 m input; with it 18 (σ given) or 48 (σ estimated).
    """
    from .noise import MIN_SIDE
    from .psf import geometry_offset, psf_support

    ratios = (2, 6) if with_60m else (2,)
    side = max(psf_support(geometry_offset(geometry, r)) for r in ratios)
    if not sigma_given:
        side = max(side, *(MIN_SIDE * r for r in ratios))
        if with_60m:
            side = max(side, 2 * psf_support(geometry_offset(geometry, 3)))
    step = max(ratios)
    return -(-side // step) * step
