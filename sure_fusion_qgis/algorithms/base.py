"""What every SURE Fusion algorithm shares: solver parameters, the torch check, and the feedback bridge.

torch is imported only when an algorithm runs, so the provider (and QGIS start-up) never needs it.
"""
from __future__ import annotations

import math
import os
from dataclasses import replace

from qgis.core import (QgsCoordinateReferenceSystem, QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingOutputNumber, QgsProcessingOutputString, QgsProcessingParameterEnum,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterString)
from qgis.PyQt.QtCore import QCoreApplication

from .. import dependencies
from ..compat import NUMBER_DOUBLE, NUMBER_INTEGER, advanced
from ..core_loader import core_module
from ..fusion_run import TRAINING_MODES, TRAINING_STAGE

S2_SIGMA_HELP = ("Empty: estimate σ of every band from the data (the smaller of the wavelet MAD and what the other "
                 "bands, and the finer bands, cannot predict; still an upper bound on textured scenes). Otherwise one "
                 "number for all bands, or one per output band in spectral order "
                 "(B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B11,B12; without 60 m: no B1, B9), comma-separated, "
                 "in the data's units. A given σ also turns on the guided smoothing (SMOOTHING auto) and the cross-band "
                 "shrinkage of the first estimate.")


def tr(text: str) -> str:
    return QCoreApplication.translate("SureFusion", text)


class SureFusionAlgorithm(QgsProcessingAlgorithm):
    ITERATIONS = "ITERATIONS"
    LOSS = "LOSS"
    DEVICE = "DEVICE"
    SEED = "SEED"
    WIDTH = "WIDTH"
    LEARNING_RATE = "LEARNING_RATE"
    NOISE_SIGMA = "NOISE_SIGMA"
    TILE_SIZE = "TILE_SIZE"
    TILE_OVERLAP = "TILE_OVERLAP"
    TRAINING = "TRAINING"
    THREADS = "THREADS"
    SMOOTHING = "SMOOTHING"
    COREGISTRATION = "COREGISTRATION"
    NETWORK = "NETWORK"

    LOSSES = ("sure", "bp")
    DEVICES = ("auto", "cpu", "cuda")

    def createInstance(self):
        return type(self)()

    # ------------------------------------------------------------------ parameters
    def add_solver_parameters(self, pixels: str = "10 m pixels", sigma_help: str = S2_SIGMA_HELP) -> None:
        """ITERATIONS, LOSS, DEVICE, SEED and the advanced solver parameters; `pixels` names the unit of the tile
        size and overlap (output pixels), `sigma_help` explains NOISE_SIGMA for this algorithm."""
        iterations = QgsProcessingParameterNumber(
            self.ITERATIONS, tr("Iterations (0 = the fast recipe's default)"), type=NUMBER_INTEGER,
            defaultValue=0, minValue=0, maxValue=100000)
        iterations.setHelp(tr("Training iterations of the per-scene network. 0 uses the core's fast recipe; "
                              "fewer iterations are quicker and blurrier."))
        self.addParameter(iterations)
        self.addParameter(QgsProcessingParameterEnum(
            self.LOSS, tr("Training loss"), options=list(self.LOSSES), defaultValue="sure", usesStaticStrings=True))
        device = QgsProcessingParameterEnum(
            self.DEVICE, tr("Device"), options=list(self.DEVICES), defaultValue="auto", usesStaticStrings=True)
        device.setHelp(tr("auto: a CUDA GPU if PyTorch sees one, else the CPU (the log says which and why)."))
        self.addParameter(device)
        self.addParameter(QgsProcessingParameterNumber(
            self.SEED, tr("Random seed"), type=NUMBER_INTEGER, defaultValue=0, minValue=0))
        network = QgsProcessingParameterEnum(
            self.NETWORK, tr("Per-scene network"), options=["auto", "always", "never"], defaultValue="auto",
            usesStaticStrings=True)
        network.setHelp(tr("The network refines a linear first estimate. auto (default): it is trained, and kept only "
                           "if SURE finds that it clearly beats that first estimate; otherwise training stops early "
                           "and the first estimate is written (much faster on large areas, where applying the "
                           "network to every tile takes most of the time). The log, the metadata and the report say "
                           "which, with the measured gain. always: keep the network whatever SURE says. never: the "
                           "first estimate alone (seconds, not minutes)."))
        self.addParameter(advanced(network))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.WIDTH, tr("Network width (0 = recipe default)"), type=NUMBER_INTEGER, defaultValue=0, minValue=0,
            maxValue=512)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.LEARNING_RATE, tr("Learning rate (0 = recipe default)"), type=NUMBER_DOUBLE, defaultValue=0.0,
            minValue=0.0, maxValue=1.0)))
        sigma = QgsProcessingParameterString(
            self.NOISE_SIGMA, tr("Noise σ per band (empty = estimate from the data)"), defaultValue="",
            optional=True)
        sigma.setHelp(tr(sigma_help))
        self.addParameter(advanced(sigma))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.TILE_SIZE, tr(f"Tile size in {pixels} (0 = whole area at once)"), type=NUMBER_INTEGER,
            defaultValue=0, minValue=0)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.TILE_OVERLAP, tr(f"Tile overlap (halo) in {pixels}"), type=NUMBER_INTEGER, defaultValue=36,
            minValue=0)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.THREADS, tr("CPU threads for torch (0 = all cores but one)"), type=NUMBER_INTEGER, defaultValue=0,
            minValue=0, maxValue=256)))

    #: SMOOTHING choice → SolverOptions.smoothing (None: the case decides: S2 smooths when the 10 m σ is given)
    SMOOTHING_CHOICES = {"auto": None, "on": True, "off": False}

    def add_smoothing_parameter(self) -> None:
        """SMOOTHING (advanced): the guided smoothing of the output, its strength chosen by SURE (Sentinel-2)."""
        smoothing = QgsProcessingParameterEnum(
            self.SMOOTHING, tr("Guided smoothing of the output (strength chosen by SURE)"),
            options=list(self.SMOOTHING_CHOICES), defaultValue="auto", usesStaticStrings=True)
        smoothing.setHelp(tr("Averages each pixel of the sharpened bands with its neighbours whose 10 m patches look "
                             "alike, as strongly as SURE on the 10 m bands finds useful (possibly not at all): removes "
                             "the noise the 10 m detail carries into the sharpened bands in flat, dark areas (water, "
                             "shadow), where it turns the spectra. SURE needs the 10 m bands' true noise σ: auto "
                             "(default) smooths when NOISE_SIGMA gives it, and not when σ is estimated from the data "
                             "(too high on textured scenes, where smoothing would remove real detail). The strength is "
                             "written to the output's metadata."))
        self.addParameter(advanced(smoothing))

    def add_coregistration_parameter(self) -> None:
        """COREGISTRATION (advanced): measure and correct the coarse bands' sub-pixel shift against the guide."""
        choice = QgsProcessingParameterEnum(
            self.COREGISTRATION, tr("Co-registration of the coarse bands"), options=["auto", "off"],
            defaultValue="auto", usesStaticStrings=True)
        choice.setHelp(tr("auto (default): measures, band by band, how far the coarse bands lie from the guide, to a "
                          "hundredth of a pixel, and corrects it inside the fusion, so that the output lies on the "
                          "guide's grid. Resampled, reprojected or exported data, and pairs from two sensors, are "
                          "often a fraction of a pixel off, which blurs and displaces a sharpened band. The shifts "
                          "(pixels and metres) are written to the log and the output's metadata; where the scene "
                          "gives too little to measure (water, flat, cloud), the shift is kept at zero and the log "
                          "says so. off: trust the georeferencing."))
        self.addParameter(advanced(choice))

    def coregistration_choice(self, parameters, context) -> str:
        return self.parameterAsEnumString(parameters, self.COREGISTRATION, context) or "auto"

    def add_training_parameter(self) -> None:
        """TRAINING (advanced): how the network is trained over the area; read back with `training_choice`."""
        training = QgsProcessingParameterEnum(
            self.TRAINING, tr("Training"), options=list(TRAINING_MODES), defaultValue="auto", usesStaticStrings=True)
        training.setHelp(tr("whole: one network trained on the whole area at once (the paper; memory and time grow "
                            "with the area). tiles: one network per tile. scene: one network trained on crops spread "
                            "over the area (away from nodata), then applied tile by tile (bounded memory, time linear "
                            "in the area; for large areas and whole scenes). auto: whole up to 512×512 output px, "
                            "tiles when a tile size is set, scene otherwise."))
        self.addParameter(advanced(training))

    def training_choice(self, parameters, context) -> str:
        return self.parameterAsEnumString(parameters, self.TRAINING, context) or "auto"

    def add_output_parameters(self, output_description: str) -> None:
        """OUTPUT (GeoTIFF), the optional REPORT (HTML), and the numeric outputs every algorithm returns."""
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr(output_description)))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", tr("Run report"), fileFilter="HTML files (*.html)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("FINAL_RISK", tr("Final SURE risk (normalised MSE)")))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", tr("Device that ran")))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", tr("Wall time in seconds")))

    def input_sources(self, parameters, context) -> dict[str, str]:
        """{parameter: file or GDAL source} of every raster-layer and file input: what no output may overwrite."""
        sources = {}
        for definition in self.parameterDefinitions():
            name = definition.name()
            if definition.type() == "raster":
                layer = self.parameterAsRasterLayer(parameters, name, context)
                if layer is not None:
                    sources[name] = layer.source()
            elif definition.type() == "file" and self.parameterAsFile(parameters, name, context):
                sources[name] = self.parameterAsFile(parameters, name, context)
        return sources

    def check_output_paths(self, parameters, context, feedback, width: int, height: int, bands: int
                           ) -> tuple[str, str]:
        """(OUTPUT, REPORT or '') once every check of `output_paths` passed for them, before any training; deletes
        the temporary files that killed runs left for them. `width`×`height`×`bands`: the output's size."""
        from .. import output_paths
        from ..raster_io import RasterIOError

        target = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        report = self.parameterAsFileOutput(parameters, "REPORT", context) or ""
        planned = [output_paths.geotiff_output("OUTPUT", target, width, height, bands)]
        if report:
            planned.append(output_paths.report_output("REPORT", report))
        try:
            removed = output_paths.check_outputs(planned, self.input_sources(parameters, context))
        except RasterIOError as e:
            raise QgsProcessingException(str(e)) from None
        for path in removed:
            feedback.pushInfo(f"Deleted {path}, a temporary file that an interrupted run had left")
        return target, report

    def run_driver(self, run, core, parameters, context, feedback, report_path: str, report_html,
                   layer_name: str) -> dict:
        """Run `run(before_commit)` (a QGIS-free driver returning a FusionResult; `before_commit` as in
        `fusion_run.write_tiles`), turning the core's and raster_io's errors, a cancel and a SIGTERM into
        QgsProcessingException; log the summary, name the layer the Toolbox loads, and return the outputs.

        The REPORT (`report_html(result, written output) -> str`) is written before the output is put in place, and
        put in place right after it: a report that cannot be written leaves the old output untouched too.
        """
        from ..raster_io import RasterIOError
        from ..safe_output import stage_text
        from ..stop_signals import sigterm_cancels

        def before_commit(result, written):
            if feedback.isCanceled():  # asked after the last iteration: still nothing replaced
                raise core.FusionCancelled("stopped before the output was put in place")
            return [stage_text(report_path, report_html(result, written), "REPORT")] if report_path else []

        with sigterm_cancels(feedback.cancel) as sigterm:
            try:
                result = run(before_commit)
            except core.FusionCancelled as e:
                how = "Stopped by SIGTERM" if sigterm else "Cancelled"
                raise QgsProcessingException(f"{how} ({e}); no output was written, and no existing file was "
                                             f"changed") from None
            except (core.SureFusionError, RasterIOError) as e:
                raise QgsProcessingException(str(e)) from None
        for text, warning in result.registration_log:
            (feedback.pushWarning if warning else feedback.pushInfo)(text)
        feedback.pushInfo(result.network_decision)
        feedback.pushInfo(f"Done in {result.seconds:.1f} s on {result.device} ({result.device_reason}); "
                          f"final SURE risk {result.final_risk:.4g}; wrote {result.path}")
        if result.final_risk < 0 and (self.parameterAsString(parameters, self.NOISE_SIGMA, context) or "").strip():
            feedback.pushWarning(f"The final SURE risk is negative ({result.final_risk:.4g}): SURE estimates an "
                                 f"error, which is never negative on average, so the NOISE_SIGMA given is probably "
                                 f"larger than the data's real noise and the result smoother than it should be; "
                                 f"leave NOISE_SIGMA empty to estimate σ")
        outputs = {"OUTPUT": result.path, "FINAL_RISK": result.final_risk, "DEVICE_USED": result.device,
                   "SECONDS": result.seconds}
        if report_path:
            outputs["REPORT"] = report_path
        if context.willLoadLayerOnCompletion(result.path):
            context.layerToLoadOnCompletionDetails(result.path).name = layer_name
        return outputs

    def extent_in_crs(self, parameters, name: str, context, crs_wkt: str):
        """The optional extent parameter `name` as (xmin, ymin, xmax, ymax) in the CRS `crs_wkt`, or None when it
        is not given. An empty extent is returned as it is, for the planning to refuse (it once meant "no extent",
        and the whole image was processed)."""
        if parameters.get(name) in (None, ""):
            return None
        rect = self.parameterAsExtent(parameters, name, context, QgsCoordinateReferenceSystem.fromWkt(crs_wkt))
        if rect.isNull() and not (rect.xMinimum() or rect.xMaximum() or rect.yMinimum() or rect.yMaximum()):
            return None
        return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()

    # --------------------------------------------------------------- core access
    @staticmethod
    def import_core():
        """The core package; a QgsProcessingException that names the real cause (and the installer) when torch or
        a torch add-on does not import."""
        problems = dependencies.problems()
        if problems:
            raise QgsProcessingException(dependencies.describe(problems))
        return core_module()

    #: this algorithm's changes to the core's fast recipe (SolverOptions field → value), used where a parameter is 0
    RECIPE: dict = {}

    def solver_options(self, parameters, context, core):
        """SolverOptions from the parameters; 0 means "keep the recipe's default" (core defaults + RECIPE)."""
        options = replace(core.SolverOptions(), **self.RECIPE)
        changes = {
            "loss": self.parameterAsEnumString(parameters, self.LOSS, context) or "sure",
            "device": self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto",
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "network": self.parameterAsEnumString(parameters, self.NETWORK, context) or "auto",
        }
        for name, field_name, read in ((self.ITERATIONS, "iterations", self.parameterAsInt),
                                       (self.WIDTH, "width", self.parameterAsInt),
                                       (self.LEARNING_RATE, "learning_rate", self.parameterAsDouble),
                                       (self.THREADS, "threads", self.parameterAsInt)):
            value = read(parameters, name, context)
            if value:
                changes[field_name] = value
        if self.parameterDefinition(self.SMOOTHING) is not None:
            choice = self.parameterAsEnumString(parameters, self.SMOOTHING, context) or "auto"
            changes["smoothing"] = self.SMOOTHING_CHOICES[choice]
        if "threads" not in changes:
            # leave a core to QGIS; also, busy-waiting torch threads slow down badly (10×+ seen here) when
            # another process competes for every core
            changes["threads"] = max(1, (os.cpu_count() or 2) - 1)
        try:
            return replace(options, **changes).validated()
        except core.SureFusionError as e:
            raise QgsProcessingException(str(e)) from None

    def resolve_device(self, options, feedback):
        """Say which device will run and why — before anything is read or written — and fail early if absent."""
        core = core_module()
        try:
            device, reason = core_module("device").resolve_device(options.device)
        except core.SureFusionError as e:
            raise QgsProcessingException(str(e)) from None
        feedback.pushInfo(tr(f"Device: {device} ({reason})"))
        return device

    def parse_sigma(self, parameters, context, band_names: list[str], groups: dict[str, tuple[str, ...]]):
        """NOISE_SIGMA → {'10m': [...], ...} or None (estimate)."""
        text = (self.parameterAsString(parameters, self.NOISE_SIGMA, context) or "").strip()
        if not text or text.lower() == "auto":
            return None
        try:
            values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise QgsProcessingException(
                f"NOISE_SIGMA {text!r} is not a list of numbers: give one number, or {len(band_names)} comma-separated "
                f"numbers for {', '.join(band_names)}, or leave it empty to estimate σ") from None
        bad = [v for v in values if not math.isfinite(v) or v < 0]
        if len(values) not in (1, len(band_names)) or bad:
            if bad:
                problem = f"{', '.join(f'{v:g}' for v in bad)} {'is' if len(bad) == 1 else 'are'} not finite and ≥ 0"
            else:
                problem = f"{len(values)} values were given"
            raise QgsProcessingException(
                f"NOISE_SIGMA needs 1 or {len(band_names)} finite values ≥ 0 ({', '.join(band_names)}), "
                f"but {problem}: {text!r}")
        if len(values) == 1:
            values = values * len(band_names)
        by_band = dict(zip(band_names, values))
        return {key: [by_band[n] for n in names] for key, names in groups.items()}


class FeedbackBridge:
    """Adapts QgsProcessingFeedback to the core's progress callback: progress, periodic log lines, cancel."""

    def __init__(self, feedback, iterations: int, log_every: int | None = None):
        self.feedback = feedback
        self.log_every = log_every or max(1, min(50, iterations // 10))
        self.scene = False

    #: with 'scene' training, the share of the progress bar given to training (the tiles fill the rest)
    TRAINING_SHARE = 0.5

    def __call__(self, tile, progress) -> bool:
        done = (tile.index + progress.iteration / progress.iterations) / tile.count
        if tile is TRAINING_STAGE:
            self.scene = True
            done *= self.TRAINING_SHARE
        elif self.scene:
            done = self.TRAINING_SHARE + (1.0 - self.TRAINING_SHARE) * done
        self.feedback.setProgress(100.0 * done)
        if not math.isfinite(progress.loss):  # a tile of a scene model: no iterations to report
            return self.feedback.isCanceled()
        if progress.iteration % self.log_every == 0 or progress.iteration == progress.iterations:
            prefix = f"tile {tile.index + 1}/{tile.count}, " if tile.count > 1 else ""
            risk = f", SURE risk {progress.risk:.4g}" if math.isfinite(progress.risk) else ""
            self.feedback.pushInfo(
                f"{prefix}iteration {progress.iteration}/{progress.iterations}: loss {progress.loss:.5g}{risk} "
                f"({progress.elapsed:.1f} s, about {progress.eta:.0f} s left)")
        return self.feedback.isCanceled()
