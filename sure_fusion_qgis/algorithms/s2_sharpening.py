"""sure_fusion:s2_sharpening — Sentinel-2 20 m and 60 m bands sharpened to 10 m by Deep SURE."""
from __future__ import annotations

from qgis.core import (QgsProcessingException, QgsProcessingParameterExtent,
                       QgsProcessingParameterFile, QgsProcessingParameterRasterLayer)

from .. import quicklook, raster_io
from ..compat import FILE_BEHAVIOR_FILE
from ..core_loader import core_module
from ..raster_io import RasterIOError
from ..report import build_report
from ..sharpening import SharpeningSettings, run_sharpening
from .base import FeedbackBridge, SureFusionAlgorithm, tr

HELP = """Sharpens the Sentinel-2 20 m bands (B5, B6, B7, B8A, B11, B12) and, if given, the 60 m bands (B1, B9) to \
10 m, guided by the 10 m bands (B2, B3, B4, B8). A small neural network is trained on this scene alone, without \
any training data, by minimising Stein's unbiased risk estimate (SURE) of the error.

<b>Inputs</b>: either a Sentinel-2 L1C/L2A <i>product</i> (the .SAFE folder, its .zip, or MTD_MSIL1C.xml / \
MTD_MSIL2A.xml; bands picked by name, L2A/L1C offset applied, DN 0 = nodata; output in reflectance 0–1), \
or three rasters: 10 m (B2, B3, B4, B8), 20 m (B5, B6, B7, B8A, B11, B12) and optionally 60 m (B1, B9), in \
that band order unless the band descriptions name the bands; output in the inputs' units. The rasters must \
share a projected CRS and the Sentinel-2 grid relation (a 20 m pixel covers 2×2, a 60 m pixel 6×6 10 m pixels).

<b>Extent</b> (optional) is snapped outwards to the 60 m grid (20 m without 60 m input).

<b>Output</b>: a Float32 GeoTIFF on the 10 m grid of the input, bands in spectral order B1, B2, B3, B4, B5, B6, \
B7, B8, B8A, B9, B11, B12 (B1/B9 only with 60 m input), nodata −9999 wherever any input was nodata, with \
method, iterations, loss, seed, noise σ per band, final SURE risk, device and timings in its metadata. \
The optional report shows the loss and risk curves and a before/after quick-look.

Runtime grows with area × iterations: on a CPU, try a small extent first."""


#: "*zip", not "*.zip": QGIS checks a File parameter's value against the filter's "*.ext" patterns and appends the
#: first extension to a name without a dot, so a renamed product folder ("S2_scene") was refused with a bare
#: "Incorrect parameter value for PRODUCT"; the plugin itself says what is wrong with a path
PRODUCT_FILTER = "Sentinel-2 products (MTD_MSIL1C.xml MTD_MSIL2A.xml *zip *SAFE);;All files (*)"


class S2SharpeningAlgorithm(SureFusionAlgorithm):
    PRODUCT = "PRODUCT"
    INPUT_10M = "INPUT_10M"
    INPUT_20M = "INPUT_20M"
    INPUT_60M = "INPUT_60M"
    EXTENT = "EXTENT"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"

    def name(self):
        return "s2_sharpening"

    def displayName(self):
        return tr("Sentinel-2 sharpening (Deep SURE)")

    def group(self):
        return tr("Sentinel-2")

    def groupId(self):
        return "sentinel2"

    def tags(self):
        return ["sentinel-2", "sharpening", "super-resolution", "pansharpening", "fusion", "SURE", "deep learning",
                "20 m", "60 m", "10 m"]

    def shortHelpString(self):
        return tr(HELP)

    def initAlgorithm(self, config=None):
        product = QgsProcessingParameterFile(
            self.PRODUCT, tr("Sentinel-2 product (.SAFE folder, .zip or MTD_MSIL*.xml) — or use the rasters below"),
            behavior=FILE_BEHAVIOR_FILE, fileFilter=PRODUCT_FILTER, optional=True)
        self.addParameter(product)
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT_10M, tr("10 m bands (B2, B3, B4, B8)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT_20M, tr("20 m bands (B5, B6, B7, B8A, B11, B12)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT_60M, tr("60 m bands (B1, B9) [optional]"), optional=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, tr("Processed extent"), optional=True))
        self.add_solver_parameters()
        self.add_smoothing_parameter()
        self.add_coregistration_parameter()
        self.add_training_parameter()
        self.add_output_parameters("Sharpened 10 m bands")

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        has_product = bool(self.parameterAsFile(parameters, self.PRODUCT, context))
        present = {}
        for name in (self.INPUT_10M, self.INPUT_20M, self.INPUT_60M):
            present[name] = self.parameterAsRasterLayer(parameters, name, context) is not None
            if not present[name] and parameters.get(name) not in (None, ""):
                return False, tr(f"{name}: {parameters[name]!s} cannot be loaded as a raster layer; check the path")
        has_10, has_20, has_60 = present[self.INPUT_10M], present[self.INPUT_20M], present[self.INPUT_60M]
        if has_product and (has_10 or has_20 or has_60):
            return False, tr("Give either PRODUCT or the INPUT_10M/INPUT_20M(/INPUT_60M) rasters, not both")
        if not has_product and not (has_10 and has_20):
            return False, tr("Give a Sentinel-2 PRODUCT, or both INPUT_10M (B2, B3, B4, B8) and INPUT_20M "
                             "(B5, B6, B7, B8A, B11, B12) rasters")
        return True, ""

    # ------------------------------------------------------------------ running
    def processAlgorithm(self, parameters, context, feedback):
        core = self.import_core()
        s2 = core_module("sentinel2")
        core_groups = {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M}
        options = self.solver_options(parameters, context, core)
        self.resolve_device(options, feedback)

        inputs = self._open_inputs(parameters, context, core_groups)
        for warning in inputs.warnings:
            feedback.pushWarning(warning)
        groups = {k: core_groups[k] for k in inputs.groups}
        band_names = [n for n in s2.SPECTRAL_ORDER if any(n in g for g in groups.values())]
        settings = SharpeningSettings(
            options=options, sigma=self.parse_sigma(parameters, context, band_names, groups),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
            tile_overlap=self.parameterAsInt(parameters, self.TILE_OVERLAP, context),
            training=self.training_choice(parameters, context),
            coregistration=self.coregistration_choice(parameters, context))
        try:
            window = raster_io.plan_area(inputs, self.extent_in_crs(parameters, self.EXTENT, context, inputs.grid_10m.crs_wkt))
        except RasterIOError as e:
            raise QgsProcessingException(str(e)) from None
        target, report = self.check_output_paths(parameters, context, feedback, window.width, window.height,
                                                 len(band_names))
        feedback.pushInfo(f"Scene {inputs.scene_name}: {window.width}×{window.height} px at 10 m, "
                          f"{options.iterations} iterations, loss {options.loss}, seed {options.seed}, "
                          f"{options.threads} CPU thread(s); "
                          f"values in {inputs.units}")

        bridge = FeedbackBridge(feedback, options.iterations)
        return self.run_driver(
            lambda before_commit: run_sharpening(inputs, window, target, settings, progress=bridge,
                                                 log=feedback.pushInfo, before_commit=before_commit),
            core, parameters, context, feedback, report,
            lambda result, written: self._report_html(result, written, inputs, settings),
            f"{inputs.scene_name} sharpened 10 m")

    def _open_inputs(self, parameters, context, core_groups):
        try:
            product = self.parameterAsFile(parameters, self.PRODUCT, context)
            if product:
                return raster_io.open_s2_product(product, core_groups)
            paths, labels, name = {}, {}, None
            for key, param in (("10m", self.INPUT_10M), ("20m", self.INPUT_20M), ("60m", self.INPUT_60M)):
                layer = self.parameterAsRasterLayer(parameters, param, context)
                if layer is None:
                    continue
                if layer.providerType() != "gdal":
                    raise QgsProcessingException(f"{param} ({layer.name()}) is a {layer.providerType()} layer; "
                                                 f"only file-based (GDAL) rasters can be sharpened: save it as GeoTIFF")
                paths[key], labels[key] = layer.source(), f"{param} ({layer.name()})"
                name = name or layer.name()
            return raster_io.open_band_rasters(paths, core_groups, labels, scene_name=name)
        except RasterIOError as e:
            raise QgsProcessingException(str(e)) from None

    def _report_html(self, result, written, inputs, settings) -> str:
        """The report of `result`, its quick-look read from `written` (the output, before it is put in place)."""
        window = result.window
        size = quicklook.overview_size(window.width, window.height)
        names = list(quicklook.FALSE_COLOUR)
        after = raster_io.read_overview(written, [result.band_names.index(n) + 1 for n in names], size)
        before = raster_io.read_group_overview(inputs.groups["20m"], window, names, size)
        png = raster_io.png_bytes(quicklook.before_after(before, after))
        return build_report(result, inputs, settings, png)
