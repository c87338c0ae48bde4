"""Build the embedded demo sample: a simulated Sentinel-2 scene, made by this project from typical spectra.

Why simulated: no package on the registries this project uses ships real Sentinel-2 imagery under a licence
that lets us embed it (we searched the package lists for Sentinel-2 sample data). So we draw a small
landscape ourselves and let `sure_core` degrade it exactly as Sentinel-2 would see it:

1. land-cover patches (Voronoi fields, a river, a road, a village) at 5 m, each pixel given the 12-band
   surface-reflectance spectrum of its class (the table below: typical values read off Sentinel-2 L2A
   scenes and standard spectral libraries, rounded — written down here by hand), with field texture;
2. averaged to 10 m: the ground truth (12 bands, 120 × 120 px, 1.2 km × 1.2 km);
3. `sure_core.simulation.simulate_s2` with the 'area' pixel geometry: each 20/60 m band blurred by its MTF
   and decimated by 2 or 6, white noise at 45 dB SNR on every band;
4. written as uint16 reflectance × 10000 GeoTIFFs (like an L2A product without offset) in a fictitious
   UTM 33N position: sample_10m.tif (B2,B3,B4,B8), sample_20m.tif (B5,B6,B7,B8A,B11,B12),
   sample_60m.tif (B1,B9) and truth_10m.tif (all 12 bands at 10 m, for scoring the demo).

Run from the repository root: `.venv/bin/python -m resources.sample.make_sample` (seeded: same files).
The output is public domain / CC0 (see LICENSE-sample.txt); the script is under the project's licence.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sure_core.simulation import simulate_s2
from sure_fusion_qgis import raster_writer

HERE = Path(__file__).resolve().parent

SIZE = 120          # 10 m pixels (a multiple of 6)
SUPER = 2           # drawn at 5 m, averaged to 10 m: mixed pixels at every boundary, as in real scenes
EPSG = 32633
ORIGIN = (500040.0, 5100000.0)
SEED = 20240611

#            B1     B2     B3     B4     B5     B6     B7     B8     B8A    B9     B11    B12
SPECTRA = {
    "water":    [0.060, 0.052, 0.045, 0.028, 0.022, 0.016, 0.014, 0.011, 0.010, 0.006, 0.005, 0.004],
    "forest":   [0.028, 0.030, 0.052, 0.030, 0.085, 0.230, 0.290, 0.320, 0.335, 0.220, 0.160, 0.070],
    "conifer":  [0.024, 0.025, 0.040, 0.022, 0.062, 0.160, 0.200, 0.220, 0.232, 0.150, 0.110, 0.050],
    "crop":     [0.038, 0.040, 0.080, 0.040, 0.125, 0.300, 0.380, 0.420, 0.440, 0.290, 0.220, 0.100],
    "grass":    [0.050, 0.058, 0.090, 0.095, 0.150, 0.205, 0.232, 0.250, 0.268, 0.180, 0.280, 0.180],
    "soil":     [0.095, 0.105, 0.150, 0.200, 0.228, 0.248, 0.265, 0.280, 0.298, 0.200, 0.360, 0.300],
    "roof":     [0.120, 0.130, 0.150, 0.170, 0.182, 0.190, 0.200, 0.210, 0.220, 0.150, 0.245, 0.215],
    "asphalt":  [0.078, 0.080, 0.090, 0.100, 0.108, 0.112, 0.118, 0.122, 0.128, 0.090, 0.140, 0.130],
}
FIELD_CLASSES = ("forest", "conifer", "crop", "crop", "grass", "soil", "grass", "crop")
GROUPS = {"10m": ("B2", "B3", "B4", "B8"), "20m": ("B5", "B6", "B7", "B8A", "B11", "B12"), "60m": ("B1", "B9")}
ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")


def smooth_noise(rng, shape, scale):
    """Gaussian-ish correlated texture by repeated box blurs of white noise (numpy only)."""
    field = rng.standard_normal(shape)
    k = max(1, int(scale))
    for _ in range(3):
        field = (np.cumsum(np.pad(field, ((k, k), (0, 0)), mode="wrap"), axis=0)[2 * k:] -
                 np.cumsum(np.pad(field, ((k, k), (0, 0)), mode="wrap"), axis=0)[:-2 * k]) / (2 * k)
        field = (np.cumsum(np.pad(field, ((0, 0), (k, k)), mode="wrap"), axis=1)[:, 2 * k:] -
                 np.cumsum(np.pad(field, ((0, 0), (k, k)), mode="wrap"), axis=1)[:, :-2 * k]) / (2 * k)
    return field / (field.std() + 1e-12)


def landscape(rng) -> np.ndarray:
    n = SIZE * SUPER
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    # fields: a Voronoi partition, slightly warped so borders are not perfectly straight
    seeds = rng.uniform(0, n, size=(26, 2))
    wx, wy = 6 * smooth_noise(rng, (n, n), 12), 6 * smooth_noise(rng, (n, n), 12)
    d = (xx[None] + wx - seeds[:, 0, None, None]) ** 2 + (yy[None] + wy - seeds[:, 1, None, None]) ** 2
    field_id = d.argmin(axis=0)
    classes = np.array([FIELD_CLASSES[i % len(FIELD_CLASSES)] for i in rng.permutation(len(seeds))])
    label = classes[field_id].astype(object)
    # a river meandering from top to bottom, a straight road, a village of small roofs
    river_x = 0.3 * n + 0.08 * n * np.sin(yy / n * 2 * np.pi * 1.3) + 4 * smooth_noise(rng, (n, n), 20)
    label[np.abs(xx - river_x) < 7] = "water"
    road = np.abs((yy - 0.65 * n) - 0.25 * (xx - 0.5 * n)) < 2.2
    label[road] = "asphalt"
    for _ in range(18):
        cx, cy = rng.uniform(0.6 * n, 0.9 * n), rng.uniform(0.1 * n, 0.4 * n)
        w, h = rng.integers(4, 10), rng.integers(4, 10)
        label[int(cy):int(cy) + h, int(cx):int(cx) + w] = "roof"
    spectra = np.array([SPECTRA[c] for c in SPECTRA])
    index = {c: i for i, c in enumerate(SPECTRA)}
    image = spectra[np.vectorize(index.get)(label)].transpose(2, 0, 1)   # (12, n, n)
    # texture: brightness varies inside fields; crop rows in some fields; water stays calm
    brightness = 1 + 0.08 * smooth_noise(rng, (n, n), 4) + 0.04 * rng.standard_normal((n, n))
    rows = 1 + 0.06 * np.sin((xx * np.cos(field_id) + yy * np.sin(field_id)) * 2 * np.pi / 6)
    texture = np.where(label == "crop", brightness * rows, np.where(label == "water", 1.0, brightness))
    image = image * texture[None]
    return image.reshape(12, SIZE, SUPER, SIZE, SUPER).mean(axis=(2, 4))


def main() -> None:
    rng = np.random.default_rng(SEED)
    truth = landscape(rng)
    peak = truth.max()
    sim = simulate_s2(truth, snr_db=45.0, seed=SEED, geometry="area")
    dn = {key: np.clip(np.round(getattr(sim, f"y{key[:2]}") * peak * 10000), 1, 65535).astype(np.uint16)
          for key in GROUPS}
    wkt = raster_writer.epsg_wkt(EPSG)
    for key, names in GROUPS.items():
        pixel = {"10m": 10.0, "20m": 20.0, "60m": 60.0}[key]
        gt = (ORIGIN[0], pixel, 0.0, ORIGIN[1], 0.0, -pixel)
        raster_writer.write_simple_geotiff(HERE / f"sample_{key}.tif", dn[key], gt, wkt, list(names))
    truth_dn = np.round(truth * 10000).astype(np.uint16)
    raster_writer.write_simple_geotiff(HERE / "truth_10m.tif", truth_dn, (ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0),
                                       wkt, list(ORDER))
    for path in sorted(HERE.glob("*.tif")):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
