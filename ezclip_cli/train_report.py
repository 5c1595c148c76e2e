"""What a run reports as it goes: progress, logged metric rows, skipped videos."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.distributed as dist

from ezclip_cli.progress import ProgressCallback
from ezclip_cli.train_devices import Distributed
from ezclip_cli.train_files import _RunFiles

log = logging.getLogger("ezclip_cli.train")  # one logger name for the whole run, as train.log has always shown


class _StepProgress:
    """Optimizer steps for the caller's progress callback, with the latest loss/lr/throughput text."""

    def __init__(self, callback: ProgressCallback | None, total: int, done: int):
        self.callback, self.total, self.status = callback, total, ""
        if self.callback is not None:
            self.callback(done, total, 0, "")

    def update(self, step: int, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        if self.callback is not None:
            self.callback(step, self.total, 0, self.status)


def _log_window(
    window: dict[str, Any], step: int, epoch: int, lr: float, device: str, ddp: Distributed
) -> dict[str, Any]:
    """Mean losses over the micro-batches since the last row (all ranks), and global throughput."""
    totals = torch.stack(
        [torch.as_tensor(window[k], dtype=torch.float64, device=device) for k in ("loss", "kl", "motion")]
        + [
            torch.tensor(float(window["micro"]), dtype=torch.float64, device=device),
            torch.tensor(float(window["clips"]), dtype=torch.float64, device=device),
        ]
    )
    if ddp.enabled:
        dist.all_reduce(totals)
    loss, kl, motion, micro, clips = totals.tolist()
    now = time.perf_counter()
    row = {
        "step": step,
        "epoch": epoch + 1,
        "loss": loss / max(micro, 1),
        "kl": kl / max(micro, 1),
        "motion": motion / max(micro, 1),
        "lr": lr,
        "clips_per_s": clips / max(now - window["since"], 1e-9),
    }
    window.update(loss=0.0, kl=0.0, motion=0.0, micro=0, clips=0, since=now)
    return row


def _report_skipped(skipped: list[str], epoch: int, ddp: Distributed, files: _RunFiles) -> int:
    """Unreadable videos of this epoch (all ranks): a count on stderr, every path in train.log."""
    if ddp.enabled:
        everyone: list[Any] = [None] * ddp.world_size
        dist.all_gather_object(everyone, skipped)
        skipped = [p for part in everyone for p in part]
    if skipped:
        log.warning("epoch %d: %d unreadable video(s) skipped (paths in train.log)", epoch + 1, len(skipped))
        for path in sorted(set(skipped)):
            files.note(f"skipped unreadable video: {path}")
    return len(skipped)
