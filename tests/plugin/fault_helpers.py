"""Faults made for real, shared by the fault-injection tests and tools/qa_hostile.py: a small tmpfs (a disk that
fills up, or a read-only one), a valid old output that a failed run must leave as it is, band descriptions
rewritten in place, and waiting for a run's temporary output file."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

from alg_helpers import temporaries
from sure_fusion_qgis import raster_writer


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, kib: int, read_only: bool = False, prepare=None):
    """A tmpfs of `kib` KiB at `folder` (root only), yielding the folder, or None where it cannot be mounted;
    `prepare(folder)` runs before an optional read-only remount."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        yield None
        return
    try:
        if prepare:
            prepare(folder)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def read_only_folder(folder: Path, prepare):
    """A read-only folder at `folder` holding what `prepare(folder)` put there: a tmpfs remounted read-only as root
    (root ignores permission bits), chmod 555 otherwise. Yields the folder, or None (root without tmpfs)."""
    if os.geteuid() == 0:
        return mounted_tmpfs(folder, 1024, read_only=True, prepare=prepare)

    @contextlib.contextmanager
    def chmod_folder():
        folder.mkdir(parents=True, exist_ok=True)
        prepare(folder)
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
    return chmod_folder()


def fill_disk(folder: Path, leave_kib: int) -> None:
    """Fill the file system of `folder` until only about `leave_kib` KiB are free."""
    free = shutil.disk_usage(folder).free
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave_kib * 1024))


def old_output(path: Path, origin: tuple[float, float], epsg: int, size: int = 16) -> Path:
    """A valid 12-band GeoTIFF at `path`: what a failed run must leave exactly as it is."""
    data = np.arange(12 * size * size, dtype=np.float32).reshape(12, size, size)
    raster_writer.write_simple_geotiff(path, data, (origin[0], 10, 0, origin[1], 0, -10), raster_writer.epsg_wkt(epsg),
                                       gdal_type=gdal.GDT_Float32)
    return Path(path)


def set_band_descriptions(path: str, descriptions: list[str], data: np.ndarray | None = None) -> None:
    """Rewrite a raster's band descriptions in place (and its bands, in that order, when `data` is given)."""
    ds = gdal.Open(path, gdal.GA_Update)
    for i, text in enumerate(descriptions, start=1):
        ds.GetRasterBand(i).SetDescription(text)
        if data is not None:
            ds.GetRasterBand(i).WriteArray(data[i - 1])
    ds = None


def wait_for_temporary(folder: Path, process: subprocess.Popen, seconds: float = 180) -> list[str]:
    """The run's temporary files once they have existed for a second (the path check's probe lasts microseconds);
    [] when the process ended or the time ran out first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        first = temporaries(folder) if folder.is_dir() else []
        if first:
            time.sleep(1.0)
            if temporaries(folder) == first:
                return first
        time.sleep(0.1)
    return []
