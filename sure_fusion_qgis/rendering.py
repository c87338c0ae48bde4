"""How a finished run's layer is named and drawn when QGIS loads it.

QGIS shows a multiband raster as bands 1/2/3, which for a Sentinel-2 output is B1/B2/B3 (purple and orange) and
for most fused outputs a meaningless combination. When the bands' wavelengths are known the loaded layer is drawn
in natural colour (the bands nearest 650/550/470 nm: B4/B3/B2 for Sentinel-2) with QGIS's usual stretch, a
2–98 % cumulative count cut per band, which also keeps a few negative or bright outliers from washing it out.

The layer is named after the output file, as QGIS's own algorithms name saved outputs, so that runs to different
files load under different names; a temporary output gets a descriptive name instead.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsRectangle,
)

from .compat import CUMULATIVE_CUT

#: QGIS's default cumulative count cut
CUT = (0.02, 0.98)
#: pixels sampled for the cut (QGIS samples 250 000 for its own default stretch)
SAMPLE = 250_000

# the post-processors handed to QGIS: it keeps no Python reference of its own, and one that is garbage-collected
# before the layer loads crashes or is silently skipped
_ALIVE: dict[str, NaturalColour] = {}


def is_temporary(path: str, context) -> bool:
    """True when `path` lies in Processing's temporary folder (the output was TEMPORARY_OUTPUT)."""
    try:
        folder = QgsProcessingUtils.tempFolder(context)
    except TypeError:  # QGIS before 3.32: no context argument
        folder = QgsProcessingUtils.tempFolder()
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False


def layer_name(path: str, context, temporary_name: str) -> str:
    """The loaded layer's name: the output file's name without extension, or `temporary_name` for a temporary
    output."""
    return temporary_name if is_temporary(path, context) else Path(path).stem


class NaturalColour(QgsProcessingLayerPostProcessorInterface):
    """Draws a loaded raster with bands `rgb` (1-based) as red, green and blue, each stretched by the cut."""

    def __init__(self, rgb: list[int]):
        super().__init__()
        self.rgb = list(rgb)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802  (QGIS's name)
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid() or layer.bandCount() < max(self.rgb):
            return
        layer.setRenderer(colour_renderer(layer, self.rgb))
        layer.triggerRepaint()


def colour_renderer(layer: QgsRasterLayer, rgb: list[int]) -> QgsMultiBandColorRenderer:
    """A multiband colour renderer of `rgb` (1-based bands) with a per-band cumulative count cut (CUT)."""
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *rgb)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, set_enhancement in zip(rgb, setters):
        low, high = provider.cumulativeCut(band, CUT[0], CUT[1], QgsRectangle(), SAMPLE)
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high if high > low else low + 1e-9)
        set_enhancement(enhancement)
    origin = renderer.minMaxOrigin()  # so that Layer Properties › Symbology shows how the limits were chosen
    origin.setLimits(CUMULATIVE_CUT)
    origin.setCumulativeCutLower(CUT[0])
    origin.setCumulativeCutUpper(CUT[1])
    renderer.setMinMaxOrigin(origin)
    return renderer


def on_load(context, path: str, temporary_name: str, rgb: list[int] | None) -> None:
    """When QGIS loads `path` at the end of the run: name the layer (see `layer_name`) and, with `rgb` (0-based
    output bands for red, green and blue), draw it in those colours."""
    if not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = layer_name(path, context, temporary_name)
    if rgb:
        _ALIVE[path] = processor = NaturalColour([band + 1 for band in rgb])
        details.setPostProcessor(processor)
