"""What a batch run fuses: one `Scene` per Sentinel-2 product or set of 10/20/60 m band rasters, per HS + MS pair
and per PAN + MS pair.

Scenes come from the command line (Sentinel-2 product paths) and from manifest CSV files with a header row:

    name,product,bands_10m,bands_20m,bands_60m,hs,ms,pan,sensor,xmin,ymin,xmax,ymax
    hanoi,S2B_MSIL2A_20230823T....SAFE,,,,,,,,,,,
    field_b,,b_10m.tif,b_20m.tif,b_60m.tif,,,,,600000,1199520,600480,1200000
    prisma_a,,,,,a_hs.tif,a_s2.tif,,,,,,
    wv2_c,,,,,,c_ms.tif,c_pan.tif,worldview2,,,,

Each row gives one of: `product` (a .SAFE folder, its .zip, or MTD_MSIL1C/2A.xml); `bands_10m` and `bands_20m`
(and optionally `bands_60m`); `hs` and `ms` (HS + MS fusion: the HS bands on the MS grid); `ms` and `pan`
(pansharpening, with the optional PAN `sensor` preset, e.g. worldview2). `name` (optional) names the output,
`<name>_sharpened.tif` (Sentinel-2), `<name>_fused.tif` (HS + MS) or `<name>_pansharpened.tif`; the extent columns
(optional, all four or none) are in the scene's CRS. Relative paths are relative to the manifest's folder. Empty
rows and rows whose first cell starts with `#` are ignored. Only the columns used need be in the header.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

#: output name suffix per kind of fusion (`fusion_request.KINDS`)
OUTPUT_SUFFIXES = {"s2": "_sharpened.tif", "hsms": "_fused.tif", "pan": "_pansharpened.tif"}
OUTPUT_SUFFIX = OUTPUT_SUFFIXES["s2"]
MANIFEST_COLUMNS = ("name", "product", "bands_10m", "bands_20m", "bands_60m", "hs", "ms", "pan", "sensor",
                    "xmin", "ymin", "xmax", "ymax")
#: the rasters of a pair, by kind: (low-resolution role, high-resolution role), the manifest's column names
PAIR_COLUMNS = {"hsms": ("hs", "ms"), "pan": ("ms", "pan")}
_EXTENT_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class SceneListError(ValueError):
    """A scene list (arguments or manifest) the runner cannot use; the message says what to fix."""


@dataclass(frozen=True)
class Scene:
    """One unit of work: the inputs, an optional part of them, and where the output goes.

    `kind` is 's2', 'hsms' or 'pan'. `rasters` are the input rasters by role: ('10m', '20m'[, '60m']) for
    Sentinel-2 band rasters, ('hs', 'ms') or ('ms', 'pan') for a pair. `choices` are the case's own options
    (`fusion_request.FusionRequest.choices`, e.g. the PAN sensor). `extent` is (xmin, ymin, xmax, ymax) in the
    scene's CRS; `window` is (col, row, width, height) in pixels of the output grid (a block of a large scene).
    Both are snapped outwards to the coarsest grid like the plugin's extent; give at most one. Neither: the
    whole scene.
    """
    name: str
    output: str
    product: str | None = None
    rasters: tuple[tuple[str, str], ...] = ()
    extent: tuple[float, float, float, float] | None = None
    window: tuple[int, int, int, int] | None = None
    kind: str = "s2"
    choices: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.kind in PAIR_COLUMNS:
            if self.product or {k for k, _ in self.rasters} != set(PAIR_COLUMNS[self.kind]):
                raise SceneListError(f"scene {self.name!r}: a {self.kind} pair needs the rasters "
                                     f"{' and '.join(PAIR_COLUMNS[self.kind])}, and no product")
        elif self.kind != "s2":
            raise SceneListError(f"scene {self.name!r}: unknown kind {self.kind!r}")
        elif bool(self.product) == bool(self.rasters):
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


def output_path(output_dir: str, name: str, kind: str = "s2") -> str:
    return str(Path(output_dir).resolve() / f"{name}{OUTPUT_SUFFIXES[kind]}")


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


def pair_scene(kind: str, paths: dict[str, str], output_dir: str, name: str | None = None, extent=None, window=None,
               **choices) -> Scene:
    """A pair scene ('hsms': paths 'hs' and 'ms'; 'pan': 'ms' and 'pan'); `choices` e.g. sensor='worldview2'."""
    low, high = PAIR_COLUMNS[kind]
    missing = [key for key in (low, high) if not paths.get(key)]
    if missing:
        raise SceneListError(f"scene {name or '?'}: the {' and '.join(missing)} raster(s) of the "
                             f"{'HS + MS' if kind == 'hsms' else 'PAN + MS'} pair are missing")
    rasters = tuple((key, str(Path(paths[key]).resolve())) for key in (low, high))
    name = safe_name(name) if name else safe_name(Path(paths[low]).stem)
    return Scene(name, output_path(output_dir, name, kind), rasters=rasters, extent=extent, window=window, kind=kind,
                 choices=tuple(sorted((k, v) for k, v in choices.items() if v)))


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
    if unknown or not ({"product", "bands_10m", "hs", "pan"} & set(header)):
        raise SceneListError(f"the manifest {path!r} has the header {', '.join(header)}: the columns are "
                             f"{', '.join(MANIFEST_COLUMNS)} (per row: product; or bands_10m and bands_20m; or hs "
                             f"and ms; or ms and pan)")
    scenes = []
    for number, row in enumerate(rows[1:], start=2):
        cells = {column: (row[i].strip() if i < len(row) else "") for i, column in enumerate(header)}
        where = f"{path}, row {number}"

        def resolve(text: str) -> str:
            return str((base / text).resolve()) if text else ""

        extent = _extent(cells, where)
        name = cells.get("name") or None
        try:
            kinds = [kind for kind, given in (("s2", any(cells.get(k) for k in ("product", "bands_10m", "bands_20m",
                                                                                 "bands_60m"))),
                                              ("hsms", bool(cells.get("hs"))), ("pan", bool(cells.get("pan"))))
                     if given]
            if len(kinds) > 1:
                raise SceneListError("give one kind of input per row: a Sentinel-2 product or band rasters, an HS + "
                                     "MS pair (hs, ms), or a PAN + MS pair (ms, pan)")
            if kinds and kinds[0] in PAIR_COLUMNS:
                paths = {key: resolve(cells.get(key, "")) for key in PAIR_COLUMNS[kinds[0]]}
                choices = {"sensor": cells.get("sensor", "")} if kinds[0] == "pan" else {}
                scenes.append(pair_scene(kinds[0], paths, output_dir, name, extent, **choices))
            elif cells.get("ms"):
                raise SceneListError("an ms raster needs its pair: hs (HS + MS fusion) or pan (pansharpening)")
            elif cells.get("product"):
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
        raise SceneListError("no scenes given: pass Sentinel-2 products (.SAFE, .zip, MTD_MSIL*.xml) or manifest CSVs "
                             "(which may also list HS + MS and PAN + MS pairs)")
    seen: dict[str, Scene] = {}
    for scene in scenes:
        if scene.name in seen:
            raise SceneListError(f"two scenes would write the same output {scene.output!r} ({seen[scene.name].source} "
                                 f"and {scene.source}): give them different names in a manifest")
        seen[scene.name] = scene
    return scenes
