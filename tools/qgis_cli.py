"""Running the checkout's plugin with qgis_process, for `make demo`, `make dev-plugin` and the tests.

* `qgis_process()`: the command. QGIS ≥ 3.40 ships a working `qgis_process` wrapper on every platform; Debian's
  3.22 wrapper fails ("Command --noversioncheck not known!"), so there the binary behind it is used.
* `plugin_folder()`: a folder that holds the plugin and nothing else, for QGIS_PLUGINPATH or as a model for the
  profile's python/plugins: a link build/qgis-plugins/sure_fusion_qgis → the checkout's sure_fusion_qgis/. QGIS
  lists every folder of a plugin path as a plugin, so the repository root itself would show 7 "broken plugins"
  (benchmarks, docs, resources, sure_core, tests, tools, out). The plugin finds sure_core beside the link's target.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "sure_fusion_qgis"
DEBIAN_322_BINARY = "/usr/bin/qgis_process.bin"


@functools.lru_cache(maxsize=1)
def qgis_process() -> str | None:
    """The qgis_process command that works here, or None when QGIS is not installed."""
    wrapper = shutil.which("qgis_process")
    if wrapper:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        done = subprocess.run([wrapper, "--version"], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode == 0:
            return wrapper
    return DEBIAN_322_BINARY if os.access(DEBIAN_322_BINARY, os.X_OK) else None


def plugin_folder(build: Path = ROOT / "build" / "qgis-plugins") -> Path:
    """build/qgis-plugins with the link to the plugin (made if missing); point QGIS_PLUGINPATH here."""
    link = build / PLUGIN
    build.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() != ROOT / PLUGIN:
        link.unlink()
    if not link.is_symlink():
        if link.exists():
            raise SystemExit(f"{link} exists and is not a link: remove it")
        # relative, so that it also holds where the checkout is mounted elsewhere (tools/modern_env.sh's chroot)
        link.symlink_to(os.path.relpath(ROOT / PLUGIN, build), target_is_directory=True)
    return build


if __name__ == "__main__":   # `make dev-plugin`
    folder = plugin_folder()
    print(f"QGIS_PLUGINPATH={folder}   (holds only {PLUGIN}, a link to {ROOT / PLUGIN})")
    print(f"qgis_process: {qgis_process() or 'not found'}")
    sys.exit(0)
