"""`benchmarks.tile_profile` (make bench-tile-profile) runs on today's driver and runner: it broke silently once
when the APIs it called were redesigned away. A small synthetic scene keeps this to a few seconds."""
from __future__ import annotations

import numpy as np
from osgeo import gdal

import s2_fixtures
from benchmarks import common, tile_profile
from tests.conftest import shared_file


def _settings(tile: int):
    from sure_core.solver import SolverOptions
    from sure_fusion_qgis.fusion_run import RunSettings

    return RunSettings(SolverOptions(iterations=2, threads=1, device="cpu", network="always"), tile_size=tile,
                       tile_overlap=12, training="scene", scene_crops=1, scene_crop_size=60)


def test_every_phase_timed_and_output_equals_the_drivers(tmp_path):
    """Each phase of each tile takes time in every pass (so `SceneModel.fuse` still calls the parts it is timed by),
    the tiles are the driver's, and what the benchmark writes is the driver's output, pixel for pixel."""
    from sure_fusion_qgis import fusion_request

    paths = s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(504, seed=1))
    settings = _settings(480)     # tiles of two 240 px output blocks: flushed (compressed) tile by tile
    lines = []
    result = tile_profile.profile(paths, settings, passes=2, folder=tmp_path, say=lines.append)

    driver = fusion_request.run(fusion_request.prepare(fusion_request.FusionRequest("s2", paths, settings)),
                                str(tmp_path / "driver.tif"))
    assert result["tiles"] == len(driver.tiles) > 1
    assert result["network"] == driver.network_decision
    assert len(result["passes"]) == 2 and len(lines) == 5
    for per_tile in result["passes"]:
        assert list(per_tile) == list(tile_profile.PHASES)
        assert all(per_tile[k] > 0 for k in tile_profile.PHASES if k != "rest of fuse"), per_tile
        assert per_tile["rest of fuse"] >= 0
    assert result["training"] > 0 and result["finish"] > 0
    ours = gdal.Open(result["path"]).ReadAsArray()
    np.testing.assert_array_equal(ours, gdal.Open(driver.path).ReadAsArray())


def test_main_on_the_dsen2_scene(capsys):
    """The command line as `make bench-tile-profile` runs it, on a small cut of the real scene."""
    shared_file("S2A_MSIL1C_20170527_T33UUB.mat")
    assert tile_profile.main(["--size", "120", "--tile", "60", "--passes", "1", "--threads", "1", "--cpu"]) == 0
    out = capsys.readouterr().out
    assert "4 tiles" in out and "pass 1, seconds per tile: read" in out and "close and read back" in out


def test_main_without_the_shared_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "DATA", tmp_path)
    assert tile_profile.main(["--size", "120"]) == 2
    assert "S2A_MSIL1C_20170527_T33UUB.mat not found" in capsys.readouterr().out
