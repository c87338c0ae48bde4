"""Plugin test fixtures: the provider registered in a headless QGIS, and georeferenced test rasters.

Real-data fixtures read ../shared/data/vietnam.mat (never copied into the repository) and skip when it is
absent; synthetic fixtures build their own inputs.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal

import s2_fixtures
from alg_helpers import crop

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

gdal.PushErrorHandler("CPLQuietErrorHandler")  # the fake products lack aux bands; GDAL warns, tests don't care


@pytest.fixture(scope="session")
def provider(qgis_processing):
    from qgis.core import QgsApplication

    from sure_fusion_qgis.provider import SureFusionProvider

    instance = SureFusionProvider()  # held for the session: a collected provider loses its algorithms
    QgsApplication.processingRegistry().addProvider(instance)
    yield instance
    QgsApplication.processingRegistry().removeProvider(instance)


@pytest.fixture(scope="session")
def vietnam():
    """The real Sentinel-2 scene of the paper as {'10m','20m','60m'}: (bands, rows, cols) uint16."""
    from scipy.io import loadmat

    path = SHARED_DATA / "vietnam.mat"
    if not path.exists():
        pytest.skip(f"{path} is not available (the shared data folder sits beside the repository)")
    data = loadmat(str(path))
    return {"10m": data["y10"].transpose(2, 0, 1), "20m": data["y20"].transpose(2, 0, 1),
            "60m": data["y60"].transpose(2, 0, 1)}


@pytest.fixture(scope="session")
def vietnam_rasters(vietnam, tmp_path_factory):
    """60×60 px (10 m) crop of the real scene as three GeoTIFFs in EPSG:32648 sharing their origin."""
    return s2_fixtures.write_band_rasters(tmp_path_factory.mktemp("vietnam"), crop(vietnam, 60, 120, 120))


@pytest.fixture(scope="session")
def synthetic_rasters(tmp_path_factory):
    return s2_fixtures.write_band_rasters(tmp_path_factory.mktemp("synthetic"), s2_fixtures.synthetic_scene(60))


@pytest.fixture(scope="session")
def dsen2_rasters(tmp_path_factory):
    """60×60 px crop of the DSen2 L1C scene (HDF5 .mat read through GDAL's HDF5 driver) as float32 GeoTIFFs."""
    path = SHARED_DATA / "S2A_MSIL1C_20170527_T33UUB.mat"
    if not path.exists():
        pytest.skip(f"{path} is not available (the shared data folder sits beside the repository)")
    scene = {}
    for key, name in (("10m", "im10"), ("20m", "im20"), ("60m", "im60")):
        ds = gdal.Open(f'HDF5:"{path}"://{name}')
        if ds is None:
            pytest.skip("GDAL cannot read the HDF5 .mat file (no HDF5 driver)")
        scene[key] = ds.ReadAsArray().transpose(0, 2, 1)   # MATLAB stores arrays column-major
    folder = tmp_path_factory.mktemp("dsen2")
    return s2_fixtures.write_band_rasters(folder, crop(scene, 60, 240, 240), origin=(300000.0, 5700000.0),
                                          epsg=32633, gdal_type=gdal.GDT_Float32)
