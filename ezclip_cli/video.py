"""Find video files and read sampled frames from them (decord, with PyAV as the fallback).

Frames are sampled by time: frame k of a video is the one shown at k / fps seconds after
its first frame, and every Clip records the times of the frames it used. Only the sampled
frames are converted (the decoder seeks to the keyframe before a target and decodes
forward), so memory does not grow with video length. torch, decord and av are imported
lazily: `--help` stays instant and a missing decord only matters when it is asked for.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import random
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING

import numpy as np

from ezclip_cli.errors import VideoError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

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
DECODERS = ("auto", "decord", "pyav")
# Larger declared frames are refused before decoding (8K is 33 megapixels; one RGB frame here is 200 MB).
MAX_PIXELS = 64_000_000
# Without a keyframe index, decode forward to targets closer than this instead of seeking.
_SEEK_GAP_S = 2.0


def is_video_path(path: str | Path) -> bool:
    """Whether `path` has a video file extension (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_videos(inputs: Sequence[str | Path], stdin: IO[str] | None = None, keep_missing: bool = False) -> list[Path]:
    """Expand files, folders and "-" (paths from `stdin`, one per line) into video paths.

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
        for line in stdin if stdin is not None else sys.stdin:
            if line.strip():
                yield line.strip()


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
class VideoInfo:
    """What a video's header and first frame say. Sizes are as displayed (after rotation)."""

    duration: float  # seconds
    fps: float
    num_frames: int  # from the header, or duration * fps; may be wrong in broken files
    width: int
    height: int
    rotation: int  # clockwise degrees a player turns the stored frames: 0, 90, 180, 270


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
    with _open_video(path) as (container, stream):
        info, _ = _probe(_FrameCursor(container, stream))
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
) -> Clip:
    """Decode `num_frames` frames sampled from the window [start, end) seconds of a video.

    Frames are picked with `sample_indices` (random per segment when `rng` is given),
    downscaled so the short side is `short_side` (never upscaled; None keeps the native
    size) and turned upright. decoder "auto" uses decord where its seeking is exact and
    PyAV elsewhere or when decord fails; "decord" or "pyav" force one. A video that
    cannot be read raises VideoError with a one-line reason.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    chosen = _choose_decoder(decoder)
    with _open_video(path) as (container, stream):
        cursor = _FrameCursor(container, stream)
        info, origin = _probe(cursor)
        first, stop = _window_frames(info, start, end)
        indices = [first + i for i in sample_indices(stop - first, num_frames, rng)]
        size = _output_size(info.width, info.height, short_side)
        decoded = None
        if chosen == "decord":
            decoded = _try_decord(path, indices, size, info, container, stream, decoder)
        if decoded is None:
            chosen, decoded = "pyav", _read_with_pyav(cursor, indices, info, origin, size)
        images = [decoded[index][0] for index in indices]
        timestamps: Sequence[float] = tuple(decoded[index][1] for index in indices)
        if len(set(timestamps)) < min(len(indices), stop - first):
            # Variable frame rate: k / fps missed frames the video has. Sample by time instead.
            chosen = "pyav"
            images, timestamps = _read_by_time(cursor, indices, info, origin, size, first, stop)
    frames = np.stack(images)  # (T, H, W, 3)
    return Clip(frames=frames, timestamps=tuple(timestamps), duration=info.duration, decoder=chosen)


def nearest_distinct(times: Sequence[float], targets: Sequence[float]) -> list[int]:
    """For each target time (ascending) the index of the nearest of `times` (ascending), distinct
    and in order where there are enough frames (each pick leaves one for every later target)."""
    import bisect

    n, t = len(times), len(targets)
    chosen: list[int] = []
    for i, target in enumerate(targets):
        previous = chosen[-1] if chosen else -1
        if n >= t:
            low, high = previous + 1, n - (t - i)
        else:  # fewer frames than targets: repeats are unavoidable
            low, high = max(previous, 0), n - 1
        j = min(max(bisect.bisect_left(times, target), low), high)
        if j > low and abs(times[j - 1] - target) <= abs(times[j] - target):
            j -= 1
        chosen.append(j)
    return chosen


def _read_by_time(
    cursor: _FrameCursor,
    indices: list[int],
    info: VideoInfo,
    origin: float,
    size: tuple[int, int],
    first: int,
    stop: int,
) -> tuple[list[np.ndarray], list[float]]:
    """Frames nearest the sample times origin + index / fps, distinct where the video has them.

    Frame times come from packet headers (demuxed, not decoded); then only the picked frames
    are decoded, by their exact times.
    """
    container, stream = cursor.container, cursor.stream
    cursor.seek(origin)
    times = sorted(
        float(packet.pts * packet.time_base) - origin for packet in container.demux(stream) if packet.pts is not None
    )
    low = first / info.fps - 1e-6
    high = stop / info.fps - 1e-6 if stop < info.num_frames else math.inf  # the header's end may be short
    times = [t for t in times if low <= t < high] or times
    picks = nearest_distinct(times, [index / info.fps for index in indices])
    # Each picked frame by its own time; half the smallest gap tells neighbours apart.
    period = min((b - a for a, b in zip(times, times[1:]) if b > a), default=1 / info.fps)
    cursor.seek(origin)
    cursor.seekable = True
    decoded = {}
    for j in sorted(set(picks)):
        target = origin + times[j]
        cursor.move_before(target, period, origin)
        frame = cursor.frame_at(target, period)
        if frame is None:
            raise _Unreachable(first + j)
        decoded[j] = (_to_image(frame, info, size), round(cursor.time - origin, 6))
    return [decoded[j][0] for j in picks], [decoded[j][1] for j in picks]


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


def _output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the short side scaled down to `short_side`; never upscales."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


# ---- PyAV -----------------------------------------------------------------------------


@functools.cache
def _import_av() -> ModuleType:
    try:
        import av
    except ImportError as exc:
        raise VideoError("decoder 'pyav' is not available: install the 'av' package") from exc
    level = av.logging.get_level()
    if level is not None and level > av.logging.ERROR:
        av.logging.set_level(None)  # FFmpeg warnings must not reach the terminal
    return av


@contextlib.contextmanager
def _open_video(path: str | Path) -> Iterator[tuple[InputContainer, VideoStream]]:
    """PyAV container and its video stream, or a VideoError saying why there is none."""
    av = _import_av()
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise VideoError(f"cannot read file: {_error_text(exc)}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise VideoError("is a directory, not a video file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block, /dev/zero never ends: files only
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode))
            else "a socket"
        )
        raise VideoError(f"not a regular file ({kind}); save the video to a file first")
    if info.st_size == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise VideoError("not a video: invalid data") from exc
    except (av.error.FFmpegError, OSError) as exc:
        # FFmpeg's errno can mislead ("device or resource busy" for an impossible picture size):
        # its own log line says what is wrong.
        reason = _ffmpeg_reason(path) if isinstance(exc, av.error.FFmpegError) else None
        raise VideoError(f"not a video: {reason or _error_text(exc)}") from exc
    with container:
        cover_art = av.stream.Disposition.attached_pic  # a still picture in an audio file
        videos = [s for s in container.streams.video if not s.disposition & cover_art]
        if not videos:
            audio_only = " (audio only)" if container.streams.audio else ""
            raise VideoError(f"no video stream{audio_only}")
        width, height = videos[0].codec_context.width or 0, videos[0].codec_context.height or 0
        if width * height > MAX_PIXELS:  # refuse before a frame buffer of that size is allocated
            raise VideoError(
                f"declared resolution {width}x{height} is beyond what ezclip decodes "
                f"(at most {MAX_PIXELS // 1_000_000} megapixels); the header is likely corrupt"
            )
        videos[0].thread_type = "AUTO"
        try:
            yield container, videos[0]
        except av.error.FFmpegError as exc:
            raise VideoError(f"truncated or corrupt: {_error_text(exc)}") from exc


def _ffmpeg_reason(path: Path) -> str | None:
    """FFmpeg's last error log line for opening `path` (error path only: a second, logged try)."""
    av = _import_av()
    level = av.logging.get_level()
    logs: list = []
    try:
        av.logging.set_level(av.logging.ERROR)
        with av.logging.Capture(local=False) as logs, contextlib.suppress(Exception):
            av.open(str(path), metadata_errors="ignore").close()
    except Exception:  # logging machinery differs between PyAV versions: the errno text remains
        return None
    finally:
        av.logging.set_level(level)
    if not logs:
        return None
    text = str(logs[-1][-1]).strip()
    return text[:1].lower() + text[1:] if text else None


def _error_text(exc: Exception) -> str:
    return (getattr(exc, "strerror", None) or type(exc).__name__).lower()


class _Unreachable(VideoError):
    """A sampled frame lies past the real end of the stream (the header promised more)."""

    def __init__(self, index: int):
        super().__init__(f"truncated: could not decode frame {index}")


class _FrameCursor:
    """Decodes one stream forward, seeking only when a keyframe lies ahead of the target."""

    def __init__(self, container: InputContainer, stream: VideoStream) -> None:
        self.container, self.stream = container, stream
        self._frames = container.decode(stream)
        self.frame: VideoFrame | None = None  # the last decoded frame
        self.time = 0.0  # its presentation time, seconds
        self.seekable = True

    def advance(self) -> bool:
        frame = next(self._frames, None)
        if frame is None:
            return False
        period = 1 / float(self.stream.guessed_rate or 25)
        self.time = frame.time if frame.time is not None else self.time + period
        self.frame = frame
        return True

    @property
    def _time_base(self) -> Fraction:
        base = self.stream.time_base
        assert base is not None  # FFmpeg's demuxers give every stream a time base
        return base

    def seek(self, time: float) -> None:
        self.container.seek(int(time / self._time_base), stream=self.stream, backward=True)
        self._frames = self.container.decode(self.stream)
        self.frame = None

    def move_before(self, target: float, period: float, origin: float) -> None:
        """Get to a frame at or before `target`, seeking if a keyframe lies in between."""
        if not self.seekable or not self._keyframe_between(target):
            return
        self.seek(target)
        if self.advance() and self.time <= target + period / 2:
            return
        # The seek overshot or hit a bad index entry (seen in FLV): decode from the start
        # and stop seeking in this file.
        self.seekable = False
        self.seek(origin)

    def _keyframe_between(self, target: float) -> bool:
        if self.frame is None:
            return True
        entries = getattr(self.stream, "index_entries", None)  # PyAV >= 15
        if not entries:  # no keyframe index (e.g. MPEG-TS): seek only for a long jump
            return target - self.time > _SEEK_GAP_S
        found = entries.search_timestamp(int(target / self._time_base), backward=True)
        return found >= 0 and entries[found].timestamp * self._time_base > self.time

    def frame_at(self, target: float, period: float) -> VideoFrame | None:
        """The first frame shown at `target` or later (within half a frame); None past the end."""
        while self.frame is None or self.time < target - period / 2:
            last = self.frame
            if not self.advance():
                # Container durations can count a B-frame delay or rounding (FLV, TS: up
                # to ~3 frames); within that, the last frame stands in for the missing ones.
                near = last is not None and target - self.time <= 3 * period
                return last if near else None
        return self.frame


def _probe(cursor: _FrameCursor) -> tuple[VideoInfo, float]:
    """VideoInfo and the time of the first frame (the origin of all timestamps)."""
    stream = cursor.stream
    if not cursor.advance():
        raise VideoError("no decodable video frames")
    first, origin = cursor.frame, cursor.time
    assert first is not None  # advance() returned True, so it holds a frame
    duration = _duration(cursor.container, stream, origin)
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    if not fps and stream.frames and duration:
        fps = stream.frames / duration
    if not fps or (not duration and not stream.frames):
        raise VideoError("unknown frame rate or duration")
    num_frames = stream.frames or max(1, round(duration * fps))
    rotation = _rotation(first, stream)
    width, height = (first.width, first.height)[:: 1 if rotation in (0, 180) else -1]
    info = VideoInfo(duration or num_frames / fps, fps, num_frames, width, height, rotation)
    return info, origin


def _duration(container: InputContainer, stream: VideoStream, origin: float) -> float:
    """Seconds from the first frame to the end of the video stream; 0.0 when unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")  # Matroska keeps it per stream as HH:MM:SS.ns
    with contextlib.suppress(ValueError):
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration:  # AV_TIME_BASE units, from the container's start, not the frame's
        return max(0.0, ((container.start_time or 0) + container.duration) / 1e6 - origin)
    return 0.0


def _rotation(frame: VideoFrame, stream: VideoStream) -> int:
    """Clockwise display rotation, from the display matrix or the legacy 'rotate' tag."""
    counter_clockwise = getattr(frame, "rotation", 0)  # FFmpeg's matrix angle is CCW
    if not counter_clockwise:
        with contextlib.suppress(ValueError):
            return round(float(stream.metadata.get("rotate", 0)) / 90) % 4 * 90
    return round(-counter_clockwise / 90) % 4 * 90


def _read_with_pyav(
    cursor: _FrameCursor, indices: list[int], info: VideoInfo, origin: float, size: tuple[int, int]
) -> dict[int, tuple[np.ndarray, float]]:
    """Decode the frames at `indices` by time: {index: (image (H, W, 3), seconds)}."""
    av = _import_av()
    period = 1 / info.fps
    decoded = {}
    for index in sorted(set(indices)):
        target = origin + index * period
        try:
            cursor.move_before(target, period, origin)
            frame = cursor.frame_at(target, period)
        except av.error.FFmpegError as exc:
            raise VideoError(f"truncated or corrupt: could not decode frame {index}") from exc
        if frame is None:
            raise _Unreachable(index)
        decoded[index] = (_to_image(frame, info, size), round(cursor.time - origin, 6))
    return decoded


def _to_image(frame: VideoFrame, info: VideoInfo, size: tuple[int, int]) -> np.ndarray:
    """An RGB image (H, W, 3) of `size` (display orientation) from a decoded frame, upright."""
    width, height = size if info.rotation in (0, 180) else size[::-1]  # as stored
    image = frame.to_ndarray(
        format="rgb24", width=width, height=height, interpolation="BICUBIC"
    )  # (h, w, 3); decord scales bicubic too
    return np.ascontiguousarray(np.rot90(image, k=-info.rotation // 90))


# ---- decord ---------------------------------------------------------------------------

# decord indexes frames by count, not time. Checked against a full PyAV decode, its
# random access is exact for these codecs in MP4/MOV and Matroska/WebM, and returns
# wrong frames for open-GOP streams (x265's default), MPEG-4 Part 2 with B-frames,
# MPEG-TS/PS, AVI with H.264 and ASF. "auto" sends everything else to PyAV.
_DECORD_EXACT_FORMATS = ("mp4", "matroska")
_DECORD_EXACT_CODECS = frozenset({"h264", "vp8", "vp9", "ffv1"})


@functools.cache
def _decord_importable() -> bool:
    try:
        import decord  # noqa: F401
        import torch  # noqa: F401  (decord hangs when imported before torch)
    except Exception:  # ImportError, or a broken native library
        return False
    return True


def _choose_decoder(decoder: str) -> str:
    """Resolve "auto" and check that a forced decoder is installed."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder '{decoder}'; available: {', '.join(DECODERS)}")
    if decoder == "decord" and not _decord_importable():
        raise VideoError("decoder 'decord' is not available: install the 'decord' package")
    _import_av()  # PyAV probes every video, whichever decoder reads the frames
    if decoder == "auto":
        return "decord" if _decord_importable() else "pyav"
    return decoder


def _try_decord(
    path: str | Path,
    indices: list[int],
    size: tuple[int, int],
    info: VideoInfo,
    container: InputContainer,
    stream: VideoStream,
    decoder: str,
) -> dict[int, tuple[np.ndarray, float]] | None:
    """Frames from decord, or None where PyAV must read them; forced decord raises instead."""
    forced = decoder == "decord"
    if info.rotation:  # decord 0.6 transposes some rotated files and crashes resizing them
        if forced:
            raise VideoError(
                f"rotated video ({info.rotation} degrees): decord cannot turn "
                "it upright reliably; use decoder 'pyav' or 'auto'"
            )
        return None
    exact_format = any(name in container.format.name for name in _DECORD_EXACT_FORMATS)
    if not forced and not (exact_format and stream.codec_context.name in _DECORD_EXACT_CODECS):
        return None
    try:
        return _read_with_decord(path, indices, size, info)
    except Exception as exc:  # decord raises bare RuntimeErrors; PyAV gets a second try
        if not forced:
            return None
        if isinstance(exc, VideoError):
            raise
        raise VideoError(f"decord could not decode it ({type(exc).__name__}); try decoder 'pyav'") from exc


def _read_with_decord(
    path: str | Path, indices: list[int], size: tuple[int, int], info: VideoInfo
) -> dict[int, tuple[np.ndarray, float]]:
    """Decode the frames at `indices` with decord: {index: (image (H, W, 3), seconds)}."""
    import decord
    import torch  # noqa: F401  (decord hangs when imported before torch)

    unique = sorted(set(indices))
    width, height = size
    native = size == (info.width, info.height)  # -1 skips decord's scaler
    with _stderr_silenced():  # decord's own FFmpeg writes warnings straight to fd 2
        reader = decord.VideoReader(
            str(path), ctx=decord.cpu(0), width=-1 if native else width, height=-1 if native else height
        )  # scale while decoding
        if unique[-1] >= len(reader):
            raise _Unreachable(unique[-1])
        batch = reader.get_batch(unique).asnumpy()  # (U, H, W, 3)
        times = reader.get_frame_timestamp(unique)[:, 0] - reader.get_frame_timestamp([0])[0, 0]
        del reader
    if batch.shape[1:] != (height, width, 3):
        raise VideoError(f"decord returned frames of shape {batch.shape[1:]}; try decoder 'pyav'")
    # Frame k must be the one shown at k / fps; variable frame rates and broken indexes
    # make decord's count disagree with the time, and PyAV then samples by time instead.
    if np.abs(times - np.array(unique) / info.fps).max() > 0.5 / info.fps:
        raise VideoError("decord's frame count disagrees with the timestamps; try decoder 'pyav'")
    return {index: (batch[i], round(float(times[i]), 6)) for i, index in enumerate(unique)}


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (affects every thread while it is active)."""
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
