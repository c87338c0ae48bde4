"""What every SURE Fusion algorithm shares: solver parameters, the torch check, and the feedback bridge.

torch is imported only when an algorithm runs, so the provider (and QGIS start-up) never needs it.
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import dependencies, help_page, rendering
from ..choices import labelled_enum
from ..compat import NUMBER_DOUBLE, NUMBER_INTEGER, advanced
from ..core_loader import core_module
from ..error_report import error_log_lines

S2_SIGMA_HELP = ("Leave empty to estimate each band's noise from the data (the usual choice; on textured scenes the "
                 "estimate errs high). Otherwise one number for all bands, or one per output band in spectral order "
                 "(B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12; without 60 m bands no B1 and B9), separated by "
                 "commas, in the data's units. A given σ also switches on the guided smoothing (when that is "
                 "'Automatic') and lets the first estimate borrow across bands.")

#: sure_core.SolverOptions' iterations, width and learning rate, shown as the defaults (a test checks they agree)
CORE_RECIPE = {"iterations": 300, "width": 16, "learning_rate": 3e-3}

#: how long a run takes, for the help texts: measured on one core of this project's 2-core CPU, quiet machine
#: (README: APEX 198² px, 0.48 s per iteration; DSen2 120² px, 0.19 s); about 12.5 µs per output pixel and iteration
TIME_HELP = ("Run time grows with the area × the iterations: on one CPU core about 12 µs per output pixel per "
             "iteration, so the default 300 iterations take about 1 minute for 120 × 120 px, 2½ minutes for "
             "200 × 200 px and 15 minutes for 500 × 500 px; a busy computer can take several times longer, a GPU "
             "far less. Larger areas train on crops (3–4 minutes) and then need about a minute per 1000 × 1000 px. "
             "Less when the network is found not to help and training stops early. Try a small extent first.")


RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def algorithm_icon_path(name: str) -> str:
    """resources/<algorithm name>.svg, or the provider's icon for an algorithm without its own."""
    path = RESOURCES / f"{name}.svg"
    return str(path if path.is_file() else RESOURCES / "icon.svg")


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

    LOSSES = {"sure": "SURE (recommended)", "bp": "Data fit only (BP)"}
    DEVICES = {"auto": "Automatic (GPU if present)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)"}
    NETWORKS = {"auto": "Automatic (kept if it helps)", "always": "Always", "never": "Never (first estimate only)"}
    COREGISTRATIONS = {"auto": "Automatic (measure, correct)", "off": "Off"}
    #: SMOOTHING choice → SolverOptions.smoothing (None: the case decides: S2 smooths when the 10 m σ is given)
    SMOOTHING_CHOICES = {"auto": None, "on": True, "off": False}
    SMOOTHING_LABELS = {"auto": "Automatic (when σ is given)", "on": "On", "off": "Off"}
    TRAINING_LABELS = {"auto": "Automatic", "whole": "Whole area at once", "tiles": "One network per tile",
                       "scene": "One network for the scene"}

    def createInstance(self):
        return type(self)()

    def helpUrl(self):  # noqa: N802  (QGIS's name)
        return help_page.help_url(self)

    def icon(self):
        return QIcon(algorithm_icon_path(self.name()))

    def svgIconPath(self):  # noqa: N802  (QGIS's name)
        return algorithm_icon_path(self.name())

    # ------------------------------------------------------------------ parameters
    def add_solver_parameters(self, pixels: str = "10 m px", sigma_help: str = S2_SIGMA_HELP) -> None:
        """ITERATIONS, LOSS, DEVICE, SEED and the advanced solver parameters, defaults shown as the recipe's values
        (0 still means "the recipe's"); `pixels` names the unit of the tile size and overlap (output pixels),
        `sigma_help` explains NOISE_SIGMA for this algorithm."""
        recipe = self.recipe_defaults()
        iterations = QgsProcessingParameterNumber(
            self.ITERATIONS, tr("Training iterations"), type=NUMBER_INTEGER, defaultValue=recipe["iterations"],
            minValue=0, maxValue=100000)
        iterations.setHelp(tr(f"How long the network trains on this scene ({recipe['iterations']} by default; 0 "
                              f"means the default). Fewer iterations are quicker and a little less sharp. {TIME_HELP}"))
        self.addParameter(iterations)
        self.addParameter(labelled_enum(
            self.LOSS, tr("Training loss"), self.LOSSES, "sure",
            tr("SURE (Stein's unbiased risk estimate) trains the network to the smallest expected error, noise "
               "included, without ground truth. 'Data fit only' (BP) just matches the observed bands, keeps more of "
               "their noise, and is there for comparison with the paper.")))
        self.addParameter(labelled_enum(
            self.DEVICE, tr("Device"), self.DEVICES, "auto",
            tr("Automatic: a CUDA GPU when PyTorch sees one, else the CPU (the log says which and why).")))
        seed = QgsProcessingParameterNumber(self.SEED, tr("Random seed"), type=NUMBER_INTEGER, defaultValue=0,
                                            minValue=0)
        seed.setHelp(tr("The same seed and inputs give the same result."))
        self.addParameter(seed)
        self.addParameter(advanced(labelled_enum(
            self.NETWORK, tr("Per-scene network"), self.NETWORKS, "auto",
            tr("The network refines a linear first estimate. Automatic: it is trained and kept only if SURE finds "
               "that it clearly beats that first estimate; otherwise training stops early and the first estimate "
               "is written (much faster on large areas, where applying the network to every tile takes most of "
               "the time). The log, the metadata and the report say which, with the measured gain. Always: keep "
               "the network whatever SURE says. Never: the first estimate alone (seconds, not minutes)."))))
        width = QgsProcessingParameterNumber(
            self.WIDTH, tr("Network width"), type=NUMBER_INTEGER, defaultValue=recipe["width"], minValue=0,
            maxValue=512)
        width.setHelp(tr("Feature channels of the network; wider is slower and rarely better (0: the default)."))
        self.addParameter(advanced(width))
        rate = QgsProcessingParameterNumber(
            self.LEARNING_RATE, tr("Learning rate"), type=NUMBER_DOUBLE, defaultValue=recipe["learning_rate"],
            minValue=0.0, maxValue=1.0)
        rate.setHelp(tr("Peak step size of the optimiser (0: the default)."))
        self.addParameter(advanced(rate))
        sigma = QgsProcessingParameterString(
            self.NOISE_SIGMA, tr("Noise σ per band (empty: estimate)"), defaultValue="", optional=True)
        sigma.setHelp(tr(sigma_help))
        self.addParameter(advanced(sigma))
        tile = QgsProcessingParameterNumber(
            self.TILE_SIZE, tr(f"Tile size, {pixels} (0: no tiles)"), type=NUMBER_INTEGER, defaultValue=0, minValue=0)
        tile.setHelp(tr("Process large areas piece by piece to bound the memory; 0 lets the training mode decide."))
        self.addParameter(advanced(tile))
        overlap = QgsProcessingParameterNumber(
            self.TILE_OVERLAP, tr(f"Tile overlap, {pixels}"), type=NUMBER_INTEGER, defaultValue=36, minValue=0)
        overlap.setHelp(tr("Margin read around each tile and discarded, so that tiles join without seams."))
        self.addParameter(advanced(overlap))
        threads = QgsProcessingParameterNumber(
            self.THREADS, tr("CPU threads (0: all but one)"), type=NUMBER_INTEGER, defaultValue=0, minValue=0,
            maxValue=256)
        threads.setHelp(tr("Threads PyTorch may use; one core is left to QGIS by default."))
        self.addParameter(advanced(threads))

    def recipe_defaults(self) -> dict:
        """The iterations, width and learning rate this algorithm runs with when the parameters are 0 (the core's
        fast recipe changed by RECIPE); read without torch, so the values are kept here in step with the core
        (a test checks them)."""
        return {**CORE_RECIPE, **{k: v for k, v in self.RECIPE.items() if k in CORE_RECIPE}}

    def add_smoothing_parameter(self) -> None:
        """SMOOTHING (advanced): the guided smoothing of the output, its strength chosen by SURE (Sentinel-2)."""
        self.addParameter(advanced(labelled_enum(
            self.SMOOTHING, tr("Guided smoothing"), self.SMOOTHING_LABELS, "auto",
            tr("Averages each pixel of the sharpened bands with nearby pixels whose 10 m bands look alike, as "
               "strongly as SURE finds useful (possibly not at all). It removes the noise that the 10 m detail "
               "carries into the sharpened bands in flat, dark areas (water, shadow). Its SURE needs the 10 m bands' "
               "true noise σ, so 'Automatic' smooths only when 'Noise σ per band' is given. The strength used is "
               "written to the output's metadata."))))

    def add_coregistration_parameter(self) -> None:
        """COREGISTRATION (advanced): measure and correct the coarse bands' sub-pixel shift against the guide."""
        self.addParameter(advanced(labelled_enum(
            self.COREGISTRATION, tr("Co-registration of the coarse bands"), self.COREGISTRATIONS, "auto",
            tr("Automatic (default): measures, band by band, how far the coarse bands lie from the guide, to a "
               "hundredth of a pixel, and corrects it inside the fusion, so that the output lies on the guide's "
               "grid. Resampled, reprojected or exported data, and pairs from two sensors, are often a fraction of "
               "a pixel off, which blurs and displaces a sharpened band. The shifts (pixels and metres) are written "
               "to the log and the output's metadata; where the scene gives too little to measure (water, flat, "
               "cloud), the shift is kept at zero and the log says so. Off: trust the georeferencing."))))

    def coregistration_choice(self, parameters, context) -> str:
        return self.parameterAsEnumString(parameters, self.COREGISTRATION, context) or "auto"

    def add_training_parameter(self) -> None:
        """TRAINING (advanced): how the network is trained over the area; read back with `training_choice`."""
        self.addParameter(advanced(labelled_enum(
            self.TRAINING, tr("Training"), self.TRAINING_LABELS, "auto",
            tr("Whole area at once: one network trained on the whole area (memory and time grow with it). One "
               "network per tile: each tile trains its own. One network for the scene: trained on crops spread over "
               "the area, then applied tile by tile (bounded memory, time linear in the area; for whole scenes). "
               "Automatic: the whole area up to 512 × 512 output px, per tile when a tile size is set, the scene "
               "otherwise."))))

    def training_choice(self, parameters, context) -> str:
        return self.parameterAsEnumString(parameters, self.TRAINING, context) or "auto"

    def add_output_parameters(self, output_description: str) -> None:
        """OUTPUT (GeoTIFF), the REPORT (HTML; made by default, in a temporary file named after the output), and
        the numeric outputs every algorithm returns."""
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr(output_description)))
        report = QgsProcessingParameterFileDestination(
            "REPORT", tr("Run report (HTML)"), fileFilter="HTML files (*.html)", optional=True, createByDefault=True)
        report.setHelp(tr("Parameters, training curve, the estimated error per band and a before/after quick-look. "
                          "By default a temporary file named after the output, listed in the Results Viewer."))
        self.addParameter(report)
        self.addOutput(QgsProcessingOutputNumber("FINAL_RISK", tr("SURE risk of the last iterations (normalised)")))
        self.addOutput(QgsProcessingOutputString("ESTIMATED_RMSE", tr("Estimated RMSE per band (output units)")))
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
        from ..io_errors import RasterIOError

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
                   layer_name: str, display_bands: list[int] | None) -> dict:
        """Run `run(before_commit)` (a QGIS-free driver returning a FusionResult; `before_commit` as in
        `fusion_run.write_area`), turning the core's and the readers' and writer's errors, a cancel and a SIGTERM into
        QgsProcessingException; log the summary and the error estimate, name and colour the layer QGIS loads
        (`layer_name` for a temporary output, `display_bands`: 0-based red, green, blue), and return the outputs.

        The REPORT (`report_html(result, written output) -> str`) is written before the output is put in place, and
        put in place right after it: a report that cannot be written leaves the old output untouched too. A temporary
        REPORT is named after the output (Results Viewer entries all read "Run report" otherwise).
        """
        from ..io_errors import RasterIOError
        from ..safe_output import stage_text
        from ..stop_signals import sigterm_cancels

        staged = {}

        def before_commit(result, written):
            if feedback.isCanceled():  # asked after the last iteration: still nothing replaced
                raise core.FusionCancelled("stopped before the output was put in place")
            if not report_path:
                return []
            path = report_path
            if rendering.is_temporary(path, context):
                path = str(Path(path).with_name(f"{Path(result.path).stem} report.html"))
            staged["REPORT"] = path
            return [stage_text(path, report_html(result, written), "REPORT")]

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
                          f"wrote {result.path}")
        errors = result.error_by_band()
        for line in error_log_lines(errors, result.units):
            feedback.pushInfo(line)
        if result.final_risk < 0 and (self.parameterAsString(parameters, self.NOISE_SIGMA, context) or "").strip():
            feedback.pushWarning(f"The final SURE risk is negative ({result.final_risk:.4g}): SURE estimates an "
                                 f"error, which is never negative on average, so the NOISE_SIGMA given is probably "
                                 f"larger than the data's real noise and the result smoother than it should be; "
                                 f"leave NOISE_SIGMA empty to estimate σ")
        outputs = {"OUTPUT": result.path, "FINAL_RISK": result.final_risk, "DEVICE_USED": result.device,
                   "SECONDS": result.seconds, "ESTIMATED_RMSE": ", ".join(
                       f"{name}={e.rmse:.4g}±{e.rmse_sd:.2g}" for name, e in errors.items())}
        if staged.get("REPORT"):
            outputs["REPORT"] = staged["REPORT"]
        rendering.on_load(context, result.path, layer_name, display_bands)
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


class FeedbackBridge:
    """Adapts QgsProcessingFeedback to the core's progress callback: progress, periodic log lines, cancel."""

    def __init__(self, feedback, iterations: int, log_every: int | None = None):
        self.feedback = feedback
        self.log_every = log_every or max(1, min(50, iterations // 10))
        self.scene = False
        # the pseudo-tile under which 'scene' training reports its iterations (before the tiles report, once each)
        self.training_stage = core_module("tiling").TRAINING_STAGE

    #: with 'scene' training, the share of the progress bar given to training (the tiles fill the rest)
    TRAINING_SHARE = 0.5

    def __call__(self, tile, progress) -> bool:
        done = (tile.index + progress.iteration / progress.iterations) / tile.count
        if tile is self.training_stage:
            self.scene = True
            done *= self.TRAINING_SHARE
        elif self.scene:
            done = self.TRAINING_SHARE + (1.0 - self.TRAINING_SHARE) * done
        self.feedback.setProgress(100.0 * done)
        if not math.isfinite(progress.loss):  # a tile of a scene model: no iterations to report
            return self.feedback.isCanceled()
        if progress.iteration % self.log_every == 0 or progress.iteration == progress.iterations:
            # the loss only: the per-iteration SURE risk is one noisy Monte-Carlo draw of a normalised MSE (it went
            # negative and rose while the loss fell, and users read it as "training made it worse"); the error
            # estimate in output units follows the run
            prefix = f"tile {tile.index + 1}/{tile.count}, " if tile.count > 1 else ""
            self.feedback.pushInfo(
                f"{prefix}iteration {progress.iteration}/{progress.iterations}: loss {progress.loss:.5g} "
                f"({progress.elapsed:.1f} s, about {progress.eta:.0f} s left)")
        return self.feedback.isCanceled()
