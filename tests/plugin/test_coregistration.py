"""COREGISTRATION through processing.run: measured shifts in the log and the metadata, the switch, the pairs, and a
clear error for inputs that do not overlap as their georeferencing claims."""
import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback

import pair_fixtures as pf
import s2_fixtures
from alg_helpers import SPECTRAL, crop, run_alg


class Recorder(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.infos, self.warnings = [], []

    def pushInfo(self, info):  # noqa: N802 (QGIS's name)
        self.infos.append(info)

    def pushWarning(self, warning):  # noqa: N802
        self.warnings.append(warning)


@pytest.fixture(scope="module")
def vietnam_120(vietnam, tmp_path_factory):
    return crop(vietnam, 120, 60, 60)


def _sharpen(arrays, folder, **parameters):
    paths = s2_fixtures.write_band_rasters(folder, arrays)
    out = folder / "out.tif"
    feedback = Recorder()
    run_alg({"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"], "INPUT_60M": paths["60m"], "OUTPUT": str(out),
             **parameters}, feedback=feedback)
    return gdal.Open(str(out)), feedback


def test_s2_shift_is_measured_logged_and_recorded(provider, vietnam_120, tmp_path):
    """vietnam's 20 m bands lie one 10 m pixel down and right of the 10 m grid (half a 20 m pixel), its 60 m bands
    about 0.85 of a 60 m pixel: both are measured, written per band and warned about (above 0.3 px)."""
    ds, feedback = _sharpen(vietnam_120, tmp_path)
    assert ds.GetMetadataItem("COREGISTRATION").startswith("auto")
    assert "measured shift +0.4" in ds.GetMetadataItem("COREGISTRATION_20M")
    for name in ("B5", "B8A", "B12"):
        band = ds.GetRasterBand(SPECTRAL.index(name) + 1)
        rows, cols = (float(v) for v in band.GetMetadataItem("SHIFT_ROWS_COLS_PX").split(","))
        assert (rows, cols) == pytest.approx((0.5, 0.5), abs=0.05)
        east, north = (float(v) for v in band.GetMetadataItem("SHIFT_EAST_NORTH_M").split(","))
        assert (east, north) == pytest.approx((20 * cols, -20 * rows), abs=1e-3)
    b1 = ds.GetRasterBand(SPECTRAL.index("B1") + 1)
    assert [float(v) for v in b1.GetMetadataItem("SHIFT_ROWS_COLS_PX").split(",")] == pytest.approx([0.85, 0.85],
                                                                                                   abs=0.1)
    assert ds.GetRasterBand(SPECTRAL.index("B2") + 1).GetMetadataItem("SHIFT_ROWS_COLS_PX") is None
    large = [w for w in feedback.warnings if "20 m bands" in w]
    assert large and "is large" in large[0] and "m east" in large[0]


def test_coregistration_off_records_no_shift(provider, vietnam_120, tmp_path):
    ds, feedback = _sharpen(vietnam_120, tmp_path, COREGISTRATION="off")
    assert ds.GetMetadataItem("COREGISTRATION").startswith("off")
    assert ds.GetMetadataItem("COREGISTRATION_20M") is None
    assert all(ds.GetRasterBand(i).GetMetadataItem("SHIFT_ROWS_COLS_PX") is None for i in range(1, 13))
    assert not [w for w in feedback.warnings if "shift" in w]


def test_a_flat_area_keeps_zero_shift_and_says_so(provider, tmp_path):
    rng = np.random.default_rng(0)
    flat = {key: (1000 + rng.normal(0, 2, (bands, 120 // r, 120 // r))).astype(np.float32)
            for key, bands, r in (("10m", 4, 1), ("20m", 6, 2), ("60m", 2, 6))}
    ds, feedback = _sharpen(flat, tmp_path)
    assert "kept a zero shift" in ds.GetMetadataItem("COREGISTRATION_20M")
    assert any("kept a zero shift" in w for w in feedback.warnings)
    assert ds.GetRasterBand(SPECTRAL.index("B5") + 1).GetMetadataItem("SHIFT_ROWS_COLS_PX") == "+0.0000, +0.0000"


def test_inputs_offset_beyond_the_search_range_are_an_error(provider, vietnam_120, tmp_path):
    moved = dict(vietnam_120)
    moved["20m"] = np.roll(vietnam_120["20m"], (3, -3), axis=(1, 2))   # 60 m off: not what the georeferencing says
    moved["60m"] = np.roll(vietnam_120["60m"], (1, -1), axis=(1, 2))
    out = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException, match="do not overlap as their georeferencing claims"):
        _sharpen(moved, tmp_path)
    assert not out.exists()


def test_pansharpening_records_the_ms_shift(provider, tmp_path):
    """A real WorldView-2 crop, its MS moved by (0.4, −0.3) MS px: the recorded shift moves by as much."""
    scene = pf.wv2_crop(ms_size=40)
    fr, fc = np.fft.fftfreq(40)[:, None], np.fft.fftfreq(40)[None, :]
    moved = {**scene, "ms": np.fft.ifft2(np.fft.fft2(scene["ms"]) * np.exp(-2j * np.pi * (0.4 * fr - 0.3 * fc))).real}
    shifts = []
    for name, data in (("aligned", scene), ("moved", moved)):
        paths = pf.write_pan_ms(tmp_path / name, data)
        _, out, _ = pf.run_with_report("pansharpening", paths, tmp_path / name)
        ds = gdal.Open(str(out))
        assert "lr" not in ds.GetMetadataItem("COREGISTRATION").lower()
        shifts.append(np.array([[float(v) for v in ds.GetRasterBand(i).GetMetadataItem("SHIFT_ROWS_COLS_PX").split(",")]
                                for i in range(1, ds.RasterCount + 1)]))
        report = (tmp_path / name / "pansharpening.html").read_text(encoding="utf-8")
        assert "Co-registration" in report
    np.testing.assert_allclose((shifts[1] - shifts[0]).mean(axis=0), [0.4, -0.3], atol=0.05)


def test_hsms_records_one_shift_for_the_hyperspectral_image(provider, tmp_path):
    scene = pf.paris_crop(hs_size=24, bands=40)
    paths = pf.write_hs_ms(tmp_path, scene, hs_metadata="none",
                           ms_descriptions=[f"ALI {k + 1}" for k in range(scene["ms"].shape[0])])
    _, out, _ = pf.run_with_report("hsms_fusion", paths, tmp_path)
    ds = gdal.Open(str(out))
    shifts = {ds.GetRasterBand(i).GetMetadataItem("SHIFT_ROWS_COLS_PX") for i in range(1, ds.RasterCount + 1)}
    assert len(shifts) == 1 and ds.GetMetadataItem("COREGISTRATION_LR")


def test_network_never_writes_the_first_estimate_and_says_so(provider, vietnam_120, tmp_path):
    """NETWORK (issue 18) through processing.run: the decision reaches the log and the metadata."""
    ds, feedback = _sharpen(vietnam_120, tmp_path, NETWORK="never", ITERATIONS=50)
    assert ds.GetMetadataItem("NETWORK").startswith("network not trained")
    assert ds.GetMetadataItem("ITERATIONS_RUN") == "0"
    assert any("network not trained" in line for line in feedback.infos)
