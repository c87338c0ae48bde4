"""sure_fusion:hsms_fusion — a hyperspectral layer brought to the grid of a multispectral layer by Deep SURE."""
from __future__ import annotations

import re

from qgis.core import QgsProcessingException, QgsProcessingParameterFile

from .. import raster_io
from ..choices import labelled_enum
from ..compat import FILE_BEHAVIOR_FILE
from ..core_loader import core_module
from ..guided_run import OutputBands
from .guided_base import FusionPlan, GuidedFusionAlgorithm
from .base import TIME_HELP, tr

HELP = """Fuses a <i>hyperspectral</i> (HS) layer of low resolution with a <i>multispectral</i> (MS) layer of \
high resolution: the result has the HS bands on the MS grid. A small neural network is trained on this scene \
alone, without any training data, by minimising Stein's unbiased risk estimate (SURE) of the error. Typical \
inputs: PRISMA, EnMAP, DESIS or Hyperion (30 m, 60–240 bands) with Sentinel-2 or Landsat (10–30 m).

<b>Inputs</b>: both layers in one CRS, the MS pixel size an integer fraction of the HS pixel size (e.g. 30 m \
and 10 m), on a common pixel lattice (every HS pixel covers a whole block of MS pixels). Otherwise the \
error says how to resample one layer with Warp (reproject). Band nodata values, masks and NaN count as nodata.

<b>Spectral response</b> (how each MS band sees the HS bands): <i>Estimate from the images</i> (default) fits it \
from the two layers and needs no metadata; <i>From band wavelengths</i> builds it from the band centres and \
widths: of the HS bands from the HS layer's metadata or an HS band table, of the MS bands from the MS sensor, an \
MS band table or the MS layer's metadata; <i>From a matrix file</i> reads one row per MS band and one column per \
HS band from a CSV.

<b>HS blur</b> on the MS grid: estimated from the two images (default), or a Gaussian given by its width in HS \
pixels or by its MTF at the HS Nyquist frequency (advanced: <i>Blur: width or MTF</i>).

<b>Output</b>: a Float32 GeoTIFF on the MS grid with the HS bands, their descriptions and wavelengths carried \
over, nodata −9999 wherever an input was nodata; natural colour when the wavelengths are known. Its metadata \
say how it was made, with the <b>estimated error</b> of every band (RMSE and PSNR in the output's units; also in \
the log and the report).

""" + TIME_HELP + """ Many bands add to it."""

SRF_MODES = {"estimate": "Estimate from the images", "gaussian": "From band wavelengths",
             "csv": "From a matrix file (CSV)"}
#: sure_core.spectral_response.PRESET_NAMES after the layer's own metadata (a test checks they agree)
MS_SENSORS = {"layer_metadata": "The MS layer's metadata", "sentinel2": "Sentinel-2", "landsat_oli": "Landsat 8/9 OLI"}
PSF_MODES = ("estimate", "sigma", "mtf")
_LANDSAT_BAND = re.compile(r"^\s*(?:band\s*|B0?)(\d{1,2})\b", re.IGNORECASE)


class HsMsFusionAlgorithm(GuidedFusionAlgorithm):
    LOW = "HS"
    HIGH = "MS"
    LOW_ROLE = "HS"
    HIGH_ROLE = "MS"
    SRF = "SRF"
    SRF_FILE = "SRF_FILE"
    MS_SENSOR = "MS_SENSOR"
    HS_BANDS_CSV = "HS_BANDS_CSV"
    MS_BANDS_CSV = "MS_BANDS_CSV"
    LOW_LABEL = "Hyperspectral layer (coarse)"
    HIGH_LABEL = "Multispectral layer (fine)"
    RESULT_NAME = "HS fused on the MS grid"

    def name(self):
        return "hsms_fusion"

    def displayName(self):
        return tr("Hyperspectral + multispectral fusion (Deep SURE)")

    def tags(self):
        return ["hyperspectral", "multispectral", "fusion", "HS", "MS", "PRISMA", "EnMAP", "DESIS", "Hyperion",
                "sentinel-2", "landsat", "super-resolution", "sharpening", "SURE", "deep learning"]

    def shortHelpString(self):
        return tr(HELP)

    def initAlgorithm(self, config=None):
        self.add_layer_parameters("The coarse layer with many bands (PRISMA, EnMAP, Hyperion…).",
                                  "The fine layer with few bands (Sentinel-2, Landsat…), same CRS, aligned.")
        self.addParameter(labelled_enum(
            self.SRF, tr("Spectral response"), SRF_MODES, "estimate",
            tr("How each MS band sees the HS bands: estimated from the two images (needs no metadata), built from "
               "the bands' wavelengths and widths, or read from a CSV matrix.")))
        srf_file = QgsProcessingParameterFile(
            self.SRF_FILE, tr("Spectral response matrix (CSV)"), behavior=FILE_BEHAVIOR_FILE,
            fileFilter="CSV files (*.csv *.txt)", optional=True)
        srf_file.setHelp(tr(f"For '{SRF_MODES['csv']}': one row per MS band, one column per HS band."))
        self.addParameter(srf_file)
        self.addParameter(labelled_enum(
            self.MS_SENSOR, tr("MS sensor (band wavelengths)"), MS_SENSORS, "layer_metadata",
            tr(f"For '{SRF_MODES['gaussian']}': where the MS bands' centres and widths come from (the sensor's table, "
               f"or the MS layer's metadata or MS band table).")))
        hs_table = QgsProcessingParameterFile(
            self.HS_BANDS_CSV, tr("HS band table (CSV)"), behavior=FILE_BEHAVIOR_FILE,
            fileFilter="CSV files (*.csv *.txt)", optional=True)
        hs_table.setHelp(tr("Wavelength and FWHM (nm) of every HS band, one row per band; replaces the HS layer's "
                            "metadata."))
        self.addParameter(hs_table)
        ms_table = QgsProcessingParameterFile(
            self.MS_BANDS_CSV, tr("MS band table (CSV)"), behavior=FILE_BEHAVIOR_FILE,
            fileFilter="CSV files (*.csv *.txt)", optional=True)
        ms_table.setHelp(tr(f"For '{SRF_MODES['gaussian']}': wavelength and FWHM (nm) of every MS band, one row per "
                            f"band."))
        self.addParameter(ms_table)
        self.add_psf_parameters(PSF_MODES, "How blurred the HS layer is on the MS grid: estimated from the two "
                                           "images, or a Gaussian given by its width or its MTF ('Blur: width or "
                                           "MTF', advanced).")
        self.add_common_parameters("Fused image")

    # ------------------------------------------------------------------ parameters → core call
    def prepare_fusion(self, parameters, context, pair, core, options, feedback) -> FusionPlan:
        srf_mode = self.parameterAsEnumString(parameters, self.SRF, context) or "estimate"
        srf_file = self.parameterAsFile(parameters, self.SRF_FILE, context)
        hs_table = self._band_table(parameters, self.HS_BANDS_CSV, context, pair.low.band_count, "HS")
        hs_wavelengths = list(hs_table.centres_nm) if hs_table else pair.low.wavelengths
        hs_fwhm = list(hs_table.fwhm_nm) if hs_table else pair.low.fwhms
        psf_sigma, psf_text = self.psf_choice(parameters, context, pair)
        kwargs = {"psf_sigma": psf_sigma, "coregistration": self.coregistration_choice(parameters, context)}
        provenance = {"FUSION": "hyperspectral + multispectral (HS bands on the MS grid)", "PSF_SOURCE": psf_text}
        if srf_file and srf_mode != "csv":
            raise QgsProcessingException(f"A spectral response matrix file is given but 'Spectral response' is "
                                         f"'{SRF_MODES[srf_mode]}': choose '{SRF_MODES['csv']}' to use the matrix, "
                                         f"or clear the file")
        if srf_mode == "csv":
            if not srf_file:
                raise QgsProcessingException(f"'{SRF_MODES['csv']}' needs the spectral response matrix file: a CSV "
                                             f"with one row per MS band ({pair.high.band_count}) and one column "
                                             f"per HS band ({pair.low.band_count})")
            kwargs["srf"] = core_module("spectral_response").parse_response_matrix(
                srf_file, pair.high.band_count, pair.low.band_count)
            provenance["SPECTRAL_RESPONSE_SOURCE"] = f"matrix from {srf_file} (offset fitted)"
        elif srf_mode == "gaussian":
            kwargs.update(self._gaussian_srf(parameters, context, pair, hs_wavelengths, hs_fwhm))
            provenance["SPECTRAL_RESPONSE_SOURCE"] = (
                f"Gaussian band responses (HS bands from "
                f"{'the HS band table' if hs_table else 'the HS layer metadata'}, "
                f"MS bands from {kwargs.pop('_ms_source')}), gain and offset fitted")
        else:
            kwargs["srf"] = "estimate"
            provenance["SPECTRAL_RESPONSE_SOURCE"] = "estimated from the two images (non-negative least squares)"
        case = core_module("hsms").HsMsCase(geometry="area", ratio=pair.ratio, model_options=kwargs)

        bands = OutputBands.of(pair.low, hs_wavelengths if hs_table else None, hs_fwhm if hs_table else None)
        known = sum(w is not None for w in bands.wavelengths)
        log = [f"spectral response: {provenance['SPECTRAL_RESPONSE_SOURCE']}; PSF: {provenance['PSF_SOURCE']}",
               f"HS band wavelengths known for {known} of {len(bands.names)} bands (carried to the output)"]
        return FusionPlan(case, bands, provenance, log)

    def _band_table(self, parameters, name, context, band_count, role):
        path = self.parameterAsFile(parameters, name, context)
        if not path:
            return None
        table = core_module("spectral_response").parse_band_table(path)
        if len(table) != band_count:
            raise QgsProcessingException(f"The {role} band table {path!r} lists {len(table)} bands but the {role} "
                                         f"layer has "
                                         f"{band_count}: give one row (wavelength, fwhm) per {role} band, in order")
        return table

    def _gaussian_srf(self, parameters, context, pair, hs_wavelengths, hs_fwhm) -> dict:
        missing = [k + 1 for k, w in enumerate(hs_wavelengths) if w is None]
        if missing:
            raise QgsProcessingException(
                f"'{SRF_MODES['gaussian']}' needs the centre wavelength of every HS band, but {pair.low.label}'s "
                f"metadata gives none for {len(missing)} of {pair.low.band_count} bands (e.g. band {missing[0]}): give "
                f"an HS band table (wavelength, fwhm per band), set the wavelengths in the layer's metadata, or "
                f"choose '{SRF_MODES['estimate']}'")
        out = {"srf": "gaussian", "hs_wavelengths": hs_wavelengths,
               "hs_fwhm": hs_fwhm if all(f is not None for f in hs_fwhm) else None}
        sensor = self.parameterAsEnumString(parameters, self.MS_SENSOR, context) or "layer_metadata"
        ms_table = self._band_table(parameters, self.MS_BANDS_CSV, context, pair.high.band_count, "MS")
        if sensor != "layer_metadata":
            names = _preset_band_names(sensor, pair.high.descriptions)
            preset = core_module("spectral_response").preset_bands(sensor)
            if names is None and len(preset) != pair.high.band_count:
                raise QgsProcessingException(
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
            raise QgsProcessingException(
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
            name = raster_io.s2_band_name(text)
        else:
            match = _LANDSAT_BAND.match(text or "")
            name = f"B{int(match.group(1))}" if match else None
        if name is None:
            return None
        names.append(name)
    return names
