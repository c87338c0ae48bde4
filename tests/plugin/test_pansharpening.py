"""sure_fusion:pansharpening through processing.run and qgis_process, on small GeoTIFF pairs: the output grid
equals the PAN grid, band descriptions carried over, nodata (8-bit and float inputs), given PAN weights and PSF,
the extent, metadata, cancel, a real WorldView-2 crop, and every bad input of issue 5."""
import json

import numpy as np
import pytest
from osgeo import gdal

import pair_fixtures as pf
from sure_fusion_qgis import pair_inputs, raster_stack, raster_writer
from test_nodata_extent_tiles import CancelAfter


@pytest.fixture(scope="module")
def scene():
    return pf.synthetic_pan_ms(64, ratio=4, bands=4)


@pytest.fixture(scope="module")
def rasters(scene, tmp_path_factory):
    return pf.write_pan_ms(tmp_path_factory.mktemp("pan_in"), scene)


@pytest.fixture(scope="module")
def sharpened(provider, rasters, tmp_path_factory):
    return pf.run_with_report("pansharpening", rasters, tmp_path_factory.mktemp("pan_out"))


def test_output_grid_equals_the_pan_grid(sharpened, rasters):
    _, out, _ = sharpened
    pan, ds = gdal.Open(rasters["pan"]), gdal.Open(str(out))
    assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (4, pan.RasterXSize, pan.RasterYSize)
    assert ds.GetGeoTransform() == pytest.approx(pan.GetGeoTransform())
    assert ds.GetSpatialRef().IsSame(pan.GetSpatialRef())
    assert [ds.GetRasterBand(i).GetDescription() for i in range(1, 5)] == ["blue", "green", "red", "nir"]
    assert all(ds.GetRasterBand(i).GetNoDataValue() == raster_writer.OUTPUT_NODATA for i in range(1, 5))


def test_pansharpened_bands_keep_the_ms(sharpened, scene):
    _, out, _ = sharpened
    data, _, _, _ = raster_stack.read_raster(str(out))
    assert np.isfinite(data).all()
    coarse = pf.block_mean(data, 4)
    for k in range(4):
        assert np.corrcoef(coarse[k].ravel(), scene["ms"][k].ravel())[0, 1] > 0.95, k
        assert abs(coarse[k].mean() - scene["ms"][k].mean()) < 0.02 * scene["ms"][k].mean()


def test_output_is_the_cores_result_on_the_same_arrays(sharpened, scene):
    """The plugin hands the core exactly the rasters' pixels, ratio and settings, and writes what it returns."""
    from sure_core.pansharpening import pansharpen
    from sure_core.solver import SolverOptions
    from sure_fusion_qgis.algorithms.pansharpening import PansharpeningAlgorithm

    _, out, _ = sharpened
    data, _, _, _ = raster_stack.read_raster(str(out))
    # the test's ITERATIONS; the width is the algorithm's recipe default
    options = SolverOptions(iterations=3, device="cpu", seed=0, threads=1, width=PansharpeningAlgorithm.RECIPE["width"])
    expected, _, _ = pansharpen(scene["ms"], scene["pan"], ratio=4, sensor="generic", options=options)
    assert np.abs(data - expected).max() < 1e-4 * np.abs(expected).max()


def test_metadata_records_sensor_weights_and_psf(sharpened):
    result, out, _ = sharpened
    md = gdal.Open(str(out)).GetMetadata()
    assert md["SENSOR"].startswith("generic") and md["MTF_GAINS"] == "0.3, 0.3, 0.3, 0.3"
    assert md["PAN_WEIGHTS_SOURCE"].startswith("estimated") and md["RESOLUTION_RATIO"] == "4"
    weights = np.array(json.loads(md["SPECTRAL_RESPONSE"]))
    assert weights.shape == (1, 4) and (weights >= 0).all() and weights.sum() > 0
    assert float(md["PSF_SIGMA_HR_PX"]) == pytest.approx(4 * np.sqrt(-2 * np.log(0.3)) / np.pi, rel=1e-3)
    assert md["ITERATIONS"] == "3" and md["BAND_ORDER"] == "blue,green,red,nir"
    assert result["DEVICE_USED"] == "cpu" and result["SECONDS"] > 0
    report = sharpened[2].read_text(encoding="utf-8")
    assert "Pansharpening (Deep SURE)" in report and "data:image/png;base64," in report


def test_8bit_and_float_inputs_with_nodata_given_weights_and_psf(provider, scene, tmp_path):
    ms = np.clip(scene["ms"] / 4, 1, 255)
    pan = scene["pan"].astype(np.float32) / 1000.0       # float reflectance-like PAN with a NaN hole
    ms[:, 3, 5] = 0                                      # nodata 0 in the 8-bit MS → a 4×4 block
    pan[0, 40, 50] = np.nan                              # NaN in the float PAN → one pixel
    rasters = pf.write_pan_ms(tmp_path / "in", dict(scene, ms=ms), pan=pan, gdal_type=gdal.GDT_Byte, nodata=0,
                              pan_gdal_type=gdal.GDT_Float32, pan_nodata=-1)
    out = tmp_path / "out.tif"
    pf.run_pair_alg("pansharpening", {**pf.layers(rasters), "PAN_WEIGHTS": "0.001, 0.001, 0.001, 0.001",
                                      "PSF": "sigma", "PSF_VALUE": 0.5, "OUTPUT": str(out)})
    data, _, _, md = raster_stack.read_raster(str(out))
    expected = np.zeros((64, 64), dtype=bool)
    expected[12:16, 20:24] = True
    expected[40, 50] = True
    assert ((data == raster_writer.OUTPUT_NODATA) == expected[None]).all()
    assert np.isfinite(data).all() and 0 < data[:, ~expected].mean() < 256
    assert json.loads(md["SPECTRAL_RESPONSE"]) == [[0.001] * 4]
    assert md["PAN_WEIGHTS_SOURCE"] == "given" and float(md["PSF_SIGMA_HR_PX"]) == pytest.approx(2.0)
    assert gdal.Open(str(out)).GetRasterBand(1).DataType == gdal.GDT_Float32


def test_extent_is_snapped_outwards_to_the_ms_grid(provider, rasters, tmp_path):
    x0, y0 = pf.ORIGIN                     # PAN 0.5 m, MS 2 m pixels
    extent = f"{x0 + 5.1},{x0 + 20.9},{y0 - 21.5},{y0 - 3.9} [EPSG:32631]"     # xmin,xmax,ymin,ymax
    out = tmp_path / "out.tif"
    pf.run_pair_alg("pansharpening", {**pf.layers(rasters), "EXTENT": extent, "ITERATIONS": 1, "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == pytest.approx((x0 + 4.0, 0.5, 0, y0 - 2.0, 0, -0.5))
    assert (ds.RasterXSize, ds.RasterYSize) == (36, 40)     # x 4→22 m, y 2→22 m


def test_real_worldview2_crop(provider, tmp_path):
    """16×16 MS px (8 bands, no descriptions) with the 64×64 PAN; the WV2 preset names the bands."""
    scene = pf.wv2_crop(16)
    rasters = pf.write_pan_ms(tmp_path / "in", scene, pan_pixel=0.5, ms_descriptions=[""] * 8)
    out = tmp_path / "wv2.tif"
    pf.run_pair_alg("pansharpening", {**pf.layers(rasters), "SENSOR": "worldview2", "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    data = ds.ReadAsArray().astype(np.float64)
    assert data.shape == (8, 64, 64)
    assert [ds.GetRasterBand(i).GetDescription() for i in (1, 5, 8)] == ["coastal", "red", "nir2"]
    wavelengths, _ = pair_inputs.spectral_info(ds)
    assert wavelengths[4] == pytest.approx(659.0)
    assert ds.GetMetadata()["MTF_GAINS"].endswith("0.35, 0.27")
    for k in range(8):
        assert np.corrcoef(pf.block_mean(data, 4)[k].ravel(), scene["ms"][k].ravel())[0, 1] > 0.9, k

    def detail(image):   # the part the MS cannot show: image minus its 4×4 block mean
        return (image - pf.upsample(pf.block_mean(image[None], 4), 4)[0]).ravel()

    pan_detail = detail(scene["pan"][0])
    assert np.corrcoef(detail(data[4]), pan_detail)[0, 1] > 0.5     # the red band took on the PAN's detail


def test_cancel_stops_and_leaves_no_output(provider, rasters, tmp_path):
    from qgis.core import QgsProcessingException

    out = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException) as error:
        pf.run_pair_alg("pansharpening", {**pf.layers(rasters), "ITERATIONS": 50, "OUTPUT": str(out)},
                        feedback=CancelAfter())
    assert "cancelled" in str(error.value).lower() and "iteration 1 of 50" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_qgis_process_run(rasters, tmp_path):
    out = tmp_path / "cli.tif"
    code, payload, text = pf.cli_run("pansharpening", {**pf.layers(rasters), "SENSOR": "ikonos", "OUTPUT": out})
    assert code == 0, text
    assert payload["results"]["OUTPUT"] == str(out)
    info = "\n".join(payload["log"]["info"])
    assert "IKONOS" in info and "iteration 3/3" in info
    ds = gdal.Open(str(out))
    assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (4, 64, 64)


# ------------------------------------------------------------------------------------------ bad input
def _fails(parameters, expected, tmp_path, out=None):
    return pf.assert_fails("pansharpening", parameters, expected, out or tmp_path / "out.tif")


def test_pan_with_several_bands(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, scene, pan=np.concatenate([scene["pan"]] * 3))
    _fails(pf.layers(rasters), ["has 3 bands", "exactly one", "Rearrange bands"], tmp_path)


def test_pan_not_finer_than_ms(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, scene, pan_pixel=2.0, ms_pixel=2.0)
    _fails(pf.layers(rasters), ["is not finer than"], tmp_path)


def test_non_integer_ratio(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, scene, pan_pixel=0.5, ms_pixel=1.25)
    _fails(pf.layers(rasters), ["2.5, not an integer", "1.25", "0.5"], tmp_path)


def test_different_crs(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, scene, ms_epsg=32630)
    _fails(pf.layers(rasters), ["different CRS", "EPSG:32630", "EPSG:32631"], tmp_path)


def test_extents_not_overlapping(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, scene, ms_origin=(pf.ORIGIN[0], pf.ORIGIN[1] - 500.0))
    _fails(pf.layers(rasters), ["do not overlap"], tmp_path)


def test_extent_outside_the_data(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "EXTENT": "100,200,100,200 [EPSG:32631]"}, ["outside the data"], tmp_path)


def test_grids_not_aligned(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, scene, ms_origin=(pf.ORIGIN[0], pf.ORIGIN[1] + 0.25))
    _fails(pf.layers(rasters), ["not aligned", "-tap"], tmp_path)


def test_bad_pan_weights(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "PAN_WEIGHTS": "0.3, 0.3"}, ["give 4 comma-separated weights"], tmp_path)
    _fails({**pf.layers(rasters), "PAN_WEIGHTS": "0.3, -1, 0.3, 0.3"}, ["weights ≥ 0"], tmp_path)


def test_sensor_preset_with_another_band_count(provider, scene, tmp_path):
    rasters = pf.write_pan_ms(tmp_path, dict(scene, ms=scene["ms"][:3]))
    _fails({**pf.layers(rasters), "SENSOR": "ikonos"}, ["IKONOS preset", "4 bands", "has 3", "generic"], tmp_path)


def test_unwritable_output(provider, rasters, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _fails(pf.layers(rasters), ["cannot write"], tmp_path, out=blocker / "out.tif")


def test_scene_training_one_network_and_one_sensor_model_tile_by_tile(provider, scene, rasters, tmp_path):
    """TRAINING=scene: one sensor model and one network fitted on crops, applied tile by tile; equal to the core's
    in-memory run with the same crops, tiles and settings; progress goes once through training, then the tiles."""
    from qgis.core import QgsProcessingFeedback

    from sure_core import pansharpening
    from sure_core import scene as core_scene
    from sure_core.solver import SolverOptions
    from sure_core.tiling import Window
    from sure_fusion_qgis.algorithms.pansharpening import PansharpeningAlgorithm

    class Recorder(QgsProcessingFeedback):
        values = []

        def setProgress(self, progress):
            super().setProgress(progress)
            self.values.append(progress)

    out = tmp_path / "out.tif"
    feedback = Recorder()
    pf.run_pair_alg("pansharpening", {**pf.layers(rasters), "TRAINING": "scene", "TILE_SIZE": 32, "TILE_OVERLAP": 16,
                                      "OUTPUT": str(out)}, feedback=feedback)
    data, _, _, md = raster_stack.read_raster(str(out))
    assert data.shape == (4, 64, 64) and np.isfinite(data).all()
    assert md["TILES"].startswith("4 ") and md["TRAINING"].startswith("one network on")
    assert md["SENSOR_MODEL_TILES"] == "1" and md["FINAL_SURE_RISK_PER_TILE"] == "one network for the scene"
    assert feedback.values == sorted(feedback.values) and feedback.values[-1] == pytest.approx(100.0)

    def read(w):
        rs, cs = w.slices()
        return scene["ms"][:, rs.start // 4:rs.stop // 4, cs.start // 4:cs.stop // 4], scene["pan"][:, rs, cs]

    crops = core_scene.choose_crops((64, 64), 4, 192, 4, lambda w: 1.0)
    case = pansharpening.PanMsCase(ratio=4, sensor="generic", geometry="area").fitted([read(w) for w in crops])
    fitted = core_scene.train_scene(case, read, (64, 64), crops=crops, options=SolverOptions(
        iterations=3, device="cpu", seed=0, threads=1, width=PansharpeningAlgorithm.RECIPE["width"]))
    expected = np.zeros_like(data, dtype=np.float64)
    for tile in core_scene.plan_tiles(Window(0, 0, 64, 64), 32, 16, 4):
        rs, cs = tile.core.slices()
        expected[:, rs, cs] = fitted.fuse(read(tile.read))[(slice(None), *tile.core_in_read())]
    np.testing.assert_allclose(data, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
