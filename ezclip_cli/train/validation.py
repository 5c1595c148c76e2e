"""Validation during training: top-1/top-5 over the validation split, sharded over ranks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from ezclip_cli.train.data import make_loader
from ezclip_cli.train.devices import Distributed, precision_autocast

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip


def validation_batches(num_items: int, batch_size: int, ddp: Distributed | None = None) -> list[list[int]]:
    """This rank's validation batches: a strided share, no padding, so every video is scored once."""
    ddp = ddp or Distributed()
    indices = list(range(ddp.rank, num_items, ddp.world_size))
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def evaluate_top_k(
    model: EZClip,
    dataset: Any,
    prompts: list[list[str]],
    *,
    batch_size: int,
    device: str,
    precision: str = "fp32",
    workers: int = 0,
    ddp: Distributed | None = None,
    loader: Any | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 over every readable clip (segment centres), text classifier from all templates.

    Sharded over ranks without padding, counts summed, so each video is scored exactly once.
    Runs on a forked RNG and restores the model's mode: training is unaffected. `loader` (over
    `validation_batches`) lets a caller keep its workers between validations.
    """
    ddp = ddp or Distributed()
    was_training = model.training
    cuda_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    counts = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, scored, skipped
    with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
        model.eval()
        with precision_autocast(device, precision):
            classifier = model.build_text_classifier(prompts).float()  # (K, D)
        k = min(5, classifier.shape[0])
        batches = validation_batches(len(dataset), batch_size, ddp)
        loader = loader if loader is not None else make_loader(dataset, batches, workers, device.startswith("cuda"))
        for planned, batch in zip(batches, loader):
            if batch is None:
                counts[3] += len(planned)  # an all-unreadable batch; each was warned about
                continue
            counts[3] += len(batch["skipped"])
            video, labels = batch["video"].to(device), batch["label"].to(device)  # (B, T, 3, S, S), (B,)
            with precision_autocast(device, precision):
                logits = model(video, classifier)  # (B, K)
            top = logits.float().topk(k, dim=-1).indices  # (B, k)
            hits = top == labels[:, None]
            counts[0] += hits[:, 0].sum()
            counts[1] += hits.any(dim=1).sum()
            counts[2] += len(labels)
    model.train(was_training)
    if ddp.enabled:
        dist.all_reduce(counts)
    correct1, correct5, scored, skipped = counts.tolist()
    return {
        "val_top1": correct1 / max(scored, 1),
        "val_top5": correct5 / max(scored, 1),
        "val_videos": int(scored),
        "val_skipped": int(skipped),
    }
