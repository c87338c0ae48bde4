"""`make package`: dist/sure_fusion_qgis-<version>.zip for QGIS's "Install from ZIP", plus dist/requirements.txt.

The zip has one top folder, `sure_fusion_qgis/`, holding the plugin, its metadata.txt, icon and LICENSE, and
a copy of `sure_core/` (the plugin prefers that bundled copy, see core_loader.py). torch is not bundled:
QGIS's plugin repository rejects binaries; the plugin's installer (sure_fusion:install_dependencies) installs
it, or users do by hand from requirements.txt (docs/plugin.md). Both lists come from dependencies.REQUIREMENTS.
"""
from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

# standard library only, so that the system's python3 can build the zip (`python3 -m tools.package`)
from sure_fusion_qgis.dependencies import REQUIREMENTS as PLUGIN_REQUIREMENTS

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = "sure_fusion_qgis"
REQUIREMENTS = """\
# Python packages SURE Fusion needs in the Python that QGIS runs. The plugin installs them itself (Plugins ›
# SURE Fusion › Install Python dependencies…); by hand, see docs/plugin.md for each OS. Do not let pip change
# numpy: keep the numpy your QGIS was built with (add numpy==<that version>).
""" + "\n".join(PLUGIN_REQUIREMENTS) + "\n"
SKIP_PARTS = {"__pycache__", ".pytest_cache"}
#: not in the zip: the Dask batch runner runs from a checkout, not in QGIS, and needs Dask, which the plugin's
#: installer does not install
SKIP_FOLDERS = {"batch"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def version() -> str:
    parser = configparser.ConfigParser()
    parser.read(ROOT / PLUGIN / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP_PARTS & set(path.parts) and path.suffix not in SKIP_SUFFIXES:
            yield path


def build(dist: Path = ROOT / "dist") -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"{PLUGIN}-{version()}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(ROOT / PLUGIN):
            if path.relative_to(ROOT / PLUGIN).parts[0] in SKIP_FOLDERS:
                continue
            archive.write(path, f"{PLUGIN}/{path.relative_to(ROOT / PLUGIN).as_posix()}")
        for path in _files(ROOT / "sure_core"):
            archive.write(path, f"{PLUGIN}/sure_core/{path.relative_to(ROOT / 'sure_core').as_posix()}")
        archive.write(ROOT / "LICENSE", f"{PLUGIN}/LICENSE")
        archive.writestr(f"{PLUGIN}/requirements.txt", REQUIREMENTS)
    (dist / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    return target


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist")
    print(f"built {path} ({path.stat().st_size / 1024:.0f} KiB) and {path.parent / 'requirements.txt'}")
