"""`make package`: a zip QGIS's "Install from ZIP" accepts, whose plugin uses its bundled sure_core."""
import configparser
import os
import subprocess
import sys
import zipfile

import pytest
from osgeo import gdal

import s2_fixtures
from cli_helpers import PLUGIN_FOLDER, ROOT, cli_env, enable_plugin, run_json
from tools import package


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return package.build(tmp_path_factory.mktemp("dist"))


def test_zip_layout(built):
    names = zipfile.ZipFile(built).namelist()
    assert {n.split("/")[0] for n in names} == {"sure_fusion_qgis"}      # one top folder, a valid plugin name
    for required in ("__init__.py", "metadata.txt", "LICENSE", "requirements.txt", "resources/icon.svg",
                     "provider.py", "algorithms/s2_sharpening.py", "sure_core/__init__.py",
                     "sure_core/s2_sharpening.py"):
        assert f"sure_fusion_qgis/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert built.name == f"sure_fusion_qgis-{package.version()}.zip"
    assert (built.parent / "requirements.txt").read_text().count("torch") >= 1
    text = zipfile.ZipFile(built).read("sure_fusion_qgis/requirements.txt").decode()
    assert "numpy" not in [line.split("=")[0].split(">")[0] for line in text.splitlines()]


def test_metadata_fields(built):
    text = zipfile.ZipFile(built).read("sure_fusion_qgis/metadata.txt").decode("utf-8")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    general = parser["general"]
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] == "3.22"
    # QGIS 4 refuses a plugin whose maximum (default: the minimum's major + .99 = 3.99) is below 4;
    # the Qt6 builds of QGIS 3.40/3.44 refuse one without supportsQt6
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["supportsQt6"] == "True"
    for field in ("name", "description", "about", "version", "author", "changelog"):
        assert general[field].strip()
    for algorithm in ("s2_sharpening", "hsms_fusion", "pansharpening", "install_dependencies"):
        assert f"sure_fusion:{algorithm}" in general["about"]
    assert general["version"] in general["changelog"]
    assert "example.org" not in text   # no placeholder addresses: fields without a real one are left out


PLUGIN_MANAGER_LISTING = """
import os, sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, os.path.join(QgsApplication.pkgDataPath(), "python"))
import qgis.utils
qgis.utils.plugin_paths = [os.environ["QGIS_PLUGINPATH"]]
from pyplugin_installer.installer_data import plugins
plugins.getAllInstalled()
for key, plugin in sorted(plugins.localCache.items()):
    print(key, plugin["error"] or "ok")
"""


def _plugin_manager_listing(plugin_path) -> dict:
    """What QGIS's plugin manager lists for a plugin path (name → 'ok' or its error, e.g. 'broken')."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugin_path))
    done = subprocess.run([sys.executable, "-c", PLUGIN_MANAGER_LISTING], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.strip())


def test_the_plugin_folder_shows_one_plugin_in_the_plugin_manager():
    assert _plugin_manager_listing(PLUGIN_FOLDER) == {"sure_fusion_qgis": "ok"}
    # the repository itself, as docs/plugin.md once advised, shows its other folders as broken plugins
    assert _plugin_manager_listing(ROOT).get("tests") == "broken"


def test_installed_zip_uses_its_bundled_core(built, tmp_path):
    zipfile.ZipFile(built).extractall(tmp_path / "plugins")
    code = ("import sure_fusion_qgis.core_loader as c; m = c.core_module('s2_sharpening'); "
            "print(c.core_package_name()); print(m.__file__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "plugins", capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    name, path = done.stdout.split()
    assert name == "sure_fusion_qgis.sure_core"
    assert path.startswith(str(tmp_path / "plugins" / "sure_fusion_qgis" / "sure_core"))


def test_installed_zip_runs_in_qgis_process(built, tmp_path):
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(built).extractall(plugins)
    profile = tmp_path / "profile"
    profile.mkdir()
    env = cli_env(profile, plugin_path=plugins)
    enable_plugin(profile, env)
    rasters = s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(60))
    out = tmp_path / "out.tif"
    code, payload, text = run_json(["sure_fusion:s2_sharpening", "--", f"INPUT_10M={rasters['10m']}",
                                    f"INPUT_20M={rasters['20m']}", "ITERATIONS=2", "DEVICE=cpu", "THREADS=1",
                                    f"OUTPUT={out}"], env)
    assert code == 0, text
    assert gdal.Open(str(out)).RasterCount == 10
