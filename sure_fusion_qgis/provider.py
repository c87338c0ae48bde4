"""The `sure_fusion` Processing provider."""
from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.hsms_fusion import HsMsFusionAlgorithm
from .algorithms.install_dependencies import InstallDependenciesAlgorithm
from .algorithms.pansharpening import PansharpeningAlgorithm
from .algorithms.s2_sharpening import S2BandSharpeningAlgorithm, S2ProductSharpeningAlgorithm, S2SharpeningAlgorithm
from .fusion_run import PLUGIN_VERSION

ICON = str(Path(__file__).resolve().parent / "resources" / "icon.svg")


class SureFusionProvider(QgsProcessingProvider):
    def id(self):
        return "sure_fusion"

    def name(self):
        return "SURE Fusion"

    def longName(self):
        return f"SURE Fusion {PLUGIN_VERSION} — unsupervised deep image fusion"

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def versionInfo(self):
        return PLUGIN_VERSION

    def defaultRasterFileExtension(self):
        return "tif"

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def loadAlgorithms(self):
        self.addAlgorithm(S2BandSharpeningAlgorithm())
        self.addAlgorithm(S2ProductSharpeningAlgorithm())
        self.addAlgorithm(S2SharpeningAlgorithm())   # product or bands: for qgis_process and models, not the toolbox
        self.addAlgorithm(HsMsFusionAlgorithm())
        self.addAlgorithm(PansharpeningAlgorithm())
        self.addAlgorithm(InstallDependenciesAlgorithm())
