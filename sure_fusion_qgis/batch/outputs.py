"""When a batch output counts as finished, and the temporary files that killed tasks leave behind.

The plugin's GeoTIFF writer (`raster_writer.GeoTiffWriter`) writes `.<name>.partial-<id>.tif` beside the target
and renames it to the target only after the last tile and the provenance metadata are written. So the target
name alone almost means "finished"; a re-run still checks, because a file could have been truncated or
replaced by something else since. An output is finished when:

1. the target file exists (a partial file never counts);
2. GDAL opens it;
3. it carries the provenance the writer sets last (SURE_FUSION_PLUGIN_VERSION, METHOD, BAND_ORDER), with one
   band per name in BAND_ORDER;
4. its last block (bottom-right, last band) can be read, which catches a truncated file.

A task killed mid-run (worker lost, power cut) cannot clean up its partial file; `stale_partials` finds them
and the runner deletes them before a scene runs again and after it completed (`safe_output`: a file a running
writer holds is never deleted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from osgeo import gdal

from ..safe_output import remove_stale_temporaries, temporary_files

#: dataset metadata items the writer sets once everything else is written
PROVENANCE_KEYS = ("SURE_FUSION_PLUGIN_VERSION", "METHOD", "BAND_ORDER")
#: solver settings compared with the requested ones when a finished output is skipped
SETTING_KEYS = ("ITERATIONS", "LOSS", "SEED", "NETWORK_WIDTH")
_LAST_BLOCK = 64


@dataclass
class OutputCheck:
    finished: bool
    reason: str                                       # why not finished, or a one-line description when it is
    metadata: dict[str, str] = field(default_factory=dict)


def check_output(path: str) -> OutputCheck:
    """Is `path` a complete output of the plugin's writer? (see the module docstring)"""
    target = Path(path)
    if not target.is_file():
        partials = stale_partials(path)
        return OutputCheck(False, "a partial file from an interrupted run is left" if partials else "no output yet")
    gdal.ErrorReset()
    try:
        ds = gdal.OpenEx(str(target), gdal.OF_RASTER | gdal.OF_READONLY)
    except RuntimeError as e:  # when some other code enabled gdal.UseExceptions()
        return OutputCheck(False, f"GDAL cannot open it ({e})")
    if ds is None:
        return OutputCheck(False, f"GDAL cannot open it ({gdal.GetLastErrorMsg() or 'unknown format'})")
    metadata = ds.GetMetadata() or {}
    missing = [key for key in PROVENANCE_KEYS if not metadata.get(key)]
    if missing:
        return OutputCheck(False, f"it lacks the provenance metadata {', '.join(missing)} (not written by SURE Fusion, "
                                  f"or not completely)", metadata)
    bands = [b for b in metadata["BAND_ORDER"].split(",") if b]
    if ds.RasterCount != len(bands):
        return OutputCheck(False, f"it has {ds.RasterCount} bands but its BAND_ORDER names {len(bands)}", metadata)
    cols, rows = min(_LAST_BLOCK, ds.RasterXSize), min(_LAST_BLOCK, ds.RasterYSize)
    try:
        block = ds.GetRasterBand(ds.RasterCount).ReadAsArray(ds.RasterXSize - cols, ds.RasterYSize - rows, cols, rows)
    except RuntimeError as e:
        block, message = None, str(e)
    else:
        message = gdal.GetLastErrorMsg()
    if block is None:
        return OutputCheck(False, f"its last block cannot be read ({message or 'truncated file?'})", metadata)
    return OutputCheck(True, f"{ds.RasterXSize}×{ds.RasterYSize} px, {ds.RasterCount} bands", metadata)


def setting_differences(metadata: dict[str, str], requested: dict[str, str]) -> list[str]:
    """'ITERATIONS 5 (now 300)' for each solver setting in which a finished output differs from `requested`."""
    return [f"{key} {metadata.get(key, '?')} (now {requested[key]})" for key in SETTING_KEYS
            if key in requested and str(metadata.get(key)) != str(requested[key])]


def stale_partials(path: str) -> list[Path]:
    """Temporary files of the writer for target `path` (and their .aux.xml): `.<name>.partial-*`."""
    return temporary_files(path)


def remove_stale_partials(path: str) -> list[Path]:
    """Delete what `stale_partials` finds, except files a running writer still holds; returns the deleted paths."""
    return remove_stale_temporaries(path)
