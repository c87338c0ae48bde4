"""The golden-output cases: each algorithm on small synthetic inputs, CPU, fixed seed, one thread.

`tools/golden.py --write` records their outputs in tests/golden/; test_golden_outputs.py compares every run with
them. A refactor that is meant to change nothing must leave them as they are.
"""
from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SETTINGS = {"ITERATIONS": 4, "DEVICE": "cpu", "SEED": 0, "THREADS": 1, "NETWORK": "always"}

# metadata that depends on the clock or the machine, not on the computation
VOLATILE = ("INPUT", "SECONDS", "DATE", "TIME", "DURATION", "VERSION", "PLATFORM", "PEAK", "HOST", "THREADS_USED")


def environment() -> dict:
    """What a bit-for-bit comparison depends on: the same libraries on the same kind of CPU."""
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu": torch.backends.cpu.get_cpu_capability()}


def _inputs(folder: Path) -> dict[str, tuple[str, dict]]:
    """{case: (algorithm, parameters)} with the inputs written to `folder`."""
    from osgeo import gdal
    from scipy import ndimage

    import pair_fixtures as pf

    # the embedded sample, its 20 m bands' content a third of a pixel off so co-registration has work to do
    sample = Path(__file__).resolve().parents[2] / "resources" / "sample"
    s2_layers = {f"INPUT_{k.upper()}": str(sample / f"sample_{k}.tif") for k in ("10m", "20m", "60m")}
    shifted = folder / "sample_20m_shifted.tif"
    gdal.Translate(str(shifted), s2_layers["INPUT_20M"])
    ds = gdal.Open(str(shifted), gdal.GA_Update)
    for i in range(ds.RasterCount):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(np.round(ndimage.shift(band.ReadAsArray().astype(float), (0.3, -0.3), order=3,
                                               mode="nearest")))
    ds = None
    hsms = pf.write_hs_ms(folder / "hsms", pf.synthetic_hs_ms(48, seed=1))
    pan = pf.write_pan_ms(folder / "pan", pf.synthetic_pan_ms(64, seed=2))
    return {
        "s2_window": ("s2_sharpening_bands", {**s2_layers, "INPUT_20M": str(shifted)}),
        "s2_scene": ("s2_sharpening_bands", {**s2_layers, "TRAINING": "scene", "TILE_SIZE": 60, "TILE_OVERLAP": 24}),
        "hsms_window": ("hsms_fusion", pf.layers(hsms)),
        "pan_window": ("pansharpening", pf.layers(pan)),
        "pan_scene": ("pansharpening", {**pf.layers(pan), "TRAINING": "scene", "TILE_SIZE": 32, "TILE_OVERLAP": 16}),
    }


def run_all(folder: Path) -> dict[str, dict]:
    """{case: {'data', 'descriptions', 'geotransform', 'metadata'}} of every case, run through processing.run."""
    import processing
    from osgeo import gdal

    results = {}
    for case, (algorithm, parameters) in _inputs(folder).items():
        out = folder / f"{case}.tif"
        processing.run(f"sure_fusion:{algorithm}", {**SETTINGS, **parameters, "OUTPUT": str(out)})
        ds = gdal.Open(str(out))
        data = ds.ReadAsArray().astype(np.float32)
        metadata = {k: v for k, v in (ds.GetMetadata() or {}).items() if not any(t in k for t in VOLATILE)}
        results[case] = {"data": data.reshape((-1, *data.shape[-2:])),
                         "descriptions": [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)],
                         "geotransform": list(ds.GetGeoTransform()), "metadata": metadata}
        ds = None
    return results


def _folder(env: dict) -> Path:
    """Recordings are kept per environment (the venv of `make test`, the Debian 13 chroot of `make test-modern`)."""
    return GOLDEN / hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:10]


def write(results: dict[str, dict]) -> None:
    folder = _folder(environment())
    folder.mkdir(parents=True, exist_ok=True)
    for case, result in results.items():
        np.save(folder / f"{case}.npy", result["data"])
        side = {k: v for k, v in result.items() if k != "data"}
        (folder / f"{case}.json").write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    (folder / "environment.json").write_text(json.dumps(environment(), indent=1, sort_keys=True) + "\n")


def recording() -> tuple[Path, bool]:
    """(folder, exact): this environment's recording, else the first one recorded (compared loosely)."""
    own = _folder(environment())
    if own.is_dir():
        return own, True
    folders = sorted(p.parent for p in GOLDEN.glob("*/environment.json"))
    assert folders, "no golden outputs recorded: run `make golden`"
    return folders[0], False


def read(folder: Path, case: str) -> dict:
    return {**json.loads((folder / f"{case}.json").read_text()), "data": np.load(folder / f"{case}.npy")}
