"""`make demo`: sharpen the embedded sample through qgis_process, write the GeoTIFF, a PNG quick-look and a report.

The sample (resources/sample/, see make_sample.py there) is a Sentinel-2 scene this project simulates from
typical spectra, so the demo can also score itself against the ground truth. Needs no network and no
../shared data. Iterations: DEMO_ITERATIONS (default 120), threads: DEMO_THREADS (default: cores − 1).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

from sure_fusion_qgis import quicklook, raster_stack, raster_writer
from tools import qgis_cli

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = ROOT / "resources" / "sample"
OUT = ROOT / "out" / "demo"


def qgis_env() -> dict:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(qgis_cli.plugin_folder()),
               QGIS_CUSTOM_CONFIG_PATH=str(OUT / "qgis_profile"),
               PYTHONPATH=sysconfig.get_paths()["purelib"])   # QGIS's Python must see torch from the venv
    return env


def run(cmd: list[str], env: dict, tolerate: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0 and not (tolerate and tolerate in done.stdout + done.stderr):
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return done


def bicubic_20m(size: int) -> np.ndarray:
    """The 20 m bands resampled to 10 m by GDAL's cubic kernel: what users get without sharpening."""
    from osgeo import gdal

    ds = gdal.Warp("", str(SAMPLE / "sample_20m.tif"), format="MEM", width=size, height=size, resampleAlg="cubic")
    return ds.ReadAsArray().astype(np.float64)


def main() -> None:
    qgis_process = qgis_cli.qgis_process()
    if not qgis_process:
        sys.exit("qgis_process not found: run `make setup` first (installs QGIS)")
    OUT.mkdir(parents=True, exist_ok=True)
    iterations = int(os.environ.get("DEMO_ITERATIONS", "120"))
    threads = int(os.environ.get("DEMO_THREADS", "0"))
    env = qgis_env()
    start = time.perf_counter()
    # qgis_process 3.22 exits with 1 when the plugin is already enabled in this profile (a second demo run)
    run([qgis_process, "plugins", "enable", "sure_fusion_qgis"], env, tolerate="already enabled")
    tif, report = OUT / "sample_sharpened_10m.tif", OUT / "sample_report.html"
    print(f"== sharpening the embedded sample (120×120 px at 10 m) with {iterations} iterations through qgis_process")
    done = run([qgis_process, "--json", "run", "sure_fusion:s2_sharpening", "--",
                f"INPUT_10M={SAMPLE / 'sample_10m.tif'}", f"INPUT_20M={SAMPLE / 'sample_20m.tif'}",
                f"INPUT_60M={SAMPLE / 'sample_60m.tif'}", f"ITERATIONS={iterations}", "DEVICE=auto", "SEED=0",
                f"THREADS={threads}", f"OUTPUT={tif}", f"REPORT={report}"], env)
    payload = json.loads(done.stdout[done.stdout.index("{"):])
    for line in payload["log"]["info"]:
        if line.startswith(("Device", "Scene", "Done")):
            print("   " + line)

    names = list(quicklook.FALSE_COLOUR)
    sharpened, _, descriptions, _ = raster_stack.read_raster(str(tif))
    band = {d.split(" ")[0]: k for k, d in enumerate(descriptions)}
    size = quicklook.overview_size(sharpened.shape[2], sharpened.shape[1])
    before = raster_stack.read_overview(str(SAMPLE / "sample_20m.tif"), [4 + 2, 4, 1], size)   # B12, B8A, B5
    after = raster_stack.read_overview(str(tif), [band[n] + 1 for n in names], size)
    png = raster_writer.write_png(str(OUT / "sample_quicklook_B12-B8A-B5.png"), quicklook.before_after(before, after))

    truth, _, truth_names, _ = raster_stack.read_raster(str(SAMPLE / "truth_10m.tif"))
    twenty = ["B5", "B6", "B7", "B8A", "B11", "B12"]
    ref = truth[[truth_names.index(n) for n in twenty]]
    est = sharpened[[band[n] for n in twenty]]
    cubic = bicubic_20m(sharpened.shape[1])
    from sure_core.metrics import ergas  # the core's metric, same as the benchmarks

    crop = (slice(None), slice(6, -6), slice(6, -6))   # leave out the border, as the Wald protocol does
    wall = time.perf_counter() - start
    print(f"== ERGAS of the 20 m bands against the simulated truth (lower is better): "
          f"bicubic {ergas(ref[crop], cubic[crop], 2):.2f}, Deep SURE {ergas(ref[crop], est[crop], 2):.2f}")
    print(f"== done in {wall:.0f} s")
    print(f"   GeoTIFF    {tif}")
    print(f"   quick-look {png}   (left: 20 m input, right: sharpened 10 m)")
    print(f"   report     {report}")


if __name__ == "__main__":
    main()
