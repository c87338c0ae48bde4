"""processing.run on georeferenced GeoTIFFs cut from the real Vietnam scene."""
import json

import numpy as np
import pytest
from osgeo import gdal

from alg_helpers import SPECTRAL, run_alg
from sure_fusion_qgis import raster_stack, raster_writer


@pytest.fixture(scope="module")
def sharpened(provider, vietnam_rasters, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "sharp.tif"
    report = out.with_suffix(".html")
    result = run_alg({"INPUT_10M": vietnam_rasters["10m"], "INPUT_20M": vietnam_rasters["20m"],
                      "INPUT_60M": vietnam_rasters["60m"], "OUTPUT": str(out), "REPORT": str(report)})
    return result, out, report


def test_output_sits_on_the_10m_grid(sharpened, vietnam_rasters):
    _, out, _ = sharpened
    ref = gdal.Open(vietnam_rasters["10m"])
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize) == (ref.RasterXSize, ref.RasterYSize)
    assert ds.GetGeoTransform() == pytest.approx(ref.GetGeoTransform())
    assert ds.GetSpatialRef().IsSame(ref.GetSpatialRef())
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert ds.GetRasterBand(1).GetBlockSize() == [240, 240]  # a whole number of 60 m pixels: tiles write whole blocks
    assert ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"


def test_bands_are_in_spectral_order_with_descriptions(sharpened):
    _, out, _ = sharpened
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 12
    names = [ds.GetRasterBand(i).GetMetadataItem("BANDNAME") for i in range(1, 13)]
    assert names == SPECTRAL
    assert ds.GetRasterBand(5).GetDescription() == "B5 (704 nm)"
    assert ds.GetRasterBand(12).GetDescription() == "B12 (2202 nm)"
    assert all(ds.GetRasterBand(i).GetNoDataValue() == raster_writer.OUTPUT_NODATA for i in range(1, 13))


def test_values_stay_in_input_units_and_10m_bands_are_kept(sharpened, vietnam_rasters):
    _, out, _ = sharpened
    data, _, _, _ = raster_stack.read_raster(str(out))
    y10, _, _, _ = raster_stack.read_raster(vietnam_rasters["10m"])
    y20, _, _, _ = raster_stack.read_raster(vietnam_rasters["20m"])
    assert np.isfinite(data).all()
    # the 10 m bands are observed at 10 m: the estimate stays close to them (noise-level differences only)
    for k, name in enumerate(["B2", "B3", "B4", "B8"]):
        assert np.abs(data[SPECTRAL.index(name)] - y10[k]).mean() < 0.05 * y10[k].mean()
    # a sharpened 20 m band, averaged back over 2×2 blocks, resembles its 20 m observation once moved to where that
    # observation lies: this crop's 20 m bands sit about half a 20 m pixel (one 10 m pixel) down and right of the 10 m
    # grid, the output is on the 10 m grid, and the shift is recorded per band
    ds = gdal.Open(str(out))
    b11 = ds.GetRasterBand(SPECTRAL.index("B11") + 1)
    shift = [float(v) for v in b11.GetMetadataItem("SHIFT_ROWS_COLS_PX").split(",")]
    assert shift == pytest.approx([0.5, 0.5], abs=0.05)
    east, north = (float(v) for v in b11.GetMetadataItem("SHIFT_EAST_NORTH_M").split(","))
    assert (east, north) == pytest.approx((20 * shift[1], -20 * shift[0]), abs=0.01)
    b11 = data[SPECTRAL.index("B11")]
    fr, fc = np.fft.fftfreq(60)[:, None], np.fft.fftfreq(60)[None, :]
    moved = np.fft.ifft2(np.fft.fft2(b11) * np.exp(-2j * np.pi * 2 * (fr * shift[0] + fc * shift[1]))).real
    coarse = moved.reshape(30, 2, 30, 2).mean(axis=(1, 3))
    inner = (slice(2, -2), slice(2, -2))
    assert np.corrcoef(coarse[inner].ravel(), y20[4][inner].ravel())[0, 1] > 0.9
    assert abs(coarse.mean() - y20[4].mean()) < 0.05 * y20[4].mean()


def test_metadata_records_the_run(sharpened):
    result, out, _ = sharpened
    md = gdal.Open(str(out)).GetMetadata()
    assert md["ITERATIONS"] == "3" and md["LOSS"] == "sure" and md["SEED"] == "0"
    assert md["DEVICE"] == "cpu" and md["SURE_FUSION_PLUGIN_VERSION"] == "0.1.0"
    assert "Deep SURE" in md["METHOD"]
    assert np.isfinite(float(md["FINAL_SURE_RISK"]))
    assert float(md["GUIDED_SMOOTHING_STRENGTH"].split()[0]) >= 0   # the SURE choice of h, recorded as a number
    assert md["NOISE_SIGMA_SOURCE"].startswith("estimated: per band, the smaller of the wavelet MAD")
    assert md["FIRST_ESTIMATE_SHRINKAGE"] == "per-band Tikhonov and ring factors chosen by SURE"
    assert float(md["SECONDS"]) > 0
    sigma = dict(item.split("=") for item in md["NOISE_SIGMA"].split(", "))
    assert set(sigma) == set(SPECTRAL) and all(float(v) > 0 for v in sigma.values())
    assert json.loads(md["SOLVER_OPTIONS"])["iterations"] == 3
    assert md["BAND_ORDER"] == ",".join(SPECTRAL)
    assert result["FINAL_RISK"] == pytest.approx(float(md["FINAL_SURE_RISK"]), rel=1e-4)
    assert result["DEVICE_USED"] == "cpu"


def test_report_has_curves_sigma_and_quicklook(sharpened):
    result, _, report = sharpened
    assert result["REPORT"] == str(report)
    text = report.read_text(encoding="utf-8")
    assert text.count("<svg") == 1 and "<polyline" in text   # the loss curve
    assert "Estimated error per band" in text and "<td>B11</td>" in text
    assert "data:image/png;base64," in text
    assert "B12" in text and "cpu" in text


def test_no_partial_files_are_left(sharpened):
    _, out, _ = sharpened
    assert [p.name for p in out.parent.iterdir() if "partial" in p.name] == []


def test_dsen2_float_reflectance_crop(provider, dsen2_rasters, tmp_path):
    """The DSen2 L1C crop (float reflectance × 1e4, UTM 33N): same grid out, sharpened bands consistent with 20 m."""
    out = tmp_path / "dsen2.tif"
    run_alg({"INPUT_10M": dsen2_rasters["10m"], "INPUT_20M": dsen2_rasters["20m"],
             "INPUT_60M": dsen2_rasters["60m"], "OUTPUT": str(out)})
    data, grid, _, md = raster_stack.read_raster(str(out))
    assert data.shape == (12, 60, 60)
    assert grid.geotransform == (300000.0, 10.0, 0.0, 5700000.0, 0.0, -10.0)
    assert "32633" in grid.crs_wkt
    y20, _, _, _ = raster_stack.read_raster(dsen2_rasters["20m"])
    for k, name in enumerate(["B5", "B6", "B7", "B8A", "B11", "B12"]):
        coarse = data[SPECTRAL.index(name)].reshape(30, 2, 30, 2).mean(axis=(1, 3))
        assert np.corrcoef(coarse.ravel(), y20[k].ravel())[0, 1] > 0.9, name
