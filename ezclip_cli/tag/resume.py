"""Resuming `ezclip tag -o FILE`: which earlier rows are kept, which videos are still to do.

A video is known by `WHO.WHAT` (tag_plan.video_fingerprint): WHO is its resolved path, so the
same file named relatively, absolutely or from another folder is one video; WHAT is its size
and modification time, so a changed file is tagged again and its new row replaces the old one.
Every setting that changes rows is part of the output's identity: the model's content
(model_id), the label set with its prompts (labels_id) and top-k, window, stride and CSV
neutralisation (settings_id). An output holding rows of another identity is refused, never mixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError
from ezclip_cli.tag.output import FORMATS, csv_columns, csv_header, not_ours, read_rows, rewrite_rows
from ezclip_cli.tag.results import Stamp, TagResult

if TYPE_CHECKING:
    from ezclip_cli.tag.plan import Task

IDENTITY = (
    ("model_id", "model"),
    ("labels_id", "label set or templates"),
    ("settings_id", "--top-k/--window/--stride/--raw-csv"),
)


def settings_id(config: TagConfig) -> str:
    """Short id of the settings that change rows besides the model and the label set."""
    settings: dict[str, object] = {
        "top_k": config.top_k,
        "window": config.window,
        "stride": config.stride,
        "raw_csv": config.raw_csv if config.output_format == "csv" else None,
    }
    if config.seek != "exact":  # other frames, other rows: resume never mixes the two (exact keeps its old id)
        settings["seek"] = config.seek
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def video_key(video_id: Any) -> str:
    """The WHO part of a video id: the same file, whatever its content now."""
    return str(video_id or "").split(".")[0]


def start_key(start: float | str | None) -> float | None:
    """A window's start as row keys compare it: to the millisecond rows carry; None (or CSV's "") for a whole video."""
    return None if start is None or start == "" else round(float(start), 3)


def row_key(row: dict[str, Any]) -> tuple:
    """One video (window) of an output record: its file, whatever its spelling, and its start."""
    return (video_key(row.get("video_id")), start_key(row.get("start")))


def task_key(item: Task | TagResult) -> tuple:
    """`row_key` of the record a task (or a result) makes."""
    return (video_key(item.video_id), start_key(item.start))


def load_existing(target: Path, fmt: str, top_k: int, overwrite: bool, neutralised: bool) -> list[dict[str, Any]]:
    """Rows of an earlier run in `target`, read before the model loads so a foreign file fails fast.

    A file that is not an ezclip output of this format is refused (exit 2), also with --overwrite
    (which replaces only an ezclip output, of any format). An empty file counts as new.
    """
    if not target.exists() or target.stat().st_size == 0:
        return []
    if overwrite:
        for candidate in (fmt, *(f for f in FORMATS if f != fmt)):
            try:
                read_rows(target, candidate)
                return []
            except UsageError:
                continue
        raise not_ours(target, fmt, "--overwrite replaces only an ezclip output")
    if fmt == "csv":
        header = csv_header(target)
        columns = csv_columns(top_k)
        if header and header != columns and header[:6] == columns[:6] and "video_id" in header:
            raise UsageError(
                f"{target} was written with other columns (another --top-k?); use the same options or --overwrite"
            )
    return read_rows(target, fmt, neutralised)


def prepare_output(
    output: Path,
    fmt: str,
    top_k: int,
    stamp: Stamp,
    overwrite: bool,
    rows: list[dict[str, Any]],
    current_ids: Iterable[str],
    neutralise: bool = True,
) -> tuple[dict[tuple, str], int]:
    """Rewrite `output` with the earlier rows still valid; return {row key: video id} of those done.

    Failed rows are dropped (tried again), rows of a video that changed since are dropped (its new
    row replaces them), duplicates keep the last. `current_ids` are the video ids of this run's inputs.
    """
    if overwrite:
        rewrite_rows(output, fmt, top_k, [], neutralise)
        return {}, 0
    foreign = [r for r in rows if any(r.get(key) != getattr(stamp, key) for key, _ in IDENTITY)]
    if foreign:
        differs = [name for key, name in IDENTITY if any(r.get(key) != getattr(stamp, key) for r in foreign)]
        raise UsageError(
            f"{output} holds results of another model or label set or other settings ({', '.join(differs)} "
            f"differ in {len(foreign)} rows); use the same options, --overwrite, or another -o"
        )
    current = {video_key(video_id): video_id for video_id in current_ids}
    kept = [
        r
        for r in rows
        if r.get("status") == "ok" and current.get(video_key(r.get("video_id")), r.get("video_id")) == r.get("video_id")
    ]
    unique = {row_key(r): r for r in kept}  # one row per video/window, whatever happened before
    rewrite_rows(output, fmt, top_k, unique.values(), neutralise)
    return {key: str(r.get("video_id")) for key, r in unique.items()}, len(unique)


def still_to_do(task: Task | TagResult, done: dict[tuple, str], done_ids: set[str]) -> bool:
    """Whether a planned task (or a video that failed in planning) is not already in the output."""
    if isinstance(task, TagResult):
        return task.video_id not in done_ids
    return done.get(task_key(task)) != task.video_id
