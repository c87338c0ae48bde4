"""The plugin object QGIS creates: registers the Processing provider and keeps it alive.

`qgis_process` calls only initProcessing() (with iface None); the desktop calls initGui() too.
"""
from qgis.core import QgsApplication


class SureFusionPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None  # held here: a provider that is garbage-collected silently loses its algorithms

    def initProcessing(self):
        if self.provider is not None:
            return
        from .provider import SureFusionProvider

        self.provider = SureFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
