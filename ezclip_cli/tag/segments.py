"""Time segments: windows merged where their top label agrees, and scenes from PySceneDetect.

`merge_segments` turns the window rows of one video into a timeline: consecutive windows whose
top label is the same become one segment (start, end, label, mean score of that label). With
overlapping windows (`--stride` < `--window`) a segment ends where the next one starts, so the
segments never overlap. Windows with no label (abstained under --threshold/--min-score) form
segments with no label, so the timeline has no holes.

`read_scenes` reads the CSV that `scenedetect -i VIDEO list-scenes` writes (`VIDEO-Scenes.csv`):
an optional "Timecode List:" line, then a header with "Start Time (seconds)" and
"End Time (seconds)" columns, one row per scene.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ezclip_cli.data.text_files import read_text_file
from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.tag.results import ResultWriter, TagResult


def merge_segments(windows: Sequence[TagResult]) -> list[TagResult]:
    """Window results of one video (any order) -> segment results in time order."""
    ordered = sorted(windows, key=lambda r: float(r.start or 0.0))
    groups: list[list[TagResult]] = []
    for result in ordered:
        if groups and groups[-1][0].label == result.label:
            groups[-1].append(result)
        else:
            groups.append([result])
    segments = []
    for i, group in enumerate(groups):
        first, last = group[0], group[-1]
        end = last.end
        if i + 1 < len(groups) and end is not None:
            end = min(end, groups[i + 1][0].start or 0.0)  # overlapping windows: cut at the next segment
        scores = [r.scores[0] for r in group if r.scores]
        segment = replace(
            first,
            end=end,
            labels=first.labels[:1],
            scores=(round(sum(scores) / len(scores), 6),) if scores else (),
            num_frames=sum(r.num_frames or 0 for r in group),
            timestamps=tuple(t for r in group for t in r.timestamps),
            windows=len(group),
        )
        segments.append(segment)
    return segments


class SegmentWriter:
    """Wraps a result writer: buffers one video's window results, writes its segments when the video ends.

    Results arrive in input order, so a video's windows are consecutive; failures pass straight through.
    """

    def __init__(self, inner: ResultWriter):
        self.inner = inner
        self.buffer: list[TagResult] = []

    def write(self, result: TagResult) -> None:
        if self.buffer and (not result.ok or _video(result) != _video(self.buffer[0])):
            self.flush()
        if result.ok:
            self.buffer.append(result)
        else:
            self.inner.write(result)

    def flush(self) -> None:
        for segment in merge_segments(self.buffer):
            self.inner.write(segment)
        self.buffer = []

    def close(self) -> None:
        self.flush()
        self.inner.close()


def _video(result: TagResult) -> tuple[str, str]:
    return (result.path, result.video_id)


SCENE_LIST_MAX_BYTES = 16 * 2**20  # a scene per second of a 24-hour video is ~6 MB


# ---- PySceneDetect scene lists ----------------------------------------------------------------
def read_scenes(path: str | Path) -> list[tuple[float, float]]:
    """[(start, end)] seconds of each scene in a PySceneDetect `list-scenes` CSV."""
    path = Path(path)
    text = read_text_file(path, "scene list", VideoError, SCENE_LIST_MAX_BYTES)  # bounded; bad UTF-8: file:line
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("Scene Number")), None)
    if header is None:
        raise VideoError(f"{path} is not a PySceneDetect scene list (no 'Scene Number' header)")
    delimiter = next((d for d in (",", ";", "\t", "|") if d in lines[header]), ",")
    reader = csv.DictReader(io.StringIO("\n".join(lines[header:])), delimiter=delimiter)
    scenes = []
    for number, record in enumerate(reader, start=header + 2):
        try:
            start = _seconds(record, "Start")
            end = _seconds(record, "End")
        except (KeyError, ValueError, TypeError, AttributeError):
            raise VideoError(f"{path}:{number}: no readable start and end time") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise VideoError(f"{path}:{number}: start and end must be finite seconds (got {start}, {end})")
        if start < 0 or end < 0:
            raise VideoError(f"{path}:{number}: negative time (start {start}, end {end}); times count from 0")
        if end > start:
            scenes.append((round(start, 6), round(end, 6)))
    if not scenes:
        raise VideoError(f"{path} lists no scenes")
    return scenes


def _seconds(record: dict[str, str], which: str) -> float:
    value = record.get(f"{which} Time (seconds)")
    if value not in (None, ""):
        return float(value)
    hours, minutes, seconds = record[f"{which} Timecode"].split(":")  # HH:MM:SS.nnn
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def scene_file(video: Path, scenes: str | Path, count: int) -> Path:
    """The scene list of `video`: `scenes` itself (one input video) or `VIDEO_NAME-Scenes.csv` in that folder."""
    scenes = Path(scenes)
    if scenes.is_dir():
        return scenes / f"{video.stem}-Scenes.csv"  # PySceneDetect's default name, $VIDEO_NAME-Scenes.csv
    if count > 1:
        raise UsageError(
            f"--scenes {scenes} is one scene list but {count} videos were given; "
            "pass a folder of VIDEO-Scenes.csv files"
        )
    return scenes


def scene_bounds(video: Path, scenes: str | Path, count: int, duration: float) -> list[tuple[float, float]]:
    """Scenes of `video` clipped to its duration."""
    listing = scene_file(video, scenes, count)
    if not listing.is_file():
        raise VideoError(f"no scene list for this video ({listing} is missing)")
    bounds = [(s, min(e, duration)) for s, e in read_scenes(listing) if s < duration]
    if not bounds:
        raise VideoError(f"every scene in {listing} starts after the video ends ({duration:.3f} s)")
    return bounds
