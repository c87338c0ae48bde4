"""sure_fusion:s2_sharpening(_product, _bands) — Sentinel-2 20 m and 60 m bands sharpened to 10 m by Deep SURE."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
)

from .. import input_check, quicklook
from ..compat import FILE_BEHAVIOR_FILE, HIDDEN
from ..core_loader import core_module
from ..fusion_request import FusionRequest, prepare, run
from ..fusion_run import RunSettings
from ..io_errors import RasterIOError
from ..raster_stack import read_overview
from ..raster_writer import png_bytes
from ..report import build_report
from .base import TIME_HELP, FeedbackBridge, SureFusionAlgorithm, tr

INTRO = """Sharpens the Sentinel-2 20 m bands (B5, B6, B7, B8A, B11, B12) and, if given, the 60 m bands (B1, B9) to \
10 m, guided by the 10 m bands (B2, B3, B4, B8). A small neural network is trained on this scene alone, without \
any training data, by minimising Stein's unbiased risk estimate (SURE) of the error."""

PRODUCT_HELP = """<b>Input</b>: a Sentinel-2 L1C or L2A product: its .zip, or the MTD_MSIL1C.xml / MTD_MSIL2A.xml file \
inside the .SAFE folder (a .SAFE folder path typed in works too). Bands are picked by name, the L1C/L2A offset is \
applied and DN 0 is nodata; the output is in reflectance (0–1)."""

BANDS_HELP = """<b>Inputs</b>: three raster layers of one scene: the 10 m bands (B2, B3, B4, B8), the 20 m bands \
(B5, B6, B7, B8A, B11, B12) and, optionally, the 60 m bands (B1, B9); in that band order unless the band \
descriptions name the bands (as in the product's own 10m/20m/60m layers). They must share a projected CRS and \
the Sentinel-2 grid (a 20 m pixel covers 2 × 2, a 60 m pixel 6 × 6 pixels of 10 m). The output keeps their units."""

OUTPUT_HELP = """<b>Area to process</b> (optional) is snapped outwards to the 60 m grid (20 m without 60 m bands).

<b>Output</b>: a Float32 GeoTIFF on the 10 m grid, bands in spectral order B1, B2, B3, B4, B5, B6, B7, B8, B8A, \
B9, B11, B12 (B1 and B9 only with 60 m bands), nodata −9999 where any input was nodata. It opens in natural \
colour (B4, B3, B2). Its metadata say how it was made, including the noise σ and the <b>estimated error</b> of \
every sharpened band (RMSE and PSNR in the output's units, estimated without ground truth; also in the log and \
the report). The report (on by default) adds the training curve and a before/after quick-look.

""" + TIME_HELP


#: "*zip", not "*.zip": QGIS checks a File parameter's value against the filter's "*.ext" patterns and appends the
#: first extension to a name without a dot, so a renamed product folder ("S2_scene") was refused with a bare
#: "Incorrect parameter value for PRODUCT"; the plugin itself says what is wrong with a path
PRODUCT_FILTER = "Sentinel-2 products (MTD_MSIL1C.xml MTD_MSIL2A.xml *zip *SAFE);;All files (*)"


class S2SharpeningAlgorithm(SureFusionAlgorithm):
    """Sentinel-2 sharpening from a product or from band rasters. `INPUTS` says which this algorithm offers: the
    combined one (both, all optional; the first algorithm, kept for qgis_process scripts and models) stays out of
    the toolbox, where a form cannot show that one of two inputs is required; the toolbox has one algorithm per
    kind of input, each with its inputs marked required."""
    PRODUCT = "PRODUCT"
    INPUT_10M = "INPUT_10M"
    INPUT_20M = "INPUT_20M"
    INPUT_60M = "INPUT_60M"
    EXTENT = "EXTENT"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    INPUTS = ("product", "bands")
    LABELS = {"PRODUCT": "Sentinel-2 product", "INPUT_10M": "10 m bands (B2, B3, B4, B8)",
              "INPUT_20M": "20 m bands (B5–B8A, B11, B12)", "INPUT_60M": "60 m bands (B1, B9)"}

    def name(self):
        return "s2_sharpening"

    def displayName(self):
        return tr("Sentinel-2 sharpening (Deep SURE)")

    def shortDescription(self):  # noqa: N802  (QGIS's name)
        return tr("Sharpens the 20 m and 60 m bands of a Sentinel-2 scene to 10 m.")

    def group(self):
        return tr("Sentinel-2")

    def groupId(self):
        return "sentinel2"

    def flags(self):
        return super().flags() | HIDDEN if len(self.INPUTS) > 1 else super().flags()

    def tags(self):
        return ["sentinel-2", "sharpening", "super-resolution", "pansharpening", "fusion", "SURE", "deep learning",
                "20 m", "60 m", "10 m"]

    def shortHelpString(self):
        inputs = {"product": PRODUCT_HELP, "bands": BANDS_HELP}
        return tr("\n\n".join([INTRO, *(inputs[k] for k in self.INPUTS), OUTPUT_HELP]))

    def initAlgorithm(self, config=None):
        either = len(self.INPUTS) > 1   # then every input is optional, and checkParameterValues says what is missing
        if "product" in self.INPUTS:
            product = QgsProcessingParameterFile(
                self.PRODUCT, tr(self.LABELS[self.PRODUCT]), behavior=FILE_BEHAVIOR_FILE,
                fileFilter=PRODUCT_FILTER,
                optional=either)
            product.setHelp(tr("The product's .zip, or MTD_MSIL1C.xml / MTD_MSIL2A.xml inside its .SAFE folder."
                               + (" Or leave it empty and give the band layers." if either else "")))
            self.addParameter(product)
        if "bands" in self.INPUTS:
            for name in (self.INPUT_10M, self.INPUT_20M, self.INPUT_60M):
                layer = QgsProcessingParameterRasterLayer(name, tr(self.LABELS[name]),
                                                          optional=either or name == self.INPUT_60M)
                layer.setHelp(tr("A layer of this scene with these bands: a GeoTIFF of them, or the product's "
                                 f"{name[-3:].lower()} layer as QGIS opens it from the .zip or the .SAFE folder."))
                self.addParameter(layer)
        extent = QgsProcessingParameterExtent(self.EXTENT, tr("Area to process"), optional=True)
        extent.setHelp(tr("Leave empty for the whole scene; snapped outwards to the 60 m grid."))
        self.addParameter(extent)
        self.add_solver_parameters()
        self.add_smoothing_parameter()
        self.add_coregistration_parameter()
        self.add_training_parameter()
        self.add_output_parameters("Sharpened image")

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        has_product = "product" in self.INPUTS and bool(self.parameterAsFile(parameters, self.PRODUCT, context))
        layers = {}
        for name in ((self.INPUT_10M, self.INPUT_20M, self.INPUT_60M) if "bands" in self.INPUTS else ()):
            layers[name] = self.parameterAsRasterLayer(parameters, name, context)
            if layers[name] is None and parameters.get(name) not in (None, ""):
                return False, tr(f"{self.LABELS[name]}: {parameters[name]!s} cannot be loaded as a raster layer; "
                                 f"check the path")
        given = {k: v for k, v in layers.items() if v is not None}
        if has_product and given:
            return False, tr("Give either the Sentinel-2 product or the band layers, not both")
        if not has_product and not (self.INPUT_10M in given and self.INPUT_20M in given):
            return False, tr("Give a Sentinel-2 product, or both the 10 m bands (B2, B3, B4, B8) and the 20 m bands "
                             "(B5, B6, B7, B8A, B11, B12) as layers")
        swapped = input_check.swapped_s2_layers({k[-3:].lower(): (self.LABELS[k], v) for k, v in given.items()})
        return (False, tr(swapped)) if swapped else (True, "")


    # ------------------------------------------------------------------ running
    def processAlgorithm(self, parameters, context, feedback):
        core = self.import_core()
        options = self.solver_options(parameters, context, core)
        self.resolve_device(options, feedback)
        request = self._request(parameters, context, options)
        try:
            prepared = prepare(request, lambda crs_wkt: self.extent_in_crs(parameters, self.EXTENT, context, crs_wkt))
        except (core.SureFusionError, RasterIOError) as e:
            raise QgsProcessingException(str(e)) from None
        for warning in prepared.warnings:
            feedback.pushWarning(warning)
        window, band_names = prepared.window, prepared.band_names
        target, report = self.check_output_paths(parameters, context, feedback, window.width, window.height,
                                                 len(band_names))
        for line in prepared.info:
            feedback.pushInfo(line)
        bridge = FeedbackBridge(feedback, options.iterations)
        centres = {b.name: b.centre_nm for b in core_module("sentinel2").BANDS}
        return self.run_driver(
            lambda before_commit: run(prepared, target, progress=bridge, log=feedback.pushInfo,
                                      before_commit=before_commit),
            core, parameters, context, feedback, report,
            lambda result, written: self._report_html(result, written, prepared.inputs, prepared.settings),
            f"Sharpened image ({prepared.scene_name})",
            quicklook.natural_colour_bands([centres[n] for n in band_names]))

    def _request(self, parameters, context, options) -> FusionRequest:
        """The parameters as a request: the product, or the band layers (file-based: GDAL reads them)."""
        settings = RunSettings(options=options, tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                               tile_overlap=self.parameterAsInt(parameters, self.TILE_OVERLAP, context),
                               training=self.training_choice(parameters, context),
                               coregistration=self.coregistration_choice(parameters, context))
        sigma = self.parameterAsString(parameters, self.NOISE_SIGMA, context) or ""
        product = self.parameterAsFile(parameters, self.PRODUCT, context)
        if product:
            return FusionRequest("s2", {"product": product}, settings, sigma)
        sources, labels, name = {}, {}, None
        for key, param in (("10m", self.INPUT_10M), ("20m", self.INPUT_20M), ("60m", self.INPUT_60M)):
            layer = self.parameterAsRasterLayer(parameters, param, context)
            if layer is None:
                continue
            if layer.providerType() != "gdal":
                raise QgsProcessingException(f"{self.LABELS[param]} ({layer.name()}) is a {layer.providerType()} "
                                             f"layer; only file-based (GDAL) rasters can be sharpened: save it as "
                                             f"GeoTIFF")
            sources[key], labels[key] = layer.source(), f"'{self.LABELS[param]}' ({param}: {layer.name()})"
            name = name or layer.name()
        return FusionRequest("s2", sources, settings, sigma, labels=labels, scene_name=name)

    def _report_html(self, result, written, inputs, settings) -> str:
        """The report of `result`, its quick-look read from `written` (the output, before it is put in place)."""
        window = result.window
        size = quicklook.overview_size(window.width, window.height)
        names = list(quicklook.FALSE_COLOUR)
        after = read_overview(written, [result.band_names.index(n) + 1 for n in names], size)
        group = inputs.groups["20m"]
        before = group.read_overview(window, size, [group.names.index(n) for n in names])
        png = png_bytes(quicklook.before_after(before, after))
        return build_report(result, inputs, settings, png)


class S2ProductSharpeningAlgorithm(S2SharpeningAlgorithm):
    INPUTS = ("product",)

    def name(self):
        return "s2_sharpening_product"

    def displayName(self):
        return tr("Sentinel-2 sharpening, product (Deep SURE)")

    def shortDescription(self):  # noqa: N802
        return tr("Sharpens the 20 m and 60 m bands of a Sentinel-2 product (.zip or .SAFE) to 10 m.")


class S2BandSharpeningAlgorithm(S2SharpeningAlgorithm):
    INPUTS = ("bands",)

    def name(self):
        return "s2_sharpening_bands"

    def displayName(self):
        return tr("Sentinel-2 sharpening, band layers (Deep SURE)")

    def shortDescription(self):  # noqa: N802
        return tr("Sharpens Sentinel-2 20 m and 60 m band layers to 10 m, guided by the 10 m bands.")
