"""sure_fusion:hsms_fusion — a hyperspectral layer brought to the grid of a multispectral layer by Deep SURE."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterFile

from ..choices import labelled_enum
from ..compat import FILE_BEHAVIOR_FILE
from ..pair_cases import SRF_MODES
from .base import TIME_HELP, tr
from .pair_base import PairFusionAlgorithm

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

#: sure_core.spectral_response.PRESET_NAMES after the layer's own metadata (a test checks they agree)
MS_SENSORS = {"layer_metadata": "The MS layer's metadata", "sentinel2": "Sentinel-2", "landsat_oli": "Landsat 8/9 OLI"}
PSF_MODES = ("estimate", "sigma", "mtf")


class HsMsFusionAlgorithm(PairFusionAlgorithm):
    KIND = "hsms"
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

    # ------------------------------------------------------------------ parameters → request
    def case_choices(self, parameters, context) -> dict:
        return {"srf": self.parameterAsEnumString(parameters, self.SRF, context) or "estimate",
                "srf_file": self.parameterAsFile(parameters, self.SRF_FILE, context) or "",
                "ms_sensor": self.parameterAsEnumString(parameters, self.MS_SENSOR, context) or "layer_metadata",
                "hs_bands_csv": self.parameterAsFile(parameters, self.HS_BANDS_CSV, context) or "",
                "ms_bands_csv": self.parameterAsFile(parameters, self.MS_BANDS_CSV, context) or "",
                **self.psf_choices(parameters, context)}
