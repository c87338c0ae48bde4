"""The one reader of N rasters on one pixel lattice (`raster_stack`): Sentinel-2's three grids (ratios 1, 2, 6) and
a pair (ratio r) alike — placement, window mapping, the mask-only read against the full read, the lattice errors,
and a georeferencing round trip through the writer. No QGIS needed."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr

import pair_fixtures as pf
import s2_fixtures
from sure_fusion_qgis.core_loader import core_module
from sure_fusion_qgis.io_errors import RasterInputError
from sure_fusion_qgis.pair_inputs import open_pair, open_raster
from sure_fusion_qgis.raster_stack import RasterStack, Window
from sure_fusion_qgis.raster_writer import GeoTiffWriter, epsg_wkt, write_simple_geotiff
from sure_fusion_qgis.s2_inputs import open_band_rasters

S2 = core_module("sentinel2")
GROUPS = {"10m": S2.GROUP_10M, "20m": S2.GROUP_20M, "60m": S2.GROUP_60M}


def _s2(tmp_path, shifts=None, size=60, **kwargs):
    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(size), shifts=shifts, **kwargs)
    return open_band_rasters(paths, GROUPS)


# ------------------------------------------------------------------------------------------ placement
def test_three_sentinel2_grids_on_the_10m_lattice(tmp_path):
    """The 60 m grid starts one 60 m pixel east and south of the others: its origin is (6, 6) on the 10 m grid,
    the area is what all three cover, and windows map to whole pixels of each."""
    inputs = _s2(tmp_path, shifts={"60m": (60.0, -60.0)})
    stack = inputs.stack
    assert [s.ratio for s in stack.sources] == [1, 2, 6]
    assert [s.origin for s in stack.sources] == [(0, 0), (0, 0), (6, 6)]
    assert stack.step == 6 and stack.coarsest is inputs.groups["60m"]
    assert stack.plan() == Window(6, 6, 54, 54)           # 60 m covers 6..66, the others 0..60
    fine = Window(12, 18, 24, 30)
    assert inputs.groups["20m"].window(fine) == Window(6, 9, 12, 15)
    assert inputs.groups["60m"].window(fine) == Window(1, 2, 4, 5)
    grid = stack.output_grid(fine)
    assert grid.geotransform == (s2_fixtures.ORIGIN[0] + 120.0, 10.0, 0.0, s2_fixtures.ORIGIN[1] - 180.0, 0.0, -10.0)
    assert (grid.width, grid.height) == (24, 30)


def test_an_extent_is_snapped_outwards_to_the_coarsest_grid(tmp_path):
    stack = _s2(tmp_path).stack
    x0, y0 = s2_fixtures.ORIGIN
    assert stack.plan((x0 + 75.0, y0 - 305.0, x0 + 185.0, y0 - 125.0)) == Window(6, 12, 18, 24)


def test_a_pair_on_its_lattice(tmp_path):
    """A ratio-3 pair whose low grid starts three fine pixels east of the guide's."""
    scene = pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=6)
    paths = pf.write_hs_ms(tmp_path, scene, hs_origin=(pf.ORIGIN[0] + 30.0, pf.ORIGIN[1]))
    pair = open_pair(paths["hs"], paths["ms"])
    assert pair.stack.sources == [pair.high, pair.low]
    assert (pair.ratio, pair.low.origin, pair.stack.step) == (3, (3, 0), 3)
    assert pair.stack.plan() == Window(3, 0, 45, 48)
    assert pair.low.window(Window(9, 6, 12, 3)) == Window(2, 2, 4, 1)
    (high, _), (low, _) = pair.stack.read(Window(9, 6, 12, 3))
    assert high.shape == (4, 3, 12) and low.shape == (6, 1, 4)
    np.testing.assert_allclose(low[:, 0], scene["hs"][:, 2, 2:6].astype(np.float32))


# ------------------------------------------------------------------------------------- mask-only read
def _holes(tmp_path):
    """A 10 m raster (UInt16, nodata 0), a 20 m one (Float32, NaN and no nodata value) and a 60 m one (UInt16,
    no nodata, read with 0 as nodata like a product) with holes at different places."""
    rng = np.random.default_rng(3)
    x0, y0 = s2_fixtures.ORIGIN
    wkt = epsg_wkt(s2_fixtures.EPSG)
    fine = rng.integers(1, 5000, (4, 36, 36)).astype(np.uint16)
    fine[2, 3:9, 5:7] = 0
    mid = rng.random((6, 18, 18)).astype(np.float32)
    mid[4, 10:12, 1:4] = np.nan
    mid[0, 0, 17] = np.inf
    coarse = rng.integers(1, 5000, (2, 6, 6)).astype(np.uint16)
    coarse[1, 4, 0] = 0
    paths = {key: str(tmp_path / f"{key}.tif") for key in GROUPS}
    write_simple_geotiff(paths["10m"], fine, (x0, 10, 0, y0, 0, -10), wkt, nodata=0)
    write_simple_geotiff(paths["20m"], mid, (x0, 20, 0, y0, 0, -20), wkt, gdal_type=gdal.GDT_Float32)
    write_simple_geotiff(paths["60m"], coarse, (x0, 60, 0, y0, 0, -60), wkt)
    inputs = open_band_rasters(paths, GROUPS)
    inputs.groups["60m"].zero_is_nodata = True
    return inputs


@pytest.mark.parametrize("window", [Window(0, 0, 36, 36), Window(0, 6, 18, 30), Window(12, 24, 6, 12)])
def test_the_mask_only_read_agrees_with_the_full_read(tmp_path, window):
    inputs = _holes(tmp_path)
    stack = inputs.stack
    full = stack.read(window)
    for source, (_, invalid) in zip(stack.sources, full):
        np.testing.assert_array_equal(source.read_invalid(window), invalid)
        assert invalid.any() or window.col == 12, source.label       # every source has holes in the big windows
    combined = stack.invalid_on_finest([invalid for _, invalid in full])
    np.testing.assert_array_equal(stack.read_invalid(window), combined)
    assert stack.valid_fraction(window) == pytest.approx(1.0 - combined.mean())


def test_the_invalid_mask_reaches_the_finest_grid_block_by_block(tmp_path):
    inputs = _holes(tmp_path)
    invalid = inputs.stack.read_invalid(Window(0, 0, 36, 36))
    assert invalid[3:9, 5:7].all()                 # the 10 m nodata
    assert invalid[20:24, 2:8].all()               # the 20 m NaN rows 10–11, cols 1–3 → 10 m rows 20–23, cols 2–7
    assert invalid[0:2, 34:36].all()               # the 20 m infinity
    assert invalid[24:30, 0:6].all()               # the 60 m zero (row 4, col 0)
    assert invalid.sum() == 12 + 24 + 4 + 36


# ---------------------------------------------------------------------------------------------- errors
def test_a_misaligned_pair_names_the_shift_and_the_fix(tmp_path):
    paths = pf.write_hs_ms(tmp_path, pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=6),
                           hs_origin=(pf.ORIGIN[0] + 4.0, pf.ORIGIN[1]))
    with pytest.raises(RasterInputError, match=r"is not aligned with .*\+0\.400, \+0\.000 10 m pixels.*-tap"):
        open_pair(paths["hs"], paths["ms"], low_label="HS", high_label="MS")


def test_a_misaligned_60m_grid_names_the_3x3_blocks(tmp_path):
    with pytest.raises(RasterInputError, match=r"exactly 3×3 20 m pixels, but its origin lies \+0\.5, \+0 20 m"):
        _s2(tmp_path, shifts={"60m": (10.0, 0.0)})


def test_a_non_integer_ratio_names_both_pixel_sizes(tmp_path):
    paths = pf.write_hs_ms(tmp_path, pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=6), hs_pixel=25.0)
    with pytest.raises(RasterInputError, match=r"is 2\.5, not an integer \(HS has a pixel size of 25 m, MS 10 m\)"):
        open_pair(paths["hs"], paths["ms"], low_label="HS", high_label="MS")


def test_a_wrong_sentinel2_ratio_says_what_it_must_be(tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(60))
    ds = gdal.Open(paths["20m"], gdal.GA_Update)
    ds.SetGeoTransform((*s2_fixtures.ORIGIN[:1], 30.0, 0.0, s2_fixtures.ORIGIN[1], 0.0, -30.0))
    ds = None
    with pytest.raises(RasterInputError, match=r"30 m, .* 10 m: the ratio must be 2 but is 3"):
        open_band_rasters(paths, GROUPS)


def test_different_crs_names_both(tmp_path):
    with pytest.raises(RasterInputError, match=r"different CRS \(EPSG:32647 vs EPSG:32648\).*gdal:warpreproject"):
        _s2(tmp_path, epsgs={"60m": 32647})


def test_inputs_that_do_not_overlap_say_what_each_covers(tmp_path):
    paths = pf.write_hs_ms(tmp_path, pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=6),
                           hs_origin=(pf.ORIGIN[0] + 9000.0, pf.ORIGIN[1]))
    with pytest.raises(RasterInputError, match=r"MS and HS do not overlap: MS covers \(500000, 4499520, 500480, "
                                               r"4500000\); HS covers \(509000, "):
        open_pair(paths["hs"], paths["ms"], low_label="HS", high_label="MS")


def test_an_overlap_below_one_coarse_pixel_is_no_overlap(tmp_path):
    with pytest.raises(RasterInputError, match=r"do not overlap by even one 60 m pixel: they have only 2×60 10 m"):
        _s2(tmp_path, shifts={"60m": (580.0, 0.0)})


# ------------------------------------------------------------------------------------------ round trip
def test_written_output_reads_back_on_the_same_lattice(tmp_path):
    """An area written with the writer on the stack's output grid, then stacked with the coarse input it came
    from: same grid, the coarse raster placed where it lies (a negative origin), the values as written."""
    scene = pf.synthetic_pan_ms(size=64, ratio=4, bands=3)
    paths = pf.write_pan_ms(tmp_path, scene)
    pair = open_pair(paths["ms"], paths["pan"])
    area = Window(8, 12, 40, 28)
    values = np.random.default_rng(1).random((3, area.height, area.width))
    target = str(tmp_path / "out.tif")
    with GeoTiffWriter(target, pair.stack.output_grid(area), ["a", "b", "c"], block=16) as writer:
        writer.write(values, 0, 0)
        writer.commit()
    written = open_raster(target, "the output")
    expected = pair.stack.output_grid(area)
    assert (written.grid.geotransform, written.grid.width, written.grid.height) == \
        (expected.geotransform, expected.width, expected.height)
    assert osr.SpatialReference(wkt=written.grid.crs_wkt).IsSame(osr.SpatialReference(wkt=expected.crs_wkt))
    stack = RasterStack.on_lattice([written, open_raster(paths["ms"], "MS")])
    assert (stack.sources[1].ratio, stack.sources[1].origin) == (4, (-8, -12))
    assert stack.plan() == Window(0, 0, 40, 28)
    (back, invalid), (ms, _) = stack.read(Window(0, 0, 40, 28))
    np.testing.assert_array_equal(back, values.astype(np.float32))
    assert not invalid.any()
    np.testing.assert_array_equal(ms, pair.stack.read(area)[1][0])
