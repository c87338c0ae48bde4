"""What SURE Fusion needs in QGIS's Python besides QGIS, whether it imports (and if not, why), and the folder of
the user's QGIS profile the installer puts it in.

Standard library only, so that it imports without QGIS and runs as a script: `python dependencies.py --check
FOLDER` prints the check as JSON. The installer checks a fresh install that way, in a separate process, because a
torch that crashes while loading (a missing DLL, a wrong CUDA driver) must not take QGIS down with it.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

#: what pip installs (pytorch_wavelets imports pywt without declaring it, and pkg_resources, which setuptools 81
#: removed: hence PyWavelets and the setuptools bound). numpy is never listed: QGIS's own numpy is kept.
REQUIREMENTS = ("torch>=2.1", "pytorch_wavelets>=1.3", "PyWavelets>=1.4.1", "setuptools<81")

#: (module, distribution), imported in this order: torch first, because pytorch_wavelets imports it
MODULES = (("torch", "torch"), ("pywt", "PyWavelets"), ("pytorch_wavelets", "pytorch_wavelets"))

HOW_TO_INSTALL = ("Install them from the menu Plugins › SURE Fusion › Install Python dependencies…, or without "
                  "the desktop: `qgis_process run sure_fusion:install_dependencies` (add `-- WHEELS=<folder of "
                  "wheel files>` on a machine without internet). docs/plugin.md shows how to install them by hand.")


@dataclass(frozen=True)
class Problem:
    """One package that does not import: `missing` is the module Python could not find (None for other errors)."""
    package: str
    module: str
    missing: str | None
    error: str

    def message(self) -> str:
        where = f"the Python that QGIS uses ({sys.executable}, Python {sys.version.split()[0]})"
        if self.missing == self.module:
            return f"{self.package} is not installed in {where}: {self.error}."
        if self.missing == "pkg_resources":
            return (f"{self.package} is installed but cannot be imported: it needs the module pkg_resources, which "
                    f"setuptools 81 and later no longer ship ({self.error}). Installing setuptools<81 fixes it.")
        if self.missing:
            return (f"{self.package} is installed but cannot be imported: it needs the module '{self.missing}', "
                    f"which is not installed ({self.error}).")
        hint = ""
        if "numpy" in self.error.lower():
            hint = f" It was probably built for another numpy than QGIS's ({_numpy_version()})."
        elif "dll" in self.error.lower():
            hint = (" On Windows this usually means that the Microsoft Visual C++ Redistributable is missing, or "
                    "that a CUDA build of torch met no matching NVIDIA driver: reinstall with the CPU build.")
        return f"{self.package} is installed but failed to load: {self.error}.{hint}"


def _numpy_version() -> str:
    try:
        import numpy
    except ImportError:
        return "none"
    return numpy.__version__


def _import(module: str) -> None:
    with warnings.catch_warnings():
        # pytorch_wavelets imports pkg_resources, which warns that it is deprecated: nothing the user can act on
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        importlib.import_module(module)


def problems() -> list[Problem]:
    """Import torch, pywt and pytorch_wavelets; what failed and why (empty: all fine). Imports torch (seconds).

    A package that fails only because one listed before it failed (pytorch_wavelets without torch) is not repeated.
    """
    found: list[Problem] = []
    for module, package in MODULES:
        try:
            _import(module)
        except ModuleNotFoundError as e:
            missing = (e.name or "").split(".")[0] or None
            if missing not in {p.module for p in found}:
                found.append(Problem(package, module, missing, str(e)))
        except Exception as e:  # noqa: BLE001  (ImportError, OSError for DLLs, AttributeError from numpy ABI...)
            found.append(Problem(package, module, None, f"{type(e).__name__}: {e}"))
    return found


def describe(found: list[Problem]) -> str:
    """A message for the user: each problem, then what to do."""
    return " ".join(p.message() for p in found) + " " + HOW_TO_INSTALL


def look_installed() -> bool:
    """Whether all modules can be found, without importing them (fast enough for QGIS's start-up)."""
    return all(importlib.util.find_spec(module) is not None for module, _ in MODULES)


def folder_for(profile_dir: str | Path, python: tuple = sys.version_info[:2]) -> Path:
    """The installer's folder inside a QGIS profile: one per Python version (the wheels are built for one), and
    outside python/plugins so that updating or reinstalling the plugin keeps it."""
    return Path(profile_dir) / "sure_fusion" / f"python{python[0]}.{python[1]}"


def profile_folder() -> Path:
    """The installer's folder in the QGIS profile in use."""
    from qgis.core import QgsApplication

    return folder_for(QgsApplication.qgisSettingsDirPath())


def activate(folder: Path) -> bool:
    """Put `folder` first on sys.path (if it exists), so what the installer put there is imported. First, because
    pip installed there exactly what QGIS's Python lacked or had too old; numpy is never in it."""
    if not folder.is_dir():
        return False
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
    return True


def versions() -> dict:
    """torch's version and CUDA availability, for the installer's report (after a successful check)."""
    import torch

    return {"torch": torch.__version__, "cuda": bool(torch.cuda.is_available()), "numpy": _numpy_version()}


def _check_main(folder: str) -> int:
    activate(Path(folder))
    found = problems()
    report = {"problems": [asdict(p) for p in found], "messages": [p.message() for p in found]}
    if not found:
        report.update(versions())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        raise SystemExit(_check_main(sys.argv[2]))
    raise SystemExit(f"usage: {sys.argv[0]} --check FOLDER")
