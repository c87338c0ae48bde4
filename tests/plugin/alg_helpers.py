"""Helpers shared by the plugin tests (kept out of conftest.py so test modules can import them)."""
import numpy as np

FAST = {"ITERATIONS": 3, "DEVICE": "cpu", "SEED": 0, "THREADS": 1}
SPECTRAL = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]


def crop(scene: dict, size: int, row: int = 0, col: int = 0) -> dict:
    """A crop of `size` 10 m pixels at (row, col), all multiples of 6."""
    out = {}
    for key, ratio in (("10m", 1), ("20m", 2), ("60m", 6)):
        r, c, n = row // ratio, col // ratio, size // ratio
        out[key] = np.ascontiguousarray(scene[key][:, r:r + n, c:c + n])
    return out


def run_alg(parameters: dict, feedback=None, context=None):
    """processing.run of sure_fusion:s2_sharpening with fast test settings."""
    import processing

    return processing.run("sure_fusion:s2_sharpening", {**FAST, **parameters}, feedback=feedback, context=context)


def fingerprint(path) -> tuple:
    """What must not change in a file the user owns: content hash, size, inode, modification time."""
    import hashlib
    import os

    st = os.stat(path)
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return digest, st.st_size, st.st_ino, st.st_mtime_ns


def temporaries(folder) -> list[str]:
    """Temporary output files (`.NAME.partial-…`) left in `folder`."""
    from pathlib import Path

    return sorted(p.name for p in Path(folder).iterdir() if ".partial-" in p.name) if Path(folder).is_dir() else []
