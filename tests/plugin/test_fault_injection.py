"""Fault injection (issue 14): a full disk, read-only folders, unreplaceable files, killed and terminated runs.

Each case starts from a valid output already at the target and asserts a failure where one is due (an exception
from processing.run, or a non-zero exit code) and that no file that was there changed (content hash, size, inode,
modification time), with no temporary file left behind.

How the faults are made, and why:
* a full disk: a real tmpfs of a few hundred KiB (`mount -t tmpfs`), because only the kernel's own ENOSPC in the
  middle of GDAL's writing shows whether every GDAL write and the final flush are checked. It needs root (CI
  containers and this machine have it); elsewhere those tests skip, and the same failure is made without
  privileges by RLIMIT_FSIZE (writes past the limit fail with EFBIG, a real write error too) in a subprocess.
  The two cover both ways GDAL reports errors: inside QGIS, Processing has turned on gdal.UseExceptions()
  (errors raise), while the subprocess (like the batch runner) has it off (errors only set CPLGetLastErrorType);
* read-only folders: a tmpfs remounted read-only as root (root ignores permission bits), chmod 555 otherwise;
* killed runs: SIGKILL and SIGTERM sent to real processes (qgis_process.bin for SIGTERM, as a batch system would).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

import s2_fixtures
from alg_helpers import FAST, fingerprint, run_alg, temporaries
from fault_helpers import fill_disk, mounted_tmpfs, old_output, read_only_folder, wait_for_temporary
from sure_fusion_qgis import output_paths

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    return s2_fixtures.write_band_rasters(tmp_path_factory.mktemp("fault_in"), s2_fixtures.synthetic_scene(48, seed=5))


def _inputs(paths):
    return {"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"], "INPUT_60M": paths["60m"]}


def _valid_output(path: Path) -> Path:
    return old_output(path, s2_fixtures.ORIGIN, s2_fixtures.EPSG)


@contextlib.contextmanager
def tmpfs(folder: Path, kib: int, read_only: bool = False, prepare=None):
    with mounted_tmpfs(folder, kib, read_only, prepare) as mounted:
        if mounted is None:
            pytest.skip("needs root and `mount -t tmpfs` (a real full disk)")
        yield mounted


def _fails(parameters: dict, expected: str, untouched: list[Path]) -> str:
    before = {p: fingerprint(p) for p in untouched}
    with pytest.raises(QgsProcessingException) as error:
        run_alg(parameters)
    message = str(error.value)
    assert expected.lower() in message.lower(), message
    assert {p: fingerprint(p) for p in untouched} == before
    for folder in {p.parent for p in untouched}:
        assert temporaries(folder) == []
    return message


# ---------------------------------------------------------------------------------------------- full disk
def test_full_disk_is_refused_before_training(provider, rasters, tmp_path):
    """QA #89: 57 KiB free, a valid output already there. The room check refuses the run at once."""
    with tmpfs(tmp_path / "disk", 512) as disk:
        old = _valid_output(disk / "out.tif")
        fill_disk(disk, 57)
        message = _fails({**_inputs(rasters), "OUTPUT": str(old)}, "free", [old])
        assert "need about" in message


def test_disk_filling_up_during_the_run_is_caught_by_the_gdal_checks(provider, rasters, tmp_path, monkeypatch):
    """QA #89 as it happened: the disk fills while the run writes. Without the room check (another process took
    the space meanwhile), GDAL's write/flush errors must fail the run and keep the old output."""
    monkeypatch.setattr(output_paths, "_check_room", lambda outputs: None)
    with tmpfs(tmp_path / "disk", 512) as disk:
        old = _valid_output(disk / "out.tif")
        fill_disk(disk, 40)
        message = _fails({**_inputs(rasters), "OUTPUT": str(old)}, "cannot write OUTPUT", [old])
        assert "No space left on device" in message or "disk is full" in message, message
        assert gdal.Open(str(old)).ReadAsArray().shape == (12, 16, 16)


def test_report_that_does_not_fit_keeps_the_old_output(provider, rasters, tmp_path, monkeypatch):
    """The output fits, the report does not: nothing is replaced (the report is written before the output is
    put in place)."""
    monkeypatch.setattr(output_paths, "_check_room", lambda outputs: None)
    with tmpfs(tmp_path / "disk", 1024) as disk:
        old = _valid_output(disk / "out.tif")
        old_report = disk / "report.html"
        old_report.write_text("<html>an old report</html>")

        from sure_fusion_qgis.algorithms.s2_sharpening import S2SharpeningAlgorithm
        real = S2SharpeningAlgorithm._report_html

        def report_on_a_full_disk(self, result, written, *rest):
            fill_disk(disk, 4)       # the output is written: another process takes the rest of the disk
            return real(self, result, written, *rest)

        monkeypatch.setattr(S2SharpeningAlgorithm, "_report_html", report_on_a_full_disk)
        _fails({**_inputs(rasters), "OUTPUT": str(old), "REPORT": str(old_report)}, "cannot write REPORT",
               [old, old_report])


def test_write_error_without_root_keeps_the_old_output(rasters, tmp_path):
    """The same failure without privileges: RLIMIT_FSIZE makes the kernel refuse writes past 40 KiB (EFBIG) in a
    subprocess that runs the plugin's own driver."""
    old = _valid_output(tmp_path / "out.tif")
    before = fingerprint(old)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # else the kernel kills the process instead of failing writes
        from sure_fusion_qgis import io_errors, s2_inputs
        from sure_fusion_qgis.core_loader import core_module
        from sure_fusion_qgis.fusion_run import RunSettings
        from sure_fusion_qgis.sharpening import run_sharpening
        s2 = core_module("sentinel2")
        inputs = s2_inputs.open_band_rasters({dict(rasters)!r}, {{"10m": s2.GROUP_10M, "20m": s2.GROUP_20M,
                                                                  "60m": s2.GROUP_60M}})
        window = inputs.stack.plan()
        options = core_module().SolverOptions(iterations=2, device="cpu", threads=1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40 * 1024, resource.RLIM_INFINITY))
        try:
            run_sharpening(inputs, window, {str(old)!r}, RunSettings(options=options))
        except io_errors.RasterIOError as e:
            print("REFUSED:", e)
            sys.exit(3)
        print("WROTE")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot write" in done.stdout and ("File too large" in done.stdout or "beyond the size" in done.stdout)
    assert fingerprint(old) == before and temporaries(tmp_path) == []


def test_batch_full_disk_is_a_failed_scene_twice(rasters, tmp_path, monkeypatch):
    """QA #107: the batch marked a truncated output "done", then a 0-byte one. Now the scene fails each time and
    no output file appears."""
    from sure_fusion_qgis.batch.scenes import raster_scene
    from sure_fusion_qgis.batch.task import BatchSettings, run_scene

    monkeypatch.setattr(output_paths, "_check_room", lambda outputs: None)
    with tmpfs(tmp_path / "disk", 256) as disk:
        fill_disk(disk, 40)
        scene = raster_scene(rasters, str(disk), name="full")
        for _ in range(2):
            outcome = run_scene(scene, BatchSettings(iterations=2, device="cpu", threads=1))
            assert outcome.status == "failed" and "cannot write" in outcome.message, outcome.message
            assert not Path(scene.output).exists() and temporaries(disk) == []


# ---------------------------------------------------------------------------------- folders and files
@contextlib.contextmanager
def _read_only_folder(tmp_path: Path, prepare):
    with read_only_folder(tmp_path / "ro", prepare) as folder:
        if folder is None:
            pytest.skip("needs `mount -t tmpfs` to make a read-only folder as root")
        yield folder


def test_read_only_output_folder(provider, rasters, tmp_path):
    with _read_only_folder(tmp_path, lambda f: _valid_output(f / "out.tif")) as folder:
        _fails({**_inputs(rasters), "OUTPUT": str(folder / "out.tif")}, "read-only", [folder / "out.tif"])


def test_read_only_report_folder_fails_before_the_output_is_touched(provider, rasters, tmp_path):
    """QA #67/#69: the report's folder was checked only after training, and the old output was replaced anyway."""
    old = _valid_output(tmp_path / "out.tif")
    with _read_only_folder(tmp_path, lambda f: None) as folder:
        started = time.monotonic()
        _fails({**_inputs(rasters), **FAST, "ITERATIONS": 5000, "OUTPUT": str(old),
                "REPORT": str(folder / "r.html")}, "cannot write REPORT", [old])
        assert time.monotonic() - started < 30     # 5000 iterations would take minutes: nothing was trained


def test_missing_report_folder_fails_before_the_output_is_touched(provider, rasters, tmp_path):
    """QA #68: a raw FileNotFoundError traceback after the whole run."""
    old = _valid_output(tmp_path / "out.tif")
    _fails({**_inputs(rasters), "OUTPUT": str(old), "REPORT": str(tmp_path / "missing" / "r.html")},
           "does not exist", [old])


def test_immutable_output_fails_before_training(provider, rasters, tmp_path):
    """QA #79: `chattr +i` on the old output was reported only after the whole run."""
    old = _valid_output(tmp_path / "out.tif")
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(old)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and a file system with attributes)")
    try:
        _fails({**_inputs(rasters), "OUTPUT": str(old)}, "immutable", [old])
    finally:
        subprocess.run(["chattr", "-i", str(old)], check=False)


# ---------------------------------------------------------------------------------------- killed runs
DRIVER = """
import sys
from sure_fusion_qgis import s2_inputs
from sure_fusion_qgis.core_loader import core_module
from sure_fusion_qgis.fusion_run import RunSettings
from sure_fusion_qgis.sharpening import run_sharpening
s2 = core_module("sentinel2")
paths, target = eval(sys.argv[1]), sys.argv[2]
inputs = s2_inputs.open_band_rasters(paths, {"10m": s2.GROUP_10M, "20m": s2.GROUP_20M, "60m": s2.GROUP_60M})
options = core_module().SolverOptions(iterations=100000, device="cpu", threads=1)
run_sharpening(inputs, inputs.stack.plan(), target, RunSettings(options=options))
"""


def test_sigkill_leaves_the_old_output_and_the_next_run_removes_the_temporary(rasters, tmp_path):
    """QA #85/#86/#88: a killed run cannot clean up; its temporary file must not count as in use afterwards,
    and the next run's path check deletes it (while it ran, the check left it alone)."""
    old = _valid_output(tmp_path / "out.tif")
    before = fingerprint(old)
    process = subprocess.Popen([sys.executable, "-c", DRIVER, repr(dict(rasters)), str(old)], cwd=ROOT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        left = wait_for_temporary(tmp_path, process)
        assert left, "the run never started writing"
        planned = [output_paths.geotiff_output("OUTPUT", str(old), 48, 48, 12)]
        assert output_paths.check_outputs(planned, {}) == [] and temporaries(tmp_path) == left   # held: kept
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
    assert fingerprint(old) == before and temporaries(tmp_path) == left
    removed = output_paths.check_outputs(planned, {})
    assert [p.name for p in removed] == left and temporaries(tmp_path) == []


def test_sigterm_is_a_cancel_in_qgis_process(rasters, tmp_path):
    """QA #87: SIGTERM killed qgis_process (exit 143) and left the temporary file. Now it stops like Cancel:
    non-zero exit, a message, no temporary file, the old output untouched."""
    from cli_helpers import require_qgis_process
    from pair_fixtures import cli_environment

    exe = require_qgis_process()
    old = _valid_output(tmp_path / "out.tif")
    before = fingerprint(old)
    arguments = [f"{k}={v}" for k, v in {**_inputs(rasters), **FAST, "ITERATIONS": 100000, "OUTPUT": old}.items()]
    process = subprocess.Popen([exe, "run", "sure_fusion:s2_sharpening", "--", *arguments], env=cli_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for_temporary(tmp_path, process), "the run never started writing"
        time.sleep(2.0)                                   # into the training loop
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode not in (0, -signal.SIGTERM), output
    assert "Stopped by SIGTERM" in output and "no existing file was changed" in output, output
    assert fingerprint(old) == before and temporaries(tmp_path) == []


def test_sigterm_handler_calls_cancel_once_and_is_restored():
    from sure_fusion_qgis.stop_signals import sigterm_cancels

    calls = []
    previous = signal.getsignal(signal.SIGTERM)
    with sigterm_cancels(lambda: calls.append(1)) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):                       # Python runs the handler between bytecodes
            if calls:
                break
            time.sleep(0.01)
    assert calls == [1] and received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == previous


def test_batch_sigterm_stops_the_cluster_and_removes_the_temporary(rasters, tmp_path):
    """QA #105: SIGTERM gave exit 130 and left the killed task's 0-byte file for the next run. Now: exit 143
    (128 + SIGTERM), finished outputs kept, the interrupted scene's temporary file gone."""
    out = tmp_path / "out"
    manifest = tmp_path / "scenes.csv"
    manifest.write_text(f"name,bands_10m,bands_20m,bands_60m\nslow,{rasters['10m']},{rasters['20m']},"
                        f"{rasters['60m']}\n")
    process = subprocess.Popen([sys.executable, "-m", "sure_fusion_qgis.batch", str(manifest), "-o", str(out),
                                "--iterations", "100000", "--device", "cpu", "--workers", "1", "--quiet"],
                               cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and temporaries(out)):
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
        assert wait_for_temporary(out, process), "the scene never started writing"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, output
    assert "interrupted" in output and temporaries(out) == [] and not (out / "slow_sharpened.tif").exists()
