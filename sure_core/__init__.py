"""sure_core — unsupervised image fusion by Stein's unbiased risk estimate (Deep SURE), in pure PyTorch.

No QGIS, no GDAL: arrays in, arrays out, with a progress callback that may ask to stop.
Importing the package (or `sure_core.tiling`, `sure_core.errors`) does not import torch: the names that need it
are loaded on first use, so the QGIS plugin can plan windows before (or without) torch.
"""
from importlib import import_module

from .errors import (
    DeviceUnavailableError,
    FusionCancelled,
    ImageTooSmallError,
    InputShapeError,
    InvalidInputValueError,
    SureFusionError,
)
from .psf import Geometry

__version__ = "0.1.0"

_LAZY = {"resolve_device": ".device", "Progress": ".solver", "RunRecord": ".solver", "SolverOptions": ".solver",
         "solve": ".solver"}

__all__ = ["DeviceUnavailableError", "FusionCancelled", "Geometry", "ImageTooSmallError", "InputShapeError",
           "InvalidInputValueError", "SureFusionError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
