"""`ezclip report`: one self-contained HTML page to review a tagging run in a browser.

The page needs no network and no other file: its CSS, script and data (thumbnails as JPEG data
URIs) are inline, so it can be mailed or attached to a ticket. Videos open from their own files
(linked relative to the page) where the browser can play them. Summary counts and histograms
cover every row; per-video cards, with their contact sheets, are capped at `max_videos`, a
uniform sample the page states, and the page shows them in pages of PAGE_SIZE, so a run of a
million videos still gives a page of bounded size.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import mimetypes
import os
import random
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.files import atomic_write
from ezclip_cli.progress import ProgressCallback
from ezclip_cli.review.outputs import ReviewedVideo, Run, label_list, resolve_video
from ezclip_cli.review.thumbnails import contact_sheet
from ezclip_cli.version import __version__

ASSETS = Path(__file__).resolve().parent / "assets"
GENERATOR = "ezclip report"  # the page's <meta name="generator">: how a later run knows the file is ours
PAGE_SIZE = 48  # cards per page
DEFAULT_THUMBNAILS = 8  # per video: the model's usual frame count, so a whole-video sheet is every frame it saw
DEFAULT_MAX_VIDEOS = 500  # cards (with thumbnails) in one page: ~2 KB per thumbnail keeps it near 10 MB
SCORE_BINS = 50
# Distinct on white, readable as bars and timeline spans (Tableau 10, then darker variants).
PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#2b5d8a",
    "#c46a12",
    "#a83c3e",
    "#4a8f8a",
    "#3b7a34",
    "#b89a1c",
    "#7f4f73",
    "#d46a78",
    "#6f5140",
    "#7d746f",
]
# Containers a browser may play; canPlayType() on the page has the last word.
PLAYABLE = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg", ".mov": "video/mp4"}


@dataclass(frozen=True)
class ReportSettings:
    """What a report shows besides the rows: thumbnails per video, the card cap, names of the model and labels."""

    thumbnails: int = DEFAULT_THUMBNAILS
    max_videos: int = DEFAULT_MAX_VIDEOS
    decoder: str = "auto"
    labels: str | None = None  # a label-set spec: the page lists the whole set, not only the labels seen
    model: str | None = None  # a name for the model (tag --report passes its checkpoint)
    title: str | None = None

    def __post_init__(self) -> None:
        if self.thumbnails < 0:
            raise UsageError(f"--thumbnails must be >= 0, got {self.thumbnails}")
        if self.max_videos < 1:
            raise UsageError(f"--max-videos must be >= 1, got {self.max_videos}")


def write_report(
    run: Run, target: Path, settings: ReportSettings, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Build the page for `run` and write it to `target` atomically; returns the page's summary.

    Refuses (UsageError) to replace a file that is not an earlier ezclip report.
    """
    check_target(target)
    data = build_data(run, target, settings, progress)
    page = render_page(data)

    def write(tmp: str) -> None:
        Path(tmp).write_text(page, encoding="utf-8")

    atomic_write(target, write)
    summary: dict[str, Any] = data["summary"]
    return summary


def check_target(target: Path) -> None:
    """`target` may be written: new, empty, or an earlier report of ours (never someone else's file)."""
    if target.is_dir():
        raise UsageError(f"-o {target} is a directory; name an .html file inside it")
    if target.exists() and target.stat().st_size:
        with open(target, "rb") as stream:
            head = stream.read(4096).decode("utf-8", errors="replace")
        if f'<meta name="generator" content="{GENERATOR}' not in head:
            raise UsageError(f"refusing to replace -o {target}: it is not an ezclip report; name a new file")


def build_data(
    run: Run, target: Path, settings: ReportSettings, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Everything the page shows, as plain JSON types (the page's script renders it)."""
    labels = label_list(run, settings.labels)
    counts = run.label_counts()
    histogram = sorted(
        ((label, counts.get(label, 0)) for label in labels), key=lambda lc: (-lc[1], labels.index(lc[0]))
    )
    palette = {label: PALETTE[i % len(PALETTE)] for i, (label, _) in enumerate(histogram)}
    shown, note = sample_videos(run.videos, settings.max_videos)
    cards, unreadable = [], 0
    if progress:
        progress(0, len(shown), 0, "")
    for done, video in enumerate(shown, start=1):
        card = video_card(video, target)
        if settings.thumbnails and not video.failed:
            try:
                card["thumbs"] = [
                    [t.time, t.uri] for t in contact_sheet(video, settings.thumbnails, decoder=settings.decoder)
                ]
            except VideoError as exc:
                card["thumbError"] = str(exc)
                unreadable += 1
        cards.append(card)
        if progress:
            progress(done, len(shown), unreadable, "")
    scores = run.top_scores()
    low = -1.0 if scores and min(scores) < 0 else 0.0
    summary = {
        "kind": run.kind,
        "videos": len(run.videos),
        "tagged": sum(1 for v in run.videos if not v.failed),
        "failed": sum(1 for v in run.videos if v.failed),
        "rows": len(run.rows),
        "rowsFailed": sum(1 for row in run.rows if row.get("status") != "ok"),
        "abstained": sum(1 for row in run.rows if row.get("status") == "ok" and not row.get("labels")),
        "histogram": histogram,
        "scores": {"low": low, "high": 1.0, "bins": score_bins(scores, low, 1.0)},
        "shown": len(shown),
        "sample": note,
        "unreadable": unreadable,
    }
    return {
        "title": settings.title or f"ezclip report: {', '.join(Path(s).name for s in run.sources)}",
        "pageSize": PAGE_SIZE,
        "palette": palette,
        "summary": summary,
        "run": {
            "sources": run.sources,
            "model": settings.model,
            "modelIds": run.model_ids,
            "labelsIds": run.labels_ids,
            "labelSpec": settings.labels,
            "labels": labels,
            "topK": run.top_k,
            "thumbnails": settings.thumbnails,
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "version": __version__,
        },
        "videos": cards,
    }


def sample_videos(videos: list[ReviewedVideo], cap: int) -> tuple[list[ReviewedVideo], str | None]:
    """At most `cap` videos in path order (a uniform random sample with a fixed seed), and the note saying so."""
    if len(videos) <= cap:
        return videos, None
    keep = sorted(random.Random(0).sample(range(len(videos)), cap))
    note = (
        f"Cards show a uniform random sample of {cap} of the {len(videos)} videos (seed 0, path order; "
        "--max-videos sets the cap). Counts and histograms cover every video."
    )
    return [videos[i] for i in keep], note


def video_card(video: ReviewedVideo, target: Path) -> dict[str, Any]:
    """One video's card: its link, duration, labels (whole video) or spans (windows, segments), errors."""
    card: dict[str, Any] = {"path": video.path, "failed": video.failed, "duration": video.duration}
    card["href"], card["mime"] = video_link(video.path, target)
    if video.error:
        card["error"] = video.error
    windowed = any(row.get("start") is not None for row in video.rows)
    if windowed:
        card["spans"] = [
            [
                row.get("start") or 0.0,
                row.get("end") if row.get("end") is not None else row.get("start") or 0.0,
                (row.get("labels") or [None])[0],
                (row.get("scores") or [None])[0],
                row.get("error") if row.get("status") != "ok" else None,
            ]
            for row in video.rows
        ]
    elif video.ok_rows:
        row = video.ok_rows[0]
        card["labels"] = [[label, score] for label, score in zip(row.get("labels") or (), row.get("scores") or ())]
    return card


def video_link(path: str, target: Path) -> tuple[str, str]:
    """A URL of the video relative to the page (so page and videos can move together) and its MIME type."""
    video = resolve_video(path)
    folder = Path(os.path.abspath(target)).parent
    try:
        relative = os.path.relpath(video, folder)
    except ValueError:  # another drive (Windows): an absolute file URL
        return video.as_uri(), ""
    suffix = video.suffix.lower()
    mime = PLAYABLE.get(suffix) or (mimetypes.guess_type(video.name)[0] or "")
    return urllib.parse.quote(Path(relative).as_posix()), mime


def score_bins(scores: list[float], low: float, high: float, bins: int = SCORE_BINS) -> list[int]:
    """Counts of `scores` in `bins` equal bins over [low, high] (the last bin holds `high`)."""
    counts = [0] * bins
    for score in scores:
        if not math.isfinite(score):
            continue
        index = int((min(max(score, low), high) - low) / (high - low) * bins)
        counts[min(index, bins - 1)] += 1
    return counts


def render_page(data: dict[str, Any]) -> str:
    """The HTML page: template, inline CSS and script, and the data as JSON no `</script>` can end early."""
    template = (ASSETS / "report.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    parts = {
        "generator": f"{GENERATOR} {__version__}",
        "title": html.escape(str(data["title"])),
        "css": (ASSETS / "report.css").read_text(encoding="utf-8"),
        "script": (ASSETS / "report.js").read_text(encoding="utf-8"),
        "data": payload,
    }
    # One pass: text put in (a title, a path in the data) is never scanned for placeholders again.
    return re.sub(r"\{\{(\w+)\}\}", lambda match: parts[match.group(1)], template)
