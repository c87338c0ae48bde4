"""The desktop side of the dependency installer: an offer at the first start without torch, and the menu entry.

Both open the Processing dialog of sure_fusion:install_dependencies, which already gives the parameters, the log,
the progress bar and Cancel; nothing here runs pip itself.
"""
from __future__ import annotations

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication

from . import dependencies

ALGORITHM = "sure_fusion:install_dependencies"
DO_NOT_ASK = "sure_fusion/dependencies/do_not_ask"


def tr(text: str) -> str:
    return QCoreApplication.translate("SureFusion", text)


def open_installer() -> None:
    import processing

    processing.execAlgorithmDialog(ALGORITHM, {})


def ask(parent) -> tuple[bool, bool]:
    """(install now?, never ask again?) from a message box."""
    from qgis.PyQt.QtWidgets import QCheckBox, QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(tr("SURE Fusion"))
    box.setText(tr("SURE Fusion needs the Python packages torch, pytorch_wavelets and PyWavelets, which QGIS's "
                   "Python does not have yet. Install them now into your QGIS profile? (About 1 GB for the CPU "
                   "build of torch, 5 GB for the CUDA build; no administrator rights needed.)"))
    box.setInformativeText(tr("You can also do it later: Plugins › SURE Fusion › Install Python dependencies…"))
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    do_not_ask = QCheckBox(tr("Do not ask again"))
    box.setCheckBox(do_not_ask)
    answer = box.exec()
    return answer == QMessageBox.StandardButton.Yes, do_not_ask.isChecked()


def offer_at_first_run(parent, ask=ask, open_installer=open_installer) -> bool:
    """Offer the installer when torch & co. cannot be found, unless the user said not to ask again. True when the
    user was asked."""
    settings = QgsSettings()
    if dependencies.look_installed() or settings.value(DO_NOT_ASK, False, type=bool):
        return False
    install_now, never_again = ask(parent)
    if never_again:
        settings.setValue(DO_NOT_ASK, True)
    if install_now:
        open_installer()
    return True
