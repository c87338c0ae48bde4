"""SURE Fusion — Sentinel-2 sharpening by Deep SURE, as a QGIS Processing provider.

Kept light on purpose: QGIS and qgis_process import this at every start, and torch is only needed when an
algorithm actually runs.
"""


def classFactory(iface):  # noqa: N802  (QGIS's name)
    from .plugin import SureFusionPlugin

    return SureFusionPlugin(iface)
