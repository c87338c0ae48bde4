"""What the two pair algorithms (HS+MS fusion, pansharpening) share: the two layers, the extent, the output
and report, NOISE_SIGMA for a pair, and the run itself. A subclass adds its own parameters and turns them
into the core's pair case (`prepare_fusion`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qgis.core import (QgsProcessingException, QgsProcessingParameterExtent, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer)

from .. import input_check, pair_io, quicklook, raster_io
from ..choices import labelled_enum
from ..compat import NUMBER_DOUBLE, advanced
from ..core_loader import core_module
from ..fusion_run import RunSettings
from ..guided_run import OutputBands, run_guided_fusion
from ..raster_io import RasterIOError
from ..report import build_report
from .base import FeedbackBridge, SureFusionAlgorithm, tr

PAIR_SIGMA_HELP = ("Leave empty to estimate each band's noise from the data. Otherwise the coarse layer's σ, "
                   "optionally followed by ';' and the fine layer's σ, each one number for all bands or one per band "
                   "(separated by commas), in the data's units. Example: '0.01' or '0.01; 4.5'.")


@dataclass
class FusionPlan:
    """What a subclass decides before the run: the core's pair case, the output bands, and what to record."""
    case: object                        # hsms.HsMsCase or pansharpening.PanMsCase, with the sensor-model options
    bands: OutputBands
    provenance: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


class GuidedFusionAlgorithm(SureFusionAlgorithm):
    """Base of the pair algorithms. Subclasses set the class attributes below and implement prepare_fusion."""
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
    PSF_LABELS = {"sensor": "The sensor's MTF", "estimate": "Estimate from the two images",
                  "sigma": "Gaussian of the width below", "mtf": "Gaussian of the MTF below"}

    def add_psf_parameters(self, modes: tuple[str, ...], help_text: str) -> None:
        """PSF (enum, first mode the default) and the advanced PSF_VALUE; read back with `psf_choice`."""
        self.addParameter(labelled_enum(self.PSF, tr(f"{self.LOW_ROLE} blur (point-spread function)"),
                                        {m: self.PSF_LABELS[m] for m in modes}, modes[0], tr(help_text)))
        value = QgsProcessingParameterNumber(self.PSF_VALUE, tr("Blur: width or MTF"), type=NUMBER_DOUBLE,
                                             defaultValue=0.0, minValue=0.0)
        value.setHelp(tr(f"With 'Gaussian of the width below': its σ in {self.LOW_ROLE} pixels (about 0.4–0.6 for "
                         f"most imagers). With 'Gaussian of the MTF below': its MTF at the {self.LOW_ROLE} Nyquist "
                         f"frequency, between 0 and 1 (typically 0.2–0.4)."))
        self.addParameter(advanced(value))

    def psf_choice(self, parameters, context, pair) -> tuple[object, str]:
        """(psf_sigma for the core: None = the sensor preset, 'estimate', or σ in high-resolution pixels;
        a sentence for the log and metadata)."""
        mode = self.parameterAsEnumString(parameters, self.PSF, context) or "estimate"
        value = self.parameterAsDouble(parameters, self.PSF_VALUE, context)
        if mode == "sensor":
            return None, "the sensor preset's MTF gains"
        if mode == "estimate":
            return "estimate", "estimated from the two images"
        if mode == "sigma":
            if not value > 0:
                raise QgsProcessingException(f"'{self.PSF_LABELS['sigma']}' needs 'Blur: width or MTF' > 0: the "
                                             f"Gaussian σ in {self.LOW_ROLE} pixels (about 0.4–0.6 for most "
                                             f"imagers)")
            sigma = value * pair.ratio
            return sigma, f"Gaussian, σ {value:g} {self.LOW_ROLE} pixels = {sigma:.4g} {self.HIGH_ROLE} pixels"
        if not 0 < value < 1:
            raise QgsProcessingException(f"'{self.PSF_LABELS['mtf']}' needs 'Blur: width or MTF' between 0 and 1 "
                                         f"(the MTF at the {self.LOW_ROLE} Nyquist frequency, typically 0.2–0.4), "
                                         f"got {value:g}")
        sigma = core_module("psf").sigma_from_mtf(value, pair.ratio)
        return sigma, f"Gaussian with MTF gain {value:g} at Nyquist = σ {sigma:.4g} {self.HIGH_ROLE} pixels"

    # ------------------------------------------------------------------ subclass hook
    def prepare_fusion(self, parameters, context, pair: pair_io.RasterPair, core, options, feedback) -> FusionPlan:
        raise NotImplementedError

    # ------------------------------------------------------------------ running
    def processAlgorithm(self, parameters, context, feedback):
        core = self.import_core()
        options = self.solver_options(parameters, context, core)
        self.resolve_device(options, feedback)
        pair = self._open_pair(parameters, context)
        try:
            plan = self.prepare_fusion(parameters, context, pair, core, options, feedback)
            window = pair_io.plan_pair_area(pair, self.extent_in_crs(parameters, self.EXTENT, context,
                                                                          pair.high.grid.crs_wkt))
        except (core.SureFusionError, RasterIOError) as e:
            raise QgsProcessingException(str(e)) from None
        settings = RunSettings(options=options, sigma=self.parse_pair_sigma(parameters, context, pair),
                               tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                               tile_overlap=self.parameterAsInt(parameters, self.TILE_OVERLAP, context),
                               training=self.training_choice(parameters, context),
                               coregistration=self.coregistration_choice(parameters, context))
        target, report = self.check_output_paths(parameters, context, feedback, window.width, window.height,
                                                 len(plan.bands.names))
        feedback.pushInfo(
            f"{pair.low.label}: {pair.low.band_count} band(s); {pair.high.label}: {pair.high.band_count} band(s); "
            f"ratio {pair.ratio}; area {window.width}×{window.height} px on the {self.HIGH_ROLE} grid; "
            f"{options.iterations} iterations, loss {options.loss}, seed {options.seed}, "
            f"{options.threads} CPU thread(s); values in {pair.units}")
        for line in plan.log:
            feedback.pushInfo(line)
        bridge = FeedbackBridge(feedback, options.iterations)
        return self.run_driver(
            lambda before_commit: run_guided_fusion(pair, window, target, settings, plan.case, plan.bands,
                                                    provenance=plan.provenance, progress=bridge,
                                                    log=feedback.pushInfo, before_commit=before_commit),
            core, parameters, context, feedback, report,
            lambda result, written: self._report_html(result, written, pair, settings, plan),
            f"{self.RESULT_NAME} ({pair.scene_name})", quicklook.natural_colour_bands(plan.bands.wavelengths))

    def _open_pair(self, parameters, context) -> pair_io.RasterPair:
        layers = {}
        for name, label in ((self.LOW, self.LOW_LABEL), (self.HIGH, self.HIGH_LABEL)):
            layer = self.parameterAsRasterLayer(parameters, name, context)
            if layer is None:
                raise QgsProcessingException(f"{label}: {parameters.get(name)!s} cannot be loaded as a raster layer")
            if layer.providerType() != "gdal":
                raise QgsProcessingException(f"{label} ({layer.name()}) is a {layer.providerType()} layer; only "
                                             f"file-based (GDAL) rasters can be fused: save it as GeoTIFF")
            layers[name] = layer
        low, high = layers[self.LOW], layers[self.HIGH]
        try:
            return pair_io.open_pair(low.source(), high.source(),
                                     low_label=f"'{self.LOW_LABEL}' ({self.LOW}: {low.name()})",
                                     high_label=f"'{self.HIGH_LABEL}' ({self.HIGH}: {high.name()})",
                                     single_band_high=self.SINGLE_BAND_HIGH, scene_name=low.name())
        except RasterIOError as e:
            raise QgsProcessingException(str(e)) from None

    def parse_pair_sigma(self, parameters, context, pair) -> dict | None:
        """NOISE_SIGMA → {observation name of the low layer: [...] or None, of the high one: [...] or None} (the
        core case's σ keys: 'hs' and 'ms', 'ms' and 'pan'), or None to estimate everything."""
        text = (self.parameterAsString(parameters, self.NOISE_SIGMA, context) or "").strip()
        if not text or text.lower() == "auto":
            return None
        parts = text.split(";")
        if len(parts) > 2:
            raise QgsProcessingException(f"Noise σ {text!r} has more than two ';'-separated parts: give the "
                                         f"{self.LOW_ROLE}'s σ, optionally '; ' and the {self.HIGH_ROLE}'s σ")
        sigma = {}
        for key, part, raster in zip((self.LOW.lower(), self.HIGH.lower()), parts, (pair.low, pair.high)):
            sigma[key] = self._sigma_values(part, raster, text) if part.strip() else None
        return sigma

    @staticmethod
    def _sigma_values(part: str, raster, text: str) -> list[float]:
        try:
            values = [float(v) for v in part.split(",") if v.strip()]
        except ValueError:
            values = []
        if len(values) not in (1, raster.band_count) or any(not math.isfinite(v) or v < 0 for v in values):
            raise QgsProcessingException(
                f"Noise σ {text!r}: {raster.label} needs 1 or {raster.band_count} finite values ≥ 0 "
                f"(comma-separated), got {part.strip()!r}; leave it empty to estimate σ")
        return values

    # ------------------------------------------------------------------ report
    def _report_html(self, result, written, pair, settings, plan) -> str:
        """The report of `result`, its quick-look read from `written` (the output, before it is put in place)."""
        window = result.window
        size = quicklook.overview_size(window.width, window.height)
        picks = quicklook_bands(plan.bands)
        low = pair.low
        before = raster_io.read_bands_overview(low.path, low.label, [low.band_indexes[k] for k in picks],
                                               [low.scales[k] for k in picks], [low.offsets[k] for k in picks],
                                               pair.low_window(window), size)
        after = raster_io.read_overview(written, [k + 1 for k in picks], size)
        png = raster_io.png_bytes(quicklook.before_after(before, after))
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
