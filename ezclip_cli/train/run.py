"""The EZ-CLIP training loop: single process or DDP under torchrun (docs/model.md 6, 8).

    per step:  clips (B, T, 3, S, S) + one random template of each clip's class
               -> frames (B, T, D), text (B, D) -> L = KL_sym + w * L_motion (model.ezclip_loss)
               -> AdamW on prompts and adapters only, lr = linear warmup then cosine to 0

A run directory holds:
    config.yaml              the resolved TrainConfig (also inside every checkpoint)
    last.ezclip              learned parts + config; `extra` = train_config, epoch, step, classes
    last.state.safetensors   what exact resume needs: optimizer, GradScaler, RNG states, counters
    best.ezclip              last at its best validation top-1 (= last when there is no validation)
    metrics.jsonl            one row per logged step and per validation
    train.log, curves.png    the run log (skipped videos listed) and the training curves

Exact resume: the data order is a function of (seed, epoch) only, each clip's frames,
augmentation and template of (seed, epoch, index), and the dropout RNG is saved and restored;
validation runs on a forked RNG. A run interrupted after its checkpoint at step k (every epoch,
or every save_every_steps) and resumed therefore repeats the uninterrupted run; metrics.jsonl
rows logged after step k are dropped on resume. Nothing here is pickled; everything is safetensors + JSON.

This module is the entry point (`train`); the parts live beside it, one job each:
    train_config      the resolved config (defaults < resumed run < YAML < flags)
    train_data        video lists, datasets, loaders and class prompts
    train_schedule    learning rate and the (seed, epoch)-determined data order
    train_devices     device, precision and DDP process setup
    train_validation  top-1/top-5 on the validation split
    train_model       the model a run trains (backbone + learned parts) and the forward DDP wraps
    train_state       RNG / optimizer / GradScaler state for exact resume
    train_files       the run directory (checkpoints, metrics.jsonl, train.log, curves.png)
    train_report      progress, metric rows, skipped videos
    train_setup       what a run fixes before its first step (RunSetup)
    train_run         the step loop: LoopState and plain functions over it
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ezclip_cli.config import TrainConfig
from ezclip_cli.errors import UsageError
from ezclip_cli.progress import ProgressCallback
from ezclip_cli.train.devices import init_distributed
from ezclip_cli.train.files import RunFiles
from ezclip_cli.train.loop import LoopState, fit, restore, seed_training_rng
from ezclip_cli.train.resume import check_resume
from ezclip_cli.train.setup import prepare_run

__all__ = ["train"]


def train(
    config: TrainConfig,
    *,
    train_data: Any | None = None,
    val_data: Any | None = None,
    classes: Sequence[str] | None = None,
    resume: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train the temporal prompts and adapters; returns final metrics and the paths of best/last.

    Data comes from `config` (benchmark or list files) unless `train_data` (and optionally
    `val_data`) are given: map-style datasets whose items are VideoDataset's dicts
    (`video` (T, 3, S, S) normalised, `label`, `index`), with `classes` passed or as an attribute.
    `resume` is a run directory or a `last.ezclip` beside its state; the run continues in that
    folder, which `config.out` must name (train.resume). Under torchrun, runs DDP.
    """
    ddp = init_distributed(config.device)
    files = RunFiles(Path(config.out), ddp.main)
    package = logging.getLogger("ezclip_cli")
    package_level = package.level
    try:
        if resume is None and files.last.exists():
            raise UsageError(
                f"{files.out} already holds a run; continue it with --resume {files.out} or choose another --out"
            )
        if resume is not None:  # validated before train.log or anything else is created
            check_resume(config, resume, own_data=train_data is not None)
        files.open_log()
        if not ddp.main:
            package.setLevel(logging.WARNING)  # one rank speaks
        run = prepare_run(config, ddp, files, train_data, val_data, classes, progress)
        if resume is not None:
            loop = restore(run, resume)
        else:
            seed_training_rng(run)
            loop = LoopState()
        return fit(run, loop)
    finally:
        files.close_log()
        package.setLevel(package_level)
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()
