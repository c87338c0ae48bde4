"""Enum and flag names that QGIS renamed between 3.22 and 3.36+ (qgis/QGIS PR #56269), in one place.

3.36+ and the Qt6 builds of QGIS 4 want the scoped `Qgis.*` enums; 3.22 only has the old class members.
Try the new name first so the plugin keeps working when the old ones are removed.
"""
from qgis.core import (Qgis, QgsProcessingParameterDefinition, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber)


def _first(*getters):
    for get in getters:
        try:
            return get()
        except AttributeError:
            continue
    raise AttributeError("none of the known QGIS enum names exists in this QGIS version")


FLAG_ADVANCED = _first(lambda: Qgis.ProcessingParameterFlag.Advanced,
                       lambda: QgsProcessingParameterDefinition.FlagAdvanced)

NUMBER_INTEGER = _first(lambda: Qgis.ProcessingNumberParameterType.Integer,
                        lambda: QgsProcessingParameterNumber.Integer)
NUMBER_DOUBLE = _first(lambda: Qgis.ProcessingNumberParameterType.Double,
                       lambda: QgsProcessingParameterNumber.Double)

FILE_BEHAVIOR_FILE = _first(lambda: Qgis.ProcessingFileParameterBehavior.File,
                            lambda: QgsProcessingParameterFile.File)


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
