"""Sentinel-2 products through GDAL's SENTINEL2 driver: fake compact-SAFE trees with lossless JPEG 2000 bands.

Proves product reading (.SAFE folder, MTD file, .zip), band order by BANDNAME (the driver's 10 m subdataset is
B4, B3, B2, B8), the L2A BOA_ADD_OFFSET / L1C RADIO_ADD_OFFSET and DN 0 as nodata.
"""
import numpy as np
import pytest
from osgeo import gdal

import s2_fixtures
from sure_fusion_qgis import raster_stack, raster_writer, s2_inputs

NAMES = s2_fixtures.NAMES

pytestmark = pytest.mark.skipif(gdal.GetDriverByName("JP2OpenJPEG") is None,
                                reason="GDAL has no JPEG 2000 driver (JP2OpenJPEG) to build fake products")


@pytest.fixture(scope="module")
def scene():
    # + 1000 DN: the L2A offset of −1000 then gives realistic reflectances, not values around zero
    data = {k: v + np.uint16(1000) for k, v in s2_fixtures.synthetic_scene(60, seed=5).items()}
    data["10m"][:, 0, 0] = 0        # DN 0: nodata in every band of one 10 m pixel
    return data


@pytest.fixture(scope="module")
def l2a(scene, tmp_path_factory):
    return s2_fixtures.build_fake_safe(tmp_path_factory.mktemp("l2a"), scene, level="L2A", offset=-1000)


def _expected(scene, key, offset):
    return (scene[key].astype(np.float64) + offset) / 10000.0


@pytest.mark.parametrize("which", ["folder", "mtd", "zip"])
def test_product_paths_open_the_same_bands(l2a, scene, which, tmp_path):
    path = {"folder": l2a, "mtd": l2a / "MTD_MSIL2A.xml", "zip": None}[which]
    if which == "zip":
        path = s2_fixtures.zip_product(l2a)
    inputs = s2_inputs.open_s2_product(str(path), NAMES)
    assert inputs.scene_name == l2a.name[:-5]
    assert set(inputs.groups) == {"10m", "20m", "60m"}
    window = inputs.stack.plan()
    assert (window.width, window.height) == (60, 60)
    for key in ("10m", "20m", "60m"):
        values, invalid = inputs.groups[key].read(window)
        valid = ~invalid
        # band order by name: value k is band NAMES[key][k], even though the 10 m subdataset is B4, B3, B2, B8
        np.testing.assert_allclose(values[:, valid], _expected(scene, key, -1000)[:, valid])
    _, invalid10 = inputs.groups["10m"].read(window)
    assert invalid10[0, 0] and invalid10.sum() == 1


def test_l2a_offset_and_provenance(l2a):
    inputs = s2_inputs.open_s2_product(str(l2a), NAMES)
    assert inputs.provenance["PRODUCT_LEVEL"] == "L2A"
    assert inputs.provenance["PROCESSING_BASELINE"] == "05.09"
    assert "B11=-1000" in inputs.provenance["ADD_OFFSET_APPLIED"]
    assert "reflectance" in inputs.units
    assert inputs.groups["20m"].offsets == [pytest.approx(-0.1)] * 6


def test_l1c_radio_offset_and_old_baseline(scene, tmp_path):
    l1c = s2_fixtures.build_fake_safe(tmp_path / "new", scene, level="L1C", offset=-1000)
    old = s2_fixtures.build_fake_safe(tmp_path / "old", scene, level="L1C", offset=0, baseline="03.01")
    new_inputs = s2_inputs.open_s2_product(str(l1c), NAMES)
    old_inputs = s2_inputs.open_s2_product(str(old), NAMES)
    window = new_inputs.stack.plan()
    a, _ = new_inputs.groups["60m"].read(window)
    b, _ = old_inputs.groups["60m"].read(window)
    np.testing.assert_allclose(a, _expected(scene, "60m", -1000))
    np.testing.assert_allclose(b, _expected(scene, "60m", 0))
    assert new_inputs.provenance["PRODUCT_LEVEL"] == "L1C"
    assert "top-of-atmosphere" in new_inputs.units


def test_sharpening_a_zipped_l2a_product(provider, l2a, scene, tmp_path, qgis_new_project):
    import processing
    from qgis.core import QgsProject

    from alg_helpers import FAST

    out = tmp_path / "sharp.tif"
    processing.runAndLoadResults("sure_fusion:s2_sharpening_product",
                                 {**FAST, "PRODUCT": str(s2_fixtures.zip_product(l2a)), "OUTPUT": str(out)})
    data, grid, descriptions, md = raster_stack.read_raster(str(out))
    assert data.shape == (12, 60, 60)
    assert grid.geotransform == (600000.0, 10.0, 0.0, 1200000.0, 0.0, -10.0)
    assert md["PRODUCT_LEVEL"] == "L2A" and "B2=-1000" in md["ADD_OFFSET_APPLIED"]
    # output in reflectance with the offset applied, bands by name: compare band means with the inputs
    valid = data[0] != raster_writer.OUTPUT_NODATA
    assert not valid[0, 0] and valid.sum() == 60 * 60 - 1
    for key in ("10m", "20m", "60m"):
        expected = _expected(scene, key, -1000)
        for k, name in enumerate(NAMES[key]):
            band = data[descriptions.index(next(d for d in descriptions if d.split(" ")[0] == name))]
            exp_mean = expected[k][expected[k] > -0.1].mean()
            assert band[valid].mean() == pytest.approx(exp_mean, rel=0.03, abs=2e-3), name
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    assert names == ["sharp"]   # named after the output file, as QGIS names its own algorithms' saved outputs
