"""Runs inside QGIS (qgis --code, started by tools/gui_screenshots.py): opens the dialogs and a run, grabs them.

Everything happens through QGIS's own objects (processing.createAlgorithmDialog, the dialog's Run path, the layer
QGIS loads), stepped by a timer so that QGIS keeps drawing in between. Writes PNGs and summary.json into
$SURE_FUSION_GUI_OUT, then leaves QGIS.
"""
import json
import os
import traceback
from pathlib import Path

import processing
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.gui import QgsCollapsibleGroupBoxBasic
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QLineEdit, QScrollArea, QWidget
from qgis.utils import iface, plugins

OUT = Path(os.environ["SURE_FUSION_GUI_OUT"])
SAMPLE = Path(os.environ["SURE_FUSION_SAMPLE"])
DIALOGS = ("sure_fusion:s2_sharpening_bands", "sure_fusion:s2_sharpening_product", "sure_fusion:hsms_fusion",
           "sure_fusion:pansharpening")
RUN_ITERATIONS = 40
summary = {"dialogs": {}}
state = {}


def grab(widget, name):
    QgsApplication.processEvents()
    widget.grab().save(str(OUT / f"{name}.png"))


def fits(dialog):
    """Whether the parameter panel shows no horizontal scroll bar (every '…' button and arrow visible)."""
    areas = [a for a in dialog.findChildren(QScrollArea) if a.isVisible()]
    return all(not a.horizontalScrollBar().isVisible() for a in areas)


def show_advanced(dialog):
    """Expand the advanced parameters and show the lower part of the form (the dialog made taller to fit more)."""
    for widget in dialog.findChildren(QWidget):   # QGIS's "Advanced Parameters" group, found as a plain QWidget
        if "CollapsibleGroupBox" in widget.metaObject().className():
            sip.cast(widget, QgsCollapsibleGroupBoxBasic).setCollapsed(False)
    dialog.resize(dialog.width(), 990)
    QgsApplication.processEvents()
    for area in dialog.findChildren(QScrollArea):
        area.verticalScrollBar().setValue(area.verticalScrollBar().maximum())


def step_toolbox():
    toolbox = getattr(plugins.get("processing"), "toolbox", None)
    if toolbox is not None:
        toolbox.show()
        search = toolbox.findChild(QLineEdit)
        if search is not None:
            search.setText("Deep SURE")
        QgsApplication.processEvents()
        grab(toolbox, "00_toolbox")


def step_dialogs():
    layers = {key: QgsRasterLayer(str(SAMPLE / f"sample_{key}.tif"), f"sample_{key}") for key in ("10m", "20m", "60m")}
    for layer in layers.values():
        QgsProject.instance().addMapLayer(layer)
    state["layers"] = layers
    reference = processing.createAlgorithmDialog("gdal:pansharp")
    reference.show()
    QgsApplication.processEvents()
    size = reference.size()
    summary["gdal_pansharp_dialog"] = [size.width(), size.height()]
    summary["gdal_pansharp_fits"] = fits(reference)
    grab(reference, "01_gdal_pansharp")
    reference.close()
    preset = {"sure_fusion:s2_sharpening_bands": {"INPUT_10M": layers["10m"].id(), "INPUT_20M": layers["20m"].id(),
                                                   "INPUT_60M": layers["60m"].id()},
              "sure_fusion:hsms_fusion": {"HS": layers["20m"].id(), "MS": layers["10m"].id()}}
    for number, algorithm in enumerate(DIALOGS, start=2):
        dialog = processing.createAlgorithmDialog(algorithm, preset.get(algorithm, {}))
        dialog.resize(size)
        dialog.show()
        QgsApplication.processEvents()
        short = algorithm.split(":")[1]
        entry = {"fits": fits(dialog)}
        grab(dialog, f"{number:02d}_{short}")
        show_advanced(dialog)
        QgsApplication.processEvents()
        entry["fits_with_advanced"] = fits(dialog)
        grab(dialog, f"{number:02d}_{short}_advanced")
        summary["dialogs"][short] = entry
        dialog.close()


def step_run():
    layers = state["layers"]
    dialog = processing.createAlgorithmDialog("sure_fusion:s2_sharpening_bands", {
        "INPUT_10M": layers["10m"].id(), "INPUT_20M": layers["20m"].id(), "INPUT_60M": layers["60m"].id(),
        "ITERATIONS": RUN_ITERATIONS, "DEVICE": "cpu", "THREADS": 1,
        "OUTPUT": str(OUT / "sample_sharpened.tif")})
    dialog.show()
    state["run"] = dialog
    dialog.runAlgorithm()


def wait_run():
    dialog = state["run"]
    if not dialog.wasExecuted():
        return False
    grab(dialog, "07_run_log")
    loaded = [layer for layer in QgsProject.instance().mapLayers().values() if layer.name() == "sample_sharpened"]
    summary["run"] = {"results": {k: str(v) for k, v in (dialog.results() or {}).items()},
                      "loaded_layers": [layer.name() for layer in QgsProject.instance().mapLayers().values()]}
    if loaded:
        renderer = loaded[0].renderer()
        summary["run"]["renderer"] = [type(renderer).__name__, renderer.redBand(), renderer.greenBand(),
                                      renderer.blueBand()]
        iface.setActiveLayer(loaded[0])
        iface.mapCanvas().setExtent(loaded[0].extent())
    dialog.close()
    for layer in state["layers"].values():   # the result alone on the canvas
        QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)
    iface.mapCanvas().refreshAllLayers()
    return True


def finish():
    grab(iface.mainWindow(), "08_result_in_qgis")
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    QgsProject.instance().setDirty(False)
    os._exit(0)


STEPS = [step_toolbox, step_dialogs, step_run, wait_run, lambda: True, finish]


def tick():
    try:
        step = STEPS[0]
        if step() is not False:
            STEPS.pop(0)
    except Exception:  # noqa: BLE001  (record and leave: the runner reports a missing summary)
        summary.setdefault("errors", []).append(traceback.format_exc())
        if STEPS and STEPS[0] is not finish:
            STEPS.pop(0)
    QTimer.singleShot(1500, tick)


iface.mainWindow().resize(1500, 950)
QTimer.singleShot(4000, tick)
