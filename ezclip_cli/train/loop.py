"""One training run as plain functions over two objects: what the run fixes, and the little that changes.

train_setup.prepare_run builds a `RunSetup` once (devices, data, model, texts, schedule, optimizer,
DDP); a `LoopState` holds what a step changes (counters, best validation, the loss window of the next
log row) and is all a resume restores besides the weights, optimizer and RNG. `fit` walks
`run_epoch` -> `optimizer_step`... -> `end_epoch` (validate, `save`) until the last step.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ezclip_cli.errors import CheckpointError
from ezclip_cli.train.data import EpochIndexed, make_loader
from ezclip_cli.train.devices import all_ranks_have, precision_autocast
from ezclip_cli.train.resolve import resume_files
from ezclip_cli.train.schedule import RunBatches, learning_rate, plan_epoch, seed_of, template_index
from ezclip_cli.train.setup import RunSetup
from ezclip_cli.train.state import gather_rng, load_train_state, read_learned, restore_rng, save_train_state
from ezclip_cli.train.validation import evaluate_top_k

if TYPE_CHECKING:
    pass
import torch.distributed as dist

from ezclip_cli.progress import ProgressCallback
from ezclip_cli.train.devices import Distributed
from ezclip_cli.train.files import RunFiles

log = logging.getLogger("ezclip_cli.train")  # one logger name for the whole run, as train.log has always shown


def new_window() -> dict[str, float | torch.Tensor]:
    """Loss sums since the last log row; they become 0-d tensors once a step adds to them (synced when logged)."""
    return {"loss": 0.0, "kl": 0.0, "motion": 0.0, "micro": 0, "clips": 0, "since": time.perf_counter()}


@dataclass
class LoopState:
    """What the steps change: counters, the best validation top-1, the loss window of the next log row."""

    step: int = 0
    epoch: int = 0
    skip_steps: int = 0  # steps of the current epoch a resumed run has already done
    best_top1: float = -1.0
    window: dict[str, float | torch.Tensor] = field(default_factory=new_window)
    last_row: dict[str, Any] = field(default_factory=dict)
    last_val: dict[str, Any] | None = None
    skipped_total: int = 0


# ---- state ------------------------------------------------------------------------------------------
def seed_training_rng(run: RunSetup) -> None:
    seed = seed_of(run.config.seed, run.ddp.rank, "train")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # dropout draws: different on each rank, reproducible


def restore(run: RunSetup, resume: str | Path) -> LoopState:
    """Learned parameters, optimizer, GradScaler and RNG of a saved run into `run`; its counters as a LoopState."""
    from ezclip_cli.model.checkpoint import read_checkpoint_header

    checkpoint, state_file = resume_files(resume)
    state = load_train_state(state_file)
    extra = json.loads(read_checkpoint_header(checkpoint).get("extra") or "{}")
    counters = state["counters"]
    if extra.get("state_token") != counters.get("state_token"):
        raise CheckpointError(f"{checkpoint} and {state_file.name} are from different saves (a crash between the two?)")
    if state["param_names"] != run.param_names:
        raise CheckpointError(f"{checkpoint}: its learned parameters do not match this config")
    saved = extra.get("train_config", {})
    changed = sorted(k for k, v in run.config.to_dict().items() if k != "out" and saved.get(k, v) != v)
    if changed:
        log.warning("resuming with changed settings (%s): not an exact continuation", ", ".join(changed))
    run.model.load_learned_state_dict(read_learned(checkpoint))
    param_groups = run.optimizer.state_dict()["param_groups"]  # hyper-parameters from the config
    run.optimizer.load_state_dict({"state": state["optimizer"], "param_groups": param_groups})
    if state["scaler"]:
        run.scaler.load_state_dict(state["scaler"])
    loop = LoopState(
        step=counters["step"],
        epoch=counters["epoch"],
        skip_steps=counters["step_in_epoch"],
        best_top1=counters["best_val_top1"],
    )
    if len(state["rng"]) != run.ddp.world_size:
        log.warning(
            "resuming on %d processes, saved on %d: dropout draws differ", run.ddp.world_size, len(state["rng"])
        )
    restore_rng(state["rng"][min(run.ddp.rank, len(state["rng"]) - 1)], run.device)
    run.files.truncate_metrics(loop.step)
    log.info("resumed %s at step %d (epoch %d)", checkpoint, loop.step, loop.epoch + 1)
    return loop


def save(run: RunSetup, loop: LoopState, epoch_done: int, in_epoch: int, val: dict[str, Any] | None) -> None:
    """last (+ best when validation improved, or at epoch ends without validation)."""
    rng = gather_rng(run.device, run.ddp)  # a collective: every rank calls save
    improved = val is not None and val["val_top1"] > loop.best_top1
    if improved:
        assert val is not None  # improved implies it
        loop.best_top1 = val["val_top1"]
    token = uuid.uuid4().hex
    counters = {
        "step": loop.step,
        "epoch": epoch_done,
        "step_in_epoch": in_epoch,
        "best_val_top1": loop.best_top1,
        "state_token": token,
        "world_size": run.ddp.world_size,
    }
    extra = {
        "train_config": run.config.to_dict(),
        "epoch": epoch_done,
        "step": loop.step,
        "step_in_epoch": in_epoch,
        "classes": list(run.classes),
        "state_token": token,
        **(val or {}),
    }

    def write_state(path: Path) -> None:
        save_train_state(
            path, optimizer=run.optimizer, scaler=run.scaler, param_names=run.param_names, rng=rng, counters=counters
        )

    best = improved or (run.val_data is None and in_epoch == 0)
    run.files.write_checkpoint(run.model, extra, write_state, best=best)


# ---- the loop ---------------------------------------------------------------------------------------
def fit(run: RunSetup, loop: LoopState) -> dict[str, Any]:
    """Steps until the last one, validation and checkpoints on the way; returns the run's summary."""
    config, ddp = run.config, run.ddp
    run.files.write_config(config)
    log.info(
        "training %s on %d clips of %d classes: %d steps (%d per epoch) x %d clips x %d process(es), %s on %s; "
        "%s trainable parameters",
        config.model,
        len(run.train_data),
        len(run.classes),
        run.total_steps,
        run.steps_per_epoch,
        config.batch_size * config.grad_accum,
        ddp.world_size,
        run.precision,
        run.device,
        f"{sum(p.numel() for p in run.params):,}",
    )
    bar = _StepProgress(run.progress if ddp.main else None, run.total_steps, loop.step)  # one rank speaks
    sampler = RunBatches(len(run.train_data), config, loop.epoch, loop.skip_steps, loop.step, run.total_steps, ddp)
    batches = iter(make_loader(EpochIndexed(run.train_data), sampler, run.workers, run.device.startswith("cuda")))
    try:
        while loop.step < run.total_steps:
            run_epoch(run, loop, bar, batches)
    finally:
        del batches  # one training loader for the whole run: let its worker processes go
        run.val_loader = None
    curves = run.files.write_curves()
    seconds = time.perf_counter() - run.started
    top1 = f", best val top-1 {loop.best_top1:.4f}" if loop.best_top1 >= 0 else ""
    log.info(
        "done: %d steps in %.1f s%s; checkpoints %s and %s", loop.step, seconds, top1, run.files.best, run.files.last
    )
    return {
        "steps": loop.step,
        "epochs": loop.epoch,
        **{k: loop.last_row.get(k) for k in ("loss", "kl", "motion")},
        **(loop.last_val or {}),
        "best_val_top1": loop.best_top1 if loop.best_top1 >= 0 else None,
        "skipped": loop.skipped_total,
        "seconds": seconds,
        "out": str(run.files.out),
        "last": str(run.files.last),
        "best": str(run.files.best),
        "curves": str(curves) if curves else None,
    }


def run_epoch(run: RunSetup, loop: LoopState, bar: _StepProgress, batches: Iterator[Any]) -> None:
    """The rest of the current epoch, then validation and checkpoints."""
    config, ddp = run.config, run.ddp
    # The same plan RunBatches walks: this loop consumes the loader step by step.
    plan = plan_epoch(len(run.train_data), config, loop.epoch, ddp.rank, ddp.world_size)[loop.skip_steps :]
    plan = plan[: run.total_steps - loop.step]  # a max_steps run ends inside its last epoch
    loop.skip_steps = 0
    skipped: list[str] = []
    for position, step_plan in enumerate(plan, start=1):
        lr = optimizer_step(run, loop, step_plan, batches, skipped)
        last_of_epoch = position == len(plan)
        if loop.step % config.log_every == 0 or last_of_epoch:
            loop.last_row = row = _log_window(loop.window, loop.step, loop.epoch, lr, run.device, ddp)
            run.files.append_metrics(row)
            bar.update(loop.step, f"loss {row['loss']:.4f}  lr {lr:.2e}  {row['clips_per_s']:.1f} clips/s")
        else:
            bar.update(loop.step)
        if last_of_epoch:
            break
        if config.save_every_steps and loop.step % config.save_every_steps == 0:
            save(run, loop, loop.epoch, loop.step - loop.epoch * run.steps_per_epoch, None)
    loop.skipped_total += _report_skipped(skipped, loop.epoch, ddp, run.files)
    end_epoch(run, loop)


def optimizer_step(
    run: RunSetup, loop: LoopState, step_plan: list[list[int]], batches: Iterator[Any], skipped: list[str]
) -> float:
    """Accumulate the step's micro-batches, clip, step AdamW at the scheduled lr. Returns the lr."""
    from ezclip_cli.model.ezclip import ezclip_loss

    config, device = run.config, run.device
    lr = learning_rate(loop.step, run.total_steps, run.warmup, config.lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    losses = torch.zeros(3, device=device)  # loss, kl, motion summed over micro-batches
    ran = 0
    for _ in step_plan:
        batch = next(batches)
        if batch is not None:
            skipped += batch["skipped"]
        if not all_ranks_have(batch is not None, device, run.ddp):
            continue  # all ranks skip a micro-batch together, or DDP would wait forever
        video = batch["video"].to(device, non_blocking=True)  # (B, T, 3, S, S)
        labels = batch["label"].to(device)  # (B,)
        count = run.texts_per_class
        chosen = [template_index(config.seed, loop.epoch, i, count) for i in batch["index"].tolist()]
        rows = labels * count + torch.tensor(chosen, device=device)  # (B,) one text per clip
        unique, inverse = torch.unique(rows, return_inverse=True)  # encode each distinct text once
        with precision_autocast(device, run.precision):
            frames, text = run.forward(video, run.tokens[unique])  # (B, T, D), (U, D)
        # The soft-target KL sees this rank's batch only (no all-gather of embeddings), as the
        # reference trained on one GPU; DDP averages the gradients across ranks.
        parts = ezclip_loss(frames, text[inverse], labels, run.model.logit_scale, config.motion_weight)
        run.scaler.scale(parts["loss"] / len(step_plan)).backward()
        losses += torch.stack([parts["loss"], parts["kl"], parts["motion"]]).detach()
        ran += 1
        loop.window["clips"] += len(labels)
    if ran:
        if config.clip_grad is not None:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.params, config.clip_grad)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.fp16_params:  # --master-weights fp16: the reference's convert_weights after each step
            from ezclip_cli.train.master_weights import round_to_fp16_

            round_to_fp16_(run.fp16_params)
    run.optimizer.zero_grad(set_to_none=True)
    loop.step += 1
    loop.window["micro"] += ran
    for i, key in enumerate(("loss", "kl", "motion")):
        loop.window[key] += losses[i]
    return lr


def end_epoch(run: RunSetup, loop: LoopState) -> None:
    """Validate (every eval_every epochs and at the end) and checkpoint."""
    config = run.config
    final = loop.step >= run.total_steps
    val = None
    if run.val_data is not None and ((loop.epoch + 1) % run.eval_every == 0 or final):
        val = evaluate_top_k(
            run.model,
            run.val_data,
            run.prompts,
            batch_size=config.batch_size,
            device=run.device,
            precision=run.precision,
            ddp=run.ddp,
            loader=run.val_loader,
        )
        loop.last_val = val
        run.files.append_metrics({"step": loop.step, "epoch": loop.epoch + 1, **val})
        log.info(
            "epoch %d step %d: val top-1 %.4f top-5 %.4f (%d videos)",
            loop.epoch + 1,
            loop.step,
            val["val_top1"],
            val["val_top5"],
            val["val_videos"],
        )
    loop.epoch += 1
    save(run, loop, loop.epoch, 0, val)


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


def _report_skipped(skipped: list[str], epoch: int, ddp: Distributed, files: RunFiles) -> int:
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
