"""Running qgis_process in a throw-away profile with the plugin enabled (the README's commands)."""
from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tools import qgis_cli

ROOT = Path(__file__).resolve().parents[2]

PLUGIN_FOLDER = qgis_cli.plugin_folder()   # holds only the plugin (a link), as QGIS users see it


def require_qgis_process() -> str:
    exe = qgis_cli.qgis_process()
    if not exe:
        pytest.skip("qgis_process is not installed")
    return exe


def cli_env(profile: Path, with_venv: bool = True, plugin_path: Path = PLUGIN_FOLDER) -> dict:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugin_path), QGIS_CUSTOM_CONFIG_PATH=str(profile))
    env.pop("PYTHONPATH", None)
    if with_venv:  # QGIS's embedded Python does not see the venv by itself
        env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    return env


def enable_plugin(profile: Path, env: dict) -> None:
    exe = require_qgis_process()
    done = subprocess.run([exe, "plugins", "enable", "sure_fusion_qgis"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 or "already enabled" in done.stdout, done.stdout + done.stderr


def run_json(args: list[str], env: dict, timeout: int = 300) -> tuple[int, dict | None, str]:
    exe = require_qgis_process()
    done = subprocess.run([exe, "--json", "run", *args], env=env, capture_output=True, text=True, timeout=timeout)
    try:
        payload = json.loads(done.stdout[done.stdout.index("{"):]) if "{" in done.stdout else None
    except json.JSONDecodeError:
        payload = None
    return done.returncode, payload, done.stdout + done.stderr


