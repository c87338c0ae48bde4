"""The pair algorithms' choices (spectral response, band tables, MS sensor, PAN sensor and weights, PSF) turned into
the core's pair case, the output bands and the provenance. No QGIS: the algorithms, the batch runner and scripts
hand in plain values; errors are `RasterInputError`s whose messages name the parameter to change.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .core_loader import core_module
from .io_errors import RasterInputError
from .pair_inputs import RasterPair
from .pair_run import OutputBands
from .s2_inputs import s2_band_name

#: hsms SRF choices → labels (the algorithm's enum; messages quote the labels)
SRF_MODES = {"estimate": "Estimate from the images", "gaussian": "From band wavelengths",
             "csv": "From a matrix file (CSV)"}
#: PSF choices → labels (the pair algorithms' enum)
PSF_LABELS = {"sensor": "The sensor's MTF", "estimate": "Estimate from the two images",
              "sigma": "Gaussian of the width below", "mtf": "Gaussian of the MTF below"}
_LANDSAT_BAND = re.compile(r"^\s*(?:band\s*|B0?)(\d{1,2})\b", re.IGNORECASE)


@dataclass
class PairPlan:
    """What the run needs from the algorithm's choices: the core's pair case, the output bands, what to record."""
    case: object                        # hsms.HsMsCase or pansharpening.PanMsCase, with the sensor-model options
    bands: OutputBands
    provenance: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def psf_choice(mode: str, value: float, ratio: int, low_role: str, high_role: str) -> tuple[object, str]:
    """(psf_sigma for the core: None = the sensor preset, 'estimate', or σ in high-resolution pixels; a sentence for
    the log and metadata) of a PSF choice and its 'Blur: width or MTF' value (in `low_role` pixels, or an MTF)."""
    if mode == "sensor":
        return None, "the sensor preset's MTF gains"
    if mode == "estimate":
        return "estimate", "estimated from the two images"
    if mode == "sigma":
        if not value > 0:
            raise RasterInputError(f"'{PSF_LABELS['sigma']}' needs 'Blur: width or MTF' > 0: the Gaussian σ in "
                                   f"{low_role} pixels (about 0.4–0.6 for most imagers)")
        sigma = value * ratio
        return sigma, f"Gaussian, σ {value:g} {low_role} pixels = {sigma:.4g} {high_role} pixels"
    if not 0 < value < 1:
        raise RasterInputError(f"'{PSF_LABELS['mtf']}' needs 'Blur: width or MTF' between 0 and 1 (the MTF at the "
                               f"{low_role} Nyquist frequency, typically 0.2–0.4), got {value:g}")
    sigma = core_module("psf").sigma_from_mtf(value, ratio)
    return sigma, f"Gaussian with MTF gain {value:g} at Nyquist = σ {sigma:.4g} {high_role} pixels"


# ---------------------------------------------------------------------------------------------- HS + MS
def hsms_plan(pair: RasterPair, *, srf: str = "estimate", srf_file: str = "", ms_sensor: str = "layer_metadata",
              hs_bands_csv: str = "", ms_bands_csv: str = "", psf: str = "estimate", psf_value: float = 0.0,
              coregistration: str = "auto") -> PairPlan:
    """The HS + MS case of `pair` (low: HS, high: MS) from the algorithm's choices (see hsms_fusion's help)."""
    hs_table = _band_table(hs_bands_csv, pair.low.band_count, "HS")
    hs_wavelengths = list(hs_table.centres_nm) if hs_table else pair.low.wavelengths
    hs_fwhm = list(hs_table.fwhm_nm) if hs_table else pair.low.fwhms
    psf_sigma, psf_text = psf_choice(psf, psf_value, pair.ratio, "HS", "MS")
    kwargs = {"psf_sigma": psf_sigma, "coregistration": coregistration}
    provenance = {"FUSION": "hyperspectral + multispectral (HS bands on the MS grid)", "PSF_SOURCE": psf_text}
    if srf_file and srf != "csv":
        raise RasterInputError(f"A spectral response matrix file is given but 'Spectral response' is "
                               f"'{SRF_MODES[srf]}': choose '{SRF_MODES['csv']}' to use the matrix, or clear the file")
    if srf == "csv":
        if not srf_file:
            raise RasterInputError(f"'{SRF_MODES['csv']}' needs the spectral response matrix file: a CSV with one "
                                   f"row per MS band ({pair.high.band_count}) and one column per HS band "
                                   f"({pair.low.band_count})")
        kwargs["srf"] = core_module("spectral_response").parse_response_matrix(
            srf_file, pair.high.band_count, pair.low.band_count)
        provenance["SPECTRAL_RESPONSE_SOURCE"] = f"matrix from {srf_file} (offset fitted)"
    elif srf == "gaussian":
        kwargs.update(_gaussian_srf(pair, hs_wavelengths, hs_fwhm, ms_sensor, ms_bands_csv))
        provenance["SPECTRAL_RESPONSE_SOURCE"] = (
            f"Gaussian band responses (HS bands from {'the HS band table' if hs_table else 'the HS layer metadata'}, "
            f"MS bands from {kwargs.pop('_ms_source')}), gain and offset fitted")
    else:
        kwargs["srf"] = "estimate"
        provenance["SPECTRAL_RESPONSE_SOURCE"] = "estimated from the two images (non-negative least squares)"
    case = core_module("hsms").HsMsCase(geometry="area", ratio=pair.ratio, model_options=kwargs)
    bands = OutputBands.of(pair.low, hs_wavelengths if hs_table else None, hs_fwhm if hs_table else None)
    known = sum(w is not None for w in bands.wavelengths)
    log = [f"spectral response: {provenance['SPECTRAL_RESPONSE_SOURCE']}; PSF: {provenance['PSF_SOURCE']}",
           f"HS band wavelengths known for {known} of {len(bands.names)} bands (carried to the output)"]
    return PairPlan(case, bands, provenance, log)


def _band_table(path: str, band_count: int, role: str):
    if not path:
        return None
    table = core_module("spectral_response").parse_band_table(path)
    if len(table) != band_count:
        raise RasterInputError(f"The {role} band table {path!r} lists {len(table)} bands but the {role} layer has "
                               f"{band_count}: give one row (wavelength, fwhm) per {role} band, in order")
    return table


def _gaussian_srf(pair: RasterPair, hs_wavelengths, hs_fwhm, sensor: str, ms_bands_csv: str) -> dict:
    missing = [k + 1 for k, w in enumerate(hs_wavelengths) if w is None]
    if missing:
        raise RasterInputError(
            f"'{SRF_MODES['gaussian']}' needs the centre wavelength of every HS band, but {pair.low.label}'s "
            f"metadata gives none for {len(missing)} of {pair.low.band_count} bands (e.g. band {missing[0]}): give "
            f"an HS band table (wavelength, fwhm per band), set the wavelengths in the layer's metadata, or "
            f"choose '{SRF_MODES['estimate']}'")
    out = {"srf": "gaussian", "hs_wavelengths": hs_wavelengths,
           "hs_fwhm": hs_fwhm if all(f is not None for f in hs_fwhm) else None}
    ms_table = _band_table(ms_bands_csv, pair.high.band_count, "MS")
    if sensor != "layer_metadata":
        names = _preset_band_names(sensor, list(pair.high.names))
        preset = core_module("spectral_response").preset_bands(sensor)
        if names is None and len(preset) != pair.high.band_count:
            raise RasterInputError(
                f"the {sensor} preset has {len(preset)} bands ({', '.join(preset.names)}) but {pair.high.label} "
                f"has {pair.high.band_count}: name the MS bands in their band descriptions (e.g. "
                f"{', '.join(preset.names[:3])}, …) or give an MS band table")
        out["ms_sensor"] = f"{sensor}:{','.join(names)}" if names else sensor
        out["_ms_source"] = f"the {sensor} preset" + (f" ({', '.join(names)})" if names else "")
    elif ms_table is not None:
        out.update(ms_wavelengths=list(ms_table.centres_nm), ms_fwhm=list(ms_table.fwhm_nm),
                   _ms_source="the MS band table")
    elif pair.high.has_wavelengths() and pair.high.has_fwhms():
        out.update(ms_wavelengths=pair.high.wavelengths, ms_fwhm=pair.high.fwhms, _ms_source="the MS layer metadata")
    else:
        raise RasterInputError(
            f"'{SRF_MODES['gaussian']}' needs the centre wavelength and FWHM of every MS band, but "
            f"{pair.high.label}'s metadata lacks them: choose the MS sensor, give an MS band table, or choose "
            f"'{SRF_MODES['estimate']}'")
    return out


def _preset_band_names(sensor: str, descriptions: list[str]) -> list[str] | None:
    """The preset's band names of the MS layer's bands, read from its band descriptions ('B4', 'B04 (665 nm)',
    'Band 3'); None when a band is not named."""
    names = []
    for text in descriptions:
        if sensor == "sentinel2":
            name = s2_band_name(text)
        else:
            match = _LANDSAT_BAND.match(text or "")
            name = f"B{int(match.group(1))}" if match else None
        if name is None:
            return None
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------- PAN + MS
def pan_plan(pair: RasterPair, *, sensor: str = "generic", weights: str = "", psf: str = "sensor",
             psf_value: float = 0.0, coregistration: str = "auto", sensor_label: str | None = None) -> PairPlan:
    """The pansharpening case of `pair` (low: MS, high: PAN) from the algorithm's choices (see its help);
    `weights`: '' (estimated) or one weight per MS band, comma-separated."""
    core = core_module()
    preset = core_module("pan_sensors").get_sensor(sensor)
    bands = pair.low.band_count
    psf_sigma, psf_text = psf_choice(psf, psf_value, pair.ratio, "MS", "PAN")
    try:   # which preset bands the MS layer holds (for names and wavelengths); an error if the counts differ
        known_bands = preset.band_indices(bands) if preset.ms_bands else None
    except core.SureFusionError:
        if psf_sigma is None:      # the preset's MTF gains are needed: say so
            raise
        known_bands = None
    values = parse_weights(weights, bands)
    provenance = {"FUSION": "pansharpening (MS bands on the PAN grid)", "SENSOR": f"{sensor} ({preset.name})",
                  "PSF_SOURCE": psf_text,
                  "PAN_WEIGHTS_SOURCE": "given" if values is not None else "estimated from the data (NNLS)"}
    if psf_sigma is None:
        provenance["MTF_GAINS"] = ", ".join(f"{g:g}" for g in preset.ms_mtf_for(bands))
        provenance["MTF_SOURCE"] = preset.source
    case = core_module("pansharpening").PanMsCase(
        geometry="area", ratio=pair.ratio, sensor=sensor,
        model_options=dict(weights=values, psf_sigma=psf_sigma, coregistration=coregistration))
    preset_centres = [preset.ms_centre_nm[i] for i in known_bands] if known_bands else None
    use_preset = preset_centres is not None and not any(w is not None for w in pair.low.wavelengths)
    output = OutputBands.of(pair.low, preset_centres if use_preset else None, None,
                            fallback_descriptions=preset.ms_band_names(bands) if known_bands else None)
    log = [f"sensor: {sensor_label or preset.name}; MS blur: {psf_text}; PAN weights "
           f"{provenance['PAN_WEIGHTS_SOURCE']}"]
    return PairPlan(case, output, provenance, log)


def parse_weights(text: str, bands: int) -> list[float] | None:
    """PAN_WEIGHTS text → one weight per MS band, or None (estimate them)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) != bands or any(not math.isfinite(v) or v < 0 for v in values) or not any(values):
        raise RasterInputError(f"PAN weights {text!r}: give {bands} comma-separated weights ≥ 0 (one per MS band, not "
                               f"all zero), or leave it empty to estimate them from the data")
    return values
