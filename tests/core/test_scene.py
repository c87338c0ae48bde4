"""Whole scenes: windows, crops, one network trained on crops and applied tile by tile without seams."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from sure_core import pair_fusion as pf
from sure_core import runner, s2_sharpening, scene, simulation
from sure_core.errors import FusionCancelled, ImageTooSmallError
from sure_core.solver import SolverOptions
from sure_core.tiling import TRAINING_STAGE, Window, plan_crops, plan_tiles
from tests.conftest import shared_file

FAST = SolverOptions(iterations=6, threads=1, device="cpu")


def test_tiles_cover_the_area_once_and_crops_stay_inside_on_the_grid():
    area = Window(12, 6, 300, 186)
    tiles = plan_tiles(area, 96, 30, 6)
    covered = np.zeros((area.height, area.width), dtype=int)
    for t in tiles:
        covered[t.core.row - area.row:t.core.row - area.row + t.core.height,
                t.core.col - area.col:t.core.col - area.col + t.core.width] += 1
        assert t.read.col <= t.core.col and t.read.row <= t.core.row
        assert all(v % 6 == 0 for v in (t.core.col - area.col, t.core.row - area.row, t.read.width, t.read.height))
    assert (covered == 1).all()
    crops = plan_crops(area, 4, 96, 6)
    assert len(crops) == 4 and len(set(crops)) == 4
    for c in crops:
        assert area.col <= c.col and c.col + c.width <= area.col + area.width
        assert area.row <= c.row and c.row + c.height <= area.row + area.height
        assert c.width == 96 and (c.col - area.col) % 6 == 0
    # spread: the crops do not all sit in one half of the scene
    assert len({c.col < area.col + area.width / 2 for c in crops}) == 2


def test_aligned_tiles_put_inner_edges_on_the_block_grid_and_keep_the_halo_on_the_step_grid():
    area = Window(30, 60, 1000, 700)
    tiles = plan_tiles(area, 480, 40, 6, align=240)
    covered = np.zeros((area.height, area.width), dtype=int)
    for t in tiles:
        rs, cs = t.core.shifted(-area.col, -area.row).slices()
        covered[rs, cs] += 1
        for edge in (t.core.col - area.col, t.core.row - area.row):
            assert edge % 240 == 0
        assert (t.core.col - t.read.col) in (0, 42) and (t.core.row - t.read.row) in (0, 42)  # 40 → 42 (× 6)
    assert (covered == 1).all() and len(tiles) == 6
    # without alignment the edges only follow the step
    assert any((t.core.col - area.col) % 240 for t in plan_tiles(area, 480, 40, 6))


@pytest.fixture(scope="module")
def apex_scene():
    truth = simulation.load_apex(str(shared_file("apex_gt.mat")))[:, :144, :144]
    sim = simulation.simulate_s2(truth, 40, 0, geometry="area")
    data = {"10m": sim.y10, "20m": sim.y20, "60m": sim.y60}

    def read(w):
        rs, cs = w.slices()
        return {k: data[k][:, rs.start // r:rs.stop // r, cs.start // r:cs.stop // r]
                for k, r in (("10m", 1), ("20m", 2), ("60m", 6))}

    return sim, read


def test_a_scene_model_fuses_tiles_without_seams(apex_scene):
    """One trained model, applied to the whole area and tile by tile: the tiles agree with the whole-area result
    (the halo hides the tile borders), and the error to the truth is no higher along tile borders."""
    torch.set_num_threads(1)
    sim, read = apex_scene
    case = s2_sharpening.Sentinel2Case(sigma=sim.sigma, geometry="area")
    fitted = scene.train_scene(case, read, (144, 144), options=FAST, scene=scene.SceneOptions(crops=2, crop_size=96))
    whole = fitted.fuse(read(Window(0, 0, 144, 144)))
    tiled = np.zeros_like(whole)
    tiles = plan_tiles(Window(0, 0, 144, 144), 48, 36, 6)
    for t in tiles:
        rs, cs = t.core.slices()
        tiled[:, rs, cs] = fitted.fuse(read(t.read))[(slice(None), *t.core_in_read())]
    assert len(tiles) == 9
    err_whole = np.sqrt(((whole - sim.truth) ** 2).mean())
    interior = (slice(None), slice(12, -12), slice(12, -12))
    assert np.sqrt(((tiled - whole)[interior] ** 2).mean()) < 0.1 * err_whole
    near = np.zeros((144, 144), dtype=bool)
    for edge in (48, 96):
        near[edge - 2:edge + 2, :] = True
        near[:, edge - 2:edge + 2] = True
    err = ((tiled - sim.truth) ** 2).mean(axis=0)[12:-12, 12:-12]
    near = near[12:-12, 12:-12]
    assert err[near].mean() < 1.2 * err[~near].mean()


def test_the_runner_writes_every_tile_of_a_scene_and_stops_on_request(apex_scene):
    sim, read = apex_scene
    case = s2_sharpening.Sentinel2Case(sigma=sim.sigma, geometry="area")
    options = dict(training="scene", tile_size=72, halo=24, scene=scene.SceneOptions(crops=2, crop_size=96),
                   options=FAST)
    written = []

    def write(tile, block):
        written.append(tile)

    done = runner.run(case, lambda w: (read(w), None), (144, 144), write, **options)
    assert len(done.tiles) == 4 and written == done.tiles and len(done.records) == 4
    out, _ = runner.run_to_array(case, lambda w: (read(w), None), (144, 144), 12, **options)
    assert np.isfinite(out).all()
    names = s2_sharpening.output_band_names(True)
    b20 = [names.index(b) for b in ("B5", "B6", "B7", "B8A", "B11", "B12")]
    nearest = np.repeat(np.repeat(sim.y20, 2, axis=1), 2, axis=2)
    assert np.sqrt(((out[b20] - sim.truth[b20]) ** 2).mean()) < 0.5 * np.sqrt(((nearest - sim.truth[b20]) ** 2).mean())
    written.clear()
    with pytest.raises(FusionCancelled, match="tile 2 of 4"):
        runner.run(case, lambda w: (read(w), None), (144, 144), write, **options,
                   progress=lambda tile, p: tile is not TRAINING_STAGE and tile.index == 1)
    assert len(written) == 1   # nothing written for the tile that asked to stop
    with pytest.raises(FusionCancelled, match="iteration 3"):
        runner.run(case, lambda w: (read(w), None), (144, 144), write, **options,
                   progress=lambda tile, p: tile is TRAINING_STAGE and p.iteration == 3)


def test_a_pair_case_fuses_a_scene_tile_by_tile():
    from tests.core.test_pair_fusion import smooth_scene

    torch.set_num_threads(1)
    x = smooth_scene(8, 96, seed=4)
    rng = np.random.default_rng(4)
    model = pf.SensorModel(3, np.array([1.4]), rng.uniform(0, 1, (2, 8)), np.zeros(2))
    lr, guide = pf.degrade(x, 3, 1.4), np.einsum("gl,lhw->ghw", model.response, x)

    def read(w):
        rs, cs = w.slices()
        return (lr[:, rs.start // 3:rs.stop // 3, cs.start // 3:cs.stop // 3], guide[:, rs, cs], None), None

    out, done = runner.run_to_array(pf.PairCase(model), read, (96, 96), 8, training="scene", tile_size=48, halo=18,
                                    scene=scene.SceneOptions(crops=2, crop_size=48), options=FAST)
    nearest = np.repeat(np.repeat(lr, 3, axis=1), 3, axis=2)
    assert len(done.tiles) == 4 and done.cases == [done.scene.case]
    assert np.sqrt(((out - x) ** 2).mean()) < 0.7 * np.sqrt(((nearest - x) ** 2).mean())


def test_a_cuda_out_of_memory_splits_the_window_and_retries(apex_scene, monkeypatch):
    """No GPU here: a fake out-of-memory for windows above 72 px checks the split-and-retry path."""
    sim, read = apex_scene
    case = s2_sharpening.Sentinel2Case(sigma=sim.sigma, geometry="area")
    fitted = scene.train_scene(case, read, (144, 144), options=FAST, scene=scene.SceneOptions(crops=2, crop_size=96))
    fitted.halo = 24
    expected = fitted.fuse(read(Window(0, 0, 144, 144)))
    apply = fitted.model.apply
    sizes = []

    def limited(problem, *args):
        sizes.append(problem.hr_shape)
        if max(problem.hr_shape) > 100:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return apply(problem, *args)

    monkeypatch.setattr(fitted.model, "apply", limited)
    split = fitted.fuse(read(Window(0, 0, 144, 144)))
    assert sizes[0] == (144, 144) and all(max(s) <= 100 for s in sizes[1:]) and len(sizes) == 5
    interior = (slice(None), slice(12, -12), slice(12, -12))
    assert np.sqrt(((split - expected)[interior] ** 2).mean()) < 0.05 * np.abs(expected).mean()


def test_choose_crops_keeps_the_plan_on_valid_data_and_moves_crops_off_nodata():
    shape = (300, 300)
    planned = plan_crops(Window(0, 0, 300, 300), 4, 96, 6)
    assert scene.choose_crops(shape, 4, 96, 6, lambda w: 1.0) == planned
    # the left 60 % of the scene is nodata: every chosen crop holds more valid data than the planned one it replaces
    valid = np.zeros(shape, dtype=bool)
    valid[:, 180:] = True

    def fraction(w):
        rs, cs = w.slices()
        return float(valid[rs, cs].mean())

    chosen = scene.choose_crops(shape, 4, 96, 6, fraction)
    assert 1 <= len(chosen) <= 4 and len(set(chosen)) == len(chosen)
    assert all(fraction(w) > 0 for w in chosen)
    assert sum(fraction(w) for w in chosen) > sum(fraction(w) for w in planned)
    assert max(fraction(w) for w in chosen) == 1.0
    with pytest.raises(ImageTooSmallError, match="no training crop"):
        scene.choose_crops(shape, 4, 96, 6, lambda w: 0.0)


def test_the_hsms_case_of_a_scene_averages_the_crops_sensor_models_and_tiles_agree():
    from sure_core import hsms
    from tests.core.test_pair_fusion import smooth_scene

    torch.set_num_threads(1)
    x = smooth_scene(10, 96, seed=5)
    rng = np.random.default_rng(5)
    response = rng.uniform(0, 1, (3, 10)) * (rng.uniform(size=(3, 10)) > 0.5)
    hs, ms = pf.degrade(x, 3, 1.4), np.einsum("gl,lhw->ghw", response, x)

    def read(w):
        rs, cs = w.slices()
        return hs[:, rs.start // 3:rs.stop // 3, cs.start // 3:cs.stop // 3], ms[:, rs, cs]

    crops = plan_crops(Window(0, 0, 96, 96), 2, 48, 3)
    samples = [read(w) for w in crops]
    case = hsms.HsMsCase(geometry="area", model_options={"psf_sigma": 1.4}).fitted(samples)
    models = [hsms.fit_sensor_model(h, m, psf_sigma=1.4, geometry="area") for h, m in samples]
    assert np.allclose(case.sensor_model.response, np.mean([m.response for m in models], axis=0))
    assert np.allclose(case.sensor_model.psf_sigma, 1.4) and case.step == 3
    fitted = scene.train_scene(case, read, (96, 96), options=FAST, scene=scene.SceneOptions(crops=2, crop_size=48),
                               crops=crops)
    assert fitted.crops == crops
    whole = fitted.fuse(read(Window(0, 0, 96, 96)))
    tiled = np.zeros_like(whole)
    for t in plan_tiles(Window(0, 0, 96, 96), 48, 24, 3):
        rs, cs = t.core.slices()
        tiled[:, rs, cs] = fitted.fuse(read(t.read))[(slice(None), *t.core_in_read())]
    interior = (slice(None), slice(9, -9), slice(9, -9))
    assert np.sqrt(((tiled - whole)[interior] ** 2).mean()) < 0.02 * np.abs(x).mean()
    nearest = np.repeat(np.repeat(hs, 3, axis=1), 3, axis=2)
    assert np.sqrt(((whole - x) ** 2).mean()) < 0.7 * np.sqrt(((nearest - x) ** 2).mean())


def test_the_pan_case_of_a_scene_sees_each_window_as_pansharpen_does():
    from sure_core import pansharpening
    from sure_core.pan_sensors import get_sensor
    from tests.core.test_pansharpening import synthetic_scene

    truth, _ = synthetic_scene(96, bands=4, seed=3)
    pan, ms = truth.mean(axis=0), pf.degrade(truth, 4, get_sensor("worldview2").ms_psf_sigma(4, 4))
    case = pansharpening.PanMsCase(sensor="worldview2", geometry="area").fitted([(ms, pan)])
    ms_in, guide, model, relative = pansharpening.prepare(ms, pan, sensor="worldview2", geometry="area")
    assert relative > 0 and np.isclose(case.relative, relative)
    assert np.allclose(case.sensor_model.response, model.response)
    assert np.allclose(case.sensor_model.psf_sigma, model.psf_sigma)
    lr, sharpened = case.inputs((ms, pan))
    assert np.allclose(sharpened, guide)
    noise = case.noise(case.inputs((ms, pan)))
    assert list(noise) == ["pan", "ms"]   # by observation name, in the problem's order
    assert np.allclose(noise["ms"], pansharpening.ms_noise_sigma(ms_in, guide, model, "area"))
    given = pansharpening.PanMsCase(sigma={"pan": 2.0, "ms": [0.5] * ms.shape[0]}, sensor="worldview2"
                                    ).fitted([(ms, pan)])
    noise = given.noise(given.inputs((ms, pan)))
    assert np.allclose(noise["pan"], 2.0 * pansharpening.sharpened_noise_factor(relative))
    assert np.allclose(noise["ms"], 0.5)


def test_the_error_estimate_leaves_the_scene_model_as_it_was_trained(apex_scene):
    """The estimate runs the network in training mode (BatchNorm as during training) on the crops and on the
    self-check's degraded copies; the running statistics the tiles are fused with must not move with it. One crop:
    the network then ends training in training mode (several crops recalibrate it and leave it in eval mode)."""
    torch.set_num_threads(1)
    sim, read = apex_scene
    case = s2_sharpening.Sentinel2Case(sigma=sim.sigma, geometry="area")
    fused = []
    for estimate in (False, True):
        options = replace(FAST, network="always", error_estimate=estimate)
        fitted = scene.train_scene(case, read, (144, 144), options=options,
                                   scene=scene.SceneOptions(crops=1, crop_size=96))
        fused.append(fitted.fuse(read(Window(0, 0, 144, 144))))
    np.testing.assert_array_equal(fused[0], fused[1])
