"""Small pure functions of the plugin: band-name parsing, tiling, grid planning, the report's SVG."""
import numpy as np
import pytest

from sure_core.tiling import plan_tiles
from sure_fusion_qgis import quicklook, report, s2_inputs
from sure_fusion_qgis.raster_stack import Window


@pytest.mark.parametrize("text, name", [
    ("B4", "B4"), ("B04", "B4"), ("b8a", "B8A"), ("B8A (865 nm)", "B8A"), ("B8", "B8"), ("B11", "B11"),
    ("B12, central wavelength 2190 nm", "B12"), ("B1", "B1"), ("Band 1", None), ("B13", None), ("", None),
    (None, None), ("B10", "B10")])
def test_s2_band_name(text, name):
    assert s2_inputs.s2_band_name(text) == name


@pytest.mark.parametrize("size, tile, overlap", [(120, 0, 36), (120, 48, 12), (126, 50, 0), (60, 200, 36)])
def test_tiles_partition_the_area_on_the_60m_grid(size, tile, overlap):
    area = Window(12, 6, size, size)
    tiles = plan_tiles(area, tile, overlap, step=6)
    covered = np.zeros((size, size), dtype=int)
    for t in tiles:
        r, c = t.core.row - area.row, t.core.col - area.col
        covered[r:r + t.core.height, c:c + t.core.width] += 1
        for v in (t.core.col, t.core.row, t.core.width, t.core.height, t.read.col, t.read.row, t.read.width,
                  t.read.height):
            assert v % 6 == 0
        assert t.read.col >= area.col and t.read.col + t.read.width <= area.col + area.width
        rows, cols = t.core_in_read()
        assert rows.stop - rows.start == t.core.height and cols.stop - cols.start == t.core.width
    assert (covered == 1).all()


def test_report_svg_handles_nan_and_several_tiles():
    svg = report.svg_curves([[1.0, 0.5, float("nan"), 0.2], [2.0, 1.0, 0.4, 0.3]], "loss", "y")
    assert svg.count("<polyline") == 2 and "tile 2" in svg
    assert "no finite values" in report.svg_curves([[float("nan")] * 3], "risk", "y")


def test_quicklook_is_uint8_side_by_side():
    before = np.random.default_rng(0).random((3, 10, 12))
    after = before.copy()
    after[0, 0, 0] = np.nan
    rgb = quicklook.before_after(before, after, gap=4)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 10, 28)
    assert (rgb[:, 0, 16] == 0).all()   # nodata (NaN) is black
