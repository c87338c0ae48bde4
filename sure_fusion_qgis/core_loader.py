"""Find `sure_core`, the fusion core, without importing it (and therefore torch) too early.

Two layouts are supported:
* installed from the ZIP: `sure_fusion_qgis/sure_core/` is bundled inside the plugin folder;
* development: `sure_core/` is a sibling of the plugin folder in a checkout. QGIS sees the checkout's plugin
  folder through a link (`make dev-plugin`: build/qgis-plugins/sure_fusion_qgis), so that it finds one plugin and
  not every folder of the repository; `sure_core` is then imported from beside the link's target. With the
  repository itself on sys.path (the tests, `QGIS_PLUGINPATH=<repository>`), plain `import sure_core` works too.

The bundled copy wins, because it is the version the plugin was packaged and tested with.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PLUGIN_DIR = Path(__file__).resolve().parent


def core_package_name() -> str:
    if (_PLUGIN_DIR / "sure_core" / "__init__.py").is_file():
        return f"{__package__}.sure_core"
    return "sure_core"


def _import_sibling_core() -> None:
    """Development layout: make the checkout's sure_core importable when sys.path does not reach it."""
    if "sure_core" in sys.modules or importlib.util.find_spec("sure_core") is not None:
        return
    init = _PLUGIN_DIR.parent / "sure_core" / "__init__.py"
    if not init.is_file():
        return
    spec = importlib.util.spec_from_file_location("sure_core", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["sure_core"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["sure_core"]
        raise


def core_module(name: str = "") -> ModuleType:
    """Import `sure_core` or one of its submodules (e.g. 's2_sharpening'). Imports torch."""
    package = core_package_name()
    if package == "sure_core":
        _import_sibling_core()
    return importlib.import_module(package + (f".{name}" if name else ""))
