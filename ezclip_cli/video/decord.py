"""decord decoding: where its frame-count seeking is exact, reading sampled frames with it, silencing its stderr.

decord is faster than PyAV at random access but indexes frames by count, not time; the
caller (``video.read_frames``) falls back to PyAV wherever this module returns None.
decord and torch (imported with it, see the notes there) are imported lazily.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ezclip_cli.errors import VideoError
from ezclip_cli.video.pyav import Unreachable, VideoInfo

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream

# decord indexes frames by count, not time. Checked against a full PyAV decode, its
# random access is exact for these codecs in MP4/MOV and Matroska/WebM, and returns
# wrong frames for open-GOP streams (x265's default), MPEG-4 Part 2 with B-frames,
# MPEG-TS/PS, AVI with H.264 and ASF. "auto" sends everything else to PyAV.
_DECORD_EXACT_FORMATS = ("mp4", "matroska")
_DECORD_EXACT_CODECS = frozenset({"h264", "vp8", "vp9", "ffv1"})


@functools.cache
def decord_importable() -> bool:
    """Whether decord (and torch, loaded with it) can be imported; a broken native library counts as missing."""
    try:
        import decord  # noqa: F401
        import torch  # noqa: F401  (decord hangs when imported before torch)
    except Exception:  # ImportError, or a broken native library
        return False
    return True


def try_decord(
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
            raise Unreachable(unique[-1])
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
