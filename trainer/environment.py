"""The environment fingerprint of a run: timings are comparable only between runs that share it."""

from __future__ import annotations

import platform
import socket
import subprocess

import torch


def fingerprint(device: torch.device) -> dict[str, str | int | None]:
    """Host, Python, torch, triton, CUDA and the GPU model, count and driver this run uses."""
    out: dict[str, str | int | None] = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        out.update(
            gpu=torch.cuda.get_device_name(device),
            gpu_count=torch.cuda.device_count(),
            cuda=torch.version.cuda,
            driver=_driver_version(),
            triton=_triton_version(),
        )
    return out


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _driver_version() -> str | None:
    """The NVIDIA driver version as nvidia-smi reports it; None where it cannot be asked."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None
