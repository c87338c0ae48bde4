"""Typed errors of the fusion core. Each message says what is wrong and how to fix it."""


class SureFusionError(ValueError):
    """Base class of every error the core raises on purpose."""


class InputShapeError(SureFusionError):
    """Arrays whose sizes do not match the stated ratios, band counts or each other."""


class InvalidInputValueError(SureFusionError):
    """NaN/inf in the data, negative noise levels and similar value problems."""


class ImageTooSmallError(SureFusionError):
    """An image smaller than the PSF support of its operator."""


class DeviceUnavailableError(SureFusionError):
    """A device was asked for that this machine does not have (e.g. 'cuda' without a GPU)."""


class FusionCancelled(Exception):
    """Raised by the solver when the progress callback asks to stop. Not an input error."""
