"""Start the real QGIS window under Xvfb, open each SURE Fusion dialog and a finished run, save screenshots.

    .venv/bin/python -m tools.gui_screenshots [OUT_FOLDER]      # default out/gui; needs Debian's xvfb (apt)

QGIS runs with a throw-away profile, the plugin from this checkout (QGIS_PLUGINPATH) and the venv's torch on
PYTHONPATH. `--code` hands it tools/gui_driver.py, which opens the dialogs at the size of GDAL's Pansharpening
dialog, runs the band-layers algorithm on the embedded sample through its dialog (as the Run button does), and
writes a PNG per view plus summary.json (which labels fit, which layer loaded how). Every view is a grab of the
QGIS widget itself; openbox, when installed, gives the windows their frames.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISPLAY = ":97"
TIMEOUT_S = 900


def _profile(folder: Path) -> Path:
    """A QGIS profile folder with the plugin enabled and no first-run dialogs."""
    settings = folder / "profiles" / "default" / "QGIS"
    settings.mkdir(parents=True)
    (settings / "QGIS3.ini").write_text(
        "[PythonPlugins]\nsure_fusion_qgis=true\n\n[qgis]\ncheckVersion=false\nshowTips=false\n"
        "[Processing]\nConfiguration\\KEEP_DIALOG_OPEN=true\n", encoding="utf-8")
    return folder


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ROOT / "out" / "gui").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not shutil.which("Xvfb"):
        print("Xvfb not found: apt-get install xvfb (Debian's package)")
        return 2
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"])
    env = {**os.environ, "DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb", "QGIS_PLUGINPATH": str(ROOT),
           "PYTHONPATH": sysconfig.get_paths()["purelib"], "PYTHONDONTWRITEBYTECODE": "1",
           "SURE_FUSION_GUI_OUT": str(out), "SURE_FUSION_SAMPLE": str(ROOT / "resources" / "sample"),
           "OMP_NUM_THREADS": "1"}
    helpers = []
    try:
        time.sleep(1.0)
        if shutil.which("openbox"):
            helpers.append(subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with tempfile.TemporaryDirectory(prefix="qgis_profile_") as profile:
            env["QGIS_CUSTOM_CONFIG_PATH"] = str(_profile(Path(profile)))
            driver = str(ROOT / "tools" / "gui_driver.py")
            qgis = subprocess.run(["qgis", "--nologo", "--noversioncheck", "--code", driver],
                                  env=env, timeout=TIMEOUT_S, capture_output=True, text=True)
        summary = out / "summary.json"
        if not summary.exists():
            print(qgis.stdout[-3000:], qgis.stderr[-3000:])
            return 1
        print(json.dumps(json.loads(summary.read_text(encoding="utf-8")), indent=1))
        print(f"screenshots in {out}")
        return 0
    finally:
        for process in (*helpers, xvfb):
            process.terminate()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
