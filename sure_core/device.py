"""Device selection: 'auto' picks CUDA when PyTorch sees a GPU, else the CPU, and says why."""
from __future__ import annotations

import torch

from .errors import DeviceUnavailableError


def resolve_device(device: str | torch.device = "auto") -> tuple[torch.device, str]:
    """Return (device, reason). Raises DeviceUnavailableError for a device this machine does not have."""
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"auto: CUDA GPU found ({torch.cuda.get_device_name(0)})"
        return torch.device("cpu"), "auto: no CUDA GPU visible to PyTorch, using the CPU"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "device 'cuda' was requested but PyTorch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}): "
                "use device 'cpu' or 'auto', "
                "or install a CUDA build of PyTorch on a machine with an NVIDIA GPU")
        return torch.device(name), "requested"
    if name == "cpu":
        return torch.device("cpu"), "requested"
    raise DeviceUnavailableError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")


def release_memory(device: torch.device | str | None = None) -> None:
    """Hand memory freed by the last window back to the system: the CUDA cache on a GPU, and on glibc hosts the
    heap's free pages (`malloc_trim`); large tensors of varying shapes otherwise leave the process holding
    hundreds of MB it no longer uses (measured: 1.0 → 1.7 GB resident after 14 windows of ~1.2k² px)."""
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes
            import ctypes.util

            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None
