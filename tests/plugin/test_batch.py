"""Batch runs on Dask (`python -m sure_fusion_qgis.batch`): a manifest of one Sentinel-2 scene, one HS + MS pair and
one PAN + MS pair on a LocalCluster with two worker processes, a worker killed mid-run, resuming, the command line
end to end — and no QGIS anywhere in it.

Scenes are small synthetic rasters and one fake SAFE product (48–64 px, 3 iterations; 10 where a worker must be
caught mid-run). The cluster fixture checks that no worker process outlives it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

import pair_fixtures as pf
import s2_fixtures
from sure_fusion_qgis.batch import outputs
from sure_fusion_qgis.batch.scenes import SceneListError, collect_scenes, raster_scene, read_manifest
from sure_fusion_qgis.batch.task import BatchSettings, run_scene
from tests.conftest import ROOT

FAST = BatchSettings(iterations=3, device="cpu", threads=1, progress_seconds=0.2)
BLOCK_QGIS = """
import importlib.abc, sys
class _BlockQgis(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('qgis', 'PyQt5', 'processing'):
            raise ImportError('blocked in this test: ' + name)
sys.meta_path.insert(0, _BlockQgis())
"""


@pytest.fixture(scope="module")
def band_scenes(tmp_path_factory):
    """Two synthetic scenes as 10/20/60 m GeoTIFFs: {'a': paths (48 px), 'b': paths (60 px)}."""
    root = tmp_path_factory.mktemp("batch_inputs")
    return {"a": s2_fixtures.write_band_rasters(root / "a", s2_fixtures.synthetic_scene(48, seed=1)),
            "b": s2_fixtures.write_band_rasters(root / "b", s2_fixtures.synthetic_scene(60, seed=2))}


@pytest.fixture(scope="module")
def three_kinds(band_scenes, tmp_path_factory):
    """A manifest of one Sentinel-2 scene (band rasters, 48 px), one HS + MS pair (48 px on the MS grid, 24 HS
    bands) and one PAN + MS pair (64 px on the PAN grid, 4 MS bands, WorldView-2 preset), and each output's
    (size, bands)."""
    root = tmp_path_factory.mktemp("three_kinds")
    hsms = pf.write_hs_ms(root / "hsms", pf.synthetic_hs_ms(48, seed=1))
    pan = pf.write_pan_ms(root / "pan", pf.synthetic_pan_ms(64, seed=2))
    a = band_scenes["a"]
    manifest = root / "scenes.csv"
    manifest.write_text("name,bands_10m,bands_20m,bands_60m,hs,ms,pan,sensor\n"
                        f"s2,{a['10m']},{a['20m']},{a['60m']},,,,\n"
                        f"hsms,,,,{hsms['hs']},{hsms['ms']},,\n"
                        f"pan,,,,,{pan['ms']},{pan['pan']},worldview2\n", encoding="utf-8")
    return manifest, {"s2": (48, 12), "hsms": (48, 24), "pan": (64, 4)}


@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of 2 worker processes (as the CLI starts it); afterwards no worker process may be alive."""
    import psutil

    from sure_fusion_qgis.batch.runner import ClusterSettings, dask_client

    seen_pids: set[int] = set()
    with dask_client(ClusterSettings(workers=2, retries=2)) as client:
        yield client, seen_pids
        seen_pids.update(client.run(os.getpid).values())
    alive = [pid for pid in seen_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not alive, f"worker processes left behind: {alive}"


def _assert_complete(path: str, size: int, bands: int = 12) -> None:
    check = outputs.check_output(path)
    assert check.finished, check.reason
    ds = gdal.Open(path)
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (size, size, bands)
    data = ds.ReadAsArray()
    assert np.isfinite(data).all() and data.std() > 0
    assert not outputs.stale_partials(path)


# --------------------------------------------------------------------------------------------- no QGIS
def test_batch_imports_without_qgis_or_torch():
    code = BLOCK_QGIS + textwrap.dedent("""
        import importlib, pkgutil, sure_fusion_qgis.batch as batch
        for m in pkgutil.iter_modules(batch.__path__):
            importlib.import_module('sure_fusion_qgis.batch.' + m.name)
        from sure_fusion_qgis.batch.__main__ import build_parser
        build_parser().parse_args(['x.SAFE', '-o', 'out'])
        bad = sorted(k for k in sys.modules if k.split('.')[0] in ('qgis', 'PyQt5', 'torch'))
        assert not bad, bad
        print('ok')
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------------------------- scenes
def test_manifest_rows_become_scenes(band_scenes, tmp_path):
    a = band_scenes["a"]
    manifest = tmp_path / "m" / "scenes.csv"
    manifest.parent.mkdir()
    rel = {k: os.path.relpath(v, manifest.parent) for k, v in a.items()}
    manifest.write_text("name,product,bands_10m,bands_20m,bands_60m,xmin,ymin,xmax,ymax\n"
                        "# a comment row\n"
                        f"field a,,{rel['10m']},{rel['20m']},,600000,1199700,600300,1200000\n"
                        "\n"
                        ",../S2B_MSIL2A_X_T48PXS.SAFE,,,,,,,\n", encoding="utf-8")
    scenes = read_manifest(str(manifest), str(tmp_path / "out"))
    assert [s.name for s in scenes] == ["field_a", "S2B_MSIL2A_X_T48PXS"]
    assert scenes[0].raster_paths == {"10m": str(Path(a["10m"]).resolve()), "20m": str(Path(a["20m"]).resolve())}
    assert scenes[0].extent == (600000.0, 1199700.0, 600300.0, 1200000.0)
    assert scenes[0].output == str((tmp_path / "out" / "field_a_sharpened.tif").resolve())
    assert scenes[1].product == str((tmp_path / "S2B_MSIL2A_X_T48PXS.SAFE").resolve())

    for row, expected in ((f",x.SAFE,{a['10m']},,,,,,", "not both"), (f",,{a['10m']},,,,,,", "20m"),
                          (f",,{a['10m']},{a['20m']},,1,2,3,", "four numbers")):
        manifest.write_text("name,product,bands_10m,bands_20m,bands_60m,xmin,ymin,xmax,ymax\n" + row + "\n")
        with pytest.raises(SceneListError, match=expected):
            read_manifest(str(manifest), str(tmp_path))
    for rows, expected in (("x,,m.tif,", "needs its pair"), ("x,h.tif,m.tif,p.tif", "one kind of input"),
                           ("x,h.tif,,", "ms raster.* missing")):
        manifest.write_text("name,hs,ms,pan\n" + rows + "\n")
        with pytest.raises(SceneListError, match=expected):
            read_manifest(str(manifest), str(tmp_path))
    with pytest.raises(SceneListError, match="same output"):
        collect_scenes([str(tmp_path / "p" / "S.SAFE"), str(tmp_path / "q" / "S.zip")], str(tmp_path))


# --------------------------------------------------------------------------------- the task, in process
def test_task_window_finished_check_and_input_errors(band_scenes, tmp_path):
    scene = raster_scene(band_scenes["b"], str(tmp_path), name="b", window=(6, 6, 48, 48))
    outcome = run_scene(scene, FAST)
    assert outcome.status == "done", outcome.message
    _assert_complete(scene.output, 48)                        # the window, not the whole 60 px scene
    assert gdal.Open(scene.output).GetGeoTransform()[0] == s2_fixtures.ORIGIN[0] + 60.0

    # what does not count as finished: a partial file, a GeoTIFF without provenance, a truncated output
    partial = tmp_path / f".{Path(scene.output).name}.partial-deadbeef.tif"
    shutil.copy(scene.output, partial)
    copy = tmp_path / "copy.tif"
    assert outputs.check_output(str(copy)).reason == "no output yet"
    shutil.move(partial, tmp_path / f".{copy.name}.partial-0.tif")
    assert not outputs.check_output(str(copy)).finished
    assert outputs.remove_stale_partials(str(copy)) and not outputs.stale_partials(str(copy))
    plain = raster_scene(band_scenes["a"], str(tmp_path)).raster_paths["10m"]
    assert "provenance" in outputs.check_output(plain).reason
    data = Path(scene.output).read_bytes()
    copy.write_bytes(data[: len(data) // 2])
    assert not outputs.check_output(str(copy)).finished
    copy.write_bytes(data)
    assert outputs.check_output(str(copy)).finished

    mtime = os.stat(scene.output).st_mtime_ns
    again = run_scene(scene, FAST)
    assert again.status == "skipped" and os.stat(scene.output).st_mtime_ns == mtime

    missing = raster_scene({"10m": str(tmp_path / "nope_10m.tif"), "20m": str(tmp_path / "nope_20m.tif")},
                           str(tmp_path), name="missing")
    failed = run_scene(missing, FAST)                      # an input error: reported, not raised (no retry)
    assert failed.status == "failed" and "nope_10m.tif" in failed.message
    assert not Path(missing.output).exists()


# --------------------------------------------------------------------------------------------- on Dask
def test_three_kinds_on_two_workers_then_resume(dask_cluster, three_kinds, tmp_path):
    """One manifest, three kinds of fusion, each through the same driver as the QGIS algorithms."""
    from sure_fusion_qgis.batch.runner import plan, run_scenes

    client, _ = dask_cluster
    manifest, shapes = three_kinds
    scenes = read_manifest(str(manifest), str(tmp_path))
    assert [(s.name, s.kind) for s in scenes] == [("s2", "s2"), ("hsms", "hsms"), ("pan", "pan")]
    assert [Path(s.output).name for s in scenes] == ["s2_sharpened.tif", "hsms_fused.tif", "pan_pansharpened.tif"]
    done = run_scenes(client, scenes, FAST, retries=1)
    assert [o.status for o in done] == ["done", "done", "done"], [o.message for o in done]
    assert len({o.worker for o in done}) == 2                   # both workers took scenes
    for scene in scenes:
        _assert_complete(scene.output, *shapes[scene.kind])
    assert gdal.Open(scenes[0].output).GetMetadataItem("ITERATIONS") == "3"
    pan = gdal.Open(scenes[2].output).GetMetadata()
    assert pan["SENSOR"].startswith("worldview2") and pan["NETWORK_WIDTH"] == "8"   # the algorithm's recipe
    assert gdal.Open(scenes[1].output).GetMetadataItem("FUSION").startswith("hyperspectral + multispectral")

    mtimes = [os.stat(s.output).st_mtime_ns for s in scenes]
    skipped, to_run = plan(scenes, FAST)                        # the client skips finished scenes up front
    assert [o.status for o in skipped] == ["skipped"] * 3 and to_run == []
    rerun = run_scenes(client, scenes, FAST, retries=1)         # and so does the task, if it is sent anyway
    assert [o.status for o in rerun] == ["skipped"] * 3
    assert [os.stat(s.output).st_mtime_ns for s in scenes] == mtimes


def test_a_scene_finished_by_a_lost_worker_counts_as_done():
    from sure_fusion_qgis.batch.runner import _of_this_run
    from sure_fusion_qgis.batch.task import SceneOutcome

    found = SceneOutcome("a", "skipped", 0.0, "/out/a.tif", "finished earlier (metadata complete)")
    # finished before the batch started: skipped, as it says
    assert _of_this_run(found, True, 12.0) == found
    # not finished then: a worker of this run wrote it and died before reporting, and the retry found it
    redone = _of_this_run(found, False, 12.0)
    assert (redone.status, redone.seconds) == ("done", 12.0) and "lost before it reported" in redone.message
    failed = SceneOutcome("b", "failed", 3.0, "/out/b.tif", "boom")
    assert _of_this_run(failed, False, 12.0) == failed


def test_a_lost_worker_costs_only_its_own_task(dask_cluster, three_kinds, tmp_path):
    from sure_fusion_qgis.batch.runner import run_scenes

    client, seen_pids = dask_cluster
    manifest, shapes = three_kinds
    slow = BatchSettings(iterations=10, device="cpu", threads=1, progress_seconds=0.2)
    scenes = read_manifest(str(manifest), str(tmp_path))
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(run_scenes(client, scenes, slow, retries=2)))
    runner.start()
    # the HS + MS pair: it starts at once (tasks start in the order submitted), so its worker holds no finished
    # scene's result yet (one killed after handing in a result but before the client fetched it would cost that
    # result too: Dask runs that scene again, which then finds its output finished and reports it done, see
    # test_a_scene_finished_by_a_lost_worker_counts_as_done)
    victim = scenes[1]
    deadline = time.monotonic() + 90
    while not outputs.stale_partials(victim.output):            # the writer opened its temporary file: training
        assert time.monotonic() < deadline and runner.is_alive(), "the scene never started"
        time.sleep(0.05)
    assert not Path(victim.output).exists()                     # written under a temporary name until complete
    processing = client.processing()
    address = next(a for a, keys in processing.items() if any(f"fuse-{victim.name}-" in str(k) for k in keys))
    pid = client.run(os.getpid, workers=[address])[address]
    seen_pids.add(pid)
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive(), "the batch did not finish after a worker was killed"
    assert [o.status for o in results] == ["done"] * 3, [o.message for o in results]
    assert results[1].worker != address                         # rerun elsewhere (the nanny restarts the worker
    for scene in scenes:                                        # under a new address), and the killed run's
        _assert_complete(scene.output, *shapes[scene.kind])     # partial file is gone


# ------------------------------------------------------------------------------------------ command line
@pytest.mark.skipif(gdal.GetDriverByName("JP2OpenJPEG") is None, reason="no JPEG 2000 driver for the fake product")
def test_command_line_end_to_end(tmp_path):
    data = {k: v + np.uint16(1000) for k, v in s2_fixtures.synthetic_scene(48, seed=3).items()}
    safe = s2_fixtures.build_fake_safe(tmp_path / "products", data)
    blocker = tmp_path / "no_qgis"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_QGIS)      # in the CLI *and* in the spawned Dask workers
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    probe = subprocess.run([sys.executable, "-c", "import qgis"], env=env, capture_output=True, text=True)
    assert "blocked in this test" in probe.stderr
    out_dir = tmp_path / "out"
    command = [sys.executable, "-m", "sure_fusion_qgis.batch", "--iterations", "3", "--device", "cpu",
               "--workers", "1", "-o", str(out_dir), "--summary", str(tmp_path / "summary.json")]

    first = subprocess.run(command + [str(safe)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    output = out_dir / f"{safe.name[:-5]}_sharpened.tif"
    _assert_complete(str(output), 48)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(s["name"], s["status"], s["output"]) for s in summary] == [(safe.name[:-5], "done", str(output))]
    assert "1 done, 0 skipped" in first.stdout

    # re-run: nothing to do, so no cluster starts and the output is untouched
    mtime = output.stat().st_mtime_ns
    second = subprocess.run(command + [str(safe)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 finished earlier, 0 to run" in second.stderr and "Dask:" not in second.stderr
    assert "0 done, 1 skipped (finished earlier), 0 failed" in second.stdout
    assert output.stat().st_mtime_ns == mtime


def test_command_line_on_an_existing_scheduler_reports_failed_scenes(dask_cluster, band_scenes, tmp_path, capsys):
    """`--scheduler ADDRESS` (the fixture's cluster stands in for `dask worker` processes): a scene whose input is
    missing fails with its message and exit code 1, while the good scene completes."""
    from sure_fusion_qgis.batch.__main__ import main

    client, _ = dask_cluster
    a = band_scenes["a"]
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("name,bands_10m,bands_20m,bands_60m\n"
                        f"good,{a['10m']},{a['20m']},{a['60m']}\n"
                        f"broken,{tmp_path / 'gone_10m.tif'},{tmp_path / 'gone_20m.tif'},\n")
    code = main([str(manifest), "-o", str(tmp_path / "out"), "--iterations", "3", "--device", "cpu",
                 "--scheduler", client.scheduler.address, "--retries", "1"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Dask: scheduler " + client.scheduler.address in err
    assert "1 done, 0 skipped (finished earlier), 1 failed" in out
    assert "gone_10m.tif" in out
    _assert_complete(str(tmp_path / "out" / "good_sharpened.tif"), 48)
    assert not (tmp_path / "out" / "broken_sharpened.tif").exists()
