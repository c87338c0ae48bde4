"""sure_fusion:install_dependencies — installs torch, pytorch_wavelets and PyWavelets into the QGIS profile.

A Processing algorithm, so that the same installer serves the desktop (its dialog gives the log, the progress bar
and Cancel), qgis_process users and the tests. The work is in dependency_installer.py; torch is never imported
into QGIS here before it has been checked in a separate process.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .. import dependencies
from ..compat import FILE_BEHAVIOR_FILE, FILE_BEHAVIOR_FOLDER, advanced
from ..dependency_installer import TORCH_BUILDS, Callbacks, InstallError, InstallRequest, install
from .base import tr

HELP = """Installs the Python packages the SURE Fusion algorithms need — torch, pytorch_wavelets and PyWavelets — \
into a folder of your QGIS profile, with QGIS's own Python and pip. No administrator rights are needed, QGIS's \
own Python is not changed, and its numpy is kept (GDAL is built against it). Packages QGIS's Python already has \
in a suitable version are not installed again.

<b>torch build</b>: auto installs the CUDA build when an NVIDIA GPU is found (nvidia-smi), the CPU build \
otherwise (about 1 GB; CUDA: about 5 GB). macOS always gets PyPI's build, which uses the Apple GPU.

<b>Folder of wheel files</b> (optional): install from this folder alone, without internet. Download the wheels on \
a machine with internet for the same Python version and platform (docs/plugin.md shows the command).

<b>Package index</b> (advanced, optional): another index instead of PyPI (and PyTorch's index), e.g. a company \
mirror.

The log shows every line pip prints; if pip fails, the last message says why and what to do, and gives the \
command to run by hand. The algorithms can run right after a successful installation."""


class InstallDependenciesAlgorithm(QgsProcessingAlgorithm):
    TORCH_BUILD = "TORCH_BUILD"
    WHEELS = "WHEELS"
    INDEX_URL = "INDEX_URL"
    PYTHON = "PYTHON"

    def createInstance(self):
        return type(self)()

    def name(self):
        return "install_dependencies"

    def displayName(self):
        return tr("Install Python dependencies (torch, pytorch_wavelets, PyWavelets)")

    def group(self):
        return tr("Set-up")

    def groupId(self):
        return "setup"

    def tags(self):
        return ["install", "dependencies", "torch", "pytorch", "pip", "cuda", "setup"]

    def shortHelpString(self):
        return tr(HELP)

    def initAlgorithm(self, config=None):
        build = QgsProcessingParameterEnum(self.TORCH_BUILD, tr("torch build"), options=list(TORCH_BUILDS),
                                           defaultValue="auto", usesStaticStrings=True)
        build.setHelp(tr("auto: CUDA when nvidia-smi lists an NVIDIA GPU, the CPU build otherwise."))
        self.addParameter(build)
        self.addParameter(QgsProcessingParameterFile(
            self.WHEELS, tr("Folder of wheel files (offline installation; empty = download)"),
            behavior=FILE_BEHAVIOR_FOLDER, optional=True))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.INDEX_URL, tr("Package index URL (empty = PyPI, and PyTorch's index for torch)"), optional=True)))
        self.addParameter(advanced(QgsProcessingParameterFile(
            self.PYTHON, tr("QGIS's Python interpreter (empty = found automatically)"), behavior=FILE_BEHAVIOR_FILE,
            optional=True)))
        self.addOutput(QgsProcessingOutputString("FOLDER", tr("Folder the packages are in")))
        self.addOutput(QgsProcessingOutputString("INSTALLED", tr("Packages installed now")))
        self.addOutput(QgsProcessingOutputString("TORCH_VERSION", tr("torch version")))
        self.addOutput(QgsProcessingOutputString("TORCH_BUILD", tr("torch build (cpu or cuda)")))

    def processAlgorithm(self, parameters, context, feedback):
        folder = dependencies.profile_folder()
        request = InstallRequest(
            folder=folder,
            torch_build=self.parameterAsEnumString(parameters, self.TORCH_BUILD, context) or "auto",
            wheels=self.parameterAsFile(parameters, self.WHEELS, context) or "",
            index_url=(self.parameterAsString(parameters, self.INDEX_URL, context) or "").strip(),
            python=self.parameterAsFile(parameters, self.PYTHON, context) or "")
        if request.wheels and not Path(request.wheels).is_dir():
            raise QgsProcessingException(f"WHEELS: {request.wheels} is not a folder")
        callbacks = Callbacks(log=feedback.pushConsoleInfo, progress=feedback.setProgress,
                              canceled=feedback.isCanceled)
        try:
            result = install(request, callbacks)
        except InstallError as e:
            raise QgsProcessingException(str(e)) from None
        dependencies.activate(folder)   # usable in this QGIS session right away
        feedback.pushInfo(f"Installed into {folder}: {', '.join(result.installed) or 'nothing new'}; torch "
                          f"{result.torch_version} ({result.torch_build} build, CUDA available: {result.cuda}). "
                          "The SURE Fusion algorithms can run now.")
        return {"FOLDER": str(folder), "INSTALLED": ", ".join(result.installed),
                "TORCH_VERSION": result.torch_version, "TORCH_BUILD": result.torch_build}
