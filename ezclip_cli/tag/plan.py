"""What to tag: the videos of this shard, one task per video or per window, and their identities.

A video is known by `video_fingerprint` (its resolved path, size and modification time), so resume
and the embedding store recognise it however it is spelled. Windows cover the video with
`window_bounds`; scenes come from a PySceneDetect list (segments.scene_bounds).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.tag.results import TagResult


@dataclass(frozen=True)
class Task:
    """One prediction to make: a whole video, or one window of it."""

    path: Path
    video_id: str
    start: float | None = None
    end: float | None = None
    duration: float | None = None

    def failed(self, reason: str) -> TagResult:
        """This task's error result: `reason` is one line saying what went wrong."""
        return TagResult.failed(str(self.path), self.video_id, reason, self.start, self.end, self.duration)


def video_fingerprint(path: Path) -> str:
    """Identity of a video file for resume: `WHO.WHAT`, WHO from its resolved path (one file, however
    it is named), WHAT from its size and modification time (changed content)."""
    real = os.path.realpath(path)
    try:
        stat = os.stat(real)
        content = f"{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        content = "missing"
    return f"{hashlib.sha1(real.encode()).hexdigest()[:16]}.{hashlib.sha1(content.encode()).hexdigest()[:8]}"


def select_shard(paths: Sequence[Path], num_shards: int, shard_index: int) -> list[Path]:
    """Deterministic disjoint parts: a path's shard is a hash of the path, independent of order."""
    if num_shards == 1:
        return list(paths)
    # The resolved path: a job array may name the folder relatively in one job and absolutely in another.
    return [
        p for p in paths if int(hashlib.sha1(os.path.realpath(p).encode()).hexdigest(), 16) % num_shards == shard_index
    ]


def window_bounds(duration: float, window: float, stride: float | None) -> list[tuple[float, float]]:
    """[start, end) windows covering the video; the last one may be shorter.

    Every window starts before the end: with a stride longer than the window (gaps between
    windows) the next start can land at or past the end, and such a window has no frames.
    Starts are i * stride, not a running sum, so float error cannot creep across a long video.
    """
    stride = stride or window
    eps = 1e-6
    starts = [0.0]
    while starts[-1] + window < duration - eps and len(starts) * stride < duration - eps:
        starts.append(float(len(starts) * stride))
    return [(round(s, 6), round(min(s + window, duration), 6)) for s in starts]


def plan_tasks(paths: Iterable[Path], config: TagConfig) -> Iterator[Task | TagResult]:
    """Tasks in input order; a video that cannot even be probed (window mode) yields its error result."""
    from ezclip_cli.tag.segments import scene_bounds
    from ezclip_cli.video.reader import probe_video

    paths = list(paths)
    for path in paths:
        vid = video_fingerprint(path)
        if config.window is None and config.scenes is None:
            yield Task(path, vid)
            continue
        try:
            info = probe_video(path, decoder=config.decoder)
            if config.scenes is not None:
                bounds = scene_bounds(path, config.scenes, len(paths), info.duration)
            else:
                assert config.window is not None  # the loop went on above when neither is set
                bounds = window_bounds(info.duration, config.window, config.stride)
        except VideoError as exc:
            yield Task(path, vid).failed(str(exc))
            continue
        for start, end in bounds:
            yield Task(path, vid, start, end, info.duration)


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
