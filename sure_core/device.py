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
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}): use device 'cpu' or 'auto', "
                "or install a CUDA build of PyTorch on a machine with an NVIDIA GPU")
        return torch.device(name), "requested"
    if name == "cpu":
        return torch.device("cpu"), "requested"
    raise DeviceUnavailableError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
