"""The dependency check: each import failure reported by its real cause, with what to do."""
from __future__ import annotations

import json
import subprocess
import sys

from sure_fusion_qgis import dependencies


def _failing(failures: dict):
    """An _import that raises failures[module] (an exception instance) and imports nothing."""
    def fake(module):
        if module in failures:
            raise failures[module]
    return fake


def test_all_importable_here():
    assert dependencies.problems() == []
    assert dependencies.look_installed()


def test_missing_torch_is_named_once(monkeypatch):
    monkeypatch.setattr(dependencies, "_import", _failing({
        "torch": ModuleNotFoundError("No module named 'torch'", name="torch"),
        "pytorch_wavelets": ModuleNotFoundError("No module named 'torch'", name="torch")}))
    found = dependencies.problems()
    assert [p.package for p in found] == ["torch"]      # pytorch_wavelets fails only because torch does
    text = dependencies.describe(found)
    assert "torch is not installed in the Python that QGIS uses" in text and "No module named 'torch'" in text
    assert "Install Python dependencies" in text and "sure_fusion:install_dependencies" in text


def test_pkg_resources_is_named_as_the_cause(monkeypatch):
    monkeypatch.setattr(dependencies, "_import", _failing({
        "pytorch_wavelets": ModuleNotFoundError("No module named 'pkg_resources'", name="pkg_resources")}))
    (problem,) = dependencies.problems()
    assert problem.package == "pytorch_wavelets" and problem.missing == "pkg_resources"
    assert "is installed but cannot be imported" in problem.message()
    assert "setuptools 81" in problem.message() and "setuptools<81" in problem.message()
    assert "not installed in" not in problem.message()


def test_a_library_that_fails_to_load_is_not_called_missing(monkeypatch):
    monkeypatch.setattr(dependencies, "_import", _failing({
        "torch": OSError("[WinError 126] Error loading c10.dll or one of its dependencies (DLL load failed)")}))
    (problem,) = dependencies.problems()
    assert problem.missing is None
    assert "torch is installed but failed to load: OSError" in problem.message()
    assert "Visual C++ Redistributable" in problem.message()


def test_the_check_as_a_script_reports_a_missing_pkg_resources(tmp_path):
    """What Python ≥ 3.12 with setuptools ≥ 81 looks like to pytorch_wavelets: no pkg_resources at all."""
    fake = tmp_path / "no_pkg_resources" / "pkg_resources"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pkg_resources'\", "
                                      "name='pkg_resources')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake.parent)}
    done = subprocess.run([sys.executable, dependencies.__file__, "--check", str(tmp_path / "none")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [p["package"] for p in report["problems"]] == ["pytorch_wavelets"]
    assert "pkg_resources" in report["messages"][0] and "setuptools 81" in report["messages"][0]


def test_folder_is_per_python_version_and_outside_the_plugins(tmp_path):
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert dependencies.folder_for(tmp_path) == tmp_path / "sure_fusion" / here
    assert dependencies.folder_for(tmp_path, (3, 13)) == tmp_path / "sure_fusion" / "python3.13"
    assert "plugins" not in dependencies.folder_for(tmp_path).parts


def test_activate_puts_the_folder_first(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert not dependencies.activate(tmp_path / "missing")
    assert dependencies.activate(tmp_path)
    assert sys.path[0] == str(tmp_path)
    dependencies.activate(tmp_path)
    assert sys.path.count(str(tmp_path)) == 1
