"""sure_core must import and run without QGIS or GDAL."""
import subprocess
import sys

from tests.conftest import ROOT

BLOCKER = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('qgis', 'osgeo', 'PyQt5'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, importlib, sure_core
for m in pkgutil.iter_modules(sure_core.__path__):
    importlib.import_module('sure_core.' + m.name)
assert not any(k.split('.')[0] in ('qgis', 'osgeo') for k in sys.modules)
print('ok')
"""


def test_sure_core_imports_without_qgis_or_gdal():
    out = subprocess.run([sys.executable, "-c", BLOCKER], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
