"""The dependency installer: its pieces on their own, then end to end through qgis_process in a fresh profile whose
Python cannot see the venv, installing offline from a folder of wheels, then running an algorithm."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

import pytest
from osgeo import gdal
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import s2_fixtures
from cli_helpers import cli_env, enable_plugin, run_json
from sure_fusion_qgis import dependencies
from sure_fusion_qgis import dependency_installer as installer


# ------------------------------------------------------------------------------------------ pieces
def test_index_options():
    assert installer.index_options("cpu", wheels="/w") == ["--no-index", "--find-links", "/w"]
    assert installer.index_options("cuda", index_url="https://mirror/simple") == ["--index-url",
                                                                                 "https://mirror/simple"]
    cpu = ["--extra-index-url", installer.TORCH_CPU_INDEX]
    assert installer.index_options("cpu", system="Linux") == cpu
    assert installer.index_options("cpu", system="Windows") == cpu
    assert installer.index_options("cpu", system="Darwin") == []          # PyPI's macOS torch (MPS)
    assert installer.index_options("cuda", system="Linux") == []          # PyPI's Linux torch is the CUDA build
    assert installer.index_options("cuda", system="Windows") == ["--extra-index-url", installer.TORCH_CUDA_INDEX]


def _fake_nvidia_smi(folder: Path, output: str, code: int = 0) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    script.chmod(0o755)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a shell-script nvidia-smi")
def test_torch_build_detection(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert installer.detect_torch_build()[0] == "cpu"                      # no nvidia-smi
    _fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA A100 (UUID: GPU-1)")
    build, why = installer.detect_torch_build()
    assert build == "cuda" and "A100" in why
    _fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the driver", 9)
    assert installer.detect_torch_build()[0] == "cpu"


def test_find_python_is_this_very_interpreter(monkeypatch):
    python = installer.find_python()
    assert installer._python_version(python) == sys.version
    # another build of the same Python version (pyenv's python3 first on PATH, say) is not taken
    monkeypatch.setattr(installer, "_python_version", lambda path: "3.11.99 (other build)")
    with pytest.raises(installer.InstallError, match="PYTHON"):
        installer.find_python()


def test_cancel_stops_the_child_process_quickly():
    lines = []
    callbacks = installer.Callbacks(log=lines.append, canceled=lambda: "started" in lines)
    command = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    start = time.perf_counter()
    with pytest.raises(installer.InstallCancelled, match="run the installer again"):
        installer.stream(command, dict(os.environ), callbacks)
    assert time.perf_counter() - start < 15


@pytest.mark.parametrize("output, advice", [
    ("ERROR: Could not install packages due to an OSError: [Errno 13] Permission denied: '/x'", "cannot write into"),
    ("WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')", "WHEELS"),
    ("ERROR: ResolutionImpossible: for help visit ...", "numpy 1.24.2"),
    ("ERROR: No matching distribution found for torch>=2.1", "no torch>=2.1 for Python"),
])
def test_a_pip_failure_says_what_to_do(output, advice, tmp_path):
    request = installer.InstallRequest(folder=tmp_path / "deps")
    error = installer._failure("Installing the packages", ["python", "-m", "pip", "install", "x y"], output,
                               request, "1.24.2")
    assert advice in str(error)
    assert "python -m pip install 'x y'" in str(error)   # the exact command, quoted for a shell


# ------------------------------------------------------------------------------------------ end to end
def _distributions_to_offer() -> dict[str, str]:
    """name → version of what the plugin's requirements pull in (numpy aside) and this venv holds itself: what
    QGIS's Python, which cannot see the venv, may lack. Pinned to the venv's versions, so the run is reproducible."""
    venv = Path(sysconfig.get_paths()["purelib"]).resolve()
    todo = [Requirement(r).name for r in dependencies.REQUIREMENTS]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found or name == "numpy":
            continue
        try:
            found[name] = dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return {dist.metadata["Name"]: dist.version for dist in found.values()
            if Path(dist.locate_file("")).resolve() == venv}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """A folder of wheel files for an offline installation, fetched with this machine's pip configuration (its
    local wheel folders and indexes first; PyPI for the rest)."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    pins = [f"{name}=={version}" for name, version in sorted(_distributions_to_offer().items())]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder),
                           *pins], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def _fresh_profile(tmp_path: Path) -> tuple[Path, dict]:
    """A new QGIS profile whose Python sees neither the venv nor this machine's pip configuration."""
    profile = tmp_path / "profile"
    profile.mkdir()
    env = {k: v for k, v in cli_env(profile, with_venv=False).items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    enable_plugin(profile, env)
    return profile, env


def test_a_failed_installation_says_what_to_do(tmp_path):
    profile, env = _fresh_profile(tmp_path)
    empty = tmp_path / "no_wheels"
    empty.mkdir()
    code, _, text = run_json(["sure_fusion:install_dependencies", "--", f"WHEELS={empty}", "TORCH_BUILD=cpu"], env)
    if "Nothing to install" in text:
        pytest.skip("QGIS's Python already has torch, pytorch_wavelets and PyWavelets")
    assert code != 0
    assert f"the folder {empty} has no" in text and "Add the wheel files" in text
    assert "run the same command yourself" in text and "--find-links" in text
    folder = dependencies.folder_for(profile / "profiles" / "default")
    assert not folder.exists()
    assert (folder.parent / "numpy-constraint.txt").is_file()   # the printed command can be run as it is


def test_install_into_a_fresh_profile_then_run(tmp_path, wheelhouse):
    profile, env = _fresh_profile(tmp_path)
    rasters = s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(48))
    sharpen = ["sure_fusion:s2_sharpening", "--", f"INPUT_10M={rasters['10m']}", f"INPUT_20M={rasters['20m']}",
               "ITERATIONS=2", "DEVICE=cpu", "THREADS=1", f"OUTPUT={tmp_path / 'out.tif'}"]

    code, _, text = run_json(sharpen, env)
    if code == 0:
        pytest.skip("QGIS's Python already has torch, pytorch_wavelets and PyWavelets")
    assert "is not installed in the Python that QGIS uses" in text and "install_dependencies" in text

    code, payload, text = run_json(["sure_fusion:install_dependencies", "--", f"WHEELS={wheelhouse}",
                                    "TORCH_BUILD=cpu"], env, timeout=900)
    assert code == 0, text
    results = payload["results"]
    folder = Path(results["FOLDER"])
    assert folder == dependencies.folder_for(profile / "profiles" / "default")
    installed = results["INSTALLED"].lower()
    assert installed and "numpy" not in installed and not list(folder.glob("numpy*"))   # QGIS's numpy stays
    assert results["TORCH_VERSION"] and results["TORCH_BUILD"] == "cpu"
    assert "Check passed" in text

    code, payload, text = run_json(sharpen, env)   # a new qgis_process: the plugin puts the folder on sys.path
    assert code == 0, text
    assert gdal.Open(str(tmp_path / "out.tif")).RasterCount == 10

    code, payload, text = run_json(["sure_fusion:install_dependencies", "--", f"WHEELS={wheelhouse}",
                                    "TORCH_BUILD=cpu"], env)
    assert code == 0, text
    assert payload["results"]["INSTALLED"] == ""   # a second run finds everything in place
