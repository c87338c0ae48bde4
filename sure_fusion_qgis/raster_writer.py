"""The plugin's GDAL writing: the output GeoTIFF, checked and put in place safely; PNG quick-looks; small GeoTIFFs
for tests, benchmarks and the demo sample. No QGIS, no torch.

* `GeoTiffWriter` — a tiled, compressed GeoTIFF written to a temporary file beside the target, every GDAL
  write checked, re-opened and read back (`validate_geotiff`), and renamed over the target only on success,
  so a failure, a full disk or a cancel leaves the target as it was.

Errors are `RasterOutputError`s with messages meant for the end user.
"""
from __future__ import annotations

import math
import os
import uuid
from functools import partial
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from .io_errors import RasterOutputError
from .raster_stack import Grid, gdal_call
from .safe_output import StagedFile, remove_file, write_failure

OUTPUT_NODATA = -9999.0


def _write_limit(target: str) -> str:
    """Why a write may have failed, from the system itself (GDAL does not always pass the reason on: with GDAL 3.10
    libtiff prints "File too large" to stderr only): a full disk, or a file-size limit; '' when neither shows."""
    import resource
    import shutil

    folder = os.path.dirname(os.path.abspath(target)) or "."
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 2 ** 20:
        return f"the disk is full ({free} bytes free in {folder}); free some space or write elsewhere"
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        return (f"the file grew beyond the size limit of {soft} bytes set for this process (ulimit -f); raise the "
                "limit or write a smaller area")
    return ""


def output_block_size(step: int, target: int = 256) -> int:
    """The GeoTIFF block side for outputs whose tiles have edges on multiples of `step` pixels: a multiple of
    16 (TIFF) and of `step`, near `target` (256 for 4, 240 for Sentinel-2's 6 or a ratio of 3)."""
    unit = math.lcm(16, max(1, int(step)))
    return unit * max(1, round(target / unit))


class GeoTiffWriter:
    """A Float32, tiled, DEFLATE-compressed GeoTIFF written into a temporary file beside `target`
    (`safe_output.StagedFile`) and renamed over it by `commit`.

    Every GDAL call is checked, by its return code and by GDAL's last error: GDAL reports a full disk or an I/O
    error as an error message and carries on, so an unchecked writer would rename a truncated file over a good one.
    `finish()` closes the file, re-opens it and reads every pixel back (`validate_geotiff`); `commit()` then renames
    it. Use as a context manager: leaving the block by an exception (error or cancel) deletes the temporary file
    and leaves the target untouched.
    `flush()` after each written tile hands its blocks to the file and frees them from GDAL's cache, so memory
    does not grow with the output (tiles planned with `align=block` write whole blocks).
    """

    def __init__(self, target: str, grid: Grid, band_descriptions: list[str], nodata: float = OUTPUT_NODATA,
                 block: int = 256, label: str = "OUTPUT"):
        self.target = Path(target)
        self.label = label
        self.grid = grid
        self.bands = len(band_descriptions)
        self.staged = StagedFile(target, label)
        self.partial = self.staged.path
        self.nodata = nodata
        self._ds = None
        # ZLEVEL=1: a tile's 12 bands compress in 0.32 s instead of 0.55 s (the default level 6), the file 0.7 %
        # larger (docs/decisions.md, "The first estimate on whole tiles")
        options = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "COMPRESS=DEFLATE", "PREDICTOR=3",
                   "ZLEVEL=1", "BIGTIFF=IF_SAFER", "INTERLEAVE=BAND"]
        try:
            ds = self._checked("creating the file", lambda: gdal.GetDriverByName("GTiff").Create(
                str(self.partial), grid.width, grid.height, self.bands, gdal.GDT_Float32, options))
            if ds is None:
                raise self._failure("creating the file", "GDAL could not create it")
            self._ds = ds
            self._checked("setting the georeferencing", lambda: ds.SetGeoTransform(grid.geotransform))
            self._checked("setting the CRS", lambda: ds.SetProjection(grid.crs_wkt))
            for i, description in enumerate(band_descriptions, start=1):
                band = ds.GetRasterBand(i)
                self._checked("describing the bands", partial(band.SetDescription, description))
                self._checked("setting nodata", partial(band.SetNoDataValue, nodata))
        except BaseException:
            self.discard()
            raise

    def _failure(self, action: str, message: str) -> RasterOutputError:
        reason = _write_limit(self.target)
        advice = f": {reason}" if reason else "; check that the disk is not full and the folder is writable"
        return write_failure(self.target, self.label, f"GDAL failed while {action} ({message})" + advice)

    def _checked(self, action: str, call):
        """`call()`, raising RasterOutputError when it returns an error code or GDAL recorded an error meanwhile
        (whether or not some other code enabled gdal.UseExceptions()). The message quotes every error GDAL raised:
        GDAL 3.10 reports the operating system's reason ("No space left on device") apart from its last error."""
        errors = []

        def collect(error_class, number, message):
            if error_class >= gdal.CE_Failure and message not in errors:
                errors.append(message)

        gdal.ErrorReset()
        gdal.PushErrorHandler(collect)
        try:
            result = call()
        except RuntimeError as e:
            raise self._failure(action, "; ".join(errors + [str(e)] if str(e) not in errors else errors)) from None
        finally:
            gdal.PopErrorHandler()
        if (type(result) is int and result != gdal.CE_None) or gdal.GetLastErrorType() >= gdal.CE_Failure or errors:
            raise self._failure(action, "; ".join(errors) or gdal.GetLastErrorMsg() or f"error code {result}")
        return result

    def write(self, array: np.ndarray, col: int, row: int) -> None:
        """Write (bands, rows, cols) at pixel offset (col, row) of the output."""
        for i in range(array.shape[0]):
            band = self._ds.GetRasterBand(i + 1)
            data = np.asarray(array[i], dtype=np.float32)
            self._checked(f"writing band {i + 1}", partial(band.WriteArray, data, col, row))

    def flush(self) -> None:
        self._checked("writing tiles to disk", self._ds.FlushCache)

    def set_metadata(self, dataset: dict[str, str], bands: list[dict[str, str]] | None = None,
                     domain: str = "") -> None:
        """Dataset and per-band metadata items of one metadata domain ('' = the default domain)."""
        ds = self._ds
        if dataset:
            self._checked("writing metadata", lambda: ds.SetMetadata({k: str(v) for k, v in dataset.items()}, domain))
        for i, items in enumerate(bands or [], start=1):
            if items:
                band = ds.GetRasterBand(i)
                self._checked("writing band metadata",
                              partial(band.SetMetadata, {k: str(v) for k, v in items.items()}, domain))

    def finish(self) -> str:
        """Flush and close the file (errors checked), sync it to disk, re-open it and validate it
        (`validate_geotiff`). Returns the temporary file's path: readable, not yet in place."""
        self.flush()
        gdal.ErrorReset()
        self._ds = None   # closes the dataset: GDAL writes the last blocks and the TIFF directory now
        if gdal.GetLastErrorType() >= gdal.CE_Failure:
            raise self._failure("closing the file", gdal.GetLastErrorMsg())
        self.staged.sync()
        validate_geotiff(str(self.partial), self.grid.width, self.grid.height, self.bands, self.target, self.label)
        return str(self.partial)

    def commit(self) -> str:
        """Finish (if not done) and rename the validated file over the target; returns the target's path."""
        if self._ds is not None:
            self.finish()
        path = self.staged.commit()
        remove_file(Path(path + ".aux.xml"))  # statistics of an older file by the same name would be wrong now
        self.committed = True
        return path

    committed = False

    def discard(self) -> None:
        # a failed close here changes nothing: the file is deleted next. Not ds.Close(): on GDAL 3.10 closing a dataset
        # whose write failed on a full disk aborts the process; dropping it only prints "Exception ignored"
        self._ds = None
        self.staged.discard()

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.discard()


def validate_geotiff(path: str, width: int, height: int, bands: int, target=None, label: str = "OUTPUT") -> None:
    """Re-open a written GeoTIFF and read every pixel back: it must have the planned size and band count and hold
    finite values only (nodata is −9999). Catches truncated files and failed writes that GDAL did not report
    where they happened, so that such a file never replaces a good one."""
    target = target or path

    def fail(reason: str) -> RasterOutputError:
        return write_failure(target, label, f"the written file does not read back correctly ({reason}); check that "
                                            f"the disk is not full")

    ds, message = gdal_call(lambda: gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY))
    if ds is None:
        raise fail(f"GDAL cannot open it: {message or 'unknown error'}")
    found = (ds.RasterXSize, ds.RasterYSize, ds.RasterCount)
    if found != (width, height, bands):
        raise fail(f"{found[0]}×{found[1]} px and {found[2]} bands instead of {width}×{height} px and {bands} bands")
    rows = max(1, ds.GetRasterBand(1).GetBlockSize()[1])
    for i in range(1, bands + 1):
        band = ds.GetRasterBand(i)
        for row in range(0, height, rows):
            count = min(rows, height - row)
            gdal.ErrorReset()
            data, message = gdal_call(partial(band.ReadAsArray, 0, row, width, count))
            if data is None or gdal.GetLastErrorType() >= gdal.CE_Failure:
                raise fail(f"band {i}, rows {row}–{row + count}: {message or 'unreadable'}")
            if not np.isfinite(data).all():
                raise fail(f"band {i} holds NaN or infinite values")


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (3, rows, cols) uint8 image as PNG."""
    mem_path = f"/vsimem/sure_fusion_{uuid.uuid4().hex}.png"
    mem = gdal.GetDriverByName("MEM").Create("", rgb.shape[2], rgb.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(rgb[i])
    gdal.GetDriverByName("PNG").CreateCopy(mem_path, mem)
    try:
        handle = gdal.VSIFOpenL(mem_path, "rb")
        size = gdal.VSIStatL(mem_path).size
        data = gdal.VSIFReadL(1, size, handle)
        gdal.VSIFCloseL(handle)
    finally:
        gdal.Unlink(mem_path)
    return bytes(data)


def write_png(path: str, rgb: np.ndarray) -> str:
    Path(path).write_bytes(png_bytes(rgb))
    return str(path)


def write_simple_geotiff(path: str, data: np.ndarray, geotransform, crs_wkt: str, descriptions=None,
                         nodata: float | None = None, gdal_type=gdal.GDT_UInt16) -> str:
    """A small GeoTIFF (tests, the demo sample): (bands, rows, cols) with CRS, geotransform and descriptions."""
    predictor = "3" if gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64) else "2"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0], gdal_type,
                                              ["COMPRESS=DEFLATE", f"PREDICTOR={predictor}", "INTERLEAVE=BAND"])
    ds.SetGeoTransform(tuple(geotransform))
    ds.SetProjection(crs_wkt)
    for i in range(data.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(data[i])
        if descriptions:
            band.SetDescription(descriptions[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds.FlushCache()
    del ds
    return str(path)


def epsg_wkt(code: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    return srs.ExportToWkt()
