"""The plugin object QGIS creates: registers the Processing provider and keeps it alive.

`qgis_process` calls only initProcessing() (with iface None); the desktop calls initGui() too, which adds the
menu entry of the dependency installer and offers it once when torch & co. are missing.
"""
from qgis.core import QgsApplication

from . import dependencies

MENU = "&SURE Fusion"


class SureFusionPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None  # held here: a provider that is garbage-collected silently loses its algorithms
        self.install_action = None
        # what the dependency installer put into the profile is importable from now on
        dependencies.activate(dependencies.profile_folder())

    def initProcessing(self):
        if self.provider is not None:
            return
        from .provider import SureFusionProvider

        self.provider = SureFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtCore import QTimer
        from qgis.PyQt.QtWidgets import QAction

        from . import install_prompt

        self.install_action = QAction(install_prompt.tr("Install Python dependencies…"), self.iface.mainWindow())
        self.install_action.triggered.connect(install_prompt.open_installer)
        self.iface.addPluginToMenu(MENU, self.install_action)
        # once the main window is up (not during QGIS's start-up, which would block it)
        QTimer.singleShot(0, lambda: install_prompt.offer_at_first_run(self.iface.mainWindow()))

    def unload(self):
        if self.install_action is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
