"""Enum and flag names that QGIS renamed between 3.22 and 3.36+ (qgis/QGIS PR #56269), in one place.

3.36+ and QGIS 4 (Qt6) want the scoped `Qgis.*` enums; 3.22 only has the enums inside the classes. Try the new
name first so the plugin keeps working when the old ones are removed. The 3.22 fallbacks are written with their
scope (`QgsProcessingParameterNumber.Type.Double`, not `QgsProcessingParameterNumber.Double`): that form also
works on 3.22 and is the one QGIS's Qt6 migration script (scripts/pyqt5_to_pyqt6) accepts.
"""
from qgis.core import Qgis, QgsProcessingParameterDefinition, QgsProcessingParameterFile, QgsProcessingParameterNumber


def _first(*getters):
    for get in getters:
        try:
            return get()
        except AttributeError:
            continue
    raise AttributeError("none of the known QGIS enum names exists in this QGIS version")


FLAG_ADVANCED = _first(lambda: Qgis.ProcessingParameterFlag.Advanced,
                       lambda: QgsProcessingParameterDefinition.Flag.FlagAdvanced)

NUMBER_INTEGER = _first(lambda: Qgis.ProcessingNumberParameterType.Integer,
                        lambda: QgsProcessingParameterNumber.Type.Integer)
NUMBER_DOUBLE = _first(lambda: Qgis.ProcessingNumberParameterType.Double,
                       lambda: QgsProcessingParameterNumber.Type.Double)

FILE_BEHAVIOR_FILE = _first(lambda: Qgis.ProcessingFileParameterBehavior.File,
                            lambda: QgsProcessingParameterFile.Behavior.File)
FILE_BEHAVIOR_FOLDER = _first(lambda: Qgis.ProcessingFileParameterBehavior.Folder,
                              lambda: QgsProcessingParameterFile.Behavior.Folder)


def advanced(parameter):
    """Mark a parameter as advanced (collapsed in the dialog) and return it."""
    parameter.setFlags(parameter.flags() | FLAG_ADVANCED)
    return parameter


# a loaded result's stretch (rendering.py): QGIS 3.42 moved the min/max limits to Qgis.RasterRangeLimit
from qgis.core import QgsRasterMinMaxOrigin  # noqa: E402  (kept with its use, apart from the block above)

CUMULATIVE_CUT = _first(lambda: Qgis.RasterRangeLimit.CumulativeCut, lambda: QgsRasterMinMaxOrigin.CumulativeCut)

# an algorithm kept for qgis_process and models but left out of the toolbox and the modeler's list
from qgis.core import QgsProcessingAlgorithm  # noqa: E402

HIDDEN = _first(lambda: Qgis.ProcessingAlgorithmFlag.HideFromToolbox | Qgis.ProcessingAlgorithmFlag.HideFromModeler,
                lambda: QgsProcessingAlgorithm.FlagHideFromToolbox | QgsProcessingAlgorithm.FlagHideFromModeler)

FLAG_OPTIONAL = _first(lambda: Qgis.ProcessingParameterFlag.Optional,
                       lambda: QgsProcessingParameterDefinition.FlagOptional)
