"""One training run: model, optimizer, schedule, counters, the step loop, validation and checkpoints."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ezclip_cli.config import TrainConfig
from ezclip_cli.errors import CheckpointError, UsageError
from ezclip_cli.progress import ProgressCallback
from ezclip_cli.train_config import resume_files
from ezclip_cli.train_data import EpochIndexed, _loader, build_datasets, class_prompts, load_video_lists, pad_prompts
from ezclip_cli.train_devices import (
    Distributed,
    _all_ranks_have,
    _autocast,
    _default_workers,
    pick_train_device,
    resolve_precision,
)
from ezclip_cli.train_files import _RunFiles
from ezclip_cli.train_model import _TrainForward, build_train_model
from ezclip_cli.train_report import _log_window, _report_skipped, _StepProgress
from ezclip_cli.train_schedule import _RunBatches, _seed_of, learning_rate, plan_epoch, template_index
from ezclip_cli.train_state import _gather_rng, _read_learned, load_train_state, restore_rng, save_train_state
from ezclip_cli.train_validation import evaluate_top_k, validation_batches

log = logging.getLogger("ezclip_cli.train")  # one logger name for the whole run, as train.log has always shown


class _Run:
    """One training run: model, optimizer, schedule, counters, and the files rank 0 writes."""

    def __init__(
        self,
        config: TrainConfig,
        ddp: Distributed,
        files: _RunFiles,
        train_data: Any,
        val_data: Any,
        classes: Sequence[str] | None,
        progress: ProgressCallback | None,
    ):
        from ezclip_cli.labels import DEFAULT_TEMPLATES

        self.started = time.perf_counter()
        self.config, self.ddp, self.files, self.progress = config, ddp, files, progress
        self.device = pick_train_device(config.device, ddp)
        self.precision = resolve_precision(config.precision, self.device)
        lists = load_video_lists(config) if train_data is None else None  # bad data fails before any model loads

        self.model, backbone = build_train_model(config, self.device)

        if train_data is None:
            train_data, val_data, classes = build_datasets(config, backbone, lists)
        if len(train_data) == 0:
            raise UsageError("the training set is empty")
        self.train_data, self.val_data = train_data, val_data
        self.classes = tuple(classes if classes is not None else train_data.classes)
        self.templates = tuple(config.templates) or DEFAULT_TEMPLATES
        self.prompts = class_prompts(
            self.classes, self.templates, config.labels, config.allow_missing_descriptions, bool(config.raw_names)
        )
        if config.labels:
            log.info("training on the class descriptions of %s", config.labels)
        padded = pad_prompts(self.prompts)  # with descriptions: one text per class (M = 1)
        self.texts_per_class = len(padded[0])
        tokens = self.model.tokenize([p for per_class in padded for p in per_class])
        self.tokens = tokens.view(len(self.classes) * self.texts_per_class, -1)  # (K*M, 77), row = class*M + template
        if val_data is None:
            log.warning("no validation split: best.ezclip is the last checkpoint")
        self.workers = _default_workers() if config.workers < 0 else config.workers

        self.steps_per_epoch = len(plan_epoch(len(train_data), config, 0, ddp.rank, ddp.world_size))
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        warmup = config.warmup_steps
        if warmup is None:
            warmup = round(config.warmup_epochs * self.steps_per_epoch)
        if warmup > self.total_steps // 2:
            log.warning(
                "warmup (%d steps) takes over half of the %d-step run; set warmup_steps", warmup, self.total_steps
            )
        self.warmup = min(warmup, self.total_steps)

        self.params = self.model.learned_parameters()
        self.param_names = [name for name, _ in self.model.learned_named_parameters()]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.forward: nn.Module = _TrainForward(self.model)
        if ddp.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            self.forward = DistributedDataParallel(self.forward, device_ids=ids, broadcast_buffers=False)

        self.step, self.epoch, self.skip_steps, self.best_top1 = 0, 0, 0, -1.0
        self.batches: Iterator[Any] | None = None  # one training loader for the whole run (fit)
        self.val_loader = None
        self.eval_every = self.choose_eval_every()
        if val_data is not None:
            val_batches = validation_batches(len(val_data), config.batch_size, ddp)
            self.val_loader = _loader(val_data, val_batches, self.workers, self.device.startswith("cuda"))
        # the loss sums become 0-d tensors once a step adds to them (synced only when a row is logged)
        self.window: dict[str, float | torch.Tensor] = {
            "loss": 0.0,
            "kl": 0.0,
            "motion": 0.0,
            "micro": 0,
            "clips": 0,
            "since": time.perf_counter(),
        }
        self.last_row: dict[str, Any] = {}
        self.last_val: dict[str, Any] | None = None
        self.skipped_total = 0

    def choose_eval_every(self) -> int:
        """--eval-every, or epochs that keep validation a small share of the work (train_defaults)."""
        from ezclip_cli.train_defaults import auto_eval_every, eval_every_message

        if self.val_data is None:
            return 1
        config = self.config
        clips = self.steps_per_epoch * config.batch_size * config.grad_accum * self.ddp.world_size
        clips = min(clips, len(self.train_data))
        every = config.eval_every or auto_eval_every(clips, len(self.val_data))
        chosen = config.eval_every is None
        log.info("%s", eval_every_message(every, self.steps_per_epoch, clips, len(self.val_data), chosen))
        return every

    # ---- state ------------------------------------------------------------------------------------
    def seed_training_rng(self) -> None:
        seed = _seed_of(self.config.seed, self.ddp.rank, "train")
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # dropout draws: different on each rank, reproducible

    def restore(self, resume: str | Path) -> None:
        """Learned parameters, optimizer, GradScaler, RNG and counters of a saved run."""
        from ezclip_cli.checkpoint import read_checkpoint_header

        checkpoint, state_file = resume_files(resume)
        state = load_train_state(state_file)
        extra = json.loads(read_checkpoint_header(checkpoint).get("extra") or "{}")
        counters = state["counters"]
        if extra.get("state_token") != counters.get("state_token"):
            raise CheckpointError(
                f"{checkpoint} and {state_file.name} are from different saves (a crash between the two?)"
            )
        if state["param_names"] != self.param_names:
            raise CheckpointError(f"{checkpoint}: its learned parameters do not match this config")
        saved = extra.get("train_config", {})
        changed = sorted(k for k, v in self.config.to_dict().items() if k != "out" and saved.get(k, v) != v)
        if changed:
            log.warning("resuming with changed settings (%s): not an exact continuation", ", ".join(changed))
        self.model.load_learned_state_dict(_read_learned(checkpoint))
        param_groups = self.optimizer.state_dict()["param_groups"]  # hyper-parameters from the config
        self.optimizer.load_state_dict({"state": state["optimizer"], "param_groups": param_groups})
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.skip_steps = counters["step"], counters["epoch"], counters["step_in_epoch"]
        self.best_top1 = counters["best_val_top1"]
        if len(state["rng"]) != self.ddp.world_size:
            log.warning(
                "resuming on %d processes, saved on %d: dropout draws differ", self.ddp.world_size, len(state["rng"])
            )
        restore_rng(state["rng"][min(self.ddp.rank, len(state["rng"]) - 1)], self.device)
        self.files.truncate_metrics(self.step)
        log.info("resumed %s at step %d (epoch %d)", checkpoint, self.step, self.epoch + 1)

    def save(self, epoch_done: int, in_epoch: int, val: dict[str, Any] | None) -> None:
        """last (+ best when validation improved, or at epoch ends without validation)."""
        rng = _gather_rng(self.device, self.ddp)  # a collective: every rank calls save
        improved = val is not None and val["val_top1"] > self.best_top1
        if improved:
            assert val is not None  # improved implies it
            self.best_top1 = val["val_top1"]
        token = uuid.uuid4().hex
        counters = {
            "step": self.step,
            "epoch": epoch_done,
            "step_in_epoch": in_epoch,
            "best_val_top1": self.best_top1,
            "state_token": token,
            "world_size": self.ddp.world_size,
        }
        extra = {
            "train_config": self.config.to_dict(),
            "epoch": epoch_done,
            "step": self.step,
            "step_in_epoch": in_epoch,
            "classes": list(self.classes),
            "state_token": token,
            **(val or {}),
        }

        def write_state(path: Path) -> None:
            save_train_state(
                path,
                optimizer=self.optimizer,
                scaler=self.scaler,
                param_names=self.param_names,
                rng=rng,
                counters=counters,
            )

        best = improved or (self.val_data is None and in_epoch == 0)
        self.files.write_checkpoint(self.model, extra, write_state, best=best)

    # ---- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        config, ddp = self.config, self.ddp
        self.files.write_config(config)
        log.info(
            "training %s on %d clips of %d classes: %d steps (%d per epoch) x %d clips x %d process(es), %s on %s; "
            "%s trainable parameters",
            config.model,
            len(self.train_data),
            len(self.classes),
            self.total_steps,
            self.steps_per_epoch,
            config.batch_size * config.grad_accum,
            ddp.world_size,
            self.precision,
            self.device,
            f"{sum(p.numel() for p in self.params):,}",
        )
        # progress=False from older callers means none; one rank speaks
        bar = _StepProgress((self.progress or None) if ddp.main else None, self.total_steps, self.step)
        sampler = _RunBatches(
            len(self.train_data), config, self.epoch, self.skip_steps, self.step, self.total_steps, ddp
        )
        self.batches = iter(
            _loader(EpochIndexed(self.train_data), sampler, self.workers, self.device.startswith("cuda"))
        )
        try:
            while self.step < self.total_steps:
                self.run_epoch(bar)
        finally:
            self.batches = self.val_loader = None  # let the worker processes go
        curves = self.files.write_curves()
        seconds = time.perf_counter() - self.started
        top1 = f", best val top-1 {self.best_top1:.4f}" if self.best_top1 >= 0 else ""
        log.info(
            "done: %d steps in %.1f s%s; checkpoints %s and %s",
            self.step,
            seconds,
            top1,
            self.files.best,
            self.files.last,
        )
        return {
            "steps": self.step,
            "epochs": self.epoch,
            **{k: self.last_row.get(k) for k in ("loss", "kl", "motion")},
            **(self.last_val or {}),
            "best_val_top1": self.best_top1 if self.best_top1 >= 0 else None,
            "skipped": self.skipped_total,
            "seconds": seconds,
            "out": str(self.files.out),
            "last": str(self.files.last),
            "best": str(self.files.best),
            "curves": str(curves) if curves else None,
        }

    def run_epoch(self, bar: _StepProgress) -> None:
        """The rest of the current epoch, then validation and checkpoints."""
        config = self.config
        # The same plan _RunBatches walks: this loop consumes the loader step by step.
        plan = plan_epoch(len(self.train_data), config, self.epoch, self.ddp.rank, self.ddp.world_size)[
            self.skip_steps :
        ]
        plan = plan[: self.total_steps - self.step]  # a max_steps run ends inside its last epoch
        self.skip_steps = 0
        skipped: list[str] = []
        for position, step_plan in enumerate(plan, start=1):
            assert self.batches is not None  # fit() opened the loader before the first epoch
            lr = self.optimizer_step(step_plan, self.batches, skipped)
            last_of_epoch = position == len(plan)
            if self.step % config.log_every == 0 or last_of_epoch:
                self.last_row = _log_window(self.window, self.step, self.epoch, lr, self.device, self.ddp)
                self.files.append_metrics(self.last_row)
                row = self.last_row
                bar.update(self.step, f"loss {row['loss']:.4f}  lr {lr:.2e}  {row['clips_per_s']:.1f} clips/s")
            else:
                bar.update(self.step)
            if last_of_epoch:
                break
            if config.save_every_steps and self.step % config.save_every_steps == 0:
                self.save(self.epoch, self.step - self.epoch * self.steps_per_epoch, None)
        self.skipped_total += _report_skipped(skipped, self.epoch, self.ddp, self.files)
        self.end_epoch()

    def optimizer_step(self, step_plan: list[list[int]], batches: Iterator[Any], skipped: list[str]) -> float:
        """Accumulate the step's micro-batches, clip, step AdamW at the scheduled lr. Returns the lr."""
        from ezclip_cli.model import ezclip_loss

        config, device = self.config, self.device
        lr = learning_rate(self.step, self.total_steps, self.warmup, config.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        losses = torch.zeros(3, device=device)  # loss, kl, motion summed over micro-batches
        ran = 0
        for _ in step_plan:
            batch = next(batches)
            if batch is not None:
                skipped += batch["skipped"]
            if not _all_ranks_have(batch is not None, device, self.ddp):
                continue  # all ranks skip a micro-batch together, or DDP would wait forever
            video = batch["video"].to(device, non_blocking=True)  # (B, T, 3, S, S)
            labels = batch["label"].to(device)  # (B,)
            count = self.texts_per_class
            chosen = [template_index(config.seed, self.epoch, i, count) for i in batch["index"].tolist()]
            rows = labels * count + torch.tensor(chosen, device=device)  # (B,) one text per clip
            unique, inverse = torch.unique(rows, return_inverse=True)  # encode each distinct text once
            with _autocast(device, self.precision):
                frames, text = self.forward(video, self.tokens[unique])  # (B, T, D), (U, D)
            # The soft-target KL sees this rank's batch only (no all-gather of embeddings), as the
            # reference trained on one GPU; DDP averages the gradients across ranks.
            parts = ezclip_loss(frames, text[inverse], labels, self.model.logit_scale, config.motion_weight)
            self.scaler.scale(parts["loss"] / len(step_plan)).backward()
            losses += torch.stack([parts["loss"], parts["kl"], parts["motion"]]).detach()
            ran += 1
            self.window["clips"] += len(labels)
        if ran:
            if config.clip_grad is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.params, config.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.window["micro"] += ran
        for i, key in enumerate(("loss", "kl", "motion")):
            self.window[key] += losses[i]
        return lr

    def end_epoch(self) -> None:
        """Validate (every eval_every epochs and at the end) and checkpoint."""
        config = self.config
        final = self.step >= self.total_steps
        val = None
        if self.val_data is not None and ((self.epoch + 1) % self.eval_every == 0 or final):
            val = evaluate_top_k(
                self.model,
                self.val_data,
                self.prompts,
                batch_size=config.batch_size,
                device=self.device,
                precision=self.precision,
                ddp=self.ddp,
                loader=self.val_loader,
            )
            self.last_val = val
            self.files.append_metrics({"step": self.step, "epoch": self.epoch + 1, **val})
            log.info(
                "epoch %d step %d: val top-1 %.4f top-5 %.4f (%d videos)",
                self.epoch + 1,
                self.step,
                val["val_top1"],
                val["val_top5"],
                val["val_videos"],
            )
        self.epoch += 1
        self.save(self.epoch, 0, val)
