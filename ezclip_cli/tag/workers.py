"""How many decoding processes a run starts: `--workers auto` decides, an explicit `-j N` is capped.

A worker process costs a spawn and its imports (PyAV and numpy; no torch since decoding is torch-free)
before its first clip, so a handful of videos is decoded faster in the main process, between model
batches, than by workers that are still starting. Past that, the cores but one (the model's) decode
in parallel, at most 8. An explicit N above the core count only makes processes fight for the same
cores (issue 21: `-j 100` on 2 cores started 95 processes and ran 12x slower), so it is capped there.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

AUTO = "auto"
MAX_AUTO_WORKERS = 8
# Below this many videos (windows count as the videos they come from) `auto` decodes in-process:
# a spawned worker needs about 1 s to start here, the time to decode 20 to 40 short clips.
IN_PROCESS_BELOW = 16


def cores() -> int:
    """The cores this process may use (its affinity where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """Decoding processes for a long run: the cores but one (the model's), at least 1, at most 8."""
    return max(1, min(MAX_AUTO_WORKERS, cores() - 1))


def resolve_workers(workers: int | str, videos: int) -> int:
    """The number of decoding processes for `videos` inputs: `auto` decides; N is capped at the cores."""
    if workers == AUTO or workers == -1:  # -1: what `auto` was spelled before
        return 0 if videos < IN_PROCESS_BELOW else default_workers()
    assert isinstance(workers, int)  # TagConfig checked it
    available = cores()
    if workers > available:
        log.warning("--workers %d is more than the %d cores here; using %d", workers, available, available)
        return available
    return workers
