"""pyproject.toml agrees with the plugin's metadata.txt and with requirements.txt (what `make setup` installs)."""
import configparser
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")   # Python ≥ 3.11, as CI's

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirement(line: str) -> str:
    """'PyWavelets>=1.4.1' → 'pywavelets' (pip's comparison: case and -/_ do not matter)."""
    return re.split(r"[<>=!~;\s\[]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_version_is_the_plugins_and_the_cores():
    import sure_core

    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "sure_fusion_qgis" / "metadata.txt", encoding="utf-8")
    assert _project()["version"] == metadata["general"]["version"] == sure_core.__version__


def test_requirements_txt_and_pyproject_name_the_same_versions():
    project = _project()
    declared = {_requirement(r): r.replace(" ", "") for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared.update({_requirement(r): r.replace(" ", "") for r in extra})
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    required = {_requirement(line): line.replace(" ", "") for line in lines if line}
    assert required, "requirements.txt lists nothing"
    for name, line in required.items():
        assert name in declared, f"{line} (requirements.txt) is not in pyproject.toml"
        assert declared[name].lower().replace("_", "-") == line.lower().replace("_", "-"), (declared[name], line)


def test_the_plugins_installer_needs_nothing_pyproject_omits():
    from sure_fusion_qgis.dependencies import REQUIREMENTS

    declared = {_requirement(r) for r in _project()["dependencies"]}
    assert {_requirement(r) for r in REQUIREMENTS} <= declared
