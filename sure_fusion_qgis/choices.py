"""Drop-down choices that read as words in the dialog but keep the short static values scripts store.

QgsProcessingParameterEnum with static strings shows its values themselves ('sure', 'bp', 'worldview2'), and
has no separate display names. The values must stay: `qgis_process` calls and saved models use them. So the
parameter keeps them, and a small widget wrapper (QGIS's Python wrapper mechanism, metadata 'widget_wrapper')
shows a label for each in the algorithm and batch dialogs. The modeler gets QGIS's own widget, which also offers
model inputs and other algorithms' outputs as sources.
"""
from __future__ import annotations

from functools import lru_cache

from qgis.core import QgsProcessingParameterEnum

#: this module's wrapper, by the import path QGIS uses to load it (the plugin's folder name comes first)
WRAPPER = f"{__name__}.LabelledChoiceWrapper"


def labelled_enum(name: str, description: str, choices: dict[str, str], default: str,
                  help_text: str = "") -> QgsProcessingParameterEnum:
    """An enum of `choices`' keys (the static values) that the dialog shows as `choices`' values."""
    parameter = QgsProcessingParameterEnum(name, description, options=list(choices), defaultValue=default,
                                           usesStaticStrings=True)
    parameter.setMetadata({"widget_wrapper": {"class": WRAPPER, "labels": dict(choices)}})
    if help_text:
        parameter.setHelp(help_text)
    return parameter


@lru_cache(maxsize=1)
def _wrapper_class():
    # processing.gui is the desktop's Python package: imported only when a dialog asks for the wrapper
    from processing.gui.wrappers import WidgetWrapper
    from qgis.gui import QgsGui
    from qgis.PyQt.QtWidgets import QComboBox

    class Wrapper(WidgetWrapper):
        def __new__(cls, param, dialog, row=0, col=0, **kwargs):
            if type(dialog).__name__ == "ModelerParametersDialog":  # QGIS's modeler widget, as without metadata
                return QgsGui.processingGuiRegistry().createModelerParameterWidget(
                    dialog.model, dialog.childId, param, dialog.context)
            return super().__new__(cls)

        def createWidget(self, **kwargs):  # noqa: N802  (QGIS's names)
            labels = (self.parameterDefinition().metadata().get("widget_wrapper") or {}).get("labels", {})
            combo = QComboBox()
            for value in self.parameterDefinition().options():
                combo.addItem(labels.get(value, value), value)
            return combo

        def setValue(self, value):  # noqa: N802
            index = self.widget.findData(value)
            if index >= 0:
                self.widget.setCurrentIndex(index)

        def value(self):
            return self.widget.currentData()

    return Wrapper


def __getattr__(name: str):
    if name == "LabelledChoiceWrapper":
        return _wrapper_class()
    raise AttributeError(name)
