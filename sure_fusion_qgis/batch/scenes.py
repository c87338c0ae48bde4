"""What a batch run sharpens: one `Scene` per Sentinel-2 product or per set of 10/20/60 m band rasters.

Scenes come from the command line (product paths) and from manifest CSV files with a header row:

    name,product,bands_10m,bands_20m,bands_60m,xmin,ymin,xmax,ymax
    hanoi,S2B_MSIL2A_20230823T....SAFE,,,,,,,
    field_b,,b_10m.tif,b_20m.tif,b_60m.tif,600000,1199520,600480,1200000

Each row gives either `product` (a .SAFE folder, its .zip, or MTD_MSIL1C/2A.xml) or `bands_10m` and
`bands_20m` (and optionally `bands_60m`). `name` (optional) names the output, `<name>_sharpened.tif`; the
extent columns (optional, all four or none) are in the scene's CRS. Relative paths are relative to the
manifest's folder. Empty rows and rows whose first cell starts with `#` are ignored.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

OUTPUT_SUFFIX = "_sharpened.tif"
MANIFEST_COLUMNS = ("name", "product", "bands_10m", "bands_20m", "bands_60m", "xmin", "ymin", "xmax", "ymax")
_EXTENT_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class SceneListError(ValueError):
    """A scene list (arguments or manifest) the runner cannot use; the message says what to fix."""


@dataclass(frozen=True)
class Scene:
    """One unit of work: the inputs, an optional part of them, and where the output goes.

    `extent` is (xmin, ymin, xmax, ymax) in the scene's CRS; `window` is (col, row, width, height) in 10 m
    pixels of the scene's 10 m grid (a block of a large scene). Both are snapped outwards to the 60 m grid
    like the plugin's extent; give at most one. Neither: the whole scene.
    """
    name: str
    output: str
    product: str | None = None
    rasters: tuple[tuple[str, str], ...] = ()          # (('10m', path), ('20m', path)[, ('60m', path)])
    extent: tuple[float, float, float, float] | None = None
    window: tuple[int, int, int, int] | None = None

    def __post_init__(self):
        if bool(self.product) == bool(self.rasters):
            raise SceneListError(f"scene {self.name!r}: give either a product or the band rasters, not both or neither")
        if self.extent is not None and self.window is not None:
            raise SceneListError(f"scene {self.name!r}: give an extent or a window, not both")

    @property
    def raster_paths(self) -> dict[str, str]:
        return dict(self.rasters)

    @property
    def source(self) -> str:
        """The input as one line of text (summaries, messages)."""
        return self.product or ", ".join(f"{key}={path}" for key, path in self.rasters)


def safe_name(text: str) -> str:
    """A file-name-safe version of `text` (letters, digits, '.', '_', '-')."""
    name = _UNSAFE_NAME_CHARACTERS.sub("_", text.strip()).strip("._")
    if not name:
        raise SceneListError(f"{text!r} gives an empty output name: use letters or digits")
    return name


def output_path(output_dir: str, name: str) -> str:
    return str(Path(output_dir).resolve() / f"{name}{OUTPUT_SUFFIX}")


def product_name(path: str) -> str:
    """The product's name: 'S2B_MSIL2A_….SAFE' → 'S2B_MSIL2A_…', for the folder, its .zip or its MTD xml."""
    p = Path(path)
    if p.suffix.lower() == ".xml":
        p = p.parent
    name = p.name
    for suffix in (".zip", ".SAFE", ".safe"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return safe_name(name)


def product_scene(path: str, output_dir: str, name: str | None = None, extent=None, window=None) -> Scene:
    path = str(Path(path).resolve())
    name = safe_name(name) if name else product_name(path)
    return Scene(name, output_path(output_dir, name), product=path, extent=extent, window=window)


def raster_scene(paths: dict[str, str], output_dir: str, name: str | None = None, extent=None, window=None) -> Scene:
    """A scene from band rasters; '10m' and '20m' are required, '60m' optional."""
    missing = [key for key in ("10m", "20m") if not paths.get(key)]
    if missing:
        raise SceneListError(f"scene {name or '?'}: the {' and '.join(missing)} band raster(s) are missing; give "
                             f"bands_10m and bands_20m (and optionally bands_60m), or a product")
    rasters = tuple((key, str(Path(paths[key]).resolve())) for key in ("10m", "20m", "60m") if paths.get(key))
    name = safe_name(name) if name else safe_name(Path(paths["10m"]).stem)
    return Scene(name, output_path(output_dir, name), rasters=rasters, extent=extent, window=window)


def read_manifest(path: str, output_dir: str) -> list[Scene]:
    """The scenes of a manifest CSV (see the module docstring for the columns)."""
    manifest = Path(path)
    if not manifest.is_file():
        raise SceneListError(f"the manifest {path!r} does not exist")
    base = manifest.resolve().parent
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows = [row for row in rows if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")]
    if not rows:
        raise SceneListError(f"the manifest {path!r} is empty: it needs a header row and one row per scene")
    header = [cell.strip().lower() for cell in rows[0]]
    unknown = [c for c in header if c not in MANIFEST_COLUMNS]
    if unknown or not ({"product", "bands_10m"} & set(header)):
        raise SceneListError(f"the manifest {path!r} has the header {', '.join(header)}: the columns are "
                             f"{', '.join(MANIFEST_COLUMNS)} (product, or bands_10m and bands_20m, required)")
    scenes = []
    for number, row in enumerate(rows[1:], start=2):
        cells = {column: (row[i].strip() if i < len(row) else "") for i, column in enumerate(header)}
        where = f"{path}, row {number}"

        def resolve(text: str) -> str:
            return str((base / text).resolve()) if text else ""

        extent = _extent(cells, where)
        name = cells.get("name") or None
        try:
            if cells.get("product"):
                if any(cells.get(k) for k in ("bands_10m", "bands_20m", "bands_60m")):
                    raise SceneListError("give a product or band rasters, not both")
                scenes.append(product_scene(resolve(cells["product"]), output_dir, name, extent))
            else:
                paths = {key: resolve(cells.get(f"bands_{key}", "")) for key in ("10m", "20m", "60m")}
                scenes.append(raster_scene(paths, output_dir, name, extent))
        except SceneListError as e:
            raise SceneListError(f"{where}: {e}") from None
    return scenes


def _extent(cells: dict[str, str], where: str) -> tuple[float, float, float, float] | None:
    given = [cells.get(c, "") for c in _EXTENT_COLUMNS]
    if not any(given):
        return None
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in given)
    except ValueError:
        raise SceneListError(f"{where}: the extent needs four numbers xmin, ymin, xmax, ymax in the scene's CRS, "
                             f"got {', '.join(repr(v) for v in given)}") from None
    if xmax <= xmin or ymax <= ymin:
        raise SceneListError(f"{where}: the extent ({xmin}, {ymin}, {xmax}, {ymax}) is empty: xmax must exceed xmin "
                             f"and ymax ymin")
    return xmin, ymin, xmax, ymax


def collect_scenes(items: list[str], output_dir: str) -> list[Scene]:
    """Scenes from command-line items: a `.csv` is a manifest, anything else a product path."""
    scenes: list[Scene] = []
    for item in items:
        if item.lower().endswith(".csv"):
            scenes.extend(read_manifest(item, output_dir))
        else:
            scenes.append(product_scene(item, output_dir))
    if not scenes:
        raise SceneListError("no scenes given: pass Sentinel-2 products (.SAFE, .zip, MTD_MSIL*.xml) or manifest CSVs")
    seen: dict[str, Scene] = {}
    for scene in scenes:
        if scene.name in seen:
            raise SceneListError(f"two scenes would write the same output {scene.output!r} ({seen[scene.name].source} "
                                 f"and {scene.source}): give them different names in a manifest")
        seen[scene.name] = scene
    return scenes
