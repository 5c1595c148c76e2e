"""Synthetic test videos, rendered with PyAV at test time (no committed binaries).

Tests import these helpers: `write_video` for real clips in any of the containers and
codecs ezclip meets, `moving_ball_frames` for content whose motion a test can check, and
`write_broken` for the bad inputs a batch must survive (corrupt, truncated, empty, audio-only, not a video).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Encoder settings that keep tiny clips fast to write; everything else is FFmpeg's default.
_CODEC_OPTIONS = {
    "libx264": {"preset": "veryfast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}
# libx264 only takes odd widths/heights with full-resolution chroma (4:2:0 halves them).
_ODD_SIZE_PIX_FMT = {"libx264": "yuv444p"}


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 8,
    codec: str = "libx264",
    rotation: int = 0,
    *,
    keyframe_interval: int | None = None,
    faststart: bool = False,
) -> Path:
    """Encode RGB `frames` (T, H, W, 3) uint8 into `path`; the container follows the extension.

    `rotation` is the clockwise angle a player turns the stored frames by (the classic
    `rotate` tag; a portrait phone video has 90). It is written as a display matrix, which
    mp4/mov keep. `keyframe_interval` sets the GOP so that tests can exercise seeking;
    `faststart` moves the mp4 header to the front of the file.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    num_frames, height, width, _ = frames.shape
    odd = height % 2 or width % 2
    options = {"movflags": "faststart"} if faststart else {}
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=rate, options=_CODEC_OPTIONS.get(codec, {}))
        stream.width, stream.height = width, height
        stream.pix_fmt = _ODD_SIZE_PIX_FMT.get(codec, "yuv420p") if odd else "yuv420p"
        if keyframe_interval:
            stream.codec_context.gop_size = keyframe_interval
        if rotation % 360:
            # PyAV takes the counter-clockwise angle (FFmpeg's display-matrix convention).
            stream.set_display_rotation(-(rotation % 360))
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def moving_ball_frames(
    num_frames: int = 8,
    size: int | tuple[int, int] = 32,
    direction: str = "right",
    radius: float = 0.25,
    color: tuple[int, int, int] = (255, 0, 0),
    seed: int = 0,
    background: str = "noise",
) -> np.ndarray:
    """A ball on a static background: (T, H, W, 3) uint8 RGB.

    `direction`: "right" (moves left to right), "left", "grow" or "shrink" (in place).
    `radius` is a fraction of the short side; keep it large (0.2-0.3) so the ball covers
    several ViT patches. `size` is a side length or (height, width).
    `background`: "noise" (dim, seeded, the same in every frame) or "black".
    """
    height, width = (size, size) if isinstance(size, int) else size
    short = min(height, width)
    rng = np.random.default_rng(seed)
    if background == "noise":
        canvas = rng.integers(0, 96, (height, width, 3), dtype=np.uint8)
    elif background == "black":
        canvas = np.zeros((height, width, 3), np.uint8)
    else:
        raise ValueError(f"unknown background {background!r}; available: noise, black")
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    out = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        progress = i / (num_frames - 1) if num_frames > 1 else 0.5
        centre_x, ball_radius = _ball_at(progress, direction, width, radius * short)
        inside = (xs - centre_x) ** 2 + (ys - height / 2) ** 2 <= ball_radius**2
        out[i] = canvas
        out[i][inside] = color
    return out


def _ball_at(progress: float, direction: str, width: int, radius: float) -> tuple[float, float]:
    """Centre x and radius of the ball at `progress` in [0, 1]."""
    left, right = radius, width - radius
    if direction == "right":
        return left + progress * (right - left), radius
    if direction == "left":
        return right - progress * (right - left), radius
    if direction == "grow":
        return width / 2, radius * (0.3 + 0.7 * progress)
    if direction == "shrink":
        return width / 2, radius * (1.0 - 0.7 * progress)
    raise ValueError(f"unknown direction {direction!r}; available: right, left, grow, shrink")


BROKEN_KINDS = ("empty", "random", "text", "truncated", "audio")


def write_broken(path: str | Path, kind: str) -> Path:
    """Write a file a video reader must reject with a reason. Kinds: see BROKEN_KINDS.

    "truncated" is a real mp4 whose header (moved to the front) still promises every
    frame, cut in half; "audio" is AAC audio with no video stream (use .mp4 or .m4a).
    """
    path = Path(path)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("this is a shopping list, not a video\n" * 20)
    elif kind == "truncated":
        frames = moving_ball_frames(24, 64)
        write_video(path, frames, keyframe_interval=4, faststart=True)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "audio":
        _write_audio(path)
    else:
        raise ValueError(f"unknown kind {kind!r}; available: {', '.join(BROKEN_KINDS)}")
    return path


def _write_audio(path: Path, seconds: float = 0.5, sample_rate: int = 16000) -> None:
    """Half a second of a 440 Hz tone, AAC, no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        samples_per_frame = 1024
        total = int(seconds * sample_rate)
        for start in range(0, total, samples_per_frame):
            t = (np.arange(start, start + samples_per_frame) / sample_rate).astype(np.float32)
            tone = (0.3 * np.sin(2 * math.pi * 440 * t)).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
