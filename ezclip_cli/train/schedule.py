"""Learning-rate schedule and data order: every draw a function of (seed, epoch, index), for exact resume."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from ezclip_cli.config import TrainConfig

if TYPE_CHECKING:
    from ezclip_cli.train.devices import Distributed


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """lr of optimizer step `step` (0-based): linear warmup to `peak`, then cosine to 0 (docs/model.md 8)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def seed_of(*parts: Any) -> int:
    """A 63-bit seed from any parts, the same in every process and Python run."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def epoch_order(num_items: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's share of the epoch's permutation, a function of (seed, epoch) only.

    As DistributedSampler: the permutation is padded by wrapping so each rank gets the same count.
    """
    generator = torch.Generator().manual_seed(seed_of(seed, epoch, "order"))
    order = torch.randperm(num_items, generator=generator).tolist()
    per_rank = math.ceil(num_items / world_size)
    order = (order * math.ceil(per_rank * world_size / num_items))[: per_rank * world_size]
    return order[rank::world_size]


def plan_epoch(
    num_items: int, config: TrainConfig, epoch: int, rank: int = 0, world_size: int = 1
) -> list[list[list[int]]]:
    """Optimizer steps of one epoch, each a list of micro-batches of dataset indices.

    Incomplete micro-batches are dropped (the soft-target KL wants full batches) unless the shard
    is smaller than one batch; leftover micro-batches that cannot fill a step are dropped too.
    """
    order = epoch_order(num_items, config.seed, epoch, rank, world_size)
    size = config.batch_size
    micro = [order[i : i + size] for i in range(0, len(order), size)]
    if len(micro) > 1 and len(micro[-1]) < size:
        micro.pop()
    accum = config.grad_accum
    steps = [micro[i : i + accum] for i in range(0, len(micro), accum)]
    if len(steps) > 1 and len(steps[-1]) < accum:
        steps.pop()
    return steps


def template_index(seed: int, epoch: int, index: int, count: int) -> int:
    """Which template clip `index` is paired with this epoch (the reference draws one per clip per step)."""
    return 0 if count == 1 else random.Random(f"{seed}:{epoch}:{index}:template").randrange(count)


class RunBatches:
    """The run's micro-batches of (epoch, index) keys, from (epoch, step in epoch) to the last step."""

    def __init__(
        self,
        num_items: int,
        config: TrainConfig,
        epoch: int,
        skip_steps: int,
        step: int,
        total_steps: int,
        ddp: Distributed,
    ):
        self.args = (num_items, config, epoch, skip_steps, step, total_steps, ddp)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        num_items, config, epoch, skip, step, total, ddp = self.args
        while step < total:
            plan = plan_epoch(num_items, config, epoch, ddp.rank, ddp.world_size)[skip:][: total - step]
            for step_plan in plan:
                for micro in step_plan:
                    yield [(epoch, index) for index in micro]
            step, epoch, skip = step + len(plan), epoch + 1, 0
