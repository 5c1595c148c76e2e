"""The torch Dataset of decoded, augmented, normalised clips of a VideoList, and its collate function.

Unreadable videos never stop a run: an item that cannot be decoded is warned about and
dropped from its batch by ``collate_videos``, which lists it under ``"skipped"``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from ezclip_cli.data.video_lists import VideoList
from ezclip_cli.errors import DatasetError, VideoError
from ezclip_cli.video.reader import read_frames  # decoders open lazily, per call
from ezclip_cli.video.transforms import apply_clip_augmentation, eval_resize_crop, sample_clip_augmentation

logger = logging.getLogger(__name__)


class _Unreadable(NamedTuple):
    """Placeholder that ``__getitems__`` puts where a video could not be read."""

    path: str
    reason: str


def _read_clip(
    path: Path, num_frames: int, short_side: int | None, decoder: str, rng: random.Random | None
) -> np.ndarray:
    """uint8 (T,H,W,3); each call opens and closes its own decoder (safe in workers)."""
    return read_frames(path, num_frames, short_side=short_side, decoder=decoder, rng=rng).frames


class VideoDataset(torch.utils.data.Dataset):
    """Decoded, augmented and normalised clips of a ``VideoList``.

    Items are ``{"video": float (T,3,S,S), "label": int, "index": int}``, or ``None``
    for a video that cannot be read (warned, path kept in ``self.skipped`` in the process
    that read it). Training randomness (frame choice and augmentation) depends only on
    (seed, epoch, index): call ``set_epoch`` before each epoch and re-create worker
    processes (no ``persistent_workers``) so they see it. Picklable for "spawn" workers.
    """

    def __init__(
        self,
        videos: VideoList,
        num_frames: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
        flip: bool = True,
        seed: int = 0,
        short_side: int = 256,
        decoder: str = "auto",
        jitter_per_frame: bool = False,
        centre_frames: bool = False,
    ) -> None:
        if num_frames < 1 or image_size < 1:
            raise DatasetError(f"num_frames and image_size must be >= 1, got {num_frames}, {image_size}")
        if len(mean) != 3 or len(std) != 3:
            raise DatasetError("mean and std need 3 values (R, G, B)")
        self.videos = videos
        self.num_frames = num_frames
        self.image_size = image_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.train = train
        self.flip = flip
        self.seed = seed
        self.short_side = short_side
        self.decoder = decoder
        self.epoch = 0
        self.skipped: list[str] = []
        self.jitter_per_frame = jitter_per_frame  # faithful: colour jitter drawn per frame
        self.centre_frames = centre_frames  # training on segment centres (the reference's few-shot/b2n configs)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.videos.classes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos.items)

    def _rng(self, index: int, purpose: str) -> random.Random:
        # String seeds hash with SHA-512: the same in every process and Python run.
        return random.Random(f"{self.seed}:{self.epoch}:{index}:{purpose}")

    def _load(self, index: int) -> dict[str, Any] | _Unreadable:
        path, label = self.videos.items[index]
        if self.train:
            sampling, size = (None if self.centre_frames else self._rng(index, "frames")), self.short_side
        else:
            sampling, size = None, int(self.image_size * 256 / 224)
        try:
            frames = _read_clip(path, self.num_frames, size, self.decoder, sampling)
        except VideoError as e:
            logger.warning("skipping unreadable video %s: %s", path, e)
            self.skipped.append(str(path))
            return _Unreadable(str(path), str(e))
        if not frames.flags.writeable:
            frames = frames.copy()
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T,3,H,W) uint8
        if self.train:
            aug = sample_clip_augmentation(
                self._rng(index, "augment"),
                x.shape[-2],
                x.shape[-1],
                self.image_size,
                self.flip,
                len(x) if self.jitter_per_frame else 0,
            )
            x = apply_clip_augmentation(x, aug, self.image_size)
        else:
            x = eval_resize_crop(x, self.image_size)
        x = F.normalize(x, self.mean, self.std)  # (T,3,S,S)
        return {"video": x.contiguous(), "label": int(label), "index": int(index)}

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        item = self._load(index)
        return None if isinstance(item, _Unreadable) else item

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any] | _Unreadable]:
        # DataLoader fetches batches through this, keeping unreadable paths for collate.
        return [self._load(i) for i in indices]


def collate_videos(batch: Sequence[dict[str, Any] | _Unreadable | None]) -> dict[str, Any] | None:
    """Stack readable items; unreadable ones are dropped and listed in ``"skipped"``.

    Returns ``{"video": (B,T,3,S,S), "label": (B,), "index": (B,), "skipped": [path]}``,
    or ``None`` when no item of the batch could be read (each was already warned about).
    """
    good = [item for item in batch if isinstance(item, dict)]
    skipped = [
        item.path if isinstance(item, _Unreadable) else "<unknown>" for item in batch if not isinstance(item, dict)
    ]
    if not good:
        return None
    return {
        "video": torch.stack([item["video"] for item in good]),  # (B,T,3,S,S)
        "label": torch.tensor([item["label"] for item in good], dtype=torch.long),
        "index": torch.tensor([item["index"] for item in good], dtype=torch.long),
        "skipped": skipped,
    }
