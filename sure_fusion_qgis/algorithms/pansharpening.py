"""sure_fusion:pansharpening — multispectral bands brought to the grid of a panchromatic layer by Deep SURE."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterString

from ..choices import labelled_enum
from ..fusion_request import RECIPES
from .base import tr
from .pair_base import PairFusionAlgorithm

HELP = """Pansharpens a multispectral (MS) layer with a panchromatic (PAN) layer: the result has the MS bands on \
the PAN grid, like GDAL's Pansharpening, but a small neural network is trained on this scene alone, without any \
training data, by minimising Stein's unbiased risk estimate (SURE) of the error. Works for Pléiades, \
WorldView-2/3, GeoEye-1, QuickBird, IKONOS, SPOT 6/7, Landsat 8/9 (band 8) and any other pair, with any number \
of MS bands and any integer ratio (2, 3, 4, …).

<b>Inputs</b>: a one-band PAN layer and an MS layer in one CRS, the PAN pixel size an integer fraction of the \
MS pixel size, on a common pixel lattice (every MS pixel covers a whole block of PAN pixels). Otherwise the \
error says how to fix it with Warp (reproject) or Translate. 8-bit, 16-bit and float inputs all work; band \
scale/offset are applied; band nodata values, masks and NaN count as nodata.

<b>Sensor</b> sets the MS blur from the sensor's published MTF (the default <i>MS blur</i>); \
<i>Other / unknown</i> uses an MTF of 0.3 for every band. The blur can also be estimated from the data or \
given as a Gaussian (advanced: <i>Blur: width or MTF</i>).

<b>PAN weights</b>: the PAN is modelled as a weighted sum of the MS bands plus an offset. Leave them empty to \
estimate the weights from the data, or give one weight per MS band.

<b>Output</b>: a Float32 GeoTIFF on the PAN grid with the MS bands, their descriptions (and wavelengths, when \
known) carried over, nodata −9999 wherever an input was nodata; natural colour when the wavelengths are known. \
Its metadata say how it was made, with the <b>estimated error</b> of every band (RMSE and PSNR in the output's \
units; also in the log and the report).

<b>Time</b>: 60 iterations by default (more gained nothing on WorldView-2); on one CPU core about 3 minutes for \
320 × 320 PAN pixels with 8 MS bands (measured: 167 s), growing with the area and the bands; a busy computer \
can take several times longer, a GPU far less. Try a small extent first."""

#: sure_core.pan_sensors.sensor_keys() with their labels — kept here so the provider loads without torch (a test
#: checks they agree)
SENSORS = {"generic": "Other / unknown", "pleiades": "Pléiades", "worldview2": "WorldView-2",
           "worldview3": "WorldView-3", "geoeye1": "GeoEye-1", "quickbird": "QuickBird", "ikonos": "IKONOS",
           "spot67": "SPOT 6/7", "landsat_oli": "Landsat 8/9 OLI"}
PSF_MODES = ("sensor", "estimate", "sigma", "mtf")


class PansharpeningAlgorithm(PairFusionAlgorithm):
    KIND = "pan"
    RECIPE = RECIPES["pan"]
    LOW = "MS"
    HIGH = "PAN"
    LOW_ROLE = "MS"
    HIGH_ROLE = "PAN"
    SINGLE_BAND_HIGH = True
    SENSOR = "SENSOR"
    PAN_WEIGHTS = "PAN_WEIGHTS"
    LOW_LABEL = "Multispectral layer"
    HIGH_LABEL = "Panchromatic layer"
    RESULT_NAME = "Pansharpened image"

    def name(self):
        return "pansharpening"

    def displayName(self):
        return tr("Pansharpening (Deep SURE)")

    def tags(self):
        return ["pansharpening", "pansharpen", "pan", "panchromatic", "multispectral", "fusion", "Pléiades",
                "WorldView", "GeoEye", "QuickBird", "IKONOS", "SPOT", "Landsat", "SURE", "deep learning"]

    def shortHelpString(self):
        return tr(HELP)

    def initAlgorithm(self, config=None):
        self.add_layer_parameters("The coarse multi-band layer.",
                                  "The fine one-band layer (same CRS, aligned).", high_first=True)
        self.addParameter(labelled_enum(
            self.SENSOR, tr("Sensor"), SENSORS, "generic",
            tr("Sets the MS blur from the sensor's MTF at Nyquist; 'Other / unknown': 0.3 for every band.")))
        weights = QgsProcessingParameterString(
            self.PAN_WEIGHTS, tr("PAN weights (empty: estimate)"), defaultValue="", optional=True)
        weights.setHelp(tr("One weight per MS band, separated by commas, in MS band order: PAN ≈ Σ weight × MS band "
                           "+ offset (the offset is always estimated)."))
        self.addParameter(weights)
        self.add_psf_parameters(PSF_MODES, "How blurred the MS layer is on the PAN grid: from the sensor's MTF, "
                                           "estimated from the two images, or a Gaussian given by its width or its "
                                           "MTF ('Blur: width or MTF', advanced).")
        self.add_common_parameters("Pansharpened image")

    # ------------------------------------------------------------------ parameters → request
    def case_choices(self, parameters, context) -> dict:
        sensor = self.parameterAsEnumString(parameters, self.SENSOR, context) or "generic"
        return {"sensor": sensor, "sensor_label": SENSORS.get(sensor),
                "weights": self.parameterAsString(parameters, self.PAN_WEIGHTS, context) or "",
                **self.psf_choices(parameters, context)}
