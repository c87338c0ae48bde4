"""What the two pair algorithms (HS+MS fusion, pansharpening) share: the two layers, the extent, the output
and report, and the run itself (a `fusion_request.FusionRequest`). A subclass declares its own parameters and
translates them into the request's choices (`case_choices`).
"""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .. import input_check, quicklook
from ..choices import labelled_enum
from ..compat import NUMBER_DOUBLE, advanced
from ..fusion_request import FusionRequest, prepare, run
from ..fusion_run import RunSettings
from ..io_errors import RasterIOError
from ..pair_cases import PSF_LABELS
from ..pair_run import OutputBands
from ..raster_stack import read_overview
from ..raster_writer import png_bytes
from ..report import build_report
from .base import FeedbackBridge, SureFusionAlgorithm, tr

PAIR_SIGMA_HELP = ("Leave empty to estimate each band's noise from the data. Otherwise the coarse layer's σ, "
                   "optionally followed by ';' and the fine layer's σ, each one number for all bands or one per band "
                   "(separated by commas), in the data's units. Example: '0.01' or '0.01; 4.5'.")


class PairFusionAlgorithm(SureFusionAlgorithm):
    """Base of the pair algorithms. Subclasses set the class attributes below (KIND: the request's kind) and
    implement case_choices."""
    LOW = "LOW"                  # parameter names of the low-resolution layer and the guide
    HIGH = "HIGH"
    LOW_ROLE = "low-resolution layer"
    HIGH_ROLE = "guide"
    LOW_LABEL = "Low-resolution layer"    # the layers' labels in the dialog (and in messages)
    HIGH_LABEL = "Guide layer"
    SINGLE_BAND_HIGH = False
    EXTENT = "EXTENT"
    PSF = "PSF"
    PSF_VALUE = "PSF_VALUE"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    RESULT_NAME = "Fused image"          # also the name of a temporary output's layer

    def group(self):
        return tr("Image fusion")

    def groupId(self):
        return "fusion"

    # ------------------------------------------------------------------ parameters
    def add_layer_parameters(self, low_help: str, high_help: str, high_first: bool = False) -> None:
        layers = [QgsProcessingParameterRasterLayer(self.LOW, tr(self.LOW_LABEL)),
                  QgsProcessingParameterRasterLayer(self.HIGH, tr(self.HIGH_LABEL))]
        layers[0].setHelp(tr(low_help))
        layers[1].setHelp(tr(high_help))
        for parameter in (layers[::-1] if high_first else layers):
            self.addParameter(parameter)
        extent = QgsProcessingParameterExtent(self.EXTENT, tr("Area to process"), optional=True)
        extent.setHelp(tr("Optional; snapped outwards to the low-resolution grid and clipped to the area both "
                          "layers cover."))
        self.addParameter(extent)

    def add_common_parameters(self, output_description: str) -> None:
        """Solver parameters, OUTPUT, REPORT and the numeric outputs, after the algorithm's own parameters."""
        self.add_solver_parameters(pixels="output px", sigma_help=PAIR_SIGMA_HELP)
        self.add_coregistration_parameter()
        self.add_training_parameter()
        self.add_output_parameters(output_description)

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        layers = {}
        for name, label in ((self.LOW, self.LOW_LABEL), (self.HIGH, self.HIGH_LABEL)):
            layers[name] = self.parameterAsRasterLayer(parameters, name, context)
            if layers[name] is None:
                return False, tr(f"{label}: {parameters.get(name)!s} cannot be loaded as a raster layer; check the "
                                 f"path")
        problem = input_check.pair_layers_problem(self.LOW_LABEL, layers[self.LOW], self.HIGH_LABEL, layers[self.HIGH],
                                                  self.SINGLE_BAND_HIGH)
        return (False, tr(problem)) if problem else (True, "")

    #: PSF choices (static value → label); a subclass keeps those it offers, the first its default
    PSF_LABELS = PSF_LABELS

    def add_psf_parameters(self, modes: tuple[str, ...], help_text: str) -> None:
        """PSF (enum, first mode the default) and the advanced PSF_VALUE; read back with `psf_choices`."""
        self.addParameter(labelled_enum(self.PSF, tr(f"{self.LOW_ROLE} blur (point-spread function)"),
                                        {m: self.PSF_LABELS[m] for m in modes}, modes[0], tr(help_text)))
        value = QgsProcessingParameterNumber(self.PSF_VALUE, tr("Blur: width or MTF"), type=NUMBER_DOUBLE,
                                             defaultValue=0.0, minValue=0.0)
        value.setHelp(tr(f"With 'Gaussian of the width below': its σ in {self.LOW_ROLE} pixels (about 0.4–0.6 for "
                         f"most imagers). With 'Gaussian of the MTF below': its MTF at the {self.LOW_ROLE} Nyquist "
                         f"frequency, between 0 and 1 (typically 0.2–0.4)."))
        self.addParameter(advanced(value))

    def psf_choices(self, parameters, context) -> dict:
        """PSF and PSF_VALUE as the request's choices (`pair_cases.psf_choice` reads them)."""
        return {"psf": self.parameterAsEnumString(parameters, self.PSF, context) or "estimate",
                "psf_value": self.parameterAsDouble(parameters, self.PSF_VALUE, context)}

    # ------------------------------------------------------------------ subclass hook
    def case_choices(self, parameters, context) -> dict:
        """The request's `choices` (see `fusion_request.FusionRequest`) from this algorithm's own parameters."""
        raise NotImplementedError

    # ------------------------------------------------------------------ running
    def processAlgorithm(self, parameters, context, feedback):
        core = self.import_core()
        options = self.solver_options(parameters, context, core)
        self.resolve_device(options, feedback)
        layers = self._layers(parameters, context)
        low, high = layers[self.LOW], layers[self.HIGH]
        request = FusionRequest(
            self.KIND, {"low": low.source(), "high": high.source()},
            RunSettings(options=options, tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                        tile_overlap=self.parameterAsInt(parameters, self.TILE_OVERLAP, context),
                        training=self.training_choice(parameters, context),
                        coregistration=self.coregistration_choice(parameters, context)),
            noise_sigma=self.parameterAsString(parameters, self.NOISE_SIGMA, context) or "",
            labels={"low": f"'{self.LOW_LABEL}' ({self.LOW}: {low.name()})",
                    "high": f"'{self.HIGH_LABEL}' ({self.HIGH}: {high.name()})"},
            scene_name=low.name(), choices=self.case_choices(parameters, context))
        try:
            prepared = prepare(request, lambda crs_wkt: self.extent_in_crs(parameters, self.EXTENT, context, crs_wkt))
        except (core.SureFusionError, RasterIOError) as e:
            raise QgsProcessingException(str(e)) from None
        window, plan = prepared.window, prepared.plan
        target, report = self.check_output_paths(parameters, context, feedback, window.width, window.height,
                                                 len(plan.bands.names))
        for line in prepared.info:
            feedback.pushInfo(line)
        bridge = FeedbackBridge(feedback, options.iterations)
        return self.run_driver(
            lambda before_commit: run(prepared, target, progress=bridge, log=feedback.pushInfo,
                                      before_commit=before_commit),
            core, parameters, context, feedback, report,
            lambda result, written: self._report_html(result, written, prepared.inputs, prepared.settings, plan),
            f"{self.RESULT_NAME} ({prepared.scene_name})", quicklook.natural_colour_bands(plan.bands.wavelengths))

    def _layers(self, parameters, context) -> dict:
        layers = {}
        for name, label in ((self.LOW, self.LOW_LABEL), (self.HIGH, self.HIGH_LABEL)):
            layer = self.parameterAsRasterLayer(parameters, name, context)
            if layer is None:
                raise QgsProcessingException(f"{label}: {parameters.get(name)!s} cannot be loaded as a raster layer")
            if layer.providerType() != "gdal":
                raise QgsProcessingException(f"{label} ({layer.name()}) is a {layer.providerType()} layer; only "
                                             f"file-based (GDAL) rasters can be fused: save it as GeoTIFF")
            layers[name] = layer
        return layers

    # ------------------------------------------------------------------ report
    def _report_html(self, result, written, pair, settings, plan) -> str:
        """The report of `result`, its quick-look read from `written` (the output, before it is put in place)."""
        window = result.window
        size = quicklook.overview_size(window.width, window.height)
        picks = quicklook_bands(plan.bands)
        before = pair.low.read_overview(window, size, picks)
        after = read_overview(written, [k + 1 for k in picks], size)
        png = png_bytes(quicklook.before_after(before, after))
        names = "-".join(plan.bands.names[k] for k in picks)
        rows = [(k.lower().replace("_", " "), v) for k, v in plan.provenance.items()]
        rows.append(("guide noise σ", ", ".join(f"{s:.4g}" for s in result.guide_sigma)))
        return build_report(result, pair, settings, png, title=self.displayName(), smoothing=False,
                            pixels=f"px on the {self.HIGH_ROLE} grid",
                            quicklook_caption=f"Quick-look ({names}): before ({self.LOW_ROLE}) | after (fused)",
                            extra_rows=rows)


def quicklook_bands(bands: OutputBands) -> list[int]:
    """Three output bands for a colour quick-look: closest to red, green, blue when the wavelengths are known
    and span the visible, else spread over the band list."""
    n = len(bands.names)
    return quicklook.natural_colour_bands(bands.wavelengths) or [round(f * (n - 1)) for f in (1.0, 0.5, 0.0)]
