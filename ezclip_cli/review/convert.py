"""`ezclip convert OUTPUT --to fiftyone|labelstudio -o OUT`: a tagging run as the review tools import it.

FiftyOne: a dataset directory in FiftyOne's own JSON layout (`metadata.json`, `samples.json`, an empty
frame-labels file; read by
`fo.Dataset.from_dir(OUT, dataset_type=fo.types.LegacyFiftyOneDataset)`): one video sample per video
with `ezclip` a Classification (label, confidence) for whole-video rows, or `ezclip_windows` a
TemporalDetections for windows and segments, whose `support` is [first, last] frame (1-based, as
FiftyOne counts) and whose `confidence` is the row's score.

Label Studio: `tasks.json` (one task per video, `data.video` its path, `predictions` with a `choices`
result for whole-video labels or `timelinelabels` ranges in frames for windows and segments, at the
video's frame rate) and `labeling_config.xml`, the project's labeling config that matches them (the
frame rate is stated on the `<Video>` tag so the ranges land on the frames they name).

Frame numbers come from each video's own frame rate, probed with PyAV; a video that cannot be opened
any more is converted without frame spans and named in the log.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.files import atomic_write
from ezclip_cli.review.outputs import ReviewedVideo, Run, label_list, resolve_video

log = logging.getLogger(__name__)

TARGETS = ("fiftyone", "labelstudio")
FIELD = "ezclip"  # the FiftyOne field (and Label Studio control) the predictions go into
NO_FRAME_LABELS = "frames/none.json"  # FiftyOne's video samples point at a frame-labels file


def convert(run: Run, to: str, out: Path, labels: str | None = None, overwrite: bool = False) -> list[Path]:
    """Write `run` for the review tool `to` into the folder `out`; returns the files written."""
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)} (got {to!r})")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file; name a folder for the {to} export")
    names = ["metadata.json", "samples.json"] if to == "fiftyone" else ["tasks.json", "labeling_config.xml"]
    existing = [out / n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise UsageError(f"{existing[0]} exists; use --overwrite or another -o")
    out.mkdir(parents=True, exist_ok=True)
    rates = {video.path: frame_rate(video) for video in run.videos}
    files: dict[str, Any]
    if to == "fiftyone":
        files = {
            "metadata.json": fiftyone_metadata(run),
            "samples.json": {"samples": fiftyone_samples(run, rates)},
            NO_FRAME_LABELS: {"frames": {}},  # a video sample names its frame labels; ezclip has none per frame
        }
    else:
        tasks = labelstudio_tasks(run, rates)
        files = {"tasks.json": tasks, "labeling_config.xml": labelstudio_config(label_list(run, labels), run)}
    written = []
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=1, allow_nan=False)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        _write_text(out / name, text)
        written.append(out / name)
    return written


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def frame_rate(video: ReviewedVideo) -> float | None:
    """The video's frame rate (PyAV's probe, as tag read it), or None when it cannot be opened now."""
    from ezclip_cli.video import pyav

    try:
        with pyav.open_video(resolve_video(video.path)) as (container, stream):
            info, _ = pyav.probe(pyav.FrameCursor(container, stream))
        return float(info.fps)
    except (VideoError, OSError) as exc:
        log.warning("%s: no frame numbers for it (%s)", video.path, str(exc).splitlines()[0])
        return None


def frames(start: float, end: float, fps: float) -> tuple[int, int]:
    """[first, last] frame, 1-based, of the span [start, end) seconds: the frames shown in it."""
    first = int(math.floor(start * fps + 1e-6)) + 1
    last = max(first, int(math.ceil(end * fps - 1e-6)))
    return first, last


# ---- FiftyOne ---------------------------------------------------------------------------------------
def fiftyone_metadata(run: Run) -> dict[str, Any]:
    name = f"ezclip-{Path(run.sources[0]).stem}"
    return {
        "name": name,
        "media_type": "video",
        "info": {"ezclip": {"sources": run.sources, "model_ids": run.model_ids}},
    }


def fiftyone_samples(run: Run, rates: dict[str, float | None]) -> list[dict[str, Any]]:
    samples = []
    for video in run.videos:
        sample: dict[str, Any] = {
            "filepath": str(resolve_video(video.path)),
            "tags": ["failed"] if video.failed else [],
            "frames": NO_FRAME_LABELS,
        }
        rows = video.ok_rows
        if run.kind == "videos":
            if rows and rows[0].get("labels"):
                row = rows[0]
                sample[FIELD] = {
                    "_cls": "Classification",
                    "label": str(row["labels"][0]),
                    "confidence": float(row["scores"][0]),
                }
        else:
            fps = rates.get(video.path)
            detections = []
            for row in rows:
                if not row.get("labels") or row.get("start") is None:
                    continue
                detection: dict[str, Any] = {
                    "_cls": "TemporalDetection",
                    "label": str(row["labels"][0]),
                    "confidence": float(row["scores"][0]),
                    "start_seconds": float(row["start"]),
                    "end_seconds": float(row.get("end") or row["start"]),
                }
                if fps:
                    detection["support"] = list(frames(float(row["start"]), float(row.get("end") or row["start"]), fps))
                detections.append(detection)
            sample[f"{FIELD}_windows"] = {"_cls": "TemporalDetections", "detections": detections}
        if video.error:
            sample["ezclip_error"] = video.error
        samples.append(sample)
    return samples


# ---- Label Studio -----------------------------------------------------------------------------------
def labelstudio_tasks(run: Run, rates: dict[str, float | None]) -> list[dict[str, Any]]:
    tasks = []
    for video in run.videos:
        fps = rates.get(video.path)
        task: dict[str, Any] = {"data": {"video": str(resolve_video(video.path)), "path": video.path}}
        if fps:
            task["data"]["fps"] = round(fps, 6)
        results: list[dict[str, Any]] = []
        rows = video.ok_rows
        score = None
        if run.kind == "videos":
            if rows and rows[0].get("labels"):
                score = float(rows[0]["scores"][0])
                results.append(
                    {
                        "from_name": FIELD,
                        "to_name": "video",
                        "type": "choices",
                        "value": {"choices": [str(rows[0]["labels"][0])]},
                        "score": score,
                    }
                )
        elif fps:
            for i, row in enumerate(r for r in rows if r.get("labels") and r.get("start") is not None):
                first, last = frames(float(row["start"]), float(row.get("end") or row["start"]), fps)
                results.append(
                    {
                        "id": f"w{i}",
                        "from_name": f"{FIELD}_timeline",
                        "to_name": "video",
                        "type": "timelinelabels",
                        "value": {"ranges": [{"start": first, "end": last}], "timelinelabels": [str(row["labels"][0])]},
                        "score": float(row["scores"][0]),
                    }
                )
            scores = [r["score"] for r in results]
            score = sum(scores) / len(scores) if scores else None
        if results:
            prediction: dict[str, Any] = {"model_version": ",".join(run.model_ids) or "ezclip", "result": results}
            if score is not None:
                prediction["score"] = score
            task["predictions"] = [prediction]
        tasks.append(task)
    return tasks


def labelstudio_config(labels: list[str], run: Run) -> str:
    """The labeling config the tasks' predictions are written for."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    names = "\n".join(f"    <Label value={quoteattr(label)}/>" for label in labels)
    control = (
        f'  <Choices name="{FIELD}" toName="video" choice="single" showInline="true">\n{choices}\n  </Choices>'
        if run.kind == "videos"
        else f'  <TimelineLabels name="{FIELD}_timeline" toName="video">\n{names}\n  </TimelineLabels>'
    )
    return (
        "<View>\n"
        '  <Header value="$path"/>\n'
        '  <Video name="video" value="$video" frameRate="$fps" timelineHeight="120"/>\n'
        f"{control}\n"
        "</View>\n"
    )
