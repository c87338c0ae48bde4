"""Writing an output so that nothing the user owns is ever lost: a temporary file beside the target, synced
and checked, then renamed over the target in one step.

* `StagedFile` — the temporary file of one output, `.NAME.partial-<id><ext>` in the target's folder (the same
  file system, so `os.replace` is atomic: a reader sees the old file or the new one, never a mix). While its
  writer lives the file is locked (flock), so that another run never deletes a file that is still being
  written. `commit()` syncs it and renames it over the target; `discard()` deletes it. As a context manager,
  leaving the block by an exception discards it.
* `temporary_prefix(target)` — the name every temporary file of `target` starts with; shortened (with a hash
  of the full name) when the file system's NAME_MAX would not hold it, so that any valid name can be written.
* `remove_stale_temporaries(target)` — the temporary files of `target` that killed runs (SIGKILL, a power cut)
  left behind, deleted when no process holds them any longer.
* `stage_text(target, text)` — a small text output (the HTML report) written, synced and read back.

No GDAL here: `raster_writer.GeoTiffWriter` writes its GeoTIFF into a `StagedFile`.
"""
from __future__ import annotations

import errno
import hashlib
import os
import uuid
from pathlib import Path

from .io_errors import RasterOutputError

try:  # POSIX: lock the temporary file while it is written; Windows refuses to delete open files anyway
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

TEMP_MARK = ".partial-"
_ID_LENGTH = 8
#: what GDAL may add to a temporary GeoTIFF's name (its PAM side-car), kept free in the name budget
_SIDECAR = ".aux.xml"
_DEFAULT_NAME_MAX = 255


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system holding `folder` accepts."""
    try:
        return int(os.pathconf(str(folder), "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _DEFAULT_NAME_MAX


def name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def temporary_prefix(target: str | Path) -> str:
    """`.NAME.partial-`, or `.NAM~<hash>.partial-` when the whole temporary name would exceed NAME_MAX."""
    target = Path(target)
    suffix = target.suffix
    room = (name_max(target.parent) - 1 - len(TEMP_MARK) - _ID_LENGTH - name_bytes(suffix) - len(_SIDECAR))
    name = target.name
    if name_bytes(name) <= room:
        return f".{name}{TEMP_MARK}"
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:8]
    keep = os.fsencode(name)[:max(1, room - 1 - len(digest))].decode("utf-8", errors="ignore")
    return f".{keep}~{digest}{TEMP_MARK}"


def temporary_files(target: str | Path) -> list[Path]:
    """Every temporary file of `target` in its folder (of this run or of others, side-cars included)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    prefix = temporary_prefix(target)
    return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix))


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Delete the temporary files of `target` that no running writer holds (killed runs left them); returns them.

    A writer holds an exclusive flock on its file: a file that can be locked here belongs to nobody. (On systems
    without flock, deleting a file another program has open fails, and the file is left.)
    """
    removed = []
    files = temporary_files(target)
    held = set()
    for path in files:
        if path.name.endswith(_SIDECAR):
            continue
        if _in_use(path):
            held.add(path.name)
            continue
        if remove_file(path):
            removed.append(path)
    for path in files:  # side-cars whose main file is gone
        if path.name.endswith(_SIDECAR) and path.name[:-len(_SIDECAR)] not in held and remove_file(path):
            removed.append(path)
    return removed


def _in_use(path: Path) -> bool:
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock taken just now
    return False


def remove_file(path: Path) -> bool:
    """Delete `path` if it is there; False when it was not (or cannot be: a name too long cannot exist)."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def write_failure(target: str | Path, label: str, reason: str) -> RasterOutputError:
    """The error for an output that could not be written; says that nothing the user had was changed."""
    return RasterOutputError(f"cannot write {label} {str(target)!r}: {reason}. Nothing was changed: any file "
                             f"that was there before is untouched")


def os_reason(error: OSError) -> str:
    """A short reason for a failed file operation, with the fix for the common ones."""
    hints = {errno.ENOSPC: "the disk is full: free some space or choose another folder",
             errno.EDQUOT: "the disk quota is exceeded: free some space or choose another folder",
             errno.EFBIG: "the file grew beyond the size this system allows (ulimit -f, or the file system's "
                          "limit): choose another folder",
             errno.EROFS: "the folder is on a read-only file system: choose a writable folder",
             errno.EACCES: "no permission to write there: choose a folder you can write to",
             errno.EPERM: "the operation is not permitted (an immutable file or folder?): check with lsattr, or "
                          "choose another path",
             errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter name"}
    return hints.get(error.errno, error.strerror or str(error))


class StagedFile:
    """The temporary file of one output in the target's folder; see the module docstring."""

    def __init__(self, target: str | Path, label: str = "the output"):
        self.target = Path(target)
        self.label = label
        folder = self.target.parent
        if not folder.is_dir():
            raise write_failure(target, label, f"the folder {str(folder)!r} does not exist; create it or choose "
                                               f"another path")
        if self.target.is_dir():
            raise write_failure(target, label, "it is a folder; give a file name")
        self.path = folder / f"{temporary_prefix(self.target)}{uuid.uuid4().hex[:_ID_LENGTH]}{self.target.suffix}"
        try:
            self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
        except OSError as e:
            raise write_failure(target, label, os_reason(e)) from None
        if fcntl is None:  # Windows: an open file cannot be renamed there, and open files are not deleted anyway
            os.close(self._fd)
            self._fd = None
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file we just created: nobody else holds it
        except OSError:  # a file system without locks (some network mounts): the file is merely unprotected
            pass

    def sync(self) -> None:
        """Force the file's data to the disk, so that a full disk or an I/O error shows now, not after the rename."""
        try:
            fd = self._fd if self._fd is not None else os.open(self.path, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                if fd != self._fd:
                    os.close(fd)
        except OSError as e:
            raise write_failure(self.target, self.label, os_reason(e)) from None

    def commit(self) -> str:
        """Rename the (complete, checked) temporary file over the target; returns the target's path."""
        self.sync()
        try:
            os.replace(self.path, self.target)
        except OSError as e:
            self.discard()
            raise write_failure(self.target, self.label,
                                f"{os_reason(e)} (the file may be open in another program)") from None
        _sync_folder(self.target.parent)
        self._release()
        return str(self.target)

    def discard(self) -> None:
        """Delete the temporary file (and a side-car GDAL may have written beside it)."""
        for path in (self.path, Path(str(self.path) + _SIDECAR)):
            remove_file(path)
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible, and not needed, everywhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stage_text(target: str | Path, text: str, label: str = "the report") -> StagedFile:
    """`text` (UTF-8) in a temporary file beside `target`, synced and read back; call `commit()` to put it in place."""
    data = text.encode("utf-8")
    staged = StagedFile(target, label)
    with staged:
        try:
            with open(staged.path, "wb") as handle:
                handle.write(data)
                handle.flush()
            staged.sync()
            written = staged.path.read_bytes()
        except OSError as e:
            raise write_failure(target, label, os_reason(e)) from None
        if written != data:
            raise write_failure(target, label, f"reading it back gave {len(written)} of {len(data)} bytes")
    return staged
