"""The few torch.distributed operations ezclip needs, for commands run under `torchrun`.

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything here is a no-op for
a single process. Objects are exchanged over a gloo group (CPU), which works next to NCCL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Launch:
    """This process's place under torchrun (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0


def launch() -> Launch:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, read without importing torch (the one place that reads them)."""
    return Launch(
        int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    )


def is_main_process() -> bool:
    """Whether this process reports and writes: the only one, or torchrun's rank 0."""
    return launch().rank == 0


class ProcessGroup:
    """Rank, world size and object collectives; `world == 1` needs no torch.distributed."""

    def __init__(self) -> None:
        here = launch()
        self.rank, self.world, self.local_rank = here.rank, here.world, here.local_rank
        self._owned = False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo")
                self._owned = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self._owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owned = False
