"""Tag outputs read back for review: rows grouped per video, and the counts a reviewer starts from.

A report or an export looks at whole videos: one row per video, or its windows or segments in time
order. The rows come through `merge_outputs`, so shard outputs of one run can be given together
(every video once) and files of different runs are refused with merge's message.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ezclip_cli.data.labels import load_labelset
from ezclip_cli.errors import LabelsetError, UsageError
from ezclip_cli.tag.merge import merge_outputs
from ezclip_cli.tag.resume import video_key

KINDS = ("videos", "windows", "segments")  # what one row of an output is


@dataclass
class ReviewedVideo:
    """One video of a run and its rows: one for a whole video, else its windows or segments by start time."""

    path: str  # as the rows name it (relative paths are relative to where `tag` ran)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok_rows(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") == "ok"]

    @property
    def failed(self) -> bool:
        """No row of it was tagged: the video could not be read (or every window failed)."""
        return not self.ok_rows

    @property
    def error(self) -> str | None:
        """The first failure reason among its rows, if any."""
        return next((str(row.get("error") or "failed") for row in self.rows if row.get("status") != "ok"), None)

    @property
    def duration(self) -> float | None:
        return next((float(row["duration"]) for row in self.rows if _finite(row.get("duration"))), None)

    @property
    def timestamps(self) -> list[float]:
        """The times of every frame the model saw, over all its rows, ascending and distinct."""
        return sorted({round(float(t), 6) for row in self.ok_rows for t in row.get("timestamps") or ()})


@dataclass
class Run:
    """The rows of one tagging run (one output, or the shard outputs of one run) grouped per video."""

    sources: list[str]
    videos: list[ReviewedVideo]
    kind: str  # one of KINDS
    top_k: int
    model_ids: list[str]
    labels_ids: list[str]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for video in self.videos for row in video.rows]

    def label_counts(self) -> Counter[str]:
        """How many tagged rows have each label first (abstained rows, with no label, are not counted)."""
        return Counter(str(row["labels"][0]) for row in self.rows if row.get("status") == "ok" and row.get("labels"))

    def top_scores(self) -> list[float]:
        """The first score of every tagged row that has a label."""
        return [float(row["scores"][0]) for row in self.rows if row.get("status") == "ok" and row.get("scores")]

    def labels_seen(self) -> list[str]:
        """Every label that any row ranks, most often first, then by name."""
        counts: Counter[str] = Counter()
        for row in self.rows:
            counts.update(str(label) for label in row.get("labels") or ())
        return sorted(counts, key=lambda label: (-counts[label], label))


def load_run(paths: Sequence[Path]) -> Run:
    """The run in `paths` (tag outputs of any format), grouped per video in path order.

    Raises UsageError for a file that is not an ezclip tag output, or outputs of different runs.
    """
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file (give the output of `ezclip tag`, any format)")
    merged = merge_outputs([Path(p) for p in paths])
    videos: dict[str, ReviewedVideo] = {}
    for row in merged.rows:
        key = video_key(row.get("video_id")) if row.get("video_id") else str(row["path"])
        videos.setdefault(key, ReviewedVideo(str(row["path"]))).rows.append(row)
    for video in videos.values():
        video.rows.sort(key=lambda row: float(row.get("start") or 0.0))
    rows = merged.rows
    if any("windows" in row for row in rows):
        kind = "segments"
    elif any(row.get("start") not in (None, "") for row in rows):
        kind = "windows"
    else:
        kind = "videos"
    return Run(
        sources=[str(p) for p in paths],
        videos=sorted(videos.values(), key=lambda v: v.path),
        kind=kind,
        top_k=merged.top_k,
        model_ids=sorted({str(row["model_id"]) for row in rows if row.get("model_id")}),
        labels_ids=sorted({str(row["labels_id"]) for row in rows if row.get("labels_id")}),
    )


def label_list(run: Run, labels: str | None) -> list[str]:
    """The label set to show or to offer a reviewer: `labels` (a label-set spec, as `tag --labels` takes)
    loaded in its order, else the labels the rows rank. Labels the rows hold that the set lacks are refused."""
    if labels is None:
        return run.labels_seen()
    try:
        names = list(load_labelset(labels).labels)
    except LabelsetError as exc:
        raise UsageError(f"--labels: {exc}") from None
    missing = [label for label in run.labels_seen() if label not in set(names)]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:3])
        raise UsageError(f"--labels {labels} lacks labels the output holds ({shown}); give the run's label set")
    return names


def resolve_video(path: str) -> Path:
    """The video file a row names: relative paths are taken from the current folder, as `tag` took them."""
    return Path(os.path.abspath(path))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
