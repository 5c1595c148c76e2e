"""GPU decoding with torchcodec (`--decoder torchcodec`: NVDEC on CUDA), falling back per file to the CPU decoders.

Optional (`pip install 'ezclip[gpu-decode]'`, which also needs FFmpeg's shared libraries) and off
by default: one stream at a time is often slower on CUDA than on the CPU, and only the GPU
benchmark (benchmarks/gpu_check.py, decode section) can say whether it wins for a workload.
Whatever cannot be decoded here goes to the CPU decoders, file by file, with the reason: torchcodec
or CUDA missing in this process, a codec NVDEC has no hardware for, a video this GPU's NVDEC
refuses (torchcodec reports its own CPU fallback; AV1 on GPUs without an AV1 decoder), a
torchcodec error. The frames are sampled at the same times as on the CPU, scaled on the GPU to the
same size (bicubic, antialiased) and handed on as uint8 numpy, so the rest of the pipeline is unchanged.
torch and torchcodec are imported lazily.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ezclip_cli.video.pyav import VideoInfo

# Codecs some NVDEC generation decodes (FFmpeg's names); the rest never reach the GPU. Whether this
# GPU's NVDEC takes a given video (AV1, 4:4:4, 10-bit, size limits) torchcodec says once it is opened.
NVDEC_CODECS = frozenset({"h264", "hevc", "av1", "vp8", "vp9", "mpeg1video", "mpeg2video", "mpeg4", "mjpeg", "vc1"})
INSTALL_HINT = "pip install 'ezclip[gpu-decode]' and FFmpeg's shared libraries"


class Fallback(Exception):
    """This file is not decoded by torchcodec; the message says why (it goes to the log)."""


def cuda_device() -> str:
    """The GPU to decode on: this torchrun rank's (LOCAL_RANK, inherited by decoder workers), else the first."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0) or 0)}"


def unavailable() -> str | None:
    """Why torchcodec cannot decode on a GPU in this process, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    try:
        import torchcodec.decoders  # noqa: F401  (loads FFmpeg's shared libraries, may fail on its own)
    except Exception as exc:  # ImportError, or a native library that does not load
        return f"torchcodec is not available ({type(exc).__name__}); {INSTALL_HINT}"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def read_with_torchcodec(
    path: str | Path,
    codec: str,
    info: VideoInfo,
    origin: float,
    size: tuple[int, int],
    targets: Sequence[float],
    device: str | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """The frames shown at `targets` (absolute seconds): (images (H, W, 3) of `size`, seconds after the first frame).

    Raises Fallback with the reason when this file is for the CPU decoders. `device` None = this
    process's GPU (cuda_device), after checking that torchcodec and CUDA are there.
    """
    if device is None:
        reason = unavailable()
        if reason:
            raise Fallback(reason)
        device = cuda_device()
    if codec not in NVDEC_CODECS:
        raise Fallback(f"NVDEC has no {codec} decoder")
    from torchcodec.decoders import VideoDecoder

    # Query a quarter frame after each target: the frame shown at the target itself, whatever the rounding of times.
    quarter = 0.25 / info.fps
    end = origin + info.duration
    seconds = [min(t + quarter, max(end - quarter, t)) for t in targets]
    try:
        decoder = VideoDecoder(str(path), device=device, seek_mode="approximate")  # no full-file scan
        _refuse_cpu_fallback(decoder, codec)  # the NVDEC backend knows at once
        batch = decoder.get_frames_played_at(seconds=seconds)
        _refuse_cpu_fallback(decoder, codec)  # FFmpeg's CUDA backend knows after the first frame
    except Fallback:
        raise
    except Exception as exc:  # torchcodec raises RuntimeError/ValueError with FFmpeg's words
        raise Fallback(f"torchcodec could not decode it: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    frames = batch.data  # (N, 3, H, W) uint8 on the device, turned upright by torchcodec
    if tuple(frames.shape[-2:]) != (info.height, info.width):
        raise Fallback(
            f"torchcodec gave {frames.shape[-1]}x{frames.shape[-2]} frames for a {info.width}x{info.height} video"
        )
    images = _resize(frames, size).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    times = [round(float(t) - origin, 6) for t in batch.pts_seconds]
    return list(images), times


def _refuse_cpu_fallback(decoder: Any, codec: str) -> None:
    """torchcodec decodes on the CPU itself when NVDEC cannot; the CPU decoders here do that better."""
    status = getattr(decoder, "cpu_fallback", None)  # torchcodec >= 0.9
    if status:
        raise Fallback(f"NVDEC cannot decode this {codec} video ({status})")


def _resize(frames: Any, size: tuple[int, int]) -> Any:
    """uint8 (N, 3, H, W) scaled to `size` (width, height) on their device, bicubic and antialiased as swscale is."""
    import torch

    width, height = size
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    scaled = torch.nn.functional.interpolate(
        frames.float(), size=(height, width), mode="bicubic", antialias=True, align_corners=False
    )
    return scaled.round_().clamp_(0, 255).to(torch.uint8)
