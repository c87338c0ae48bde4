"""Find `sure_core`, the fusion core, without importing it (and therefore torch) too early.

Two layouts are supported:
* installed from the ZIP: `sure_fusion_qgis/sure_core/` is bundled inside the plugin folder;
* development: `sure_core/` is a sibling of the plugin folder (QGIS_PLUGINPATH points at the repository).

The bundled copy wins, because it is the version the plugin was packaged and tested with.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

_PLUGIN_DIR = Path(__file__).resolve().parent


def core_package_name() -> str:
    if (_PLUGIN_DIR / "sure_core" / "__init__.py").is_file():
        return f"{__package__}.sure_core"
    return "sure_core"


def core_module(name: str = "") -> ModuleType:
    """Import `sure_core` or one of its submodules (e.g. 's2_sharpening'). Imports torch."""
    full = core_package_name() + (f".{name}" if name else "")
    return importlib.import_module(full)
