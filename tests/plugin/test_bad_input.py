"""Every bad input of issue 3 ends in a QgsProcessingException that says what is wrong — and no output file."""
import numpy as np
import pytest
from qgis.core import QgsProcessingException

import s2_fixtures
from alg_helpers import run_alg


def _assert_fails(parameters, expected_text, out):
    with pytest.raises(QgsProcessingException) as error:
        run_alg({**parameters, "OUTPUT": str(out)})
    assert expected_text.lower() in str(error.value).lower(), str(error.value)
    folder = out.parent if out.parent.is_dir() else None
    if folder is not None:
        assert not out.exists()
        assert [p.name for p in folder.iterdir() if "partial" in p.name] == []
    return str(error.value)


@pytest.fixture()
def scene():
    return s2_fixtures.synthetic_scene(60)


def _inputs(paths):
    return {"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"], "INPUT_60M": paths["60m"]}


def test_layers_in_different_crs(provider, scene, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, scene, epsgs={"20m": 32647})
    message = _assert_fails(_inputs(paths), "different CRS", tmp_path / "out.tif")
    assert "EPSG:32647" in message and "EPSG:32648" in message


def test_grids_not_aligned(provider, scene, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, scene, shifts={"20m": (5.0, 0.0)})
    _assert_fails(_inputs(paths), "not aligned", tmp_path / "out.tif")


def test_60m_not_aligned_with_20m(provider, scene, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, scene, shifts={"60m": (10.0, 0.0)})
    _assert_fails(_inputs(paths), "3×3 20 m pixels", tmp_path / "out.tif")


def test_wrong_pixel_size(provider, scene, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, {"10m": scene["10m"], "20m": scene["20m"][:, :20, :20]})
    # a 20 m raster that claims 30 m pixels
    from osgeo import gdal
    ds = gdal.Open(paths["20m"], gdal.GA_Update)
    gt = list(ds.GetGeoTransform())
    gt[1], gt[5] = 30.0, -30.0
    ds.SetGeoTransform(gt)
    ds = None
    _assert_fails({"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"]}, "ratio must be 2", tmp_path / "out.tif")


def test_wrong_band_count(provider, scene, tmp_path):
    bad = dict(scene, **{"20m": scene["20m"][:4]})
    paths = s2_fixtures.write_band_rasters(tmp_path, bad)
    message = _assert_fails(_inputs(paths), "has 4 band(s) but needs exactly 6", tmp_path / "out.tif")
    assert "B5, B6, B7, B8A, B11, B12" in message


def test_swapped_inputs_are_named_by_their_descriptions(provider, scene, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, scene)
    parameters = {"INPUT_10M": paths["10m"], "INPUT_20M": paths["60m"], "INPUT_60M": paths["20m"]}
    # named before the run, by the band names and pixel sizes of the two layers
    _assert_fails(parameters, "20 m and 60 m layers look swapped", tmp_path / "out.tif")


def test_extent_outside_the_data(provider, synthetic_rasters, tmp_path):
    extent = "100000,100600,5000000,5000600 [EPSG:32648]"
    _assert_fails({**_inputs(synthetic_rasters), "EXTENT": extent}, "outside the data", tmp_path / "out.tif")


def test_all_nodata_area(provider, scene, tmp_path):
    empty = {k: np.zeros_like(v) for k, v in scene.items()}
    paths = s2_fixtures.write_band_rasters(tmp_path, empty, nodata=0)
    _assert_fails(_inputs(paths), "nodata only", tmp_path / "out.tif")


def test_output_folder_missing(provider, synthetic_rasters, tmp_path):
    out = tmp_path / "no_such_folder" / "out.tif"
    _assert_fails(_inputs(synthetic_rasters), "does not exist", out)
    assert not out.parent.exists()


def test_output_below_a_file(provider, synthetic_rasters, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _assert_fails(_inputs(synthetic_rasters), "cannot write", blocker / "out.tif")


def test_cuda_without_gpu(provider, synthetic_rasters, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    _assert_fails({**_inputs(synthetic_rasters), "DEVICE": "cuda"}, "no CUDA GPU", tmp_path / "out.tif")


def test_non_s2_product(provider, synthetic_rasters, tmp_path):
    _assert_fails({"PRODUCT": synthetic_rasters["10m"]}, "not a Sentinel-2 L1C/L2A product", tmp_path / "out.tif")


def test_folder_without_product_metadata(provider, tmp_path):
    folder = tmp_path / "S2A_MSIL2A_fake.SAFE"
    folder.mkdir()
    _assert_fails({"PRODUCT": str(folder)}, "without MTD_MSIL1C.xml or MTD_MSIL2A.xml", tmp_path / "out.tif")


def test_corrupt_zip_product(provider, tmp_path):
    corrupt = tmp_path / "S2B_MSIL2A_20230823T095559_N0509_R122_T48PXS_20230823T124759.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not a complete zip archive" * 10)
    _assert_fails({"PRODUCT": str(corrupt)}, "GDAL cannot open", tmp_path / "out.tif")


def test_product_with_missing_band_files(provider, scene, tmp_path):
    safe = s2_fixtures.build_fake_safe(tmp_path, scene)
    for jp2 in safe.rglob("*_B11_20m.jp2"):
        jp2.unlink()
    with pytest.raises(QgsProcessingException) as error:
        run_alg({"PRODUCT": str(safe), "OUTPUT": str(tmp_path / "out.tif")})
    assert not (tmp_path / "out.tif").exists()
    assert str(error.value)


def test_product_and_rasters_together(provider, synthetic_rasters, tmp_path):
    _assert_fails({**_inputs(synthetic_rasters), "PRODUCT": synthetic_rasters["10m"]}, "not both",
                  tmp_path / "out.tif")


def test_no_input_at_all(provider, tmp_path):
    _assert_fails({}, "Give a Sentinel-2 PRODUCT", tmp_path / "out.tif")


def test_bad_noise_sigma(provider, synthetic_rasters, tmp_path):
    _assert_fails({**_inputs(synthetic_rasters), "NOISE_SIGMA": "1,2,3"}, "NOISE_SIGMA needs 1 or 12",
                  tmp_path / "out.tif")


def test_missing_raster_file(provider, synthetic_rasters, tmp_path):
    parameters = {**_inputs(synthetic_rasters), "INPUT_20M": str(tmp_path / "no_such_20m.tif")}
    _assert_fails(parameters, "INPUT_20M", tmp_path / "out.tif")

