"""Tagging's pixel pipeline on numpy alone: short side to S*256/224, centre crop S, normalise.

It reproduces `transforms.eval_resize_crop` (torchvision bilinear resize with antialias, then
`center_crop`) so that tagging needs no torch before the model, and `--runtime onnx`
none at all. The resize is the separable triangle filter torchvision (and PIL) use with
antialias, widened by the scale factor when shrinking; tests hold it within one grey level
of torchvision's uint8 result.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np


def eval_pixels(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, 3, S, S): short side to S*256/224 (bilinear), centre crop S."""
    short = int(image_size * 256 / 224)
    height, width = frames.shape[1:3]
    if min(height, width) != short:
        # torchvision: the short side becomes `short`, the long one int(short * long / short_side).
        if height <= width:
            size = (short, int(short * width / height))
        else:
            size = (int(short * height / width), short)
        frames = resize(frames, size)
    return np.ascontiguousarray(center_crop(frames, image_size).transpose(0, 3, 1, 2))


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, C) -> uint8 (T, h, w, C), bilinear with antialias (as torchvision's antialias=True)."""
    rows = _weights(frames.shape[1], size[0])  # (h, H)
    cols = _weights(frames.shape[2], size[1])  # (w, W)
    x = frames.astype(np.float32)
    x = np.einsum("oh,thwc->towc", rows, x, optimize=True)  # (T, h, W, C); optimize: BLAS, not a 17x slower loop
    x = np.einsum("pw,towc->topc", cols, x, optimize=True)  # (T, h, w, C)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@lru_cache(maxsize=32)
def _weights(source: int, target: int) -> np.ndarray:
    """(target, source) interpolation matrix; rows sum to 1.

    Each output pixel i is centred at (i + 0.5) * scale in input coordinates; a triangle filter
    of half-width max(scale, 1) weighs the input pixels, and the weights are renormalised where
    the window leaves the image (which reproduces the edge clamping of plain bilinear upscaling).
    """
    scale = source / target
    support = max(scale, 1.0)
    out = np.zeros((target, source), np.float32)
    for i in range(target):
        centre = (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), source)
        taps = np.arange(first, stop)
        weight = np.maximum(0.0, 1.0 - np.abs((taps - centre + 0.5) / support))
        out[i, first:stop] = weight / weight.sum()
    return out


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, size, size, C), the offsets torchvision's center_crop picks (H, W >= size)."""
    height, width = frames.shape[1:3]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return frames[:, top : top + size, left : left + size]


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (..., 3, S, S) -> float32 (pixels / 255 - mean) / std, as predictors.TorchPredictor does."""
    mean_ = np.asarray(mean, np.float32).reshape(3, 1, 1)
    std_ = np.asarray(std, np.float32).reshape(3, 1, 1)
    return ((pixels.astype(np.float32) / np.float32(255) - mean_) / std_).astype(np.float32)
