"""Training devices, precision and processes (DDP under torchrun)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ezclip_cli.errors import UsageError


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we destroy it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """DDP from torchrun's env vars (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); nccl on CUDA, gloo on CPU."""
    from ezclip_cli.distributed import launch

    here = launch()
    if here.world <= 1:
        return Distributed()
    rank, world_size, local_rank = here.rank, here.world, here.local_rank
    owns = not dist.is_initialized()
    if owns:
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)  # before NCCL binds this process to a GPU
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank, world_size, local_rank, owns)


def pick_train_device(device: str, ddp: Distributed) -> str:
    from ezclip_cli.model.load import pick_device

    chosen = pick_device(device)
    if chosen == "cuda" and ddp.enabled:
        chosen = f"cuda:{ddp.local_rank}"
    if chosen.startswith("cuda") and torch.device(chosen).index is not None:
        torch.cuda.set_device(torch.device(chosen))  # NCCL collectives and all_gather_object use it
    return chosen


def resolve_precision(precision: str, device: str) -> str:
    """fp32, bf16 or fp16. auto: bf16 on CUDA when supported, else fp16 (+ GradScaler); fp32 off CUDA."""
    cuda = device.startswith("cuda")
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise UsageError("precision fp16 needs a CUDA device (it trains with a GradScaler); use bf16 or fp32")
    return precision


def precision_autocast(device: str, precision: str) -> torch.autocast:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=precision != "fp32")


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def all_ranks_have(have: bool, device: str, ddp: Distributed) -> bool:
    if not ddp.enabled:
        return have
    flag = torch.tensor([1 if have else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
