"""Raster pairs for the HS+MS and pansharpening tests: synthetic scenes and small crops of the shared data.

Synthetic scenes are built at the high resolution and averaged over ratio×ratio blocks for the
low-resolution raster, so the two grids agree exactly (the 'area' pixel geometry of georeferenced rasters).
Real crops come from ../shared/data (never copied into the repository) and skip when it is absent.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from sure_fusion_qgis import raster_writer

EPSG = 32631
ORIGIN = (500000.0, 4500000.0)       # UTM 31N, upper-left corner of both grids
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not available (the shared data folder sits beside the repository)")
    return path


def write_raster(path: Path, data: np.ndarray, pixel: float, *, origin=ORIGIN, epsg: int = EPSG,
                 descriptions=None, nodata=None, gdal_type=gdal.GDT_Float32, band_metadata=None,
                 envi: dict | None = None, pixel_y: float | None = None) -> str:
    """A GeoTIFF of (bands, rows, cols) `data` with square (or `pixel_y`) pixels, optional band descriptions,
    nodata, per-band metadata items and ENVI-domain dataset items."""
    gt = (origin[0], pixel, 0.0, origin[1], 0.0, -(pixel_y or pixel))
    raster_writer.write_simple_geotiff(path, np.asarray(data), gt, raster_writer.epsg_wkt(epsg), descriptions,
                                       nodata=nodata, gdal_type=gdal_type)
    if band_metadata or envi:
        ds = gdal.Open(str(path), gdal.GA_Update)
        for i, items in enumerate(band_metadata or [], start=1):
            ds.GetRasterBand(i).SetMetadata({k: str(v) for k, v in items.items()})
        if envi:
            ds.SetMetadata({k: str(v) for k, v in envi.items()}, "ENVI")
        ds = None
    return str(path)


def block_mean(image: np.ndarray, ratio: int) -> np.ndarray:
    b, h, w = image.shape
    return image.reshape(b, h // ratio, ratio, w // ratio, ratio).mean(axis=(2, 4))


def gaussian_srf(centres: np.ndarray, fwhm: np.ndarray, ms_centres, ms_fwhm) -> np.ndarray:
    """(G × L) Gaussian band overlaps, rows summing to 1 (the test's own, independent of the core's)."""
    s_hs = np.asarray(fwhm) / 2.3548
    s_ms = np.asarray(ms_fwhm)[:, None] / 2.3548
    weights = np.exp(-0.5 * (np.asarray(ms_centres)[:, None] - centres[None, :]) ** 2 / (s_ms ** 2 + s_hs ** 2))
    return weights / weights.sum(axis=1, keepdims=True)


def synthetic_hs_ms(size: int = 48, ratio: int = 3, hs_bands: int = 24, seed: int = 0) -> dict:
    """A scene of three materials with smooth spectra over 420–980 nm, as an HS image (hs_bands bands at
    ratio·pixel) and a 4-band MS image (blue, green, red, NIR) seen through Gaussian responses."""
    rng = np.random.default_rng(seed)
    wavelengths = np.linspace(420.0, 980.0, hs_bands)
    fwhm = np.full(hs_bands, wavelengths[1] - wavelengths[0])
    materials = np.stack([0.05 + 0.4 / (1 + np.exp(-(wavelengths - 710) / 15)),        # vegetation-like
                          0.10 + 0.15 * (wavelengths - 420) / 560,                     # soil-like
                          0.30 - 0.2 * (wavelengths - 420) / 560])                     # water/roof-like
    fields = rng.random((3, size // 6, size // 6))
    abundances = np.kron(fields, np.ones((6, 6)))[:, :size, :size] + 0.05 * rng.random((3, size, size))
    abundances /= abundances.sum(axis=0, keepdims=True)
    truth = np.einsum("ml,mhw->lhw", materials, abundances)
    ms_centres, ms_fwhm = np.array([490.0, 560.0, 665.0, 842.0]), np.array([65.0, 35.0, 30.0, 115.0])
    ms = np.einsum("gl,lhw->ghw", gaussian_srf(wavelengths, fwhm, ms_centres, ms_fwhm), truth)
    ms = ms + 0.002 * rng.standard_normal(ms.shape)
    hs = block_mean(truth, ratio) + 0.002 * rng.standard_normal((hs_bands, size // ratio, size // ratio))
    return {"hs": hs, "ms": ms, "truth": truth, "ratio": ratio, "wavelengths": wavelengths, "fwhm": fwhm,
            "ms_wavelengths": ms_centres, "ms_fwhm": ms_fwhm}


def synthetic_pan_ms(size: int = 64, ratio: int = 4, bands: int = 4, seed: int = 0) -> dict:
    """A textured scene as an MS image (`bands` bands at ratio·pixel) and a PAN image (the band mean), in DN."""
    rng = np.random.default_rng(seed)
    spectrum = np.linspace(0.8, 1.3, bands)
    field = np.kron(rng.random((size // 8, size // 8)), np.ones((8, 8))) + 0.2 * rng.random((size, size))
    truth = 400.0 * spectrum[:, None, None] * (0.5 + field)[None] + 20.0 * rng.random((bands, size, size))
    pan = truth.mean(axis=0, keepdims=True) + 2.0 * rng.standard_normal((1, size, size))
    ms = block_mean(truth, ratio) + 2.0 * rng.standard_normal((bands, size // ratio, size // ratio))
    return {"ms": np.round(ms), "pan": np.round(pan), "truth": truth, "ratio": ratio}


def write_hs_ms(folder: Path, scene: dict, *, ms_pixel: float = 10.0, hs_metadata: str = "band",
                nodata=None, hs_origin=ORIGIN, ms_origin=ORIGIN, hs_epsg: int = EPSG,
                ms_epsg: int = EPSG, hs_pixel: float | None = None, ms_descriptions=None) -> dict[str, str]:
    """hs.tif and ms.tif; `hs_metadata` puts the HS wavelengths in 'band' metadata, the 'envi' domain
    (in µm), or 'none'."""
    folder.mkdir(parents=True, exist_ok=True)
    hs_pixel = hs_pixel or ms_pixel * scene["ratio"]
    n = scene["hs"].shape[0]
    band_metadata, envi = None, None
    if hs_metadata == "band":
        band_metadata = [{"wavelength": f"{w:.2f}", "fwhm": f"{f:.2f}", "wavelength_units": "nm"}
                         for w, f in zip(scene["wavelengths"], scene["fwhm"])]
    elif hs_metadata == "envi":
        envi = {"wavelength": "{" + ", ".join(f"{w / 1e3:.5f}" for w in scene["wavelengths"]) + "}",
                "fwhm": "{" + ", ".join(f"{f / 1e3:.5f}" for f in scene["fwhm"]) + "}",
                "wavelength_units": "Micrometers"}
    descriptions = [f"HS {k + 1:03d}" for k in range(n)]
    hs = write_raster(folder / "hs.tif", scene["hs"], hs_pixel, origin=hs_origin, epsg=hs_epsg,
                      descriptions=descriptions, nodata=nodata, band_metadata=band_metadata, envi=envi)
    ms = write_raster(folder / "ms.tif", scene["ms"], ms_pixel, origin=ms_origin, epsg=ms_epsg,
                      descriptions=ms_descriptions or ["B2", "B3", "B4", "B8"], nodata=nodata)
    return {"hs": hs, "ms": ms}


def write_pan_ms(folder: Path, scene: dict, *, pan_pixel: float = 0.5, ms_pixel: float | None = None,
                 nodata=None, pan=None, gdal_type=gdal.GDT_UInt16, pan_origin=ORIGIN, ms_origin=ORIGIN,
                 pan_epsg: int = EPSG, ms_epsg: int = EPSG, ms_descriptions=None, pan_gdal_type=None,
                 pan_nodata=None) -> dict[str, str]:
    """ms.tif and pan.tif (`pan` replaces the scene's PAN, e.g. with several bands)."""
    folder.mkdir(parents=True, exist_ok=True)
    ms_pixel = ms_pixel or pan_pixel * scene["ratio"]
    bands = scene["ms"].shape[0]
    descriptions = ms_descriptions or ["blue", "green", "red", "nir", "b5", "b6", "b7", "b8"][:bands]
    ms = write_raster(folder / "ms.tif", scene["ms"], ms_pixel, origin=ms_origin, epsg=ms_epsg,
                      descriptions=descriptions, nodata=nodata, gdal_type=gdal_type)
    pan = write_raster(folder / "pan.tif", scene["pan"] if pan is None else pan, pan_pixel, origin=pan_origin,
                       epsg=pan_epsg, descriptions=["pan"] * (1 if pan is None else len(pan)),
                       nodata=nodata if pan_nodata is None else pan_nodata, gdal_type=pan_gdal_type or gdal_type)
    return {"ms": ms, "pan": pan}


def paris_crop(hs_size: int = 12, bands: int = 128, row: int = 24, col: int = 24) -> dict:
    """The real EO-1 pair: Hyperion degraded ×3 (3×3 block mean) as HS, ALI as MS, a crop of `hs_size` HS px."""
    from scipy.io import loadmat

    data = loadmat(str(shared("paris_data_hs_ms.mat")))
    hs_full = data["HSim"].transpose(2, 0, 1)[:bands]
    ms_full = data["MSim"].transpose(2, 0, 1)
    size = 3 * hs_size
    truth = hs_full[:, row:row + size, col:col + size]
    return {"hs": block_mean(truth, 3), "ms": ms_full[:, row:row + size, col:col + size], "truth": truth, "ratio": 3}


def wv2_crop(ms_size: int = 16, row: int = 100, col: int = 100) -> dict:
    """The real WorldView-2 pair (11-bit DN): MS 8 bands, PAN ×4, a crop of `ms_size` MS px."""
    from scipy.io import loadmat

    data = loadmat(str(shared("imgWV2.mat")))
    ms = data["I_MS"].transpose(2, 0, 1)[:, row:row + ms_size, col:col + ms_size].astype(np.float64)
    pan = data["I_PAN"][None, 4 * row:4 * (row + ms_size), 4 * col:4 * (col + ms_size)].astype(np.float64)
    return {"ms": ms, "pan": pan, "ratio": 4}


# ------------------------------------------------------------------------------------------ running
def run_pair_alg(algorithm: str, parameters: dict, feedback=None):
    """processing.run of a pair algorithm ('hsms_fusion', 'pansharpening') with fast test settings."""
    import processing

    from alg_helpers import FAST

    return processing.run(f"sure_fusion:{algorithm}", {**FAST, **parameters}, feedback=feedback)


def layers(paths: dict[str, str]) -> dict[str, str]:
    """{'hs': …, 'ms': …} or {'ms': …, 'pan': …} → the algorithm's layer parameters (HS, MS, PAN)."""
    return {key.upper(): path for key, path in paths.items()}


def run_with_report(algorithm: str, paths: dict[str, str], folder: Path):
    """(results, output path, report path) of a run on `paths` with an HTML report, written to `folder`."""
    out, report = folder / f"{algorithm}.tif", folder / f"{algorithm}.html"
    return run_pair_alg(algorithm, {**layers(paths), "OUTPUT": str(out), "REPORT": str(report)}), out, report


def assert_fails(algorithm: str, parameters: dict, expected: list[str], out: Path) -> str:
    """The run raises a QgsProcessingException whose message holds every text in `expected` (any case),
    and leaves neither the output nor a partial file behind."""
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as error:
        run_pair_alg(algorithm, {**parameters, "OUTPUT": str(out)})
    message = str(error.value)
    for text in expected:
        assert text.lower() in message.lower(), message
    assert not out.exists()
    if out.parent.is_dir():
        assert [p.name for p in out.parent.iterdir() if "partial" in p.name] == []
    return message


def upsample(image: np.ndarray, ratio: int) -> np.ndarray:
    return np.repeat(np.repeat(image, ratio, axis=1), ratio, axis=2)


@functools.lru_cache(maxsize=1)
def cli_environment() -> dict:
    """The environment of a throw-away QGIS profile with the plugin enabled, made once per test session (each
    qgis_process start costs seconds) and removed at exit."""
    from cli_helpers import cli_env, enable_plugin, require_qgis_process

    require_qgis_process()
    profile = Path(tempfile.mkdtemp(prefix="sure_fusion_profile_"))
    atexit.register(shutil.rmtree, profile, ignore_errors=True)
    env = cli_env(profile)
    enable_plugin(profile, env)
    return env


def cli_run(algorithm: str, parameters: dict) -> tuple[int, dict | None, str]:
    """qgis_process.bin --json run sure_fusion:<algorithm> with fast test settings."""
    from alg_helpers import FAST
    from cli_helpers import run_json

    arguments = [f"{k}={v}" for k, v in {**FAST, **parameters}.items()]
    return run_json([f"sure_fusion:{algorithm}", "--", *arguments], cli_environment())
