"""qgis_process smoke tests and a .model3 chaining GDAL's clip by extent with the sharpening."""
import re

import numpy as np
import pytest
from osgeo import gdal

import s2_fixtures
from alg_helpers import FAST
from cli_helpers import ROOT, cli_env, enable_plugin, require_qgis_process, run_json

CLI_FAST = [f"{k}={v}" for k, v in FAST.items()]


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    require_qgis_process()
    folder = tmp_path_factory.mktemp("qgis_profile")
    enable_plugin(folder, cli_env(folder))
    return folder


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    return s2_fixtures.write_band_rasters(tmp_path_factory.mktemp("cli_inputs"), s2_fixtures.synthetic_scene(72))


def test_qgis_process_run(profile, rasters, tmp_path):
    out = tmp_path / "sharp.tif"
    code, payload, text = run_json(
        ["sure_fusion:s2_sharpening", "--", f"INPUT_10M={rasters['10m']}", f"INPUT_20M={rasters['20m']}",
         f"INPUT_60M={rasters['60m']}", *CLI_FAST, f"OUTPUT={out}"], cli_env(profile))
    assert code == 0, text
    assert payload["results"]["OUTPUT"] == str(out)
    assert payload["results"]["DEVICE_USED"] == "cpu"
    info = "\n".join(payload["log"]["info"])
    assert "Device: cpu (requested)" in info and "iteration 3/3" in info
    ds = gdal.Open(str(out))
    assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (12, 72, 72)


def test_qgis_process_reports_bad_input(profile, rasters, tmp_path):
    out = tmp_path / "sharp.tif"
    code, _, text = run_json(
        ["sure_fusion:s2_sharpening", "--", f"INPUT_10M={rasters['10m']}", f"INPUT_20M={rasters['60m']}",
         *CLI_FAST, f"OUTPUT={out}"], cli_env(profile))
    assert code != 0
    assert "INPUT_20M" in text and "needs exactly 6" in text
    assert not out.exists()


def test_provider_loads_without_torch_and_says_how_to_install(rasters, tmp_path):
    """Without the venv on PYTHONPATH QGIS's Python lacks torch (or, with a distribution's torch, an add-on): the
    algorithm is listed, and fails naming the missing package and the installer."""
    profile = tmp_path / "profile"
    profile.mkdir()
    env = cli_env(profile, with_venv=False)
    enable_plugin(profile, env)
    out = tmp_path / "sharp.tif"
    code, _, text = run_json(["sure_fusion:s2_sharpening", "--", f"INPUT_10M={rasters['10m']}",
                              f"INPUT_20M={rasters['20m']}", f"OUTPUT={out}"], env)
    if "Device: cpu" in text:
        pytest.skip("torch is importable by QGIS's Python even without the venv")
    assert code != 0
    assert re.search(r"(torch|PyWavelets|pytorch_wavelets) is not installed in the Python that QGIS uses", text)
    assert re.search(r"No module named '(torch|pywt|pytorch_wavelets)'", text)
    assert "sure_fusion:install_dependencies" in text and "Install Python dependencies" in text
    assert not out.exists()


def _clip_and_sharpen_model():
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterExtent,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Source

    model = QgsProcessingModelAlgorithm("clip_and_sharpen", "SURE Fusion examples")
    for key in ("10m", "20m", "60m"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(f"bands_{key}", f"{key} bands"),
                                QgsProcessingModelParameter(f"bands_{key}"))
        clip = QgsProcessingModelChildAlgorithm("gdal:cliprasterbyextent")
        clip.setChildId(f"clip_{key}")
        clip.addParameterSources("INPUT", [Source.fromModelParameter(f"bands_{key}")])
        clip.addParameterSources("PROJWIN", [Source.fromModelParameter("extent")])
        model.addChildAlgorithm(clip)
    model.addModelParameter(QgsProcessingParameterExtent("extent", "Extent"), QgsProcessingModelParameter("extent"))
    sharpen = QgsProcessingModelChildAlgorithm("sure_fusion:s2_sharpening")
    sharpen.setChildId("sharpen")
    for key in ("10m", "20m", "60m"):
        sharpen.addParameterSources(f"INPUT_{key.upper()}", [Source.fromChildOutput(f"clip_{key}", "OUTPUT")])
    for name, value in FAST.items():
        sharpen.addParameterSources(name, [Source.fromStaticValue(value)])
    output = QgsProcessingModelOutput("sharpened", "Sharpened")
    output.setChildId("sharpen")
    output.setChildOutputName("OUTPUT")
    sharpen.setModelOutputs({"sharpened": output})
    model.addChildAlgorithm(sharpen)
    model.updateDestinationParameters()
    return model


def test_model_clip_then_sharpen(provider, profile, tmp_path):
    import processing

    scene = s2_fixtures.synthetic_scene(120, seed=7)
    rasters = s2_fixtures.write_band_rasters(tmp_path / "in", scene)
    model = _clip_and_sharpen_model()
    path = tmp_path / "clip_and_sharpen.model3"
    assert model.toFile(str(path))
    assert 'value="cpu"' in path.read_text() or "cpu" in path.read_text()
    x0, y0 = s2_fixtures.ORIGIN
    extent = f"{x0 + 120},{x0 + 660},{y0 - 660},{y0 - 120} [EPSG:32648]"   # on the 60 m grid: 54×54 px
    inputs = {f"bands_{k}": rasters[k] for k in ("10m", "20m", "60m")}

    # QGIS names a model's output parameter "sharpen:sharpened" (child id: output) on 3.22, "sharpened" on 3.40
    (output,) = [p.name() for p in model.destinationParameterDefinitions()]
    assert output in ("sharpen:sharpened", "sharpened")
    out_py = tmp_path / "python.tif"
    result = processing.run(model, {**inputs, "extent": extent, output: str(out_py)})
    assert result[output] == str(out_py)

    out_cli = tmp_path / "cli.tif"
    code, payload, text = run_json([str(path), "--", *[f"{k}={v}" for k, v in inputs.items()], f"extent={extent}",
                                    f"{output}={out_cli}"], cli_env(profile))
    assert code == 0, text
    for out in (out_py, out_cli):
        ds = gdal.Open(str(out))
        assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (12, 54, 54)
        assert ds.GetGeoTransform() == pytest.approx((x0 + 120, 10, 0, y0 - 120, 0, -10))
    # same seed, same inputs, same code path: the two runs agree up to float round-off between processes
    a = gdal.Open(str(out_py)).ReadAsArray()
    b = gdal.Open(str(out_cli)).ReadAsArray()
    assert np.abs(a - b).mean() < 1e-3 * np.abs(a).mean()


def test_repository_root_is_the_plugin_path():
    assert (ROOT / "sure_fusion_qgis" / "metadata.txt").is_file()
