"""What a training run fixes before its first step: devices, data, model, texts, schedule, optimizer, DDP.

`prepare_run` builds the `RunSetup` that train_run's loop functions read (and never replace).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ezclip_cli.config import TrainConfig
from ezclip_cli.errors import UsageError
from ezclip_cli.progress import ProgressCallback
from ezclip_cli.train.data import build_datasets, class_prompts, load_video_lists, make_loader, pad_prompts
from ezclip_cli.train.devices import Distributed, default_workers, pick_train_device, resolve_precision
from ezclip_cli.train.files import RunFiles
from ezclip_cli.train.schedule import plan_epoch
from ezclip_cli.train.validation import validation_batches

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip
from typing import TYPE_CHECKING

from ezclip_cli.config import ModelConfig

if TYPE_CHECKING:
    from ezclip_cli.model.backbone import Backbone
    from ezclip_cli.model.ezclip import EZClip

log = logging.getLogger("ezclip_cli.train")  # one logger name for the whole run, as train.log has always shown


@dataclass
class RunSetup:
    """What a run fixes before its first step (only the validation loader is let go at the end)."""

    config: TrainConfig
    ddp: Distributed
    files: RunFiles
    progress: ProgressCallback | None
    started: float
    device: str
    precision: str
    master_weights: str  # "fp32", or "fp16": the fp16-stored params are rounded after every step
    fp16_params: list[nn.Parameter]  # what --master-weights fp16 rounds (found once; empty for fp32)
    model: EZClip
    forward: nn.Module  # the model's training forward, DDP-wrapped under torchrun
    train_data: Any
    val_data: Any
    classes: tuple[str, ...]
    prompts: list[list[str]]
    texts_per_class: int
    tokens: torch.Tensor  # (K*M, 77), row = class*M + template
    workers: int
    steps_per_epoch: int
    total_steps: int
    warmup: int
    params: list[nn.Parameter]
    param_names: list[str]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    eval_every: int
    val_loader: Any


def prepare_run(
    config: TrainConfig,
    ddp: Distributed,
    files: RunFiles,
    train_data: Any,
    val_data: Any,
    classes: Sequence[str] | None,
    progress: ProgressCallback | None,
) -> RunSetup:
    """Everything a run fixes before its first step: devices, data, model, texts, schedule, optimizer, DDP."""
    from ezclip_cli.data.labels import DEFAULT_TEMPLATES

    started = time.perf_counter()
    device = pick_train_device(config.device, ddp)
    precision = resolve_precision(config.precision, device)
    from ezclip_cli.train.master_weights import fp16_rounded_parameters, resolve_master_weights

    master_weights = resolve_master_weights(config.master_weights, config.faithful, device)
    if master_weights == "fp16":
        log.info(
            "master weights fp16: the adapters are rounded to fp16 after every optimizer step, as the reference "
            "(train.py 285-287); updates below half the fp16 spacing are lost (--master-weights fp32 keeps them)"
        )
    lists = load_video_lists(config) if train_data is None else None  # bad data fails before any model loads

    model, backbone = build_train_model(config, device)

    if train_data is None:
        train_data, val_data, classes = build_datasets(config, backbone, lists)
    if len(train_data) == 0:
        raise UsageError("the training set is empty")
    names = tuple(classes if classes is not None else train_data.classes)
    templates = tuple(config.templates) or DEFAULT_TEMPLATES
    prompts = class_prompts(names, templates, config.labels, config.allow_missing_descriptions, bool(config.raw_names))
    if config.labels:
        log.info("training on the class descriptions of %s", config.labels)
    padded = pad_prompts(prompts)  # with descriptions: one text per class (M = 1)
    texts_per_class = len(padded[0])
    tokens = model.tokenize([p for per_class in padded for p in per_class])
    tokens = tokens.view(len(names) * texts_per_class, -1)  # (K*M, 77), row = class*M + template
    if val_data is None:
        log.warning("no validation split: best.ezclip is the last checkpoint")
    workers = default_workers() if config.workers < 0 else config.workers

    steps_per_epoch = len(plan_epoch(len(train_data), config, 0, ddp.rank, ddp.world_size))
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    warmup = config.warmup_steps
    if warmup is None:
        warmup = round(config.warmup_epochs * steps_per_epoch)
    if warmup > total_steps // 2:
        log.warning("warmup (%d steps) takes over half of the %d-step run; set warmup_steps", warmup, total_steps)

    params = model.learned_parameters()
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    forward: nn.Module = _TrainForward(model)
    if ddp.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        forward = DistributedDataParallel(forward, device_ids=ids, broadcast_buffers=False)

    val_loader = None
    if val_data is not None:
        val_batches = validation_batches(len(val_data), config.batch_size, ddp)
        val_loader = make_loader(val_data, val_batches, workers, device.startswith("cuda"))
    return RunSetup(
        config=config,
        ddp=ddp,
        files=files,
        progress=progress,
        started=started,
        device=device,
        precision=precision,
        master_weights=master_weights,
        fp16_params=fp16_rounded_parameters(model) if master_weights == "fp16" else [],
        model=model,
        forward=forward,
        train_data=train_data,
        val_data=val_data,
        classes=names,
        prompts=prompts,
        texts_per_class=texts_per_class,
        tokens=tokens,
        workers=workers,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup=min(warmup, total_steps),
        params=params,
        param_names=[name for name, _ in model.learned_named_parameters()],
        optimizer=optimizer,
        scaler=torch.amp.GradScaler("cuda", enabled=precision == "fp16"),
        eval_every=choose_eval_every(config, ddp, train_data, val_data, steps_per_epoch),
        val_loader=val_loader,
    )


def choose_eval_every(config: TrainConfig, ddp: Distributed, train_data: Any, val_data: Any, steps: int) -> int:
    """--eval-every, or epochs that keep validation a small share of the work (train_defaults)."""
    from ezclip_cli.train.defaults import auto_eval_every, eval_every_message

    if val_data is None:
        return 1
    clips = min(steps * config.batch_size * config.grad_accum * ddp.world_size, len(train_data))
    every = config.eval_every or auto_eval_every(clips, len(val_data))
    log.info("%s", eval_every_message(every, steps, clips, len(val_data), config.eval_every is None))
    return every


def build_train_model(config: TrainConfig, device: str) -> tuple[EZClip, Backbone]:
    """The model in training mode on `device`, and its backbone (whose image size and normalisation the data uses)."""
    from ezclip_cli.model.backbone import load_backbone, text_transformer
    from ezclip_cli.model.ezclip import build_model

    # Frozen backbone and learned parts, both drawn from the seed (the same on every rank).
    start = None
    if config.init:  # fine-tune a released or earlier model: its backbone and learned parts (--init)
        from ezclip_cli.model.load import start_from

        backbone, start = start_from(config.init, config.num_frames, config.use_prompts, device)
    else:
        backbone = load_backbone(config.model, config.pretrained, device=device, seed=config.seed)
    model_config = ModelConfig(
        num_frames=config.num_frames,
        use_prompts=config.use_prompts,
        prompt_dropout=config.prompt_dropout,
        drop_path=config.drop_path,
        attn_dropout=config.attn_dropout,
        drop_path_positions=bool(config.drop_path_positions),
    )
    model = build_model(backbone, model_config, seed=config.seed).to(device)
    if start is not None:
        model.load_learned_state_dict(start)
    if config.grad_checkpointing:
        model.clip.visual.set_grad_checkpointing(True)
        text_transformer(model.clip).grad_checkpointing = True
    # Dropout and DropPath on; the backbone stays frozen (requires_grad False) but never runs
    # under no_grad: the prompts of layer 0 need gradients through every layer above.
    model.train()
    return model, backbone


class _TrainForward(nn.Module):
    """The one forward DDP wraps: per-frame video embeddings and text embeddings."""

    def __init__(self, model: EZClip):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_frames(video), self.model.encode_text(tokens)  # (B, T, D), (U, D)
