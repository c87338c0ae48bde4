"""sure_core — unsupervised image fusion by Stein's unbiased risk estimate (Deep SURE), in pure PyTorch.

No QGIS, no GDAL: arrays in, arrays out, with a progress callback that may ask to stop.
"""
from .errors import (DeviceUnavailableError, FusionCancelled, ImageTooSmallError, InputShapeError,
                     InvalidInputValueError, SureFusionError)
from .device import resolve_device
from .psf import Geometry
from .solver import Progress, RunRecord, SolverOptions, solve

__version__ = "0.1.0"

__all__ = ["DeviceUnavailableError", "FusionCancelled", "Geometry", "ImageTooSmallError", "InputShapeError",
           "InvalidInputValueError", "Progress", "RunRecord", "SolverOptions", "SureFusionError", "resolve_device", "solve",
           "__version__"]
