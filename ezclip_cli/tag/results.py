"""What tagging returns: one `TagResult` per video (or per window, or per merged segment).

The library hands these to its caller (`tag_videos`) and to the output writers (output.py),
which turn each into one record with `to_record()`. A record's keys, in this order, are the
columns of every output format (docs/model.md describes them); `from_record` reads one back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

STAMP_FIELDS = ("model_id", "labels_id", "settings_id")


@dataclass(frozen=True)
class Stamp:
    """Which model, label set (with its prompts and scoring) and row-changing settings made a result."""

    model_id: str | None = None
    labels_id: str | None = None
    settings_id: str | None = None


@dataclass(frozen=True)
class TagResult:
    """The labels of one video, one window of it (`start`/`end` set) or one segment (`windows` set).

    `status` is "ok" or "error"; an error result names its reason in `error` and has no labels.
    `labels` are ranked best first with their `scores` (softmax probability over the label set, or
    cosine similarity with `--score cosine`); `timestamps` are the seconds of the sampled frames.
    """

    path: str
    video_id: str
    status: str = "ok"
    error: str | None = None
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    labels: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    num_frames: int | None = None
    timestamps: tuple[float, ...] = ()
    model_id: str | None = None
    labels_id: str | None = None
    settings_id: str | None = None
    windows: int | None = field(default=None, compare=False)  # a segment: how many windows it merges

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str | None:
        """The best label, or None (an error, or every label below a threshold)."""
        return self.labels[0] if self.labels else None

    @classmethod
    def failed(
        cls,
        path: str,
        video_id: str,
        reason: str,
        start: float | None = None,
        end: float | None = None,
        duration: float | None = None,
    ) -> TagResult:
        """The result of a video (window) that could not be tagged, with the one-line reason."""
        return cls(path, video_id, "error", reason, start, end, duration)

    def stamped(self, stamp: Stamp) -> TagResult:
        """This result with `stamp`'s ids."""
        return replace(self, model_id=stamp.model_id, labels_id=stamp.labels_id, settings_id=stamp.settings_id)

    def to_record(self) -> dict[str, Any]:
        """The output record: plain JSON types, keys in column order; stamps and `windows` only when set."""
        record: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "labels": list(self.labels),
            "scores": list(self.scores),
            "num_frames": self.num_frames,
            "timestamps": list(self.timestamps),
            "video_id": self.video_id,
        }
        for name in STAMP_FIELDS:
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        if self.windows is not None:
            record["windows"] = self.windows
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TagResult:
        """A result from an output record (what `to_record` wrote, or a row read back from a file)."""
        return cls(
            path=str(record["path"]),
            video_id=str(record.get("video_id") or ""),
            status=str(record.get("status") or "ok"),
            error=record.get("error"),
            start=record.get("start"),
            end=record.get("end"),
            duration=record.get("duration"),
            labels=tuple(record.get("labels") or ()),
            scores=tuple(record.get("scores") or ()),
            num_frames=record.get("num_frames"),
            timestamps=tuple(record.get("timestamps") or ()),
            model_id=record.get("model_id"),
            labels_id=record.get("labels_id"),
            settings_id=record.get("settings_id"),
            windows=record.get("windows"),
        )


class ResultWriter(Protocol):
    """Where results go: a file or stream in one format (output.RowWriter), a list, segments, a part."""

    def write(self, result: TagResult) -> None: ...

    def close(self) -> None: ...


class ResultList:
    """The in-memory writer: keeps every result (`tag_videos` returns them)."""

    def __init__(self) -> None:
        self.results: list[TagResult] = []

    def write(self, result: TagResult) -> None:
        self.results.append(result)

    def close(self) -> None:
        pass


@dataclass
class TagSummary:
    """Counts of one run (this process, or every rank once merged)."""

    total: int = 0  # tasks (videos, or windows) considered in this shard
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output from an earlier run
    seconds: float = 0.0  # the whole run, model loading included
    loop_seconds: float = 0.0  # decoding + model + writing, after set-up

    def line(self, windowed: bool, where: str = "") -> str:
        """The run's closing log line: 'tagged 12 videos[ on Ray]: 11 ok, 1 failed, 0 already done; 3.0 s (4.00/s)'."""
        return (
            f"tagged {self.total} {'windows' if windowed else 'videos'}{where}: {self.ok} ok, {self.failed} failed, "
            f"{self.skipped} already done; {self.seconds:.1f} s ({self.total / max(self.seconds, 1e-9):.2f}/s)"
        )

    def count(self, result: TagResult) -> None:
        self.total += 1
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1
