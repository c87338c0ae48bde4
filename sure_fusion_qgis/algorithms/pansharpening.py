"""sure_fusion:pansharpening — multispectral bands brought to the grid of a panchromatic layer by Deep SURE."""
from __future__ import annotations

import math

from qgis.core import QgsProcessingException, QgsProcessingParameterString

from ..choices import labelled_enum
from ..core_loader import core_module
from ..guided_run import OutputBands
from .base import tr
from .guided_base import FusionPlan, GuidedFusionAlgorithm

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


class PansharpeningAlgorithm(GuidedFusionAlgorithm):
    # bench-pan (WorldView-2, 320² px): 60 iterations at width 8 gave Q8 0.8881 in 167 s; 150 iterations 0.8880
    # in 625 s; the core's 300 iterations at width 16 would take 20–40 min on a 2-core CPU for no gain
    RECIPE = {"iterations": 60, "width": 8}
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

    # ------------------------------------------------------------------ parameters → core call
    def prepare_fusion(self, parameters, context, pair, core, options, feedback) -> FusionPlan:
        sensor_key = self.parameterAsEnumString(parameters, self.SENSOR, context) or "generic"
        sensor = core_module("pan_sensors").get_sensor(sensor_key)
        bands = pair.low.band_count
        psf_sigma, psf_text = self.psf_choice(parameters, context, pair)
        try:   # which preset bands the MS layer holds (for names and wavelengths); an error if the counts differ
            known_bands = sensor.band_indices(bands) if sensor.ms_bands else None
        except core.SureFusionError:
            if psf_sigma is None:      # the preset's MTF gains are needed: say so
                raise
            known_bands = None
        weights = self._weights(parameters, context, pair)
        provenance = {"FUSION": "pansharpening (MS bands on the PAN grid)", "SENSOR": f"{sensor_key} ({sensor.name})",
                      "PSF_SOURCE": psf_text,
                      "PAN_WEIGHTS_SOURCE": "given" if weights is not None else "estimated from the data (NNLS)"}
        if psf_sigma is None:
            provenance["MTF_GAINS"] = ", ".join(f"{g:g}" for g in sensor.ms_mtf_for(bands))
            provenance["MTF_SOURCE"] = sensor.source
        case = core_module("pansharpening").PanMsCase(
            geometry="area", ratio=pair.ratio, sensor=sensor_key,
            model_options=dict(weights=weights, psf_sigma=psf_sigma,
                               coregistration=self.coregistration_choice(parameters, context)))

        preset_centres = [sensor.ms_centre_nm[i] for i in known_bands] if known_bands else None
        use_preset = preset_centres is not None and not any(w is not None for w in pair.low.wavelengths)
        output = OutputBands.of(pair.low, preset_centres if use_preset else None, None,
                                fallback_descriptions=sensor.ms_band_names(bands) if known_bands else None)
        log = [f"sensor: {SENSORS.get(sensor_key, sensor.name)}; MS blur: {psf_text}; PAN weights "
               f"{provenance['PAN_WEIGHTS_SOURCE']}"]
        return FusionPlan(case, output, provenance, log)

    def _weights(self, parameters, context, pair):
        text = (self.parameterAsString(parameters, self.PAN_WEIGHTS, context) or "").strip()
        if not text:
            return None
        try:
            values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            values = []
        bands = pair.low.band_count
        if len(values) != bands or any(not math.isfinite(v) or v < 0 for v in values) or not any(values):
            raise QgsProcessingException(
                f"PAN weights {text!r}: give {bands} comma-separated weights ≥ 0 (one per MS band, not all zero), "
                f"or leave it empty to estimate them from the data")
        return values
