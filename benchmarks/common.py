"""What every benchmark shares: the shared data folder, thread pinning, timing, results as JSON, means over rows.

The benchmarks read real and simulated scenes from ../shared/data beside the repository (never committed: see
shared/data/README.md there); without it they stop with exit code 2 and say which file is missing.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def missing_data(*names: str) -> int:
    """0 when the shared data folder holds every file named; otherwise says which one it lacks and returns 2 (the
    benchmark's exit code)."""
    for name in names:
        path = DATA / name
        if not path.exists():
            print(f"{path} not found: this benchmark needs the shared data folder (shared/data) beside the repository")
            return 2
    return 0


def pin_threads(threads: int) -> None:
    """torch's intra-op threads (the machine has 2 shared cores: one thread a job keeps timings comparable)."""
    import torch

    torch.set_num_threads(threads)


def timed(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """(fn(*args, **kwargs), wall seconds)."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


class Stopwatch:
    """Wall time since it was made, for the closing 'wall time' line."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def report(self) -> float:
        seconds = self.seconds
        print(f"\nwall time {seconds:.0f} s ({seconds / 60:.1f} min)")
        return seconds


def write_json(path: Path | None, data, indent: int = 1) -> None:
    """The results as JSON at `path` (its folder made), if a path is given; numpy scalars become floats."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=indent, default=float))


def mean_of(rows: Iterable[dict], key: str) -> float:
    """The mean of `key` over `rows` (NaN where a row lacks it), e.g. a metric over seeds."""
    return float(np.mean([r.get(key, np.nan) for r in rows]))

