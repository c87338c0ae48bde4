"""`make qa`: the hostile-input QA of 2026-12 (114 cases, ../shared/docs/qa-2026-12.md) as a script.

Each case runs the plugin as a user would — `qgis_process.bin run …` in a throw-away profile, or
`python -m sure_fusion_qgis.batch` — on inputs built here (synthetic Sentinel-2 bands of 72×72 px at 10 m in
EPSG:32648, an HS+MS pair, a PAN+MS pair; no shared data needed), and checks what the issue demands: a
failure (non-zero exit) with a message that names the problem where the case must fail, a valid result where
it must succeed, no file that existed before changed, and no temporary file left (except after SIGKILL, which
no program can clean up after; the next run removes it, case 88).

    make qa ARGS="[--cases 1-30,72] [--workdir DIR] [--report FILE.md]"
    PYTHONPATH=tests/plugin .venv/bin/python -m tools.qa_hostile [...]   # the same, by hand

It reuses the plugin tests' helpers (tests/plugin: fixtures, qgis_process and fault helpers), imported by name as
the tests do, hence tests/plugin on PYTHONPATH.

Writes a Markdown table (number, case, exit code, message, seconds, leftovers, data lost, verdict) to
out/qa/qa_report.md and prints a summary. Exit code 1 when a case is a DEFECT. Cases that need root (a tmpfs
for the full disk, chattr +i), strace or a GPU-less machine say "not run" where that is missing. It takes
15–20 minutes on 2 busy cores (16.6 min measured) (most of it QGIS and torch start-up, 5–8 s per run).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from osgeo import gdal, osr

import fault_helpers
import pair_fixtures as pf
import s2_fixtures
from alg_helpers import temporaries
from cli_helpers import cli_env
from fault_helpers import fill_disk, mounted_tmpfs, read_only_folder, set_band_descriptions, wait_for_temporary
from sure_fusion_qgis import raster_writer
from tools import qgis_cli

ROOT = Path(__file__).resolve().parents[1]
# the command that works here (qgis_cli); a bare name when QGIS is missing, so that main() says so
QGIS_PROCESS = qgis_cli.qgis_process() or "qgis_process"

gdal.UseExceptions()
ORIGIN = (600000.0, 2300040.0)
EPSG = 32648
FAST = {"ITERATIONS": 5, "DEVICE": "cpu", "THREADS": 1}
TEMP_MARK = ".partial-"


# ------------------------------------------------------------------------------------------- bookkeeping
@dataclass
class Run:
    rc: int | None
    text: str
    seconds: float


@dataclass
class Outcome:
    rc: object
    message: str
    verdict: str                    # "ok", "DEFECT", "not run", "info"
    seconds: float = 0.0
    leftovers: str = "none"
    data_lost: str = "no"


@dataclass
class Watch:
    """Files in some folders before a case: after it, which changed (data lost) and what was added (leftovers)."""
    folders: list[Path]
    expected: set[str] = field(default_factory=set)
    before: dict[Path, str] = field(default_factory=dict)

    def __post_init__(self):
        self.before = self._snapshot()

    def _snapshot(self) -> dict[Path, str]:
        files = {}
        for folder in self.folders:
            for path in Path(folder).rglob("*"):
                if path.is_file() and not path.name.endswith(".aux.xml"):   # QGIS writes PAM statistics beside inputs
                    files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return files

    def report(self) -> tuple[str, str, list[Path]]:
        after = self._snapshot()
        lost = [p.name for p, digest in self.before.items()   # a temporary file of a killed run is not the user's
                if after.get(p) != digest and p.name not in self.expected and TEMP_MARK not in p.name]
        new = [p for p in after if p not in self.before and p.name not in self.expected]
        return ", ".join(p.name for p in new) or "none", (", ".join(lost) + " changed") if lost else "no", new


def excerpt(text: str, needles=()) -> str:
    """The line of the output that matters: one holding a needle, else the last error-ish line."""
    lines = [re.sub(r"^[0-9.]+(?=[A-Z])", "", line.strip()) for line in text.splitlines() if line.strip()]
    for needle in needles:
        for line in lines:
            if needle.lower() in line.lower():
                return line[:300]
    for line in reversed(lines):
        if re.search(r"error|exception|cannot|failed|not |Done|Stopped|Cancelled", line, re.IGNORECASE):
            return line[:300]
    return (lines[-1] if lines else "")[:300]


def valid_output(path: Path, bands: int | None = None) -> str:
    """'' when `path` is a readable GeoTIFF whose values are finite (nodata −9999 is finite), else why not."""
    try:
        ds = gdal.Open(str(path))
        data = ds.ReadAsArray()
    except RuntimeError as e:
        return f"unreadable: {e}"
    if ds.GetDriver().ShortName != "GTiff":
        return f"not a GeoTIFF ({ds.GetDriver().ShortName})"
    if bands is not None and ds.RasterCount != bands:
        return f"{ds.RasterCount} bands, not {bands}"
    if not np.isfinite(data).all():
        return "holds NaN or inf"
    return ""


def refused(run: Run, watch: Watch, *needles: str) -> Outcome:
    """The case must fail: non-zero exit, every needle in the output, nothing changed, no temporary file."""
    leftovers, lost, new = watch.report()
    problems = []
    if run.rc == 0:
        problems.append("exit code 0")
    missing = [n for n in needles if n.lower() not in run.text.lower()]
    if missing:
        problems.append(f"message lacks {missing}")
    if lost != "no":
        problems.append("data lost")
    if any(TEMP_MARK in p.name for p in new):
        problems.append("temporary file left")
    return Outcome(run.rc, excerpt(run.text, needles), "ok" if not problems else "DEFECT: " + "; ".join(problems),
                   run.seconds, leftovers, lost)


def succeeded(run: Run, watch: Watch, out: Path, bands: int | None = None, check: Callable[[], str] | None = None
              ) -> Outcome:
    """The case must work: exit 0, a valid finite GeoTIFF at `out`, `check()` '' (or why not), nothing else lost."""
    watch.expected |= {out.name}
    leftovers, lost, new = watch.report()
    problems = []
    if run.rc != 0:
        problems.append(f"exit code {run.rc}")
    else:
        why = valid_output(out, bands) or (check() if check else "")
        if why:
            problems.append(why)
    if lost != "no":
        problems.append("data lost")
    if any(TEMP_MARK in p.name for p in new):
        problems.append("temporary file left")
    message = excerpt(run.text, ("Done in",)) if run.rc == 0 else excerpt(run.text)
    return Outcome(run.rc, message, "ok" if not problems else "DEFECT: " + "; ".join(problems), run.seconds,
                   leftovers, lost)


def combined(*outcomes: Outcome) -> Outcome:
    """One row for a case of several runs: every exit code, the (distinct) messages, the first defect, the time."""
    bad = [o for o in outcomes if o.verdict != "ok"]
    message = " / ".join(dict.fromkeys(o.message for o in outcomes))
    return Outcome("/".join(str(o.rc) for o in outcomes), message[:400], bad[0].verdict if bad else "ok",
                   sum(o.seconds for o in outcomes))


# ------------------------------------------------------------------------------------------------ the lab
class Lab:
    """Inputs, a QGIS profile with the plugin enabled, and a fresh folder per case."""

    def __init__(self, root: Path):
        self.root = root
        self.env = cli_env(root / "profile")
        (root / "profile").mkdir(parents=True, exist_ok=True)
        subprocess.run([QGIS_PROCESS, "plugins", "enable", "sure_fusion_qgis"], env=self.env, capture_output=True,
                       timeout=120)
        self.scene = s2_fixtures.synthetic_scene(72, seed=11)
        self.s2 = self.band_rasters("s2", self.scene)
        hsms = pf.synthetic_hs_ms(72, ratio=3, hs_bands=16)
        self.hsms = pf.write_hs_ms(root / "in" / "hsms", hsms, ms_pixel=30.0)
        self.hsms_scene = hsms
        pan = pf.synthetic_pan_ms(96, ratio=4, bands=8)
        self.pan = pf.write_pan_ms(root / "in" / "pan", pan)
        self.pan_scene = pan

    def band_rasters(self, name: str, arrays: dict, **options) -> dict[str, str]:
        return s2_fixtures.write_band_rasters(self.root / "in" / name, arrays, origin=ORIGIN, epsg=EPSG, **options)

    def folder(self, name: str) -> Path:
        path = self.root / "cases" / name
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def arguments(self, parameters: dict) -> list[str]:
        return [f"{k}={v}" for k, v in parameters.items() if v is not None]

    def qgis(self, algorithm: str, parameters: dict, timeout: int = 900) -> Run:
        start = time.perf_counter()
        try:
            done = subprocess.run([QGIS_PROCESS, "run", f"sure_fusion:{algorithm}", "--",
                                   *self.arguments(parameters)], env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return Run(None, f"timed out after {timeout} s: {e.stdout or ''}", time.perf_counter() - start)
        return Run(done.returncode, done.stdout + done.stderr, time.perf_counter() - start)

    def popen(self, algorithm: str, parameters: dict) -> subprocess.Popen:
        return subprocess.Popen([QGIS_PROCESS, "run", f"sure_fusion:{algorithm}", "--", *self.arguments(parameters)],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def s2_run(self, parameters: dict, out: Path | None, inputs: dict | None = None, **kwargs) -> Run:
        paths = self.s2 if inputs is None else inputs
        base = {"INPUT_10M": paths.get("10m"), "INPUT_20M": paths.get("20m"), "INPUT_60M": paths.get("60m")}
        return self.qgis("s2_sharpening", {**base, **FAST, **parameters, "OUTPUT": out}, **kwargs)

    def batch(self, arguments: list[str], timeout: int = 600) -> Run:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "sure_fusion_qgis.batch", *arguments], cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                              timeout=timeout)
        return Run(done.returncode, done.stdout + done.stderr, time.perf_counter() - start)


def old_output(path: Path) -> Path:
    """A valid GeoTIFF at the target before the run: what every failure must leave as it is."""
    return fault_helpers.old_output(path, ORIGIN, EPSG, size=24)


def extent(x0: float, x1: float, y0: float, y1: float, epsg: int = EPSG) -> str:
    return f"{x0},{x1},{y0},{y1} [EPSG:{epsg}]"


CASES: list[tuple[str, str, Callable[[Lab], Outcome]]] = []


def case(number: str, title: str):
    def register(function):
        CASES.append((number, title, function))
        return function
    return register


def simple(number: str, title: str, run: Callable[[Lab, str], Outcome]) -> None:
    """A case that is one call: `run(lab, name)`, `name` its folder (and input) name."""
    case(number, title)(lambda lab: run(lab, f"c{number}"))


# -------------------------------------------------------------------------------- 1. bad inputs, S2
def _s2_case(lab: Lab, name: str, inputs: dict | None = None, parameters: dict | None = None,
             needles: tuple = (), bands: int = 12, check=None) -> Outcome:
    """A Sentinel-2 run into a fresh folder: refused with `needles` when given, else a valid output."""
    folder = lab.folder(name)
    out = folder / "out.tif"
    watch = Watch([folder, lab.root / "in"])
    run = lab.s2_run(parameters or {}, out, inputs)
    return refused(run, watch, *needles) if needles else succeeded(run, watch, out, bands, check)


def baseline(lab: Lab) -> Path:
    out = lab.root / "cases" / "baseline_for_10" / "out.tif"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        lab.s2_run({}, out)
    return out


@case("1", "baseline (+ REPORT)")
def c1(lab):
    folder = lab.folder("c1")
    out, report = folder / "out.tif", folder / "report.html"
    watch = Watch([folder, lab.root / "in"], {"report.html"})
    run = lab.s2_run({"REPORT": report}, out)
    return succeeded(run, watch, out, 12, lambda: "" if report.is_file() else "no report")


simple("2", "CRS mismatch",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, lab.scene, epsgs={"20m": 32647}),
                               needles=("different CRS",)))


simple("3", "20 m grid shifted by 5 m",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, lab.scene, shifts={"20m": (5.0, 0.0)}),
                               needles=("not aligned",)))


@case("4", "20 m grid shifted by one 10 m pixel (no 60 m)")
def c4(lab):
    paths = lab.band_rasters("c4", {k: lab.scene[k] for k in ("10m", "20m")}, shifts={"20m": (10.0, 0.0)})

    def common_area():
        ds = gdal.Open(str(lab.root / "cases" / "c4" / "out.tif"))
        found = (ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform()[0])
        return "" if found == (70, 72, ORIGIN[0] + 10) else f"{found} is not the common area (70, 72, 600010)"
    return _s2_case(lab, "c4", paths, bands=10, check=common_area)


def _regridded(lab, name: str, geotransforms: dict, epsg: int | None = None) -> dict[str, str]:
    """The shared scene with other geotransforms ({'20m': gt, …}) and optionally another CRS for every group."""
    paths = lab.band_rasters(name, lab.scene)
    for key, geotransform in geotransforms.items():
        ds = gdal.Open(paths[key], gdal.GA_Update)
        ds.SetGeoTransform(geotransform)
        if epsg:
            ds.SetProjection(raster_writer.epsg_wkt(epsg))
        ds = None
    return paths


simple("5", "non-integer ratio (25 m pixels)",
       lambda lab, n: _s2_case(lab, n, _regridded(lab, n, {"20m": (ORIGIN[0], 25.0, 0, ORIGIN[1], 0, -25.0)}),
                               needles=("ratio must be 2",)))


simple("6", "3-band INPUT_10M",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, {**lab.scene, "10m": lab.scene["10m"][:3]}),
                               needles=("needs exactly 4",)))


simple("7", "5-band INPUT_20M",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, {**lab.scene, "20m": lab.scene["20m"][:5]}),
                               needles=("needs exactly 6",)))


@case("8", "descriptions name a wrong band (B8 for B8A)")
def c8(lab):
    paths = lab.band_rasters("c8", lab.scene)
    set_band_descriptions(paths["20m"], ["B5", "B6", "B7", "B8", "B11", "B12"])
    return _s2_case(lab, "c8", paths, needles=("pick the right raster",))


@case("9", "duplicate band names (B5, B5, …)")
def c9(lab):
    paths = lab.band_rasters("c9", lab.scene)
    set_band_descriptions(paths["20m"], ["B5", "B5", "B7", "B8A", "B11", "B12"])
    return _s2_case(lab, "c9", paths, needles=("B5 2 times",))


@case("10", "all six named, in reverse order")
def c10(lab):
    paths = lab.band_rasters("c10", lab.scene)
    set_band_descriptions(paths["20m"], ["B12", "B11", "B8A", "B7", "B6", "B5"], lab.scene["20m"][::-1])
    reference = baseline(lab)

    def same_as_baseline():
        a = gdal.Open(str(lab.root / "cases" / "c10" / "out.tif")).ReadAsArray()
        return "" if np.array_equal(a, gdal.Open(str(reference)).ReadAsArray()) else "differs from the baseline"
    return _s2_case(lab, "c10", paths, check=same_as_baseline)


@case("11", "reversed stack, one description blank")
def c11(lab):
    paths = lab.band_rasters("c11", lab.scene)
    set_band_descriptions(paths["20m"], ["B12", "B11", "B8A", "B7", "B6", ""], lab.scene["20m"][::-1])
    return _s2_case(lab, "c11", paths, needles=("contradict the file order",))


@case("12", "partial descriptions that agree with the positions")
def c12(lab):
    paths = lab.band_rasters("c12", lab.scene)
    set_band_descriptions(paths["20m"], ["B5", "", "B7", "", "", "B12"])
    return _s2_case(lab, "c12", paths)


simple("13", "2-band B1,B9 raster as INPUT_20M",
       lambda lab, n: _s2_case(lab, n, {"10m": lab.s2["10m"], "20m": lab.s2["60m"]},
                               needles=("needs exactly 6", "the 60 m bands: are the inputs swapped?")))


simple("14", "inputs swapped 10↔20",
       lambda lab, n: _s2_case(lab, n, {"10m": lab.s2["20m"], "20m": lab.s2["10m"]},
                               needles=("look swapped", "other way round")))


@case("15", "inputs swapped 20↔60 (unnamed)")
def c15(lab):
    paths = lab.band_rasters("c15", lab.scene, describe=False)
    return _s2_case(lab, "c15", {"10m": paths["10m"], "20m": paths["60m"], "60m": paths["20m"]},
                    needles=("look swapped", "other way round"))


simple("16", "geographic CRS",
       lambda lab, n: _s2_case(lab, n, _regridded(lab, n, {k: (105.9, d, 0, 20.8, 0, -d) for k, d in
                                                           (("10m", 1e-4), ("20m", 2e-4), ("60m", 6e-4))}, 4326),
                               needles=("geographic CRS",)))


simple("17", "rotated geotransform",
       lambda lab, n: _s2_case(lab, n, _regridded(lab, n, {"10m": (ORIGIN[0], 10, 1, ORIGIN[1], 1, -10)}),
                               needles=("rotated",)))


def _typed(lab, name, convert, gdal_type):
    return lab.band_rasters(name, {k: convert(v) for k, v in lab.scene.items()}, gdal_type=gdal_type)


simple("18", "uint8 inputs",
       lambda lab, n: _s2_case(lab, n,
                               _typed(lab, n, lambda v: np.clip(v / 20, 0, 255).astype(np.uint8), gdal.GDT_Byte)))


simple("19", "int16 with negative values",
       lambda lab, n: _s2_case(lab, n, _typed(lab, n, lambda v: v.astype(np.int16) - 1000, gdal.GDT_Int16)))


simple("20", "float32 reflectance",
       lambda lab, n: _s2_case(lab, n, _typed(lab, n, lambda v: (v / 10000).astype(np.float32), gdal.GDT_Float32)))


simple("21", "float64 reflectance",
       lambda lab, n: _s2_case(lab, n, _typed(lab, n, lambda v: v / 10000, gdal.GDT_Float64)))


@case("22", "NaN / +inf / −inf pixels (+ REPORT)")
def c22(lab):
    arrays = {k: (v / 10000).astype(np.float32) for k, v in lab.scene.items()}
    arrays["10m"][0, 3, 3], arrays["10m"][1, 10, 10], arrays["10m"][2, 20, 20] = np.nan, np.inf, -np.inf
    arrays["20m"][0, 5, 5], arrays["20m"][3, 7, 7] = np.inf, np.nan
    paths = lab.band_rasters("c22", arrays, gdal_type=gdal.GDT_Float32)
    folder = lab.folder("c22")
    out, report = folder / "out.tif", folder / "report.html"
    watch = Watch([folder, lab.root / "in"], {"report.html"})
    run = lab.s2_run({"REPORT": report}, out, paths)

    def nodata_there():
        data = gdal.Open(str(out)).ReadAsArray()
        return "" if (data[:, 3, 3] == -9999).all() and (data[:, 10:12, 10:12] == -9999).all() else "NaN not nodata"
    return succeeded(run, watch, out, 12, nodata_there)


simple("23", "all nodata",
       lambda lab, n: _s2_case(lab, n,
                               lab.band_rasters(n, {k: np.zeros_like(v) for k, v in lab.scene.items()}, nodata=0),
                               needles=("nodata only",)))


@case("24", "90 % nodata")
def c24(lab):
    arrays = {k: v.copy() for k, v in lab.scene.items()}
    arrays["10m"][:, 23:, :] = 0
    arrays["10m"][:, :, 23:] = 0
    return _s2_case(lab, "c24", lab.band_rasters("c24", arrays, nodata=0))


@case("25", "nodata only in the 20 m bands")
def c25(lab):
    arrays = {k: v.copy() for k, v in lab.scene.items()}
    arrays["20m"][:, 10:20, 10:20] = 65535
    return _s2_case(lab, "c25", lab.band_rasters("c25", arrays, nodata=65535))


simple("26", "constant image",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, {k: np.full_like(v, 1000) for k, v in lab.scene.items()})))


simple("27", "constant 10 m bands only",
       lambda lab, n: _s2_case(lab, n,
                               lab.band_rasters(n, {**lab.scene, "10m": np.full_like(lab.scene["10m"], 1000)})))


def _tiny(size10: int, with_60m: bool) -> dict:
    rng = np.random.default_rng(0)
    arrays = {"10m": rng.integers(500, 3000, (4, size10, size10)).astype(np.uint16),
              "20m": rng.integers(500, 3000, (6, max(1, -(-size10 // 2)), max(1, -(-size10 // 2)))).astype(np.uint16)}
    if with_60m:
        arrays["60m"] = rng.integers(500, 3000, (2, max(1, -(-size10 // 6)), max(1, -(-size10 // 6)))).astype(np.uint16)
    return arrays


simple("28", "1×1 px, all three inputs",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, _tiny(1, True)), needles=("less than one 60 m pixel",)))


@case("29", "1×1 px, no 60 m")
def c29(lab):
    outcome = _s2_case(lab, "c29", lab.band_rasters("c29", _tiny(1, False)), needles=("one 20 m pixel",))
    if "60 m" in outcome.message and outcome.verdict == "ok":
        outcome.verdict = "DEFECT: speaks of 60 m pixels"
    return outcome


simple("30", "7×7 px (no 60 m)",
       lambda lab, n: _s2_case(lab, n, lab.band_rasters(n, _tiny(7, False)), needles=("16×16 10 m pixels",)))


def _square(side: int) -> str:
    """An extent of side×side 10 m pixels at the data's corner."""
    return extent(ORIGIN[0], ORIGIN[0] + 10 * side, ORIGIN[1] - 10 * side, ORIGIN[1])


simple("31", "small areas with 60 m: 12, 16, 18, 24, 36 px",
       lambda lab, n: combined(*(_s2_case(lab, f"{n}_{side}", parameters={"EXTENT": _square(side)},
                                          needles=(f"is {-(-side // 6) * 6}×{-(-side // 6) * 6} 10 m pixels",
                                                   "48×48 10 m pixels"))   # the extent snapped to the 60 m grid
                                 for side in (12, 16, 18, 24, 36))))


simple("32", "16 / 18 px, no 60 m",
       lambda lab, n: combined(*(_s2_case(lab, f"{n}_{side}", {"10m": lab.s2["10m"], "20m": lab.s2["20m"]},
                                          {"EXTENT": _square(side)}, bands=10) for side in (16, 18))))


@case("33", "truncated GeoTIFF")
def c33(lab):
    paths = lab.band_rasters("c33", lab.scene)
    data = Path(paths["10m"]).read_bytes()
    Path(paths["10m"]).write_bytes(data[: len(data) // 2])
    return _s2_case(lab, "c33", paths, needles=("INPUT_10M",))


@case("34", "random bytes named .tif")
def c34(lab):
    paths = dict(lab.s2)
    junk = lab.root / "in" / "junk.tif"
    junk.write_bytes(os.urandom(5000))
    return _s2_case(lab, "c34", {**paths, "10m": str(junk)}, needles=("INPUT_10M",))


@case("35", "text file named .tif / a .csv")
def c35(lab):
    text = lab.root / "in" / "text.tif"
    text.write_text("a,b\n1,2\n")
    return _s2_case(lab, "c35", {**lab.s2, "10m": str(text)}, needles=("INPUT_10M",))


simple("36", "missing file",
       lambda lab, n: _s2_case(lab, n, {**lab.s2, "10m": str(lab.root / "in" / "nope.tif")}, needles=("INPUT_10M",)))


def _product_case(lab, name, product, needles) -> Outcome:
    folder = lab.folder(name)
    watch = Watch([folder, lab.root / "in"])
    return refused(lab.qgis("s2_sharpening", {"PRODUCT": product, **FAST, "OUTPUT": folder / "out.tif"}), watch,
                   *needles)


@case("37", "PRODUCT = a folder without a dot in its name")
def c37(lab):
    folder = lab.root / "in" / "renamed_product"
    folder.mkdir(exist_ok=True)
    return _product_case(lab, "c37", folder, ("folder without MTD_MSIL1C.xml",))


@case("38", "PRODUCT = a folder with a dot, no MTD")
def c38(lab):
    folder = lab.root / "in" / "random.folder"
    folder.mkdir(exist_ok=True)
    return _product_case(lab, "c38", folder, ("folder without MTD_MSIL1C.xml",))


@case("39", "PRODUCT = an empty zip")
def c39(lab):
    archive = lab.root / "in" / "empty.zip"
    zipfile.ZipFile(archive, "w").close()
    return _product_case(lab, "c39", archive, ("not a Sentinel-2 L1C/L2A product",))


@case("40", "PRODUCT = a zip of non-S2 files")
def c40(lab):
    archive = lab.root / "in" / "other.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(lab.s2["10m"], "image.tif")
        handle.writestr("readme.txt", "hello")
    return _product_case(lab, "c40", archive, ("not a Sentinel-2 L1C/L2A product",))


def _fake_safe(lab, name) -> Path:
    return s2_fixtures.build_fake_safe(lab.root / "in" / name, {k: v + np.uint16(1000) for k, v in lab.scene.items()},
                                       origin=ORIGIN, epsg=EPSG)


@case("41", ".SAFE with a corrupt MTD xml")
def c41(lab):
    safe = _fake_safe(lab, "c41")
    (safe / "MTD_MSIL2A.xml").write_text("<not xml")
    return _product_case(lab, "c41", safe, ("not a Sentinel-2 L1C/L2A product",))


@case("42", ".SAFE with a 'billion laughs' MTD xml")
def c42(lab):
    safe = _fake_safe(lab, "c42")
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    (safe / "MTD_MSIL2A.xml").write_text(f'<?xml version="1.0"?><!DOCTYPE l [{entities}]><l>&l9;</l>')
    return _product_case(lab, "c42", safe, ("not a Sentinel-2 L1C/L2A product",))


simple("43", "PRODUCT missing",
       lambda lab, n: _product_case(lab, n, lab.root / "in" / "nothere.SAFE", ("does not exist",)))


simple("44", "PRODUCT = a GeoTIFF",
       lambda lab, n: _product_case(lab, n, lab.s2["10m"], ("not a Sentinel-2 L1C/L2A product",)))


simple("45", "PRODUCT and rasters / neither",
       lambda lab, n: combined(_s2_case(lab, n + "a", parameters={"PRODUCT": lab.s2["10m"]}, needles=("not both",)),
                               _s2_case(lab, n + "b", {}, needles=("Give a Sentinel-2 PRODUCT",))))


simple("46", "EXTENT outside the data",
       lambda lab, n: _s2_case(lab, n, parameters={"EXTENT": extent(700000, 700500, 2200000, 2200500)},
                               needles=("outside the data",)))


def _lonlat_box() -> str:
    """The data's extent (72×72 px) in EPSG:4326, lon/lat order."""
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(EPSG)
    target.ImportFromEPSG(4326)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    corners = [transform.TransformPoint(x, y)[:2] for x in (ORIGIN[0] + 1, ORIGIN[0] + 719)
               for y in (ORIGIN[1] - 719, ORIGIN[1] - 1)]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    return f"{min(lons)},{max(lons)},{min(lats)},{max(lats)} [EPSG:4326]"


simple("47", "EXTENT in EPSG:4326 over the whole data",
       lambda lab, n: _s2_case(lab, n, parameters={"EXTENT": _lonlat_box()}))


simple("48", "EXTENT in degrees without a CRS",
       lambda lab, n: _s2_case(lab, n, parameters={"EXTENT": "105.96,105.97,20.79,20.80"},
                               needles=("smaller than one 10 m pixel", "[EPSG:4326]")))


simple("49", "EXTENT partly outside",
       lambda lab, n: _s2_case(lab, n, parameters={"EXTENT": extent(ORIGIN[0] - 300, ORIGIN[0] + 600,
                                                                    ORIGIN[1] - 600, ORIGIN[1] + 300)}))


simple("50", "degenerate EXTENT (xmin = xmax)",
       lambda lab, n: _s2_case(lab, n, parameters={"EXTENT": extent(600300, 600300, 2299500, 2299800)},
                               needles=("has no area",)))


simple("51", "EXTENT = hello",
       lambda lab, n: _s2_case(lab, n, parameters={"EXTENT": "hello"}, needles=("EXTENT",)))


simple("52", "NOISE_SIGMA with 3 values",
       lambda lab, n: _s2_case(lab, n, parameters={"NOISE_SIGMA": "1,2,3"}, needles=("3 values were given",)))


def _sigmas(lab, name: str, cases: dict[str, str]) -> Outcome:
    """One run per NOISE_SIGMA text in `cases` ({text: what the message must say})."""
    return combined(*(_s2_case(lab, f"{name}_{k}", parameters={"NOISE_SIGMA": text}, needles=(needle,))
                      for k, (text, needle) in enumerate(cases.items())))


simple("53", "NOISE_SIGMA -5 / nan",
       lambda lab, n: _sigmas(lab, n, {"-5": "-5 is not finite and ≥ 0", "nan": "nan is not finite and ≥ 0"}))


simple("54", "NOISE_SIGMA text / 5;5",
       lambda lab, n: _sigmas(lab, n, {"abc": "not a list of numbers", "5;5": "2 values were given"}))


simple("55", "NOISE_SIGMA = 0",
       lambda lab, n: _s2_case(lab, n, parameters={"NOISE_SIGMA": "0"}))


simple("56", "NOISE_SIGMA = 1e30",
       lambda lab, n: _s2_case(lab, n, parameters={"NOISE_SIGMA": "1e30"}, needles=("varies by only",)))


@case("57", "NOISE_SIGMA far too large (50 on reflectance, 1e6 on DN)")
def c57(lab):
    reflectance = _typed(lab, "c57", lambda v: (v / 10000).astype(np.float32), gdal.GDT_Float32)
    return combined(_s2_case(lab, "c57a", reflectance, {"NOISE_SIGMA": "50"}, needles=("varies by only",)),
                    _s2_case(lab, "c57b", parameters={"NOISE_SIGMA": "1e6"}, needles=("varies by only",)))


simple("58", "ITERATIONS negative / text",
       lambda lab, n: combined(*(_s2_case(lab, f"{n}_{k}", parameters={"ITERATIONS": value}, needles=("ITERATIONS",))
                                 for k, value in enumerate((-3, "ten")))))


simple("59", "ITERATIONS = 0 (the recipe's 300)",
       lambda lab, n: _s2_case(lab, n, parameters={"ITERATIONS": 0}))


@case("60", "ITERATIONS 1 / 2, pansharpening ITERATIONS=1")
def c60(lab):
    return combined(_s2_case(lab, "c60a", parameters={"ITERATIONS": 1}),
                    _s2_case(lab, "c60b", parameters={"ITERATIONS": 2}),
                    _pair_case(lab, "c60c", "pansharpening", {**pf.layers(lab.pan), "ITERATIONS": 1}, bands=8))


@case("61", "DEVICE=cuda without a GPU")
def c61(lab):
    import torch
    if torch.cuda.is_available():
        return Outcome("-", "this machine has a CUDA GPU", "not run")
    return _s2_case(lab, "c61", parameters={"DEVICE": "cuda"}, needles=("no CUDA GPU",))


simple("62", "DEVICE=2",
       lambda lab, n: _s2_case(lab, n, parameters={"DEVICE": "2"}, needles=("DEVICE",)))


@case("63", "LEARNING_RATE = 1")
def c63(lab):
    outcome = _s2_case(lab, "c63", parameters={"LEARNING_RATE": 1})
    if outcome.rc not in (0, None) and "not finite" in outcome.message:   # diverged, and said so: also right
        outcome.verdict = "ok"
    return outcome


simple("64", "TILE_SIZE=1, TRAINING=tiles, TILE_OVERLAP=0",
       lambda lab, n: _s2_case(lab, n, parameters={"TILE_SIZE": 1, "TRAINING": "tiles", "TILE_OVERLAP": 0},
                               needles=("TILE_SIZE 1",)))


# --------------------------------------------------------------------------------------- 2. output paths
def _path_case(lab, name, out, parameters=None, needles=(), watch_extra=(), old=False) -> Outcome:
    """A run to `out` (callable of the case folder) with a valid old output there when `old`."""
    folder = lab.folder(name)
    target = out(folder)
    if old and Path(target).parent.is_dir():
        old_output(Path(target))
    watch = Watch([folder, lab.root / "in", *watch_extra])
    run = lab.s2_run({k: (v(folder) if callable(v) else v) for k, v in (parameters or {}).items()}, target)
    return refused(run, watch, *needles) if needles else succeeded(run, watch, Path(target), 12)


simple("65", "OUTPUT folder does not exist",
       lambda lab, n: _path_case(lab, n, lambda f: f / "missing" / "sub" / "out.tif", needles=("does not exist",)))


@case("66", "read-only folder (with an old output)")
def c66(lab):
    with read_only_folder(lab.root / "ro" / "c66", lambda f: old_output(f / "out.tif")) as folder:
        if folder is None:
            return Outcome("-", "cannot mount a tmpfs here", "not run")
        watch = Watch([folder, lab.root / "in"])
        return refused(lab.s2_run({}, folder / "out.tif"), watch, "read-only")


@case("67", "REPORT in a read-only folder")
def c67(lab):
    with read_only_folder(lab.root / "ro" / "c67", lambda f: None) as ro:
        if ro is None:
            return Outcome("-", "cannot mount a tmpfs here", "not run")
        outcome = _path_case(lab, "c67", lambda f: f / "out.tif", {"REPORT": ro / "r.html", "ITERATIONS": 3000},
                             needles=("cannot write REPORT",))
    if outcome.seconds > 60:
        outcome.verdict = "DEFECT: failed only after training"
    return outcome


@case("68", "REPORT folder does not exist")
def c68(lab):
    outcome = _path_case(lab, "c68", lambda f: f / "out.tif", {"REPORT": lambda f: f / "missing" / "r.html",
                                                               "ITERATIONS": 3000}, needles=("does not exist",))
    if outcome.seconds > 60:
        outcome.verdict = "DEFECT: failed only after training"
    return outcome


simple("69", "report failure with an existing output",
       lambda lab, n: _path_case(lab, n, lambda f: f / "out.tif", {"REPORT": lambda f: f / "missing" / "r.html"},
                                 needles=("cannot write REPORT",), old=True))


@case("70", "spaces, non-ASCII and <b> in the paths")
def c70(lab):
    folder = lab.folder("c70") / "dossier été 東京 <b>"
    folder.mkdir()
    out, report = folder / "sortie finale ü.tif", folder / "rapport <b>.html"
    watch = Watch([folder, lab.root / "in"], {report.name})
    run = lab.s2_run({"REPORT": report}, out)
    return succeeded(run, watch, out, 12, lambda: "" if "&lt;b&gt;" in report.read_text(encoding="utf-8")
                     else "path not escaped in the report")


@case("71", "OUTPUT .png/.jpg/.img/.vrt/.nc/.html/no extension")
def c71(lab):
    names = ("out.png", "out.jpg", "out.img", "out.vrt", "out.nc", "out.html", "out")
    return combined(*(_path_case(lab, f"c71_{i}", lambda f, n=name: f / n, needles=("written as a GeoTIFF only",))
                      for i, name in enumerate(names)))


def _collision(lab, name, parameters, needles) -> Outcome:
    """A run whose OUTPUT (default: a fresh out.tif) or REPORT (callables of the case's own inputs, which a
    defect may destroy) is another path of the run."""
    folder = lab.folder(name)
    paths = lab.band_rasters(name, lab.scene)
    watch = Watch([folder, lab.root / "in"])
    chosen = {k: (v(paths) if callable(v) else v) for k, v in parameters.items()}
    out = chosen.pop("OUTPUT", folder / "out.tif")
    return refused(lab.s2_run(chosen, out, paths), watch, *needles)


simple("72", "OUTPUT = INPUT_10M",
       lambda lab, n: _collision(lab, n, {"OUTPUT": lambda p: p["10m"]}, ("is the input INPUT_10M",)))


simple("73", "OUTPUT = INPUT_20M",
       lambda lab, n: _collision(lab, n, {"OUTPUT": lambda p: p["20m"]}, ("is the input INPUT_20M",)))


@case("74", "OUTPUT = the pansharpening MS input")
def c74(lab):
    folder = lab.folder("c74")
    paths = _pan(lab, "c74")
    watch = Watch([folder, lab.root / "in"])
    return refused(lab.qgis("pansharpening", {**pf.layers(paths), **FAST, "OUTPUT": paths["ms"]}), watch,
                   "is the input MS")


@case("75", "OUTPUT = REPORT")
def c75(lab):
    folder = lab.folder("c75")
    return _collision(lab, "c75", {"OUTPUT": folder / "same.tif", "REPORT": folder / "same.tif"},
                      ("are the same file",))


simple("76", "REPORT = an input",
       lambda lab, n: _collision(lab, n, {"REPORT": lambda p: p["20m"]}, ("is the input INPUT_20M",)))


simple("77", "OUTPUT is an existing folder",
       lambda lab, n: _path_case(lab, n, lambda f: (f / "dir.tif").mkdir() or f / "dir.tif",
                                 needles=("it is a folder",)))


simple("78", "245-character file name",
       lambda lab, n: _path_case(lab, n, lambda f: f / ("a" * 245 + ".tif")))


@case("79", "existing output is immutable (chattr +i)")
def c79(lab):
    folder = lab.folder("c79")
    out = old_output(folder / "out.tif")
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode:
        return Outcome("-", "chattr +i is not available here", "not run")
    try:
        watch = Watch([folder, lab.root / "in"])
        outcome = refused(lab.s2_run({"ITERATIONS": 3000}, out), watch, "immutable")
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=False)
    if outcome.seconds > 60:
        outcome.verdict = "DEFECT: failed only after training"
    return outcome


simple("80", "existing output, failure at the parameter check",
       lambda lab, n: _path_case(lab, n, lambda f: f / "out.tif", {"ITERATIONS": -1}, needles=("ITERATIONS",),
                                 old=True))


@case("81", "existing output, input error")
def c81(lab):
    paths = lab.band_rasters("c81", lab.scene, shifts={"20m": (5.0, 0.0)})
    folder = lab.folder("c81")
    out = old_output(folder / "out.tif")
    watch = Watch([folder, lab.root / "in"])
    return refused(lab.s2_run({}, out, paths), watch, "not aligned")


simple("82", "existing output, area too small (36 px with 60 m)",
       lambda lab, n: _path_case(lab, n, lambda f: f / "out.tif",
                                 {"EXTENT": extent(ORIGIN[0], ORIGIN[0] + 360, ORIGIN[1] - 360, ORIGIN[1])},
                                 needles=("48×48 10 m pixels",), old=True))


# -------------------------------------------------------------------------------------------- 3. faults
def _signal_case(lab, name, signum, parameters, expect_temporary: bool = False) -> Outcome:
    """A run to a folder holding a valid old output, stopped by `signum` once it writes (and 2 s into training)."""
    folder = lab.folder(name)
    out = old_output(folder / "out.tif")
    watch = Watch([folder, lab.root / "in"])
    process = lab.popen("s2_sharpening", {"INPUT_10M": lab.s2["10m"], "INPUT_20M": lab.s2["20m"],
                                          "INPUT_60M": lab.s2["60m"], **FAST, **parameters, "OUTPUT": out})
    try:
        if not wait_for_temporary(folder, process):
            text = process.communicate(timeout=60)[0]
            return Outcome(process.returncode, excerpt(text), "DEFECT: the run never started writing")
        time.sleep(2.0)
        sent = time.perf_counter()
        process.send_signal(signum)
        text = process.communicate(timeout=120)[0]
        stop_seconds = time.perf_counter() - sent
    finally:
        process.kill()
    leftovers, lost, new = watch.report()
    temporary = any(TEMP_MARK in p.name for p in new)
    problems = [] if lost == "no" else ["data lost"]
    if signum != signal.SIGKILL:
        if process.returncode == 0:
            problems.append("exit code 0")
        if temporary:
            problems.append("temporary file left")
    elif not expect_temporary and temporary:
        problems.append("temporary file left")
    message = "(killed: no program can say anything)" if signum == signal.SIGKILL else \
        excerpt(text, ("Cancelled", "Stopped by SIGTERM"))
    return Outcome(process.returncode, message,
                   "ok" if not problems else "DEFECT: " + "; ".join(problems), stop_seconds, leftovers, lost)


TRAINING_LONG = {"ITERATIONS": 3000}
WRITING_TILES = {"TRAINING": "tiles", "TILE_SIZE": 36, "TILE_OVERLAP": 12, "ITERATIONS": 200}


@case("83", "SIGINT during training")
def c83(lab):
    return _signal_case(lab, "c83", signal.SIGINT, TRAINING_LONG)


@case("84", "SIGINT during the tiles")
def c84(lab):
    return _signal_case(lab, "c84", signal.SIGINT, WRITING_TILES)


@case("85", "SIGKILL during training")
def c85(lab):
    return _signal_case(lab, "c85", signal.SIGKILL, TRAINING_LONG, expect_temporary=True)


@case("86", "SIGKILL during the tiles")
def c86(lab):
    return _signal_case(lab, "c86", signal.SIGKILL, WRITING_TILES, expect_temporary=True)


@case("87", "SIGTERM during training")
def c87(lab):
    outcome = _signal_case(lab, "c87", signal.SIGTERM, TRAINING_LONG)
    if outcome.verdict == "ok" and "Stopped by SIGTERM" not in outcome.message:
        outcome.verdict = "DEFECT: not handled as a cancel"
    return outcome


@case("88", "re-run after a killed run")
def c88(lab):
    folder = lab.root / "cases" / "c86"
    if not temporaries(folder):
        c86(lab)
    left = temporaries(folder)
    watch = Watch([folder, lab.root / "in"])
    run = lab.s2_run({}, folder / "out.tif")
    outcome = succeeded(run, watch, folder / "out.tif", 12)
    if temporaries(folder):
        outcome.verdict = f"DEFECT: {temporaries(folder)} still there"
    outcome.leftovers = "none" if not temporaries(folder) else ", ".join(temporaries(folder))
    removed = [name for name in left if name not in temporaries(folder)]
    outcome.message = f"removed {', '.join(removed) or 'nothing'}; {outcome.message}"
    return outcome


@case("89", "full disk (57 KiB free, a valid old output)")
def c89(lab):
    with mounted_tmpfs(lab.root / "disk89", 512) as disk:
        if disk is None:
            return Outcome("-", "cannot mount a tmpfs here (needs root)", "not run")
        out = old_output(disk / "out.tif")
        fill_disk(disk, 57)
        watch = Watch([disk, lab.root / "in"])
        return refused(lab.s2_run({}, out), watch, "free")


@case("90", "two runs at once, same OUTPUT and REPORT")
def c90(lab):
    folder = lab.folder("c90")
    out, report = folder / "out.tif", folder / "report.html"
    base = {"INPUT_10M": lab.s2["10m"], "INPUT_20M": lab.s2["20m"], "INPUT_60M": lab.s2["60m"], **FAST,
            "OUTPUT": out, "REPORT": report}
    a = lab.popen("s2_sharpening", {**base, "ITERATIONS": 40, "SEED": 1})
    time.sleep(1.0)
    b = lab.popen("s2_sharpening", {**base, "ITERATIONS": 20, "SEED": 2})
    texts = [p.communicate(timeout=600)[0] for p in (a, b)]
    problems = [f"exit {p.returncode}" for p in (a, b) if p.returncode != 0]
    problems += [valid_output(out, 12)] if valid_output(out, 12) else []
    problems += ["temporary file left"] if temporaries(folder) else []
    seed = gdal.Open(str(out)).GetMetadataItem("SEED") if out.exists() else "?"
    return Outcome(f"{a.returncode}/{b.returncode}", f"both done; the file holds seed {seed}; "
                   f"{excerpt(texts[0], ('Done in',))}", "ok" if not problems else "DEFECT: " + "; ".join(problems))


# ---------------------------------------------------------------------------------- 4. pair algorithms
def _pair_case(lab, name, algorithm, parameters, needles=(), bands=None) -> Outcome:
    folder = lab.folder(name)
    out = folder / "out.tif"
    watch = Watch([folder, lab.root / "in"])
    run = lab.qgis(algorithm, {**FAST, **parameters, "OUTPUT": out})
    return refused(run, watch, *needles) if needles else succeeded(run, watch, out, bands)


def _hsms(lab, name, **options) -> dict:
    return pf.write_hs_ms(lab.root / "in" / name, lab.hsms_scene, ms_pixel=30.0, **options)


def _pan(lab, name, **options) -> dict:
    return pf.write_pan_ms(lab.root / "in" / name, lab.pan_scene, **options)


@case("91", "HS+MS baseline (+ REPORT)")
def c91(lab):
    folder = lab.folder("c91")
    out, report = folder / "out.tif", folder / "report.html"
    watch = Watch([folder, lab.root / "in"], {"report.html"})
    run = lab.qgis("hsms_fusion", {**pf.layers(lab.hsms), **FAST, "OUTPUT": out, "REPORT": report})
    return succeeded(run, watch, out, 16, lambda: "" if report.is_file() else "no report")


simple("92", "HS+MS CRS mismatch",
       lambda lab, n: _pair_case(lab, n, "hsms_fusion", pf.layers(_hsms(lab, n, hs_epsg=32632)), ("different CRS",)))


simple("93", "HS+MS non-integer ratio",
       lambda lab, n: _pair_case(lab, n, "hsms_fusion", pf.layers(_hsms(lab, n, hs_pixel=75.0)), ("not an integer",)))


simple("94", "HS and MS swapped",
       lambda lab, n: _pair_case(lab, n, "hsms_fusion", {"HS": lab.hsms["ms"], "MS": lab.hsms["hs"]},
                                  ("look swapped", "other way round")))


@case("95", "NaN / ±inf in HS")
def c95(lab):
    scene = dict(lab.hsms_scene, hs=lab.hsms_scene["hs"].copy())
    scene["hs"][0, 2, 2], scene["hs"][3, 5, 5], scene["hs"][5, 9, 9] = np.nan, np.inf, -np.inf
    paths = pf.write_hs_ms(lab.root / "in" / "c95", scene, ms_pixel=30.0)
    return _pair_case(lab, "c95", "hsms_fusion", pf.layers(paths), bands=16)


@case("96", "tiny HS+MS (HS 2×2, MS 6×6)")
def c96(lab):
    scene = pf.synthetic_hs_ms(6, ratio=3, hs_bands=16)
    paths = pf.write_hs_ms(lab.root / "in" / "c96", scene, ms_pixel=30.0)
    return _pair_case(lab, "c96", "hsms_fusion", pf.layers(paths), ("smaller than",))


simple("97", "NOISE_SIGMA with 3 parts",
       lambda lab, n: _pair_case(lab, n, "hsms_fusion", {**pf.layers(lab.hsms), "NOISE_SIGMA": "0.01;0.01;3"},
                                 ("more than two",)))


simple("98", "pansharpening baseline",
       lambda lab, n: _pair_case(lab, n, "pansharpening", pf.layers(lab.pan), bands=8))


@case("99", "3-band PAN")
def c99(lab):
    paths = _pan(lab, "c99", pan=np.concatenate([lab.pan_scene["pan"]] * 3))
    return _pair_case(lab, "c99", "pansharpening", pf.layers(paths), ("exactly one",))


@case("100", "NaN / inf in a float MS")
def c100(lab):
    scene = dict(lab.pan_scene, ms=lab.pan_scene["ms"].astype(np.float32))
    scene["ms"][0, 3, 3], scene["ms"][2, 10, 10] = np.nan, np.inf
    paths = pf.write_pan_ms(lab.root / "in" / "c100", scene, gdal_type=gdal.GDT_Float32)
    return _pair_case(lab, "c100", "pansharpening", pf.layers(paths), bands=8)


simple("101", "PAN_WEIGHTS with the wrong count",
       lambda lab, n: _pair_case(lab, n, "pansharpening", {**pf.layers(lab.pan), "PAN_WEIGHTS": "1,2"}, ("give 8",)))


simple("102", "SENSOR=ikonos with 8 MS bands",
       lambda lab, n: _pair_case(lab, n, "pansharpening", {**pf.layers(lab.pan), "SENSOR": "ikonos"}, ("IKONOS",)))


# ------------------------------------------------------------------------------------------- 5. batch
def _manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("name,product,bands_10m,bands_20m,bands_60m\n" + "\n".join(rows) + "\n")
    return path


@case("103", "manifest with a missing, corrupt, misaligned scene and a missing product (+1 good)")
def c103(lab):
    folder = lab.folder("c103")
    s2 = lab.s2
    corrupt = lab.band_rasters("c103_corrupt", lab.scene)
    Path(corrupt["20m"]).write_bytes(b"garbage" * 100)
    shifted = lab.band_rasters("c103_shift", lab.scene, shifts={"20m": (5.0, 0.0)})
    manifest = _manifest(folder / "m1.csv", [
        f"good,,{s2['10m']},{s2['20m']},{s2['60m']}", f"missing,,{folder / 'gone_10m.tif'},{s2['20m']},",
        f"corrupt,,{corrupt['10m']},{corrupt['20m']},", f"noproduct,{folder / 'nothere.SAFE'},,,",
        f"shifted,,{shifted['10m']},{shifted['20m']},"])
    watch = Watch([lab.root / "in"])
    run = lab.batch([str(manifest), "-o", str(folder / "out1"), "--iterations", "5", "--workers", "1",
                     "--device", "cpu"])
    _, lost, _ = watch.report()
    text = run.text
    ok = (run.rc == 1 and "1 done, 0 skipped (finished earlier), 4 failed" in text and lost == "no"
          and not valid_output(folder / "out1" / "good_sharpened.tif", 12) and not temporaries(folder / "out1"))
    return Outcome(run.rc, excerpt(text, ("done,",)), "ok" if ok else "DEFECT: " + excerpt(text), run.seconds,
                   ", ".join(temporaries(folder / "out1")) or "none", lost)


def _batch_popen(lab, manifest: Path, out: Path, iterations: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sure_fusion_qgis.batch", str(manifest), "-o", str(out),
                             "--iterations", str(iterations), "--device", "cpu", "--workers", "1", "--quiet"],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@case("104", "batch killed (SIGKILL) after scene 1, then re-run")
def c104(lab):
    folder = lab.folder("c104")
    scenes = [lab.band_rasters(f"c104_{k}", s2_fixtures.synthetic_scene(48, seed=k)) for k in (1, 2, 3)]
    manifest = _manifest(folder / "m2.csv", [f"s{k},,{p['10m']},{p['20m']},{p['60m']}"
                                             for k, p in enumerate(scenes, start=1)])
    out = folder / "out"
    process = _batch_popen(lab, manifest, out, 60)
    deadline = time.monotonic() + 400
    while process.poll() is None and time.monotonic() < deadline:
        if any(p.name.endswith("_sharpened.tif") for p in (out.iterdir() if out.is_dir() else [])):
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    first = sorted(p.name for p in out.iterdir() if p.name.endswith("_sharpened.tif"))
    digests = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in first}
    _wait_until_nobody_writes(out)               # the orphaned LocalCluster's nanny and worker exit on their own
    run = lab.batch([str(manifest), "-o", str(out), "--iterations", "60", "--workers", "1", "--device", "cpu"])
    done = all(not valid_output(out / f"s{k}_sharpened.tif", 12) for k in (1, 2, 3))
    kept = all(hashlib.sha256((out / n).read_bytes()).hexdigest() == d for n, d in digests.items())
    ok = process.returncode == -signal.SIGKILL and run.rc == 0 and done and kept and not temporaries(out)
    return Outcome(f"137 → {run.rc}", excerpt(run.text, ("finished earlier",)),
                   "ok" if ok else f"DEFECT: done={done} kept={kept} temporaries={temporaries(out)}", run.seconds,
                   ", ".join(temporaries(out)) or "none", "no" if kept else "finished output changed")


def _wait_until_nobody_writes(folder: Path, seconds: float = 90) -> None:
    """Until no process has a file in `folder` open (the workers a killed client leaves exit by themselves)."""
    import psutil

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy = False
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if any(str(folder) in f.path for f in process.open_files()):
                    busy = True
                    break
        if not busy:
            return
        time.sleep(1.0)


@case("105", "batch SIGTERM during a scene")
def c105(lab):
    folder = lab.folder("c105")
    manifest = _manifest(folder / "m.csv", [f"s1,,{lab.s2['10m']},{lab.s2['20m']},{lab.s2['60m']}"])
    out = folder / "out"
    process = _batch_popen(lab, manifest, out, 100000)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not (out.is_dir() and temporaries(out)):
        time.sleep(0.2)
    if out.is_dir():
        wait_for_temporary(out, process)
    process.send_signal(signal.SIGTERM)
    text = process.communicate(timeout=120)[0]
    ok = process.returncode == 143 and not temporaries(out) and "interrupted" in text
    return Outcome(process.returncode, excerpt(text, ("interrupted",)),
                   "ok" if ok else f"DEFECT: exit {process.returncode}, temporaries {temporaries(out)}", 0.0,
                   ", ".join(temporaries(out)) or "none")


@case("106", "truncated finished output + re-run with other settings")
def c106(lab):
    folder = lab.folder("c106")
    manifest = _manifest(folder / "m.csv", [f"s1,,{lab.s2['10m']},{lab.s2['20m']},{lab.s2['60m']}",
                                            f"s2,,{lab.s2['10m']},{lab.s2['20m']},"])
    out = folder / "out"
    first = lab.batch([str(manifest), "-o", str(out), "--iterations", "5", "--workers", "1", "--device", "cpu"])
    target = out / "s2_sharpened.tif"
    target.write_bytes(target.read_bytes()[:20000])
    digest = hashlib.sha256((out / "s1_sharpened.tif").read_bytes()).hexdigest()
    run = lab.batch([str(manifest), "-o", str(out), "--iterations", "3", "--workers", "1", "--device", "cpu"])
    ok = (first.rc == 0 and run.rc == 0 and not valid_output(target, 10) and "use --overwrite" in run.text
          and hashlib.sha256((out / "s1_sharpened.tif").read_bytes()).hexdigest() == digest)
    return Outcome(run.rc, excerpt(run.text, ("use --overwrite",)), "ok" if ok else "DEFECT: " + excerpt(run.text),
                   run.seconds, ", ".join(temporaries(out)) or "none")


@case("107", "batch full disk (57 KiB free), then a re-run")
def c107(lab):
    with mounted_tmpfs(lab.root / "disk107", 512) as disk:
        if disk is None:
            return Outcome("-", "cannot mount a tmpfs here (needs root)", "not run")
        manifest = _manifest(lab.folder("c107") / "m.csv", [f"full,,{lab.s2['10m']},{lab.s2['20m']},{lab.s2['60m']}"])
        (disk / "out").mkdir()
        fill_disk(disk, 57)
        runs = [lab.batch([str(manifest), "-o", str(disk / "out"), "--iterations", "3", "--workers", "1",
                           "--device", "cpu"]) for _ in range(2)]
        target = disk / "out" / "full_sharpened.tif"
        ok = all(r.rc == 1 and "1 failed" in r.text for r in runs) and not target.exists() and \
            not temporaries(disk / "out")
        return Outcome("/".join(str(r.rc) for r in runs), excerpt(runs[-1].text, ("free", "cannot write")),
                       "ok" if ok else "DEFECT: " + excerpt(runs[-1].text), sum(r.seconds for r in runs),
                       ", ".join(p.name for p in (disk / "out").iterdir()) or "none")


@case("108", "batch bad arguments")
def c108(lab):
    folder = lab.folder("c108")
    bad_header = folder / "bad.csv"
    bad_header.write_text("scene,path\na,b\n")
    empty_20 = _manifest(folder / "e.csv", [f"a,,{lab.s2['10m']},,"])
    duplicate = _manifest(folder / "d.csv", [f"a,,{lab.s2['10m']},{lab.s2['20m']},", f"a,,{lab.s2['10m']},"
                                                                                      f"{lab.s2['20m']},"])
    runs = [lab.batch(arguments + ["-o", str(folder / "out")]) for arguments in
            ([str(folder / "missing.csv")], [str(bad_header)], [str(empty_20)], [str(duplicate)],
             [str(duplicate), "--iterations", "-1"])]
    ok = all(r.rc == 2 and "error:" in r.text for r in runs)
    return Outcome(",".join(str(r.rc) for r in runs), excerpt(runs[0].text, ("error:",)),
                   "ok" if ok else "DEFECT: " + "; ".join(excerpt(r.text) for r in runs if r.rc != 2),
                   sum(r.seconds for r in runs))


@case("109", "batch: product folder without MTD")
def c109(lab):
    folder = lab.folder("c109")
    product = folder / "nomtd"
    product.mkdir()
    run = lab.batch([str(product), "-o", str(folder / "out"), "--workers", "1", "--device", "cpu"])
    ok = run.rc == 1 and "without MTD_MSIL1C.xml" in run.text
    return Outcome(run.rc, excerpt(run.text, ("without MTD",)), "ok" if ok else "DEFECT: " + excerpt(run.text),
                   run.seconds)


# -------------------------------------------------------------------------------- 6. security, side effects
@case("110", "no code execution from inputs (grep)")
def c110(lab):
    # (net.eval() is torch's, not Python's)
    unsafe = [r"pickle", r"torch\.load", r"(?<![.\w])eval\(", r"(?<![.\w])exec\(", r"yaml\.", r"np\.load",
              r"allow_pickle", r"os\.system", r"shell=True"]
    processes_and_network = [r"subprocess", r"urllib", r"import requests",
                             r"requests\.(?:get|post|put|request|Session)"]
    pattern = re.compile("|".join(unsafe + processes_and_network))
    # the dependency installer runs pip (subprocess, its own argument lists) and reads package indexes: that is its
    # job, and it takes no layer or file from a run; the rest of the pattern still applies to it
    installer = ROOT / "sure_fusion_qgis" / "dependency_installer.py"
    installer_pattern = re.compile("|".join(unsafe))
    hits = []
    for folder in ("sure_core", "sure_fusion_qgis"):
        for path in (ROOT / folder).rglob("*.py"):
            search = (installer_pattern if path == installer else pattern).search
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if search(line) and not line.lstrip().startswith("#"):
                    hits.append(f"{path.relative_to(ROOT)}:{number}")
    return Outcome("-", ", ".join(hits) or "none in sure_core or sure_fusion_qgis", "ok" if not hits else
                   "DEFECT: " + ", ".join(hits))


@case("111", "HTML escaping in the reports (<script> in descriptions and names)")
def c111(lab):
    folder = lab.folder("c111")
    scene = lab.hsms_scene
    hs = pf.write_raster(lab.root / "in" / "<img src=x onerror=alert(1)>.tif", scene["hs"], 90.0,
                         descriptions=[f"<script>alert({k})</script>" for k in range(scene["hs"].shape[0])])
    report = folder / "r.html"
    run = lab.qgis("hsms_fusion", {"HS": hs, "MS": lab.hsms["ms"], **FAST, "OUTPUT": folder / "o.tif",
                                   "REPORT": report})
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    raw = text.count("<script>") + text.count("<img src=x")
    ok = run.rc == 0 and text and raw == 0 and "&lt;script&gt;" in text and "&lt;img src=x" in text
    return Outcome(run.rc, f"{raw} raw tags in the report", "ok" if ok else "DEFECT: report not escaped", run.seconds)


def _network_calls(command: list[str], env: dict) -> tuple[int, list[str]]:
    trace = Path(tempfile.mkstemp(prefix="qa_strace_")[1])
    done = subprocess.run(["strace", "-f", "-e", "trace=connect,sendto,bind", "-o", str(trace), *command], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    trace.unlink()
    remote = [line for line in lines if "127.0.0.1" not in line and "0.0.0.0" not in line and "::1" not in line]
    return done.returncode, remote


@case("112", "no network at run time (plugin, strace)")
def c112(lab):
    if shutil.which("strace") is None:
        return Outcome("-", "strace is not installed", "not run")
    folder = lab.folder("c112")
    rc, remote = _network_calls([QGIS_PROCESS, "run", "sure_fusion:s2_sharpening", "--",
                                 *lab.arguments({"INPUT_10M": lab.s2["10m"], "INPUT_20M": lab.s2["20m"], **FAST,
                                                 "OUTPUT": folder / "o.tif"})], lab.env)
    return Outcome(rc, f"{len(remote)} non-local AF_INET/AF_INET6 calls", "ok" if rc == 0 and not remote else
                   "DEFECT: " + "; ".join(remote[:3]))


@case("113", "no network at run time (batch, strace)")
def c113(lab):
    if shutil.which("strace") is None:
        return Outcome("-", "strace is not installed", "not run")
    folder = lab.folder("c113")
    manifest = _manifest(folder / "m.csv", [f"s1,,{lab.s2['10m']},{lab.s2['20m']},"])
    rc, remote = _network_calls([sys.executable, "-m", "sure_fusion_qgis.batch", str(manifest), "-o",
                                 str(folder / "out"), "--iterations", "3", "--workers", "1", "--device", "cpu"],
                                {**os.environ, "OMP_NUM_THREADS": "1"})
    return Outcome(rc, f"{len(remote)} non-local AF_INET/AF_INET6 calls (the Dask scheduler has no authentication: "
                       f"informational)", "ok" if rc == 0 and not remote else "DEFECT: " + "; ".join(remote[:3]))


@case("114", "side files beside the inputs")
def c114(lab):
    side = sorted(p.name for p in (lab.root / "in").rglob("*.aux.xml"))
    return Outcome("-", f"{len(side)} .aux.xml files beside inputs (QGIS's PAM statistics when it loads a layer, "
                        f"not the plugin's)", "info")


# ------------------------------------------------------------------------------------------------- main
def selected(spec: str | None) -> list[tuple[str, str, Callable]]:
    if not spec:
        return CASES
    wanted = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        wanted |= {str(n) for n in range(int(low), int(high or low) + 1)}
    return [c for c in CASES if c[0] in wanted]


def markdown(rows: list[tuple[str, str, Outcome]]) -> str:
    lines = ["| # | case | rc | message the user sees (abridged) | t | leftovers | data lost? | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for number, title, o in rows:
        message = o.message.replace("|", "\\|")
        lines.append(f"| {number} | {title} | {o.rc} | {message} | {o.seconds:.1f} s | {o.leftovers} | "
                     f"{o.data_lost} | {o.verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="numbers and ranges, e.g. 1-30,72 (default: all 114)")
    parser.add_argument("--workdir", help="where inputs and outputs go (default: a temporary folder, removed)")
    parser.add_argument("--report", default=str(ROOT / "out" / "qa" / "qa_report.md"))
    args = parser.parse_args(argv)
    if not os.access(QGIS_PROCESS, os.X_OK):
        sys.exit(f"{QGIS_PROCESS} is missing: install QGIS (make setup)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cases = selected(args.cases)
    with contextlib.ExitStack() as stack:
        root = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="sure_fusion_qa_")))
        root.mkdir(parents=True, exist_ok=True)
        lab = Lab(root)
        rows, start = [], time.perf_counter()
        for number, title, function in cases:
            began = time.perf_counter()
            try:
                outcome = function(lab)
            except Exception as e:  # noqa: BLE001  (a broken case is reported, the others still run)
                outcome = Outcome("-", f"{type(e).__name__}: {e}", "DEFECT: the case itself failed")
            if not outcome.seconds:
                outcome.seconds = time.perf_counter() - began
            rows.append((number, title, outcome))
            print(f"#{number:>3} {outcome.verdict:<10.60} {title}", flush=True)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    counts = {kind: sum(o.verdict.startswith(kind) for _, _, o in rows) for kind in ("ok", "DEFECT", "not run", "info")}
    summary = (f"{len(rows)} cases in {(time.perf_counter() - start) / 60:.1f} min: {counts['ok']} ok, "
               f"{counts['DEFECT']} defects, {counts['not run']} not run, {counts['info']} informational")
    report.write_text(f"# SURE Fusion hostile-input QA (tools/qa_hostile.py)\n\n{summary}\n\n{markdown(rows)}\n",
                      encoding="utf-8")
    print(summary)
    print(f"table: {report}")
    return 1 if counts["DEFECT"] else 0


if __name__ == "__main__":
    sys.exit(main())
