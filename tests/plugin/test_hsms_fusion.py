"""sure_fusion:hsms_fusion through processing.run and qgis_process, on small GeoTIFF pairs: the output grid,
carried-over band descriptions and wavelengths, the three spectral-response modes, nodata, metadata, cancel,
a real EO-1 crop, and every bad input of issue 4 (a clear QgsProcessingException and no file)."""
import json

import numpy as np
import pytest
from osgeo import gdal

import pair_fixtures as pf
from sure_fusion_qgis import pair_inputs, raster_stack, raster_writer
from test_nodata_extent_tiles import CancelAfter


@pytest.fixture(scope="module")
def scene():
    return pf.synthetic_hs_ms(48, ratio=3, hs_bands=24)


@pytest.fixture(scope="module")
def rasters(scene, tmp_path_factory):
    return pf.write_hs_ms(tmp_path_factory.mktemp("hsms_in"), scene)


@pytest.fixture(scope="module")
def fused(provider, rasters, tmp_path_factory):
    return pf.run_with_report("hsms_fusion", rasters, tmp_path_factory.mktemp("hsms_out"))


def test_output_sits_on_the_ms_grid(fused, rasters, scene):
    _, out, _ = fused
    ms, ds = gdal.Open(rasters["ms"]), gdal.Open(str(out))
    assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (24, ms.RasterXSize, ms.RasterYSize)
    assert ds.GetGeoTransform() == pytest.approx(ms.GetGeoTransform())
    assert ds.GetSpatialRef().IsSame(ms.GetSpatialRef())
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert all(ds.GetRasterBand(i).GetNoDataValue() == raster_writer.OUTPUT_NODATA for i in (1, 24))


def test_band_descriptions_and_wavelengths_are_carried_over(fused, scene):
    _, out, _ = fused
    ds = gdal.Open(str(out))
    assert [ds.GetRasterBand(i).GetDescription() for i in (1, 2, 24)] == ["HS 001", "HS 002", "HS 024"]
    for i in (1, 13, 24):
        band = ds.GetRasterBand(i)
        assert float(band.GetMetadataItem("wavelength")) == pytest.approx(scene["wavelengths"][i - 1], abs=0.01)
        assert float(band.GetMetadataItem("fwhm")) == pytest.approx(scene["fwhm"][i - 1], abs=0.01)
        assert band.GetMetadataItem("wavelength_units") == "Nanometers"
        assert float(band.GetMetadata("IMAGERY")["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(
            scene["wavelengths"][i - 1] / 1e3, abs=1e-4)
    # and GDAL reads them back the way it reads an ENVI header: the same spectral info as the input
    wavelengths, fwhms = pair_inputs.spectral_info(ds)
    assert wavelengths == pytest.approx(list(scene["wavelengths"]), abs=0.01)
    assert fwhms == pytest.approx(list(scene["fwhm"]), abs=0.01)


def test_fused_bands_match_the_hs_and_beat_upsampling(fused, scene):
    _, out, _ = fused
    data, _, _, _ = raster_stack.read_raster(str(out))
    assert np.isfinite(data).all()
    coarse = pf.block_mean(data, 3)
    for k in range(0, 24, 5):
        assert np.corrcoef(coarse[k].ravel(), scene["hs"][k].ravel())[0, 1] > 0.95, k
        assert abs(coarse[k].mean() - scene["hs"][k].mean()) < 0.03 * scene["hs"][k].mean()
    rmse = lambda a: float(np.sqrt(((a - scene["truth"]) ** 2).mean()))  # noqa: E731
    assert rmse(data) < 0.8 * rmse(pf.upsample(scene["hs"], 3))


def test_metadata_records_the_run_and_the_sensor_model(fused):
    result, out, _ = fused
    md = gdal.Open(str(out)).GetMetadata()
    assert md["ITERATIONS"] == "3" and md["LOSS"] == "sure" and md["DEVICE"] == "cpu"
    assert md["RESOLUTION_RATIO"] == "3" and md["INPUT_CRS"] == "EPSG:32631"
    assert "estimated" in md["SPECTRAL_RESPONSE_SOURCE"] and "estimated" in md["PSF_SOURCE"]
    response = np.array(json.loads(md["SPECTRAL_RESPONSE"]))
    assert response.shape == (4, 24) and (response >= 0).all()
    assert float(md["PSF_SIGMA_HR_PX"]) > 0
    assert len(md["GUIDE_NOISE_SIGMA"].split(",")) == 4
    sigma = dict(item.rsplit("=", 1) for item in md["NOISE_SIGMA"].split(", "))
    assert len(sigma) == 24 and all(float(v) > 0 for v in sigma.values())
    assert result["FINAL_RISK"] == pytest.approx(float(md["FINAL_SURE_RISK"]), rel=1e-4)


def test_report_and_no_partial_files(fused):
    result, out, report = fused
    text = report.read_text(encoding="utf-8")
    assert result["REPORT"] == str(report)
    assert "Hyperspectral + multispectral fusion" in text and text.count("<svg") == 1
    assert "Estimated error per band" in text and "guided smoothing" not in text   # no smoothing for pairs
    assert "data:image/png;base64," in text and "spectral response source" in text
    assert [p.name for p in out.parent.iterdir() if "partial" in p.name] == []


def test_gaussian_srf_from_envi_wavelengths_and_the_sentinel2_preset(provider, scene, tmp_path):
    """HS wavelengths in µm in the ENVI domain, MS bands named B2/B3/B4/B8, PSF from an MTF gain."""
    rasters = pf.write_hs_ms(tmp_path / "in", scene, hs_metadata="envi")
    out = tmp_path / "gaussian.tif"
    pf.run_pair_alg("hsms_fusion", {**pf.layers(rasters), "SRF": "gaussian", "MS_SENSOR": "sentinel2", "PSF": "mtf",
                                    "PSF_VALUE": 0.3, "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    md = ds.GetMetadata()
    assert "Gaussian" in md["SPECTRAL_RESPONSE_SOURCE"] and "sentinel2 preset (B2, B3, B4, B8)" in md[
        "SPECTRAL_RESPONSE_SOURCE"]
    response = np.array(json.loads(md["SPECTRAL_RESPONSE"]))
    peaks = scene["wavelengths"][response.argmax(axis=1)]
    assert np.abs(peaks - np.array([492.0, 560.0, 665.0, 833.0])).max() < 25    # each S2 band peaks at its centre
    assert float(md["PSF_SIGMA_HR_PX"]) == pytest.approx(3 * np.sqrt(-2 * np.log(0.3)) / np.pi, rel=1e-3)
    wavelengths, _ = pair_inputs.spectral_info(ds)      # µm in, nm out
    assert wavelengths == pytest.approx(list(scene["wavelengths"]), abs=0.01)


def test_csv_matrix_with_band_table_and_given_psf(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path / "in", scene, hs_metadata="none")
    matrix = pf.gaussian_srf(scene["wavelengths"], scene["fwhm"], scene["ms_wavelengths"], scene["ms_fwhm"])
    srf_csv, bands_csv = tmp_path / "srf.csv", tmp_path / "hs_bands.csv"
    np.savetxt(srf_csv, matrix, delimiter=",", fmt="%.6f")
    bands_csv.write_text("wavelength_nm,fwhm_nm\n" + "".join(f"{w:.2f},{f:.2f}\n" for w, f in
                                                               zip(scene["wavelengths"], scene["fwhm"])))
    out = tmp_path / "csv.tif"
    pf.run_pair_alg("hsms_fusion", {**pf.layers(rasters), "SRF": "csv", "SRF_FILE": str(srf_csv),
                                    "HS_BANDS_CSV": str(bands_csv), "PSF": "sigma", "PSF_VALUE": 0.5,
                                    "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    md = ds.GetMetadata()
    assert np.array(json.loads(md["SPECTRAL_RESPONSE"])) == pytest.approx(matrix, abs=2e-5)
    assert float(md["PSF_SIGMA_HR_PX"]) == pytest.approx(1.5)
    assert str(srf_csv) in md["SPECTRAL_RESPONSE_SOURCE"]
    assert float(ds.GetRasterBand(5).GetMetadataItem("wavelength")) == pytest.approx(scene["wavelengths"][4], abs=0.01)


def test_nodata_is_honoured(provider, scene, tmp_path):
    hs, ms = scene["hs"].copy(), scene["ms"].copy()
    hs[:, 4, 7] = -9999.0           # one HS pixel → a 3×3 block of the output
    ms[2, 30, 11] = -9999.0         # one MS pixel, in one band → that output pixel
    rasters = pf.write_hs_ms(tmp_path / "in", dict(scene, hs=hs, ms=ms), nodata=-9999.0)
    out = tmp_path / "nodata.tif"
    pf.run_pair_alg("hsms_fusion", {**pf.layers(rasters), "OUTPUT": str(out)})
    data, _, _, _ = raster_stack.read_raster(str(out))
    expected = np.zeros((48, 48), dtype=bool)
    expected[12:15, 21:24] = True
    expected[30, 11] = True
    assert ((data == raster_writer.OUTPUT_NODATA) == expected[None]).all()
    assert np.isfinite(data).all() and np.abs(data[:, ~expected]).max() < 10


def test_tiles_cover_the_area_and_agree_with_one_piece(provider, rasters, fused, tmp_path):
    out = tmp_path / "tiled.tif"
    pf.run_pair_alg("hsms_fusion", {**pf.layers(rasters), "TILE_SIZE": 24, "TILE_OVERLAP": 12, "OUTPUT": str(out)})
    data, _, _, md = raster_stack.read_raster(str(out))
    whole, _, _, _ = raster_stack.read_raster(str(fused[1]))
    assert data.shape == whole.shape and np.isfinite(data).all()
    assert md["TILES"].startswith("4 ") and md["SENSOR_MODEL_TILES"] == "4"
    assert np.abs(data - whole).mean() < 0.05 * np.abs(whole).mean()   # each tile has its own network and model


def test_real_eo1_crop(provider, tmp_path):
    """Hyperion (128 bands, 3×3 block means as a 90 m HS) with ALI (9 bands, 30 m) on a 36×36 px crop of the
    Paris scene; the original 30 m Hyperion bands are the reference."""
    scene = pf.paris_crop(hs_size=12)
    hs = pf.write_raster(tmp_path / "hyperion_90m.tif", scene["hs"], 90.0)
    ms = pf.write_raster(tmp_path / "ali_30m.tif", scene["ms"], 30.0)
    out = tmp_path / "paris.tif"
    pf.run_pair_alg("hsms_fusion", {"HS": hs, "MS": ms, "OUTPUT": str(out)})
    data, grid, descriptions, _ = raster_stack.read_raster(str(out))
    assert data.shape == (128, 36, 36) and grid.pixel == 30.0
    assert descriptions[0] == "band 1"
    coarse = pf.block_mean(data, 3)
    for k in range(0, 128, 16):
        assert np.corrcoef(coarse[k].ravel(), scene["hs"][k].ravel())[0, 1] > 0.9, k
    # against the original 30 m Hyperion bands: closer than the 90 m input repeated on the 30 m grid
    rmse = lambda a: float(np.sqrt(((a - scene["truth"]) ** 2).mean()))  # noqa: E731
    assert rmse(data) < 0.9 * rmse(pf.upsample(scene["hs"], 3))


def test_cancel_stops_and_leaves_no_output(provider, rasters, tmp_path):
    from qgis.core import QgsProcessingException

    out = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException) as error:
        pf.run_pair_alg("hsms_fusion", {**pf.layers(rasters), "ITERATIONS": 50, "OUTPUT": str(out),
                                        "REPORT": str(tmp_path / "r.html")}, feedback=CancelAfter())
    assert "cancelled" in str(error.value).lower() and "iteration 1 of 50" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_qgis_process_run(rasters, tmp_path):
    out = tmp_path / "cli.tif"
    code, payload, text = pf.cli_run("hsms_fusion", {**pf.layers(rasters), "SRF": "estimate", "PSF": "estimate",
                                                     "OUTPUT": out})
    assert code == 0, text
    assert payload["results"]["OUTPUT"] == str(out) and payload["results"]["DEVICE_USED"] == "cpu"
    assert "iteration 3/3" in "\n".join(payload["log"]["info"])
    ds = gdal.Open(str(out))
    assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (24, 48, 48)
    assert ds.GetRasterBand(24).GetDescription() == "HS 024"


def test_plugin_sensor_lists_match_the_core():
    from sure_core import pan_sensors, spectral_response
    from sure_fusion_qgis.algorithms import hsms_fusion, pansharpening

    assert tuple(hsms_fusion.MS_SENSORS)[1:] == tuple(spectral_response.PRESET_NAMES)
    assert tuple(pansharpening.SENSORS) == tuple(pan_sensors.sensor_keys())


@pytest.mark.parametrize("description, band_items, expected", [
    ("B5 (704 nm)", {}, (704.0, None)),
    ("Band 2 (0.55 Micrometers)", {}, (550.0, None)),
    ("", {"WAVELENGTH": "865", "BANDWIDTH": "21"}, (865.0, 21.0)),
    ("", {"wavelength": "1.61", "wavelength_units": "micrometers", "fwhm": "0.09"}, (1610.0, 90.0)),
    ("", {"wavelength": "2200"}, (2200.0, None)),
    ("", {"wavelength": "10000", "wavelength_units": "wavenumber"}, (None, None)),
    ("pan", {}, (None, None)),
])
def test_spectral_info_reads_the_usual_conventions(tmp_path, description, band_items, expected):
    path = pf.write_raster(tmp_path / "one.tif", np.ones((1, 2, 2)), 10.0, descriptions=[description],
                           band_metadata=[band_items])
    wavelengths, fwhms = pair_inputs.spectral_info(gdal.Open(path))
    assert (wavelengths[0], fwhms[0]) == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ bad input
def _fails(parameters, expected, tmp_path, out=None):
    return pf.assert_fails("hsms_fusion", parameters, expected, out or tmp_path / "out.tif")


def test_layers_in_different_crs(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, hs_epsg=32632)
    _fails(pf.layers(rasters), ["different CRS", "EPSG:32632", "EPSG:32631", "gdal:warpreproject"], tmp_path)


def test_layers_not_overlapping(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, hs_origin=(pf.ORIGIN[0] + 9000.0, pf.ORIGIN[1]))
    _fails(pf.layers(rasters), ["do not overlap", "covers"], tmp_path)


def test_non_integer_ratio(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, hs_pixel=25.0)
    _fails(pf.layers(rasters), ["2.5, not an integer", "has a pixel size of 25 m", "10 m", "gdal:warpreproject"],
           tmp_path)


def test_ms_coarser_than_hs(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, hs_pixel=10.0, ms_pixel=30.0)
    _fails(pf.layers(rasters), ["look swapped", "10 m pixels", "30 m pixels"], tmp_path)


def test_grids_not_aligned(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, hs_origin=(pf.ORIGIN[0] + 4.0, pf.ORIGIN[1]))
    _fails(pf.layers(rasters), ["not aligned", "+0.400", "-tap"], tmp_path)


def test_srf_csv_with_the_wrong_shape(provider, rasters, tmp_path):
    csv = tmp_path / "srf.csv"
    np.savetxt(csv, np.full((4, 20), 0.05), delimiter=",")
    _fails({**pf.layers(rasters), "SRF": "csv", "SRF_FILE": str(csv)}, ["20 columns", "24 bands"], tmp_path)
    np.savetxt(csv, np.full((24, 4), 0.05), delimiter=",")
    _fails({**pf.layers(rasters), "SRF": "csv", "SRF_FILE": str(csv)}, ["transpose"], tmp_path)


def test_srf_csv_with_negative_values(provider, rasters, tmp_path):
    matrix = np.full((4, 24), 0.05)
    matrix[2, 7] = -0.1
    csv = tmp_path / "srf.csv"
    np.savetxt(csv, matrix, delimiter=",")
    _fails({**pf.layers(rasters), "SRF": "csv", "SRF_FILE": str(csv)}, ["negative value", "row 3, column 8"], tmp_path)


def test_srf_csv_mode_without_a_file_and_a_file_without_the_mode(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "SRF": "csv"}, ["'From a matrix file (CSV)' needs the spectral response matrix"],
           tmp_path)
    csv = tmp_path / "srf.csv"
    np.savetxt(csv, np.full((4, 24), 0.05), delimiter=",")
    _fails({**pf.layers(rasters), "SRF_FILE": str(csv)}, ["choose 'From a matrix file (CSV)'"], tmp_path)


def test_gaussian_srf_without_hs_wavelengths(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, hs_metadata="none")
    _fails({**pf.layers(rasters), "SRF": "gaussian", "MS_SENSOR": "sentinel2"},
           ["centre wavelength of every HS band", "24 of 24", "HS band table"], tmp_path)


def test_gaussian_srf_without_ms_bands(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "SRF": "gaussian"}, ["FWHM of every MS band", "choose the MS sensor"], tmp_path)


def test_preset_that_does_not_match_the_ms_bands(provider, scene, tmp_path):
    rasters = pf.write_hs_ms(tmp_path, scene, ms_descriptions=["blue", "green", "red", "nir"])
    _fails({**pf.layers(rasters), "SRF": "gaussian", "MS_SENSOR": "landsat_oli"}, ["has 8 bands", "has 4"], tmp_path)


def test_hs_band_table_with_the_wrong_band_count(provider, rasters, tmp_path):
    csv = tmp_path / "bands.csv"
    csv.write_text("500,10\n600,10\n")
    _fails({**pf.layers(rasters), "SRF": "gaussian", "HS_BANDS_CSV": str(csv)}, ["lists 2 bands", "has 24"], tmp_path)


def test_bad_psf_value(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "PSF": "mtf", "PSF_VALUE": 1.5}, ["between 0 and 1"], tmp_path)
    _fails({**pf.layers(rasters), "PSF": "sigma"}, ["'Blur: width or MTF' > 0"], tmp_path)


def test_bad_noise_sigma(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "NOISE_SIGMA": "0.01,0.02"}, ["needs 1 or 24"], tmp_path)


def test_all_nodata(provider, scene, tmp_path):
    empty = dict(scene, hs=np.full_like(scene["hs"], -9999.0))
    rasters = pf.write_hs_ms(tmp_path, empty, nodata=-9999.0)
    _fails(pf.layers(rasters), ["nodata only"], tmp_path)


def test_unwritable_output(provider, rasters, tmp_path):
    _fails(pf.layers(rasters), ["does not exist"], tmp_path, out=tmp_path / "missing" / "out.tif")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _fails(pf.layers(rasters), ["cannot write"], tmp_path, out=blocker / "out.tif")


def test_missing_layer_file(provider, rasters, tmp_path):
    _fails({**pf.layers(rasters), "HS": str(tmp_path / "no_such_hs.tif")}, ["HS", "no_such_hs.tif"], tmp_path)


def test_scene_training_keeps_crops_off_nodata_and_masks_it(provider, scene, tmp_path):
    """TRAINING=scene on a pair whose left third is nodata: training crops are moved to valid data, the nodata
    stays nodata in the output, and the rest is fused by one network and one sensor model."""
    hs = scene["hs"].copy()
    hs[:, :, :5] = 0                                      # HS nodata 0 on the first 5 columns (15 MS px)
    rasters = pf.write_hs_ms(tmp_path / "in", dict(scene, hs=hs), nodata=0)
    out = tmp_path / "out.tif"
    pf.run_pair_alg("hsms_fusion", {**pf.layers(rasters), "TRAINING": "scene", "TILE_SIZE": 24, "TILE_OVERLAP": 12,
                                    "OUTPUT": str(out)})
    data, _, _, md = raster_stack.read_raster(str(out))
    assert (data[:, :, :15] == raster_writer.OUTPUT_NODATA).all()
    valid = data[:, :, 15:]
    assert np.isfinite(valid).all() and (valid != raster_writer.OUTPUT_NODATA).all()
    truth = scene["truth"][:, :, 15:]
    nearest = pf.upsample(scene["hs"], 3)[:, :, 15:]
    assert np.sqrt(((valid - truth) ** 2).mean()) < np.sqrt(((nearest - truth) ** 2).mean())
    assert md["TRAINING"].startswith("one network on") and md["SENSOR_MODEL_TILES"] == "1"
