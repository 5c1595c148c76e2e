"""The package version, and `ezclip --version`: what a bug report needs, the stack and the device found.

Versions come from the installed packages' metadata (no import); only the device check
imports torch, and only when asked, so `--help` stays instant.
"""

from __future__ import annotations

import platform
import sys

__version__ = "0.1.0"

# (shown name, distribution name): the packages whose versions change ezclip's behaviour.
PACKAGES = (
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("open_clip", "open_clip_torch"),
    ("decord", "decord"),
    ("PyAV", "av"),
    ("onnxruntime", "onnxruntime"),
)


def package_version(distribution: str) -> str:
    """The installed version of `distribution`, or 'not installed'."""
    from importlib import metadata  # only `--version` reads package metadata: not at start-up

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_device() -> str:
    """The device `--device auto` picks here, with its name and CUDA version where there is one."""
    try:
        import torch
    except ImportError:
        return "cpu (PyTorch not installed: only `tag --runtime onnx` runs)"
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        names = ", ".join(dict.fromkeys(torch.cuda.get_device_name(i) for i in range(count)))
        return f"cuda ({count} x {names}; CUDA {torch.version.cuda})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps (Apple GPU)"
    return f"cpu (no CUDA or MPS found; {torch.get_num_threads()} threads)"


def torch_build() -> str:
    """'CUDA 12.8 build' or 'CPU-only build' of the installed torch ('' when torch is missing)."""
    try:
        import torch
    except ImportError:
        return ""
    cuda = getattr(torch.version, "cuda", None)
    return f"CUDA {cuda} build" if cuda else "CPU-only build"


def version_report(ezclip_version: str) -> list[str]:
    """Lines of `ezclip --version`: ezclip, Python, the stack's versions (torch's build too) and the device."""
    lines = [f"ezclip {ezclip_version}", f"python {platform.python_version()} ({sys.platform})"]
    width = max(len(name) for name, _ in PACKAGES)
    for name, dist in PACKAGES:
        build = f" ({torch_build()})" if name == "torch" and package_version(dist) != "not installed" else ""
        lines.append(f"{name:<{width}}  {package_version(dist)}{build}")
    lines.append(f"{'device':<{width}}  {describe_device()}")
    return lines
