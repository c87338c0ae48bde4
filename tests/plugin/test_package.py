"""`make package`: a zip QGIS's "Install from ZIP" accepts, whose plugin uses its bundled sure_core."""
import configparser
import subprocess
import sys
import zipfile

import pytest
from osgeo import gdal

import s2_fixtures
from cli_helpers import ROOT, cli_env, enable_plugin, run_json

sys.path.insert(0, str(ROOT / "tools"))
import package  # noqa: E402


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
    parser = configparser.ConfigParser()
    parser.read_string(zipfile.ZipFile(built).read("sure_fusion_qgis/metadata.txt").decode("utf-8"))
    general = parser["general"]
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] == "3.22"
    for field in ("name", "description", "about", "version", "author", "email", "repository", "tracker"):
        assert general[field].strip()


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
