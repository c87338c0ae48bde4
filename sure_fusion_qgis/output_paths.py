"""Every output path of a run checked before any training starts, so that a run that cannot end well fails in
seconds and never after hours, and never by overwriting something the user owns.

`check_outputs(outputs, inputs)` raises `RasterOutputError` when
* an output is an input, or two outputs are one file (resolved paths, symbolic and hard links);
* an output's extension is not one this plugin writes (GeoTIFF: .tif/.tiff; report: .html/.htm) — the
  plugin never writes GeoTIFF bytes under a .png or .vrt name;
* the output is a folder or a special file, or an existing output cannot be replaced (immutable, append-only);
* its name, or the temporary name written first, is longer than the file system allows;
* the folder does not exist or cannot be written (checked by creating the temporary file there);
* the disk lacks room for the estimated size of the outputs on it.
It also deletes the temporary files that killed runs left for these outputs (`safe_output`), and returns them.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .io_errors import RasterOutputError
from .safe_output import StagedFile, name_bytes, name_max, remove_stale_temporaries, temporary_prefix, write_failure

GEOTIFF = (".tif", ".tiff")
HTML = (".html", ".htm")
#: headers, metadata and tile index of a GeoTIFF beyond its pixel data
GEOTIFF_OVERHEAD_BYTES = 1 << 20
#: an HTML report: two SVG charts and a quick-look PNG of at most 512 px
REPORT_BYTES = 2 << 20
_PATH_MAX = 4096
_DRIVER_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:(?![\\/]{2})")
_FS_IOC_GETFLAGS = 0x80086601
_IMMUTABLE_OR_APPEND_ONLY = 0x10 | 0x20


@dataclass(frozen=True)
class PlannedOutput:
    label: str                 # as the user knows it: "OUTPUT", "REPORT", "the output of scene x"
    path: str
    extensions: tuple[str, ...]  # the ones written in this format; () any
    kind: str                  # "a GeoTIFF", "an HTML report"
    estimated_bytes: int = 0


def geotiff_output(label: str, path: str, width: int = 0, height: int = 0, bands: int = 0) -> PlannedOutput:
    """A Float32 GeoTIFF: its size estimated uncompressed (noisy float data barely compresses); no size given: the
    room is not checked (the batch client, before the inputs are opened)."""
    pixels = width * height * bands
    return PlannedOutput(label, path, GEOTIFF, "a GeoTIFF", pixels * 4 + GEOTIFF_OVERHEAD_BYTES if pixels else 0)


def report_output(label: str, path: str) -> PlannedOutput:
    return PlannedOutput(label, path, HTML, "an HTML report", REPORT_BYTES)


def check_outputs(outputs: list[PlannedOutput], inputs: dict[str, str]) -> list[Path]:
    """Check `outputs` against each other and against `inputs` ({label: path or GDAL source}); see the module
    docstring. Returns the stale temporary files it deleted."""
    outputs = [o for o in outputs if o.path]
    input_files = {label: referenced_file(source) for label, source in inputs.items() if source}
    for k, output in enumerate(outputs):
        for label, source in input_files.items():
            if source is not None and same_file(output.path, source):
                raise RasterOutputError(
                    f"{output.label} {output.path!r} is the input {label}: writing it would destroy the input. "
                    f"Choose another name for {output.label}")
        for other in outputs[:k]:
            if same_file(output.path, other.path):
                raise RasterOutputError(
                    f"{output.label} and {other.label} are the same file {output.path!r}: one would overwrite the "
                    f"other. Give them different names")
    removed = []
    for output in outputs:
        _check_name(output)
        _check_target(output)
        removed += remove_stale_temporaries(output.path)
        _check_writable(output)
    _check_room(outputs)
    return removed


def referenced_file(source: str) -> Path | None:
    """The file a GDAL source names: 'a.tif|layername=x' → a.tif; 'SENTINEL2_L2A:/p/MTD_MSIL2A.xml:10m:EPSG_32633'
    → the MTD file; 'HDF5:"f.mat"://x' → f.mat; '/vsizip/p.zip/a.tif' → p.zip. None when no file exists."""
    text = str(source).split("|")[0].strip()
    if _DRIVER_PREFIX.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        text = text.split(":", 1)[1]
    if text.startswith('"'):
        text = text[1:].split('"', 1)[0]
    for prefix in ("/vsizip/", "/vsitar/", "/vsigzip/"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    candidate = text
    while candidate:
        if os.path.isfile(candidate):
            return Path(candidate)
        if os.path.isdir(candidate):
            return Path(candidate) if candidate == text else None
        cut = max(candidate.rfind(":"), candidate.rfind("/"), candidate.rfind("\\"))
        if cut <= 0:
            break
        candidate = candidate[:cut]
    return Path(text) if text else None


def same_file(a: str | Path, b: str | Path) -> bool:
    """One file under two names: the same resolved path, or (both existing) the same inode (hard links)."""
    try:
        if os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _check_name(output: PlannedOutput) -> None:
    path = Path(output.path)
    extension = path.suffix.lower()
    if output.extensions and extension not in output.extensions:
        wanted = " or ".join(output.extensions)
        given = f"the extension {path.suffix!r}" if path.suffix else "no extension"
        raise RasterOutputError(
            f"{output.label} {output.path!r} has {given}, but it is written as {output.kind} only: name it "
            f"{path.with_suffix(output.extensions[0]).name!r} (ending in {wanted}); to get another format, convert "
            f"the result afterwards (e.g. gdal:translate)")
    limit = name_max(path.parent) if path.parent.is_dir() else 255
    if name_bytes(path.name) > limit:
        raise RasterOutputError(
            f"{output.label}: the file name is {name_bytes(path.name)} bytes long, but the file system allows "
            f"{limit}: choose a shorter name")
    longest = os.path.join(os.path.abspath(path.parent), temporary_prefix(path) + "x" * 8 + path.suffix + ".aux.xml")
    if name_bytes(longest) >= _PATH_MAX:
        raise RasterOutputError(f"{output.label}: the path is longer than the file system allows ({_PATH_MAX} "
                                f"bytes): choose a shorter folder or name")


def _check_target(output: PlannedOutput) -> None:
    path = Path(output.path)
    if path.is_dir():
        raise write_failure(output.path, output.label, "it is a folder; give a file name ending in "
                                                       f"{output.extensions[0]}")
    if path.exists() and not path.is_file():
        raise write_failure(output.path, output.label, "it is not a regular file (a device, pipe or socket)")
    if path.is_file() and _immutable(path):
        raise write_failure(output.path, output.label,
                            "the existing file is immutable or append-only (chattr +i/+a), so it cannot be "
                            "replaced: remove the flag (chattr -i) or choose another name")


def _immutable(path: Path) -> bool:
    """Linux: the file carries the immutable or append-only attribute (which even root cannot replace)."""
    if not sys.platform.startswith("linux"):
        return False
    import array
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        return bool(flags[0] & _IMMUTABLE_OR_APPEND_ONLY)
    except OSError:  # a file system without attributes
        return False
    finally:
        os.close(fd)


def _check_writable(output: PlannedOutput) -> None:
    """Create (and delete) the very temporary file the run will write: proves the folder, permissions and the
    temporary name's length at once."""
    StagedFile(output.path, output.label).discard()


def _check_room(outputs: list[PlannedOutput]) -> None:
    """The estimated sizes of the outputs on each file system against its free space (the old file stays until
    the new one replaces it, so its space does not count)."""
    by_device: dict[int, list[PlannedOutput]] = {}
    for output in outputs:
        folder = Path(output.path).parent
        by_device.setdefault(os.stat(folder).st_dev, []).append(output)
    for group in by_device.values():
        folder = Path(group[0].path).parent
        needed = sum(o.estimated_bytes for o in group)
        free = shutil.disk_usage(folder).free
        if needed > free:
            names = " and ".join(o.label for o in group)
            raise RasterOutputError(
                f"{names} need about {_size(needed)} (uncompressed, the most they can take), but the disk holding "
                f"{str(folder)!r} has {_size(free)} free: free some space, choose another folder, or a smaller "
                f"EXTENT. Nothing was written")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
