"""PyAV decoding: opening a file with a clear reason when it is no video, probing, seeking, reading by time.

PyAV probes every video (VideoInfo: duration, frame rate, display size, rotation), whichever
decoder reads its frames. ``FrameCursor`` decodes forward and seeks only when a keyframe lies
ahead of the target, so only frames near the samples are decoded; ``read_by_time`` serves
variable frame rates, where frame k / fps misses frames the video has. av is imported lazily.
"""

from __future__ import annotations

import contextlib
import functools
import math
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ezclip_cli.errors import VideoError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

# Larger declared frames are refused before decoding (8K is 33 megapixels; one RGB frame here is 200 MB).
MAX_PIXELS = 64_000_000
# Without a keyframe index, decode forward to targets closer than this instead of seeking.
_SEEK_GAP_S = 2.0


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header and first frame say. Sizes are as displayed (after rotation)."""

    duration: float  # seconds
    fps: float
    num_frames: int  # from the header, or duration * fps; may be wrong in broken files
    width: int
    height: int
    rotation: int  # clockwise degrees a player turns the stored frames: 0, 90, 180, 270


@functools.cache
def import_av() -> ModuleType:
    """The av module, with FFmpeg's own logging off; a VideoError when PyAV is not installed."""
    try:
        import av
    except ImportError as exc:
        raise VideoError("decoder 'pyav' is not available: install the 'av' package") from exc
    level = av.logging.get_level()
    if level is not None and level > av.logging.ERROR:
        av.logging.set_level(None)  # FFmpeg warnings must not reach the terminal
    return av


@contextlib.contextmanager
def open_video(path: str | Path) -> Iterator[tuple[InputContainer, VideoStream]]:
    """PyAV container and its video stream, or a VideoError saying why there is none."""
    av = import_av()
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
    av = import_av()
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


class Unreachable(VideoError):
    """A sampled frame lies past the real end of the stream (the header promised more)."""

    def __init__(self, index: int):
        super().__init__(f"truncated: could not decode frame {index}")


class FrameCursor:
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


def probe(cursor: FrameCursor) -> tuple[VideoInfo, float]:
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


def read_with_pyav(
    cursor: FrameCursor, indices: list[int], info: VideoInfo, origin: float, size: tuple[int, int]
) -> dict[int, tuple[np.ndarray, float]]:
    """Decode the frames at `indices` by time: {index: (image (H, W, 3), seconds)}."""
    av = import_av()
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
            raise Unreachable(index)
        decoded[index] = (to_image(frame, info, size), round(cursor.time - origin, 6))
    return decoded


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


def read_by_time(
    cursor: FrameCursor,
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
            raise Unreachable(first + j)
        decoded[j] = (to_image(frame, info, size), round(cursor.time - origin, 6))
    return [decoded[j][0] for j in picks], [decoded[j][1] for j in picks]


def to_image(frame: VideoFrame, info: VideoInfo, size: tuple[int, int]) -> np.ndarray:
    """An RGB image (H, W, 3) of `size` (display orientation) from a decoded frame, upright."""
    width, height = size if info.rotation in (0, 180) else size[::-1]  # as stored
    image = frame.to_ndarray(
        format="rgb24", width=width, height=height, interpolation="BICUBIC"
    )  # (h, w, 3); decord scales bicubic too
    return np.ascontiguousarray(np.rot90(image, k=-info.rotation // 90))
