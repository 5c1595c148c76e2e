"""Which part of the inputs this process tags: flags first, else a SLURM job array's variables.

In a job array (`sbatch --array=0-99`) every task runs the same command line; SLURM tells each
its place through SLURM_ARRAY_TASK_ID / _COUNT / _MIN / _STEP, so `ezclip tag` can pick its
shard without per-task arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ezclip_cli.errors import UsageError

ARRAY_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not an integer; fix it or pass --num-shards/--shard-index") from None


def resolve_shard(
    num_shards: int | None, shard_index: int | None, env: Mapping[str, str] | None = None
) -> tuple[int, int, str | None]:
    """(num_shards, shard_index, where they came from) for the flags given (None = not given).

    Without flags, a SLURM array task is shard (ID - MIN) / STEP of COUNT, so `--array=1-10`
    and `--array=0-18:2` both give shards 0..9 of 10. Outside an array: shard 0 of 1.
    """
    env = os.environ if env is None else env
    source = None
    if num_shards is None or shard_index is None:
        task_id, count = _int(env, "SLURM_ARRAY_TASK_ID"), _int(env, "SLURM_ARRAY_TASK_COUNT")
        if task_id is not None and count is not None:
            first = _int(env, "SLURM_ARRAY_TASK_MIN", 0) or 0
            step = _int(env, "SLURM_ARRAY_TASK_STEP", 1) or 1
            if num_shards is None:
                num_shards = count
            if shard_index is None:
                shard_index = (task_id - first) // step
            source = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
    num_shards = 1 if num_shards is None else num_shards
    shard_index = 0 if shard_index is None else shard_index
    if num_shards < 1:
        raise UsageError(f"--num-shards must be at least 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        origin = f" (from {source})" if source else ""
        raise UsageError(f"--shard-index {shard_index} must be in 0..{num_shards - 1}{origin}")
    return num_shards, shard_index, source
