"""Find video files and read sampled frames from them (decord, with PyAV as the fallback).

Frames are sampled by time: frame k of a video is the one shown at k / fps seconds after
its first frame, and every Clip records the times of the frames it used. Only the sampled
frames are converted (the decoder seeks to the keyframe before a target and decodes
forward), so memory does not grow with video length. This module finds videos, samples
frame indices and picks the decoder; the decoders are in decode_pyav.py and decode_decord.py.
torch, decord and av are imported lazily: `--help` stays instant and a missing decord only
matters when it is asked for.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ezclip_cli.errors import VideoError
from ezclip_cli.video import decord as decode_decord
from ezclip_cli.video import pyav as decode_pyav
from ezclip_cli.video.path_lists import read_path_stream
from ezclip_cli.video.pyav import VideoInfo

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".3gp",
        ".ts",
        ".mts",
        ".ogv",
        ".gif",
    ]
)
DECODERS = ("auto", "decord", "pyav", "torchcodec")  # torchcodec: GPU (NVDEC), optional (video/torchcodec.py)
SEEKS = ("exact", "keyframe")  # --seek: frames at the segment centres, or the nearest keyframes (video/keyframe.py)


def is_video_path(path: str | Path) -> bool:
    """Whether `path` has a video file extension (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_videos(inputs: Sequence[str | Path], stdin: IO[str] | None = None, keep_missing: bool = False) -> list[Path]:
    """Expand files, folders and "-" (paths from `stdin`, one per line or NUL-separated) into video paths.

    Files are kept whatever their extension (the user named them); folders are walked
    recursively in sorted order, skipping hidden names and non-video extensions. Each
    file appears once (by resolved path), at its first occurrence. A missing path raises
    VideoError, or with `keep_missing` stays in the list (tagging gives it an error row).
    """
    videos: list[Path] = []
    seen: set[str] = set()
    for item in _expand_stdin(inputs, stdin):
        path = Path(item)
        if path.is_dir():
            found = _walk_videos(path)
        elif path.exists() or keep_missing:
            found = [path]
        else:
            raise VideoError(f"no such file or directory: {item}")
        for video in found:
            key = os.path.realpath(video)
            if key not in seen:
                seen.add(key)
                videos.append(video)
    return videos


def _expand_stdin(inputs: Sequence[str | Path], stdin: IO[str] | None) -> Iterator[str | Path]:
    for item in inputs:
        if str(item) != "-":
            yield item
            continue
        yield from read_path_stream(stdin if stdin is not None else sys.stdin)  # lines or NUL-separated


def _walk_videos(root: Path) -> list[Path]:
    """Video files under `root`, sorted by relative path; symlinked folders visited once."""
    found: list[Path] = []
    visited: set[str] = set()  # real paths: a symlink loop or a second link is skipped
    pending = [root]
    while pending:
        folder = pending.pop()
        real = os.path.realpath(folder)
        if real in visited:
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            raise VideoError(f"cannot read directory: {folder} ({exc.strerror})") from exc
        visible = [entry for entry in entries if not entry.name.startswith(".")]
        found += [Path(e.path) for e in visible if e.is_file() and is_video_path(e.name)]
        # Depth first in name order, so the first of two links to one folder is the one kept.
        pending += [Path(e.path) for e in reversed(visible) if e.is_dir()]
    return sorted(found, key=lambda path: path.relative_to(root).parts)


@dataclass(frozen=True)
class Clip:
    """Sampled frames of one video, ready for the model."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, display orientation
    timestamps: tuple[float, ...]  # seconds after the first frame, one per frame in `frames`
    duration: float  # of the whole video, seconds
    decoder: str  # "decord" or "pyav": the one that produced `frames`


def sample_indices(num_source: int, num_frames: int, rng: random.Random | None = None) -> list[int]:
    """Pick `num_frames` of `num_source` frames with TSN segments (docs/model.md section 8).

    The source is cut into `num_frames` equal segments. Without `rng` (test mode) each
    segment gives its centre, idx_i = floor(i*N/T + (N/T - 1)/2); with `rng` (training) a
    uniformly random frame inside it. With fewer source frames than segments, frames
    repeat in order (idx_i = floor(i*N/T)), as in the reference sampler.
    """
    if num_source < 1 or num_frames < 1:
        raise ValueError(f"need num_source, num_frames >= 1; got {num_source}, {num_frames}")
    n, t = num_source, num_frames
    if rng is None and n >= t:
        return [(2 * i * n + n - t) // (2 * t) for i in range(t)]  # exact integer floor
    indices = []
    for i in range(t):
        first, stop = i * n // t, (i + 1) * n // t
        indices.append(rng.randrange(first, max(stop, first + 1)) if rng else first)
    return indices


def probe_video(path: str | Path, decoder: str = "auto") -> VideoInfo:
    """Read duration, frame rate, frame count, display size and rotation of a video.

    Probing always uses PyAV (decord cannot report rotation) and decodes only the first
    frame; `decoder` is checked as in `read_frames`, so a missing forced one fails here too.
    """
    _choose_decoder(decoder)
    with decode_pyav.open_video(path) as (container, stream):
        info, _ = decode_pyav.probe(decode_pyav.FrameCursor(container, stream))
    return info


def read_frames(
    path: str | Path,
    num_frames: int,
    *,
    start: float | None = None,
    end: float | None = None,
    short_side: int | None = 256,
    decoder: str = "auto",
    rng: random.Random | None = None,
    upscale: bool = False,
    seek: str = "exact",
) -> Clip:
    """Decode `num_frames` frames sampled from the window [start, end) seconds of a video.

    Frames are picked with `sample_indices` (random per segment when `rng` is given),
    downscaled so the short side is `short_side` (upscaled too with `upscale`, by the decoder's own
    scaler; None keeps the native size) and turned upright. decoder "auto" uses decord where its seeking is exact and
    PyAV elsewhere or when decord fails; "decord" or "pyav" force one; "torchcodec" decodes on
    the GPU and hands a file it cannot decode to the CPU decoders, saying why in the log.
    `seek="keyframe"` takes, per segment, the nearest keyframe instead of the frame at its
    centre (at most T frames decoded; video/keyframe.py); the timestamps say which were used.
    A video that cannot be read raises VideoError with a one-line reason.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    chosen = _choose_decoder(decoder)
    with decode_pyav.open_video(path) as (container, stream):
        cursor = decode_pyav.FrameCursor(container, stream)
        info, origin = decode_pyav.probe(cursor)
        first, stop = _window_frames(info, start, end)
        indices = [first + i for i in sample_indices(stop - first, num_frames, rng)]
        size = _output_size(info.width, info.height, short_side, upscale)
        if seek == "keyframe":
            fast = _read_keyframes(cursor, info, origin, size, first, stop, indices)
            if fast is not None:
                return Clip(np.stack(fast[0]), tuple(fast[1]), info.duration, decoder="pyav-keyframe")
        if chosen == "torchcodec":
            gpu = _read_torchcodec(path, stream, info, origin, size, indices)
            if gpu is not None:
                return Clip(np.stack(gpu[0]), tuple(gpu[1]), info.duration, decoder="torchcodec")
            chosen = _choose_decoder("auto")  # this file goes to the CPU decoders (the log says why)
        decoded = None
        if chosen == "decord":
            decoded = decode_decord.try_decord(path, indices, size, info, container, stream, decoder)
        if decoded is None:
            chosen, decoded = "pyav", decode_pyav.read_with_pyav(cursor, indices, info, origin, size)
        images = [decoded[index][0] for index in indices]
        timestamps: Sequence[float] = tuple(decoded[index][1] for index in indices)
        if len(set(timestamps)) < min(len(indices), stop - first):
            # Variable frame rate: k / fps missed frames the video has. Sample by time instead.
            chosen = "pyav"
            images, timestamps = decode_pyav.read_by_time(cursor, indices, info, origin, size, first, stop)
    frames = np.stack(images)  # (T, H, W, 3)
    return Clip(frames=frames, timestamps=tuple(timestamps), duration=info.duration, decoder=chosen)


def read_frames_at(
    path: str | Path, times: Sequence[float], *, short_side: int | None = 256, decoder: str = "auto"
) -> Clip:
    """Decode the frames on screen at `times` (seconds after the first frame, as a Clip records them).

    For looking again at the frames a model saw (`ezclip report`): a tagged row lists their `timestamps`,
    and this reads those frames back with the same decoders, scaled and turned upright as `read_frames`
    does. The returned timestamps are the frames' own times.
    """
    if not times:
        raise ValueError("times must name at least one moment")
    chosen = _choose_decoder("pyav" if decoder == "torchcodec" else decoder)
    with decode_pyav.open_video(path) as (container, stream):
        cursor = decode_pyav.FrameCursor(container, stream)
        info, origin = decode_pyav.probe(cursor)
        eps = 1e-6  # frame k is on screen from k / fps (times are rounded) until frame k + 1
        indices = [min(max(0, math.floor(float(t) * info.fps + eps)), info.num_frames - 1) for t in times]
        size = _output_size(info.width, info.height, short_side)
        decoded = None
        if chosen == "decord":
            decoded = decode_decord.try_decord(path, sorted(set(indices)), size, info, container, stream, decoder)
        if decoded is None:
            chosen, decoded = "pyav", decode_pyav.read_with_pyav(cursor, sorted(set(indices)), info, origin, size)
    frames = np.stack([decoded[index][0] for index in indices])  # (T, H, W, 3)
    return Clip(frames, tuple(decoded[index][1] for index in indices), info.duration, chosen)


def _read_keyframes(
    cursor: decode_pyav.FrameCursor,
    info: VideoInfo,
    origin: float,
    size: tuple[int, int],
    first: int,
    stop: int,
    indices: list[int],
) -> tuple[list[np.ndarray], list[float]] | None:
    """Keyframe sampling of the window, or None where it does not apply (no keyframe in it, a bad index)."""
    from ezclip_cli.video import keyframe

    targets = keyframe.keyframe_targets(cursor, info, origin, first, stop, indices)
    return None if targets is None else keyframe.read_keyframes(cursor, info, origin, size, targets)


def _read_torchcodec(
    path: str | Path, stream: Any, info: VideoInfo, origin: float, size: tuple[int, int], indices: list[int]
) -> tuple[list[np.ndarray], list[float]] | None:
    """The frames decoded on the GPU, or None (logged with the reason) when this file is for the CPU."""
    from ezclip_cli.video import torchcodec

    codec = str(getattr(getattr(stream, "codec_context", None), "name", "") or "")
    try:
        return torchcodec.read_with_torchcodec(
            path, codec, info, origin, size, [origin + i / info.fps for i in indices]
        )
    except torchcodec.Fallback as exc:
        log.info("%s: decoding on the CPU: %s", path, exc)
        return None


def _window_frames(info: VideoInfo, start: float | None, end: float | None) -> tuple[int, int]:
    """First and one-past-last frame whose time k / fps lies in [start, end)."""
    start = 0.0 if start is None else float(start)
    end = info.duration if end is None else min(float(end), info.duration)
    if start < 0 or (end <= start and start < info.duration):
        raise ValueError(f"bad window [{start}, {end}): need 0 <= start < end")
    if start >= info.duration:
        raise VideoError(f"window starts at {start:.3f} s, after the end ({info.duration:.3f} s)")
    eps = 1e-6  # frame times are rounded; k / fps == start must count as inside
    first = min(math.ceil(start * info.fps - eps), info.num_frames - 1)
    stop = min(math.ceil(end * info.fps - eps), info.num_frames)
    if stop <= first:  # a window shorter than one frame: the frame on screen at `start`
        first = min(math.floor(start * info.fps + eps), info.num_frames - 1)
        stop = first + 1
    return first, stop


def _output_size(width: int, height: int, short_side: int | None, upscale: bool = False) -> tuple[int, int]:
    """(width, height) with the short side scaled to `short_side`: down only, or both ways with `upscale`."""
    if short_side is None or min(width, height) == short_side or (min(width, height) < short_side and not upscale):
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _choose_decoder(decoder: str) -> str:
    """Resolve "auto" and check that a forced decoder is installed."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder '{decoder}'; available: {', '.join(DECODERS)}")
    if decoder == "torchcodec":
        decode_pyav.import_av()  # PyAV still probes, and decodes what the GPU cannot
        return "torchcodec"
    if decoder == "decord" and not decode_decord.decord_importable():
        raise VideoError("decoder 'decord' is not available: install the 'decord' package")
    decode_pyav.import_av()  # PyAV probes every video, whichever decoder reads the frames
    if decoder == "auto":
        return "decord" if decode_decord.decord_importable() else "pyav"
    return decoder


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode for a model: its frame count and input size, and the decoder (one preprocessing for all)."""

    num_frames: int
    image_size: int
    decoder: str = "auto"
    seek: str = "exact"  # or "keyframe" (video/keyframe.py)
