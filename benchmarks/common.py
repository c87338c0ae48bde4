"""What every benchmark shares: the shared data folder, thread pinning, timing, results as JSON, means over rows, and
SURE Fusion run the plugin's way (`fuse_pair`: GeoTIFF inputs → `sure_fusion_qgis.fusion_request` → GeoTIFF output).

The benchmarks read real and simulated scenes from ../shared/data beside the repository (never committed: see
shared/data/README.md there); without it they stop with exit code 2 and say which file is missing.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

#: a made-up projected grid for the GeoTIFFs the benchmarks write (UTM 33N); only the pixel sizes matter
EPSG = 32633
ORIGIN = (500000.0, 5000000.0)
NETWORK_MODES = ("always", "auto", "never")

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



def write_geotiff(path: Path, data: np.ndarray, pixel: float, names: list[str] | None = None) -> str:
    """`data` ((bands,) rows, cols) as a float32 GeoTIFF at `path` on the made-up grid with `pixel`-sized pixels,
    its top-left corner at ORIGIN (so grids of different pixel sizes are 'area'-aligned); returns the path."""
    from osgeo import gdal, osr

    gdal.UseExceptions()
    data = data if data.ndim == 3 else data[None]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0],
                                              gdal.GDT_Float32)
    ds.SetGeoTransform((ORIGIN[0], pixel, 0.0, ORIGIN[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(data.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(data[i].astype(np.float32))
        if names:
            band.SetDescription(names[i])
    ds = None
    return str(path)


def fuse_pair(kind: str, low: str, high: str, target: Path, options, choices: dict, noise_sigma: str = "",
              coregistration: str = "auto") -> tuple[np.ndarray, object]:
    """SURE Fusion of a GeoTIFF pair (`kind` 'hsms': HS and MS, 'pan': MS and PAN) the plugin's way: a
    `FusionRequest` through `fusion_request.prepare` and `run` (inputs read, σ parsed or estimated, the core case
    built from the algorithm's `choices`, trained through the core's runner, written to `target`), with the
    solver `options` and the COREGISTRATION choice as given. Returns (the output read back as float64
    (bands, rows, cols), the FusionResult)."""
    from osgeo import gdal

    from sure_fusion_qgis.fusion_request import FusionRequest, prepare, run
    from sure_fusion_qgis.fusion_run import RunSettings

    settings = RunSettings(options=options, coregistration=coregistration)
    request = FusionRequest(kind=kind, sources={"low": low, "high": high}, settings=settings,
                            noise_sigma=noise_sigma, choices=dict(choices))
    result = run(prepare(request), str(target))
    return gdal.Open(result.path).ReadAsArray().astype(np.float64), result


def record_summary(result) -> dict:
    """What a benchmark row keeps of a FusionResult's (single) run record."""
    record = result.records[0]
    return {"iterations": record.options["iterations"], "width": record.options["width"],
            "network": record.options.get("network"), "iterations_run": record.iterations_run,
            "network_applied": record.network_applied, "network_gain": record.network_gain,
            "network_decision": record.network_decision, "training": result.training,
            "seconds_per_iteration": record.seconds_per_iteration, "final_risk": record.final_risk,
            "sigma": record.sigma}
