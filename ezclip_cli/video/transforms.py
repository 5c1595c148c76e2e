"""Clip transforms: training augmentation (multi-scale crop, flip, colour jitter, grayscale) and the eval crop.

Augmentation parameters are drawn once per clip and applied to all of its frames, so the
frames of a clip stay consistent; ``eval_resize_crop`` is the one test-time view.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)  # of the short side (TSN, docs/model.md 8)


class ClipAugmentation(NamedTuple):
    """Parameters drawn once per clip and applied to all of its frames."""

    crop: tuple[int, int, int, int]  # top, left, height, width
    flip: bool
    jitter: tuple[tuple[str, float], ...]  # (op, factor) in the order applied; () = none
    grayscale: bool
    # Faithful (EZ-CLIP, arXiv 2312.08010, reference code): frames 2..T draw their own jitter; () = per clip
    frame_jitter: tuple[tuple[tuple[str, float], ...], ...] = ()


_JITTER_RANGES = (  # torchvision ColorJitter(0.4, 0.4, 0.2, 0.1) factor ranges
    ("brightness", 0.6, 1.4),
    ("contrast", 0.6, 1.4),
    ("saturation", 0.8, 1.2),
    ("hue", -0.1, 0.1),
)
_JITTER_OPS = {
    "brightness": F.adjust_brightness,
    "contrast": F.adjust_contrast,
    "saturation": F.adjust_saturation,
    "hue": F.adjust_hue,
}


def sample_multiscale_crop(rng: random.Random, height: int, width: int, image_size: int) -> tuple[int, int, int, int]:
    """TSN's GroupMultiScaleCrop: side lengths from ``MULTISCALE_SCALES`` of the short
    side (within 3 px of ``image_size`` snap to it), height and width at most one scale
    step apart, placed at one of 13 fixed offsets. Returns (top, left, h, w)."""
    base = min(height, width)
    sizes = [int(base * s) for s in MULTISCALE_SCALES]
    sizes = [max(1, image_size if abs(s - image_size) < 3 else s) for s in sizes]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= 1]
    crop_h, crop_w = rng.choice(pairs)
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
    grid = [
        (0, 0),
        (0, 4),
        (4, 0),
        (4, 4),
        (2, 2),
        (2, 0),
        (2, 4),
        (4, 2),
        (0, 2),
        (1, 1),
        (1, 3),
        (3, 1),
        (3, 3),
    ]  # (row, column) in quarter steps
    row, col = rng.choice(grid)
    return row * h_step, col * w_step, crop_h, crop_w


def sample_clip_augmentation(
    rng: random.Random, height: int, width: int, image_size: int, flip: bool, jitter_frames: int = 0
) -> ClipAugmentation:
    """Draw one clip's training augmentation (colour jitter per clip, or per frame as the reference).

    The same draws happen whether or not ``flip`` is allowed, so turning flips off
    changes nothing else. ``jitter_frames`` > 1 (the faithful switch): the clip is jittered
    or not as one (p 0.8, as the reference), but frames 2..T draw their own factors and order
    from a separate generator, so crop, flip, grayscale and frame 1 stay as without it."""
    crop = sample_multiscale_crop(rng, height, width, image_size)
    do_flip = rng.random() < 0.5
    jitter: tuple[tuple[str, float], ...] = ()
    if rng.random() < 0.8:
        factors = [(name, rng.uniform(low, high)) for name, low, high in _JITTER_RANGES]
        rng.shuffle(factors)
        jitter = tuple(factors)
    grayscale = rng.random() < 0.2
    frame_jitter: tuple[tuple[tuple[str, float], ...], ...] = ()
    if jitter and jitter_frames > 1:
        per_frame = random.Random(f"{rng.random()}:frames")  # drawn after the others: they do not move
        frame_jitter = (jitter,)
        for _ in range(jitter_frames - 1):
            factors = [(name, per_frame.uniform(low, high)) for name, low, high in _JITTER_RANGES]
            per_frame.shuffle(factors)
            frame_jitter += (tuple(factors),)
    return ClipAugmentation(crop, flip and do_flip, jitter, grayscale, frame_jitter)


def apply_clip_augmentation(frames: torch.Tensor, aug: ClipAugmentation, image_size: int) -> torch.Tensor:
    """uint8 (T,3,H,W) -> float (T,3,image_size,image_size) in [0, 1]."""
    top, left, h, w = aug.crop
    x = F.crop(frames, top, left, h, w)
    x = F.resize(x, [image_size, image_size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    if aug.flip:
        x = x.flip(-1)
    x = x.float().div_(255)  # (T,3,S,S)
    if aug.frame_jitter:
        frames_out = []
        for frame, jitter in zip(x, aug.frame_jitter):
            for name, factor in jitter:
                frame = _JITTER_OPS[name](frame, factor)
            frames_out.append(frame)
        x = torch.stack(frames_out)
    else:
        for name, factor in aug.jitter:
            x = _JITTER_OPS[name](x, factor)
    if aug.grayscale:
        x = F.rgb_to_grayscale(x, num_output_channels=3)
    return x


def eval_resize_crop(frames: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (T,3,H,W) -> float (T,3,S,S): short side to image_size*256/224, centre crop."""
    short = int(image_size * 256 / 224)
    x = frames
    if min(x.shape[-2:]) != short:
        x = F.resize(x, short, interpolation=InterpolationMode.BILINEAR, antialias=True)
    x = F.center_crop(x, [image_size, image_size])
    return x.float().div_(255)
