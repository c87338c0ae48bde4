"""Installs torch, pytorch_wavelets and PyWavelets into a folder of the user's QGIS profile, with QGIS's own Python
and pip. No QGIS here: the Processing algorithm `install_dependencies` is a thin shell around `install()`.

Why it works the way it does (the failures users of other torch plugins report):
* one folder per profile and Python version, outside the plugin folder: no administrator rights, nothing of
  QGIS's own Python changes, and updating the plugin keeps it (dependencies.folder_for);
* QGIS's numpy is kept: pip first resolves against what QGIS's Python already has, with numpy pinned to that
  version (`--dry-run --report`, allowed even on Debian's "externally managed" Python), then installs exactly
  the missing packages into the folder (`--target --no-deps`). A package that would need another numpy makes
  the resolution fail, with a message, instead of replacing the numpy GDAL was built against;
* the CPU or the CUDA build of torch, detected (an NVIDIA GPU that nvidia-smi lists) and overridable: PyPI's
  Linux torch is the multi-GB CUDA build, Windows' is CPU-only, so each platform gets the right index;
* offline machines give a folder of wheel files (`--no-index --find-links`);
* pip runs as a child process whose output is streamed to the log, with progress and cancel; a failure ends
  with what to do and the exact command to run by hand;
* the result is checked in a separate Python process before QGIS imports it (a crashing torch DLL must not take
  QGIS down).
"""
from __future__ import annotations

import json
import os
import platform
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import dependencies

TORCH_BUILDS = ("auto", "cpu", "cuda")
#: PyTorch's own indexes; PyPI's torch is the CUDA build on Linux and the CPU build on Windows and macOS
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


class InstallError(Exception):
    """The installation failed; the message says why and what to do."""


class InstallCancelled(InstallError):
    pass


@dataclass
class InstallRequest:
    folder: Path                 # where the packages go (dependencies.profile_folder() in QGIS)
    torch_build: str = "auto"    # auto, cpu or cuda
    wheels: str = ""             # a folder of wheel files: install from it alone, offline
    index_url: str = ""          # another package index instead of PyPI (+ PyTorch's)
    python: str = ""             # QGIS's Python interpreter; empty: found by find_python()


@dataclass
class InstallResult:
    folder: Path
    torch_build: str
    installed: list[str] = field(default_factory=list)   # "name==version" installed into the folder now
    torch_version: str = ""
    cuda: bool = False


@dataclass
class Callbacks:
    log: Callable[[str], None] = print
    progress: Callable[[float], None] = lambda percent: None
    canceled: Callable[[], bool] = lambda: False


# ------------------------------------------------------------------------------------------ environment
def find_python() -> str:
    """The interpreter of the Python QGIS runs. Inside QGIS, sys.executable is QGIS itself (Windows, macOS) or
    whatever `python3` comes first on PATH (Linux: maybe a pyenv or conda one), so look in QGIS's prefix first,
    and accept only an interpreter whose sys.version (release, build date, compiler) is the one running here."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    exe = Path(sys.executable)
    prefix = Path(sys.exec_prefix)
    if os.name == "nt":   # OSGeo4W and the standalone installer: apps\Python3xx\python.exe
        candidates = [prefix / "python.exe", prefix / "python3.exe"]
    else:                 # Linux packages: /usr/bin/python3.x; QGIS.app: Contents/MacOS/bin/python3
        candidates = [prefix / "bin" / f"python{version}", prefix / "bin" / "python3",
                      exe.parent / "bin" / f"python{version}", exe.parent / "bin" / "python3"]
    candidates += [exe] if exe.name.lower().startswith("python") else []
    candidates += [Path(p) for p in (shutil.which(f"python{version}"), shutil.which("python3")) if p]
    for candidate in candidates:
        if candidate.is_file() and _python_version(str(candidate)) == sys.version:
            return str(candidate)
    raise InstallError(
        f"Could not find the Python interpreter of QGIS (Python {version}; looked for {', '.join(map(str, candidates))}"
        "). Give its path in the parameter PYTHON (Windows: …\\apps\\Python3xx\\python.exe in the QGIS folder; "
        "macOS: /Applications/QGIS.app/Contents/MacOS/bin/python3).")


def _python_version(python: str) -> str:
    try:
        done = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                              timeout=60, **_no_window())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.rstrip("\n")


def detect_torch_build() -> tuple[str, str]:
    """('cuda' or 'cpu', why): CUDA when nvidia-smi lists a GPU (macOS: always the CPU build, which uses MPS)."""
    if sys.platform == "darwin":
        return "cpu", "macOS: PyPI's torch (it uses the Apple GPU through MPS)"
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "cpu", "no NVIDIA driver found (nvidia-smi is not on PATH)"
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, **_no_window())
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cpu", f"nvidia-smi did not answer ({e})"
    gpus = [line for line in done.stdout.splitlines() if line.startswith("GPU ")]
    if done.returncode != 0 or not gpus:
        return "cpu", "nvidia-smi lists no GPU"
    return "cuda", f"NVIDIA GPU found: {gpus[0]}"


def index_options(torch_build: str, wheels: str = "", index_url: str = "",
                  system: str = platform.system()) -> list[str]:
    """pip's options saying where packages come from (`system`: platform.system(), Linux, Windows or Darwin)."""
    if wheels:
        return ["--no-index", "--find-links", wheels]
    if index_url:
        return ["--index-url", index_url]
    if torch_build == "cpu" and system in ("Linux", "Windows"):
        return ["--extra-index-url", TORCH_CPU_INDEX]
    if torch_build == "cuda" and system == "Windows":
        return ["--extra-index-url", TORCH_CUDA_INDEX]
    return []


def _no_window() -> dict:
    """Keep Windows from opening a console window for each child process."""
    return {"creationflags": 0x08000000} if os.name == "nt" else {}


# ------------------------------------------------------------------------------------------ pip
def stream(command: list[str], env: dict, callbacks: Callbacks,
           on_line: Callable[[str], None] = lambda line: None) -> tuple[int, str]:
    """Run `command`, passing each output line to the log and to `on_line`; stop it when the user cancels.
    Returns (exit code, output)."""
    callbacks.log("$ " + shlex.join(command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               encoding="utf-8", errors="replace", env=env, **_no_window())
    lines: queue.Queue = queue.Queue()

    def read() -> None:   # in a thread, so that a silent pip (a long download) cannot block the cancel
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    output = []
    while True:
        if callbacks.canceled():
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise InstallCancelled("Cancelled: pip was stopped. Nothing was changed in QGIS's own Python; run the "
                                   "installer again to finish.")
        try:
            line = lines.get(timeout=0.2).rstrip()
        except queue.Empty:
            if process.poll() is not None and not reader.is_alive() and lines.empty():
                break
            continue
        output.append(line)
        callbacks.log(line)
        on_line(line)
    process.stdout.close()
    return process.returncode, "\n".join(output)


class _Pip:
    """`python -m pip …` with QGIS's Python, seeing what the target folder already holds."""

    def __init__(self, python: str, folder: Path, callbacks: Callbacks):
        self.python, self.callbacks = python, callbacks
        self.env = dict(os.environ)
        # pip must see what the folder already holds (a second run installs only what is still missing)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
        self.env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONIOENCODING="utf-8", PIP_NO_INPUT="1")

    def command(self, args: list[str]) -> list[str]:
        return [self.python, "-m", "pip", *args]

    def run(self, args: list[str], on_line: Callable[[str], None] = lambda line: None) -> tuple[int, str]:
        return stream(self.command(args), self.env, self.callbacks, on_line)


def _failure(what: str, command: list[str], output: str, request: InstallRequest, numpy: str) -> InstallError:
    """What went wrong, what to do, and the command to run by hand."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    source = f"the folder {request.wheels}" if request.wheels else (request.index_url or "PyPI")
    if re.search(r"Permission denied|Errno 13|Access is denied", output):
        advice = f"pip cannot write into {request.folder}: check that you may write there, and that no other QGIS runs."
    elif re.search(r"No space left|Errno 28", output):
        advice = "The disk is full: torch needs about 1 GB (CPU build) or 5 GB (CUDA build) of free space."
    elif re.search(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|ProxyError|"
                   r"SSLError|CERTIFICATE_VERIFY_FAILED|timed out|Network is unreachable", output):
        advice = (f"pip could not reach {source}: no internet, a proxy (set HTTPS_PROXY before starting QGIS), a "
                  "firewall or a company certificate (pip's --cert). On a machine without internet, download the "
                  "wheels on another one and give their folder in WHEELS (docs/plugin.md shows the command).")
    elif re.search(r"ResolutionImpossible|conflict|Cannot install", output):
        advice = (f"The packages need versions that do not fit what QGIS's Python has, numpy {numpy} included (pip "
                  "may not change QGIS's numpy: GDAL is built against it). The lines above name the conflict; "
                  "an older torch (e.g. torch<2.5) or a newer QGIS may fit.")
    elif re.search(r"No matching distribution|Could not find a version that satisfies", output):
        missing = re.findall(r"No matching distribution found for (\S+)", output)
        advice = (f"{source} has no {' '.join(missing) or 'package'} for Python {py} on "
                  f"{platform.system()} {platform.machine()}.")
        if request.wheels:
            advice += (" Add the wheel files for this Python and platform to the folder (docs/plugin.md shows the "
                       "`pip download` command).")
        else:
            advice += " PyTorch may publish no build for this Python yet; a newer QGIS may ship a supported Python."
    else:
        advice = "The lines above show pip's error."
    return InstallError(f"{what} failed. {advice} To see pip's whole output, run the same command yourself (Windows: "
                        f"in the OSGeo4W Shell): {shlex.join(command)}")


# ------------------------------------------------------------------------------------------ the installer
def install(request: InstallRequest, callbacks: Callbacks | None = None) -> InstallResult:
    """Resolve, install into request.folder, and check in a separate process. Raises InstallError."""
    callbacks = callbacks or Callbacks()
    log = callbacks.log
    python = request.python or find_python()
    if request.python and _python_version(python) != sys.version:
        log(f"Warning: {python} is not the Python QGIS runs (Python {sys.version.split()[0]}): what it installs "
            "may not import in QGIS.")
    pip = _Pip(python, request.folder, callbacks)
    code, text = pip.run(["--version"])
    if code != 0:
        raise InstallError(
            f"QGIS's Python ({python}) has no pip. Debian/Ubuntu: `sudo apt install python3-pip`; elsewhere: "
            f"`{python} -m ensurepip --user`. Then run the installer again.")
    numpy = dependencies._numpy_version()
    build, why = (request.torch_build, "requested") if request.torch_build in ("cpu", "cuda") else detect_torch_build()
    log(f"QGIS's Python: {python} (Python {sys.version.split()[0]}, numpy {numpy}); target folder {request.folder}; "
        f"torch build: {build} ({why})")
    sources = index_options(build, request.wheels, request.index_url)

    # pip's inputs and plan stay beside the folder, so that the command a failure prints can be run by hand
    work = request.folder.parent
    work.mkdir(parents=True, exist_ok=True)
    constraints = work / "numpy-constraint.txt"
    constraints.write_text(f"numpy=={numpy}\n" if numpy != "none" else "", encoding="utf-8")
    report = work / f"pip-plan-{request.folder.name}.json"
    report.unlink(missing_ok=True)

    # 1. resolve against what QGIS's Python (and the folder) already has: what is missing, at which version
    callbacks.progress(2)
    plan_args = ["install", "--dry-run", "--progress-bar", "off", "--report", str(report), "-c", str(constraints),
                 *sources, *dependencies.REQUIREMENTS]
    code, output = pip.run(plan_args)
    if code != 0 or not report.is_file():
        raise _failure("Resolving the packages", pip.command(plan_args), output, request, numpy)
    wanted = [f"{item['metadata']['name']}=={item['metadata']['version']}"
              for item in json.loads(report.read_text(encoding="utf-8")).get("install", [])]
    if any(w.lower().startswith("numpy==") for w in wanted):   # the constraint makes this impossible: be sure
        raise InstallError(f"pip planned to install numpy ({wanted}); QGIS's numpy {numpy} must stay.")
    callbacks.progress(20)

    # 2. install exactly those, without dependencies (they were resolved above), into the folder
    if wanted:
        log(f"Installing into {request.folder}: {', '.join(wanted)}")
        request.folder.mkdir(parents=True, exist_ok=True)
        done = [0]

        def advance(line: str) -> None:
            if line.startswith(("Collecting ", "Processing ")):
                done[0] += 1
                callbacks.progress(20 + 65 * min(done[0], len(wanted)) / len(wanted))

        install_args = ["install", "--target", str(request.folder), "--upgrade", "--no-deps", "--progress-bar", "off",
                        *sources, *wanted]
        code, output = pip.run(install_args, advance)
        if code != 0:
            raise _failure("Installing the packages", pip.command(install_args), output, request, numpy)
    else:
        log("Nothing to install: QGIS's Python already has every package.")
    callbacks.progress(88)

    # 3. check in a separate process, then report
    check = _check(python, request.folder, callbacks)
    callbacks.progress(100)
    return InstallResult(request.folder, build, wanted, check.get("torch", ""), bool(check.get("cuda")))


def _check(python: str, folder: Path, callbacks: Callbacks) -> dict:
    start = time.perf_counter()
    command = [python, str(Path(dependencies.__file__).resolve()), "--check", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, **_no_window())
    except subprocess.TimeoutExpired:
        raise InstallError(f"Checking the installation did not finish in 10 minutes: {shlex.join(command)}") from None
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise InstallError(f"The installed packages crash Python when imported (exit code {done.returncode}): "
                           f"{done.stderr.strip()[-2000:]} — reinstall with the CPU build of torch, or see "
                           f"docs/plugin.md. The check was: {shlex.join(command)}") from None
    if report["messages"]:
        raise InstallError("Installed, but the packages do not import: " + " ".join(report["messages"]))
    callbacks.log(f"Check passed in {time.perf_counter() - start:.1f} s: torch {report['torch']} "
                  f"(CUDA available: {report['cuda']}), numpy {report['numpy']}")
    return report
