"""Settings and inputs checked against the data before training (issue 14, QA 2026-12 lists 1 and 9): a noise σ
the data cannot hold, a result that is not finite, an extent without area, an area or tiles below the smallest
processable size (stated in 10 m pixels), band descriptions that do not identify the bands, and the messages of
the smaller cases. Each fails with a message that names the problem and the fix, and writes nothing.
"""
import zipfile

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

import pair_fixtures as pf
import s2_fixtures
from alg_helpers import fingerprint, run_alg, temporaries
from fault_helpers import set_band_descriptions
from sure_fusion_qgis import io_errors, s2_inputs
from sure_fusion_qgis.core_loader import core_module

X0, Y0 = s2_fixtures.ORIGIN


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    return s2_fixtures.write_band_rasters(tmp_path_factory.mktemp("plaus_in"), s2_fixtures.synthetic_scene(48, seed=4))


def _inputs(paths, with_60m=True):
    inputs = {"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"]}
    return {**inputs, "INPUT_60M": paths["60m"]} if with_60m else inputs


def _fails(parameters, expected, tmp_path):
    out = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException) as error:
        run_alg({**parameters, "OUTPUT": str(out)})
    message = str(error.value)
    for text in [expected] if isinstance(expected, str) else expected:
        assert text.lower() in message.lower(), message
    assert not out.exists() and temporaries(tmp_path) == []
    return message


# ------------------------------------------------------------------------------------------- noise σ
@pytest.mark.parametrize("sigma", ["1e30", "1e6"])
def test_sigma_above_the_bands_spread_is_refused(provider, rasters, tmp_path, sigma):
    """QA #56/#57: 1e30 gave 12 bands of NaN with exit 0; a σ far above the noise a negative SURE risk."""
    message = _fails({**_inputs(rasters), "NOISE_SIGMA": sigma}, ["varies by only", "leave NOISE_SIGMA empty"],
                     tmp_path)
    assert "for B2, but B2 itself varies by only" in message      # the first band (10 m first), its measured spread


def test_sigma_within_the_spread_runs(provider, rasters, tmp_path):
    out = tmp_path / "out.tif"
    run_alg({**_inputs(rasters), "NOISE_SIGMA": "5", "OUTPUT": str(out)})
    assert np.isfinite(gdal.Open(str(out)).ReadAsArray()).all()


def test_pair_sigma_above_the_spread_is_refused(provider, tmp_path):
    paths = pf.write_pan_ms(tmp_path / "in", pf.synthetic_pan_ms(32, ratio=4, bands=4))
    pf.assert_fails("pansharpening", {**pf.layers(paths), "NOISE_SIGMA": "1e9"}, ["varies by only", "MS"],
                    tmp_path / "out.tif")


def test_negative_sigma_says_what_was_given(provider, rasters, tmp_path):
    """QA #53: '-5' was answered with "got 12"."""
    message = _fails({**_inputs(rasters), "NOISE_SIGMA": "-5"}, "-5 is not finite and ≥ 0", tmp_path)
    assert "got 12" not in message


def test_a_non_finite_result_is_an_error_and_keeps_the_old_output(provider, rasters, tmp_path, monkeypatch):
    """Whatever makes the training diverge, NaN never reaches a file reported as a success."""
    runner = core_module("runner")
    real = runner.fuse_window

    def diverging(*args, **kwargs):
        fused, record, case = real(*args, **kwargs)
        fused[3, 5:9, 5:9] = np.nan
        return fused, record, case

    monkeypatch.setattr(runner, "fuse_window", diverging)
    old = tmp_path / "out.tif"
    old.write_bytes(b"the previous result")
    before = fingerprint(old)
    with pytest.raises(QgsProcessingException) as error:
        run_alg({**_inputs(rasters), "OUTPUT": str(old)})
    assert "not finite (NaN or infinite) at 16 of 2304 pixels" in str(error.value)
    assert fingerprint(old) == before and temporaries(tmp_path) == []


# ----------------------------------------------------------------------------------- extent and area
@pytest.mark.parametrize("extent,expected", [
    (f"{X0 + 300},{X0 + 300},{Y0 - 400},{Y0 - 100} [EPSG:32648]", "has no area"),        # QA #50
    (f"{X0 + 300},{X0 + 305},{Y0 - 400},{Y0 - 100} [EPSG:32648]", "smaller than one 10 m pixel"),
])
def test_extent_without_area_is_refused(provider, rasters, tmp_path, extent, expected):
    _fails({**_inputs(rasters), "EXTENT": extent}, expected, tmp_path)


def test_area_below_the_minimum_is_stated_in_10m_pixels(provider, rasters, tmp_path):
    """QA #30/#31: the core's "noise estimation needs 8×8 … got (6, 6)" about an internal grid. 36 px with 60 m
    input and σ estimated: the smallest area is 48×48 10 m px, and what would lower it is said."""
    extent = f"{X0},{X0 + 360},{Y0 - 360},{Y0} [EPSG:32648]"
    message = _fails({**_inputs(rasters), "EXTENT": extent}, ["36×36 10 m pixels", "48×48 10 m pixels"], tmp_path)
    assert "18×18 px with 60 m input and NOISE_SIGMA given" in message and "16×16 px without 60 m" in message


def test_area_at_the_minimum_runs(provider, rasters, tmp_path):
    out = tmp_path / "out.tif"
    extent = f"{X0},{X0 + 180},{Y0 - 180},{Y0} [EPSG:32648]"        # 18×18 with σ given
    run_alg({**_inputs(rasters), "EXTENT": extent, "NOISE_SIGMA": "5", "OUTPUT": str(out)})
    assert gdal.Open(str(out)).RasterXSize == 18


def test_tiles_below_the_minimum_name_tile_size(provider, rasters, tmp_path):
    """QA #64: TILE_SIZE=1 gave the core's noise-estimation message."""
    _fails({**_inputs(rasters), "TRAINING": "tiles", "TILE_SIZE": 1, "TILE_OVERLAP": 0},
           ["TILE_SIZE 1", "6×6 10 m pixels", "at least 48×48"], tmp_path)


def test_one_pixel_inputs_without_60m_speak_of_20m_pixels(provider, tmp_path):
    """QA #29: "do not overlap by even one 60 m pixel" without any 60 m input."""
    tiny = {"10m": np.ones((4, 1, 1), np.uint16), "20m": np.ones((6, 1, 1), np.uint16)}
    paths = s2_fixtures.write_band_rasters(tmp_path / "in", tiny)
    message = _fails(_inputs(paths, with_60m=False), ["1×1 10 m pixels in common", "one 20 m pixel"], tmp_path)
    assert "60 m" not in message


# ------------------------------------------------------------------------------------- band identity
def test_reversed_stack_with_one_blank_description_is_refused(provider, tmp_path):
    """QA #11: taken in file order, B5↔B12, B6↔B11, B7↔B8A came out swapped without a word."""
    scene = s2_fixtures.synthetic_scene(48)
    paths = s2_fixtures.write_band_rasters(tmp_path / "in", scene)
    set_band_descriptions(paths["20m"], ["B12", "B11", "B8A", "B7", "B6", ""], scene["20m"][::-1])
    _fails(_inputs(paths), ["contradict the file order", "band 1 is described as B12"], tmp_path)


def test_duplicate_band_names_are_refused(provider, tmp_path):
    """QA #9: B5, B5, … was ignored and the bands taken in file order."""
    paths = s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(48))
    set_band_descriptions(paths["20m"], ["B5", "B5", "B7", "B8A", "B11", "B12"])
    _fails(_inputs(paths), "name B5 2 times (bands 1, 2)", tmp_path)


def test_partial_names_that_agree_are_used_with_a_warning(tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(48))
    set_band_descriptions(paths["20m"], ["B5", "", "B7", "", "", "B12"])
    s2 = core_module("sentinel2")
    inputs = s2_inputs.open_band_rasters(paths, {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M})
    assert inputs.groups["20m"].band_indexes == [1, 2, 3, 4, 5, 6]
    assert len(inputs.warnings) == 1 and "only 3 of 6 bands are named" in inputs.warnings[0]


def test_all_names_in_any_order_pick_the_bands(tmp_path):
    scene = s2_fixtures.synthetic_scene(48)
    paths = s2_fixtures.write_band_rasters(tmp_path, scene)
    set_band_descriptions(paths["20m"], ["B12", "B11", "B8A", "B7", "B6", "B5"], scene["20m"][::-1])
    s2 = core_module("sentinel2")
    inputs = s2_inputs.open_band_rasters(paths, {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M})
    assert inputs.groups["20m"].band_indexes == [6, 5, 4, 3, 2, 1] and inputs.warnings == []


def test_60m_raster_given_as_20m_says_the_inputs_look_swapped(provider, rasters, tmp_path):
    """QA #13/#15: the docs promised this message; only the band count was given. The dialog's check (issue 17)
    says it first, from the band names and pixel sizes."""
    _fails({"INPUT_10M": rasters["10m"], "INPUT_20M": rasters["60m"], "INPUT_60M": rasters["20m"]},
           ["the 20 m and 60 m layers look swapped", "choose them the other way round"], tmp_path)


# ----------------------------------------------------------------------------------------- products
def test_product_folder_without_a_dot_gets_the_plugins_message(provider, tmp_path):
    """QA #37: QGIS's bare "Incorrect parameter value for PRODUCT" (its file filter wanted an extension)."""
    folder = tmp_path / "renamed_product"
    folder.mkdir()
    _fails({"PRODUCT": str(folder)}, "is a folder without MTD_MSIL1C.xml or MTD_MSIL2A.xml", tmp_path)


@pytest.mark.parametrize("content", ["empty", "geotiff"])
def test_non_sentinel2_zip_says_so(provider, rasters, tmp_path, content):
    """QA #39/#40: "not a complete, readable image" instead of "not a Sentinel-2 product"."""
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        if content == "geotiff":
            handle.write(rasters["10m"], "image.tif")
            handle.writestr("readme.txt", "not a product")
    _fails({"PRODUCT": str(archive)}, "is not a Sentinel-2 L1C/L2A product", tmp_path)


def test_a_missing_raster_is_called_missing(tmp_path):
    """QA #103: the batch called a missing raster "unknown format"."""
    s2 = core_module("sentinel2")
    with pytest.raises(io_errors.RasterInputError) as error:
        s2_inputs.open_band_rasters({"10m": str(tmp_path / "gone_10m.tif"), "20m": str(tmp_path / "gone_20m.tif")},
                                    {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M})
    assert "gone_10m.tif' does not exist" in str(error.value)
