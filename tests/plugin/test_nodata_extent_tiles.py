"""Nodata propagation, EXTENT snapping, tiling and cancel, on synthetic inputs (no shared data needed)."""
import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback

import s2_fixtures
from alg_helpers import run_alg
from sure_fusion_qgis import raster_stack, raster_writer


def _inputs(paths):
    return {"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"], "INPUT_60M": paths["60m"]}


def test_nodata_where_any_input_is_nodata(provider, tmp_path):
    scene = s2_fixtures.synthetic_scene(60, seed=3)
    scene["10m"][2, 10, 11] = 0            # one 10 m pixel, in one band only
    scene["20m"][:, 20, 5] = 0             # one 20 m pixel → 10 m rows 40–41, cols 10–11
    scene["60m"][1, 1, 8] = 0              # one 60 m pixel → 10 m rows 6–11, cols 48–53
    paths = s2_fixtures.write_band_rasters(tmp_path, scene, nodata=0)
    out = tmp_path / "out.tif"
    run_alg({**_inputs(paths), "OUTPUT": str(out)})
    data, _, _, _ = raster_stack.read_raster(str(out))
    expected = np.zeros((60, 60), dtype=bool)
    expected[10, 11] = True
    expected[40:42, 10:12] = True
    expected[6:12, 48:54] = True
    nodata = data == raster_writer.OUTPUT_NODATA
    assert (nodata == expected[None]).all(), "nodata must be exactly the union of the inputs' nodata, in all bands"
    assert np.isfinite(data[:, ~expected]).all()


def test_extent_is_snapped_outwards_to_the_60m_grid(provider, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(120, seed=1))
    x0, y0 = s2_fixtures.ORIGIN
    extent = f"{x0 + 65},{x0 + 545},{y0 - 575},{y0 - 61} [EPSG:32648]"   # xmin,xmax,ymin,ymax
    out = tmp_path / "out.tif"
    run_alg({**_inputs(paths), "EXTENT": extent, "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    gt = ds.GetGeoTransform()
    # 65 → 60 and 545 → 600 (60 m cells), 61 → 60 and 575 → 600 below the top edge
    assert gt[0] == pytest.approx(x0 + 60) and gt[3] == pytest.approx(y0 - 60)
    assert (ds.RasterXSize, ds.RasterYSize) == (54, 54)
    assert gt[1] == 10 and gt[5] == -10


def test_extent_snaps_to_20m_without_60m_input(provider, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(120, seed=2))
    x0, y0 = s2_fixtures.ORIGIN
    extent = f"{x0 + 25},{x0 + 1005},{y0 - 995},{y0 - 15} [EPSG:32648]"
    out = tmp_path / "out.tif"
    run_alg({"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"], "EXTENT": extent, "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    gt = ds.GetGeoTransform()
    assert gt[0] == pytest.approx(x0 + 20) and gt[3] == pytest.approx(y0)
    assert (ds.RasterXSize, ds.RasterYSize) == (100, 100)
    assert ds.RasterCount == 10   # no B1, B9 without 60 m input
    assert [ds.GetRasterBand(i).GetMetadataItem("BANDNAME") for i in (1, 10)] == ["B2", "B12"]


def test_tiles_cover_the_area_without_gaps(provider, tmp_path):
    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(108, seed=4))
    out = tmp_path / "out.tif"
    feedback = QgsProcessingFeedback()
    run_alg({**_inputs(paths), "TILE_SIZE": 54, "TILE_OVERLAP": 12, "ITERATIONS": 2, "OUTPUT": str(out)},
            feedback=feedback)
    data, _, _, md = raster_stack.read_raster(str(out))
    assert data.shape == (12, 108, 108)
    assert (data != raster_writer.OUTPUT_NODATA).all() and np.isfinite(data).all()
    assert len(md["FINAL_SURE_RISK_PER_TILE"].split(",")) == 4
    assert md["TILES"].startswith("4 ")


class CancelAfter(QgsProcessingFeedback):
    """Cancels as soon as the first iteration reports progress."""

    def setProgress(self, progress):
        super().setProgress(progress)
        if progress > 0:
            self.cancel()


def test_cancel_stops_and_leaves_no_output(provider, synthetic_rasters, tmp_path):
    out = tmp_path / "out.tif"
    report = tmp_path / "report.html"
    feedback = CancelAfter()
    with pytest.raises(QgsProcessingException) as error:
        run_alg({**_inputs(synthetic_rasters), "ITERATIONS": 50, "OUTPUT": str(out), "REPORT": str(report)},
                feedback=feedback)
    assert "cancelled" in str(error.value).lower()
    assert "iteration 1 of 50" in str(error.value)   # stopped within one iteration
    assert list(tmp_path.iterdir()) == []


def test_temporary_output(provider, synthetic_rasters):
    result = run_alg({**_inputs(synthetic_rasters), "ITERATIONS": 1, "OUTPUT": "TEMPORARY_OUTPUT"})
    assert gdal.Open(result["OUTPUT"]).RasterCount == 12


def test_scene_training_one_network_applied_tile_by_tile(provider, tmp_path):
    """TRAINING=scene: one network trained on crops, every tile fused by it; equal to the core's in-memory run."""
    from sure_core import runner, s2_sharpening, scene
    from sure_core.solver import SolverOptions

    bands = s2_fixtures.synthetic_scene(108, seed=5)
    paths = s2_fixtures.write_band_rasters(tmp_path, bands)
    out = tmp_path / "out.tif"
    feedback = QgsProcessingFeedback()
    run_alg({**_inputs(paths), "TRAINING": "scene", "TILE_SIZE": 54, "TILE_OVERLAP": 24, "ITERATIONS": 4,
             "OUTPUT": str(out)}, feedback=feedback)
    data, _, _, md = raster_stack.read_raster(str(out))
    assert data.shape == (12, 108, 108) and np.isfinite(data).all()
    assert md["TILES"].startswith("4 ") and md["TRAINING"].startswith("one network on 4 crops")
    assert md["FINAL_SURE_RISK_PER_TILE"] == "one network for the scene"

    def read(w):
        rs, cs = w.slices()
        return {k: bands[k][:, rs.start // r:rs.stop // r, cs.start // r:cs.stop // r].astype(np.float64)
                for k, r in (("10m", 1), ("20m", 2), ("60m", 6))}, None

    expected, _ = runner.run_to_array(s2_sharpening.Sentinel2Case(), read, (108, 108), 12,
                                      options=SolverOptions(iterations=4, threads=1, device="cpu", seed=0),
                                      training="scene", tile_size=54, halo=24, scene=scene.SceneOptions())
    np.testing.assert_allclose(data, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def test_cancel_during_scene_training_leaves_no_output(provider, synthetic_rasters, tmp_path):
    out = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException, match="(?i)cancelled"):
        run_alg({**_inputs(synthetic_rasters), "TRAINING": "scene", "ITERATIONS": 50, "OUTPUT": str(out)},
                feedback=CancelAfter())
    assert list(tmp_path.iterdir()) == []


def test_guided_smoothing_follows_its_parameter_and_is_recorded(provider, synthetic_rasters, tmp_path):
    import json

    recorded = {}
    for choice in ("auto", "on", "off"):
        out = tmp_path / f"out_{choice}.tif"
        run_alg({**_inputs(synthetic_rasters), "ITERATIONS": 1, "SMOOTHING": choice, "OUTPUT": str(out)})
        md = gdal.Open(str(out)).GetMetadata()
        recorded[choice] = (float(md["GUIDED_SMOOTHING_STRENGTH"].split()[0]),
                            json.loads(md["SOLVER_OPTIONS"])["smoothing"])
    assert recorded["off"] == (0.0, False)
    assert recorded["auto"] == (0.0, None)       # σ estimated from the data (no NOISE_SIGMA): no smoothing
    assert recorded["on"][1] is True and recorded["on"][0] >= 0


def test_a_given_sigma_turns_on_the_cross_band_shrinkage_and_is_recorded(provider, synthetic_rasters, tmp_path):
    out = tmp_path / "out.tif"
    run_alg({**_inputs(synthetic_rasters), "ITERATIONS": 1, "NOISE_SIGMA": "0.01", "OUTPUT": str(out)})
    md = gdal.Open(str(out)).GetMetadata()
    assert md["NOISE_SIGMA_SOURCE"] == "given"
    assert md["FIRST_ESTIMATE_SHRINKAGE"].startswith("cross-band ring matrices")
    assert float(md["GUIDED_SMOOTHING_STRENGTH"].split()[0]) >= 0
