"""Keyframe sampling (`--seek keyframe`): for each segment the nearest keyframe, decoded on its own.

Exact sampling (the default, and what `ezclip eval` uses) shows the model the frame at each
segment's centre, which costs decoding from the keyframe before it: in ordinary H.264 with a
keyframe every ~250 frames that is on average half a GOP per sampled frame, hundreds of frames
per clip. Here each of the T segment centres is moved to the nearest keyframe inside the window
and only those keyframes are decoded (a seek lands on a keyframe, and a keyframe needs no other
frame), so a clip costs at most T decoded frames. The price: frames are not at the segment
centres (the timestamps actually used are recorded, as always), and where the window holds fewer
keyframes than segments some frames repeat, as the sampler already does for videos shorter than
T frames. A window that holds no keyframe at all, or a file whose seeks do not land where its
index says, is sampled exactly instead (one forward run covers such a short window anyway).

Keyframe times come from the stream's index (MP4, MOV, Matroska with cues: read from the header,
nothing decoded) or, where there is none (MPEG-TS), from demuxing the window's packets, which
reads their headers but decodes nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ezclip_cli.errors import VideoError
from ezclip_cli.video.pyav import FrameCursor, VideoInfo, import_av, to_image

SEEK_MODES = ("exact", "keyframe")


def keyframe_times(cursor: FrameCursor, origin: float, low: float, high: float) -> list[float]:
    """Presentation times (seconds, absolute) of the keyframes shown in [low, high), ascending."""
    stream = cursor.stream
    base = stream.time_base
    assert base is not None  # FFmpeg's demuxers give every stream a time base
    entries = getattr(stream, "index_entries", None)  # PyAV >= 15
    if entries:
        # Index entries hold decoding times: a stream with B-frames shows each keyframe a fixed
        # delay later, which the first entry (the first frame, shown at `origin`) measures.
        delay = max(0.0, origin - float(entries[0].timestamp * base))
        start = max(entries.search_timestamp(int((low - delay) / base), backward=True), 0)
        times = []
        for i in range(start, len(entries)):
            entry = entries[i]
            time = float(entry.timestamp * base) + delay
            if time >= high:
                break
            if entry.is_keyframe and time >= low - 1e-6:
                times.append(time)
        return times
    # No index: read the window's packet headers (decoding order, so stop once decoding passes `high`).
    cursor.seek(low)
    times = []
    for packet in cursor.container.demux(stream):
        if packet.dts is not None and float(packet.dts * base) >= high:
            break
        if packet.is_keyframe and packet.pts is not None and low - 1e-6 <= float(packet.pts * base) < high:
            times.append(float(packet.pts * base))
    cursor.seek(origin)
    return sorted(times)


def nearest(candidates: Sequence[float], targets: Sequence[float]) -> list[float]:
    """For each target the nearest candidate (`candidates` ascending, not empty; ties go to the earlier)."""
    picks = []
    for target in targets:
        j = bisect.bisect_left(candidates, target)
        if j == len(candidates) or (j > 0 and target - candidates[j - 1] <= candidates[j] - target):
            j -= 1
        picks.append(candidates[j])
    return picks


def keyframe_targets(
    cursor: FrameCursor, info: VideoInfo, origin: float, first: int, stop: int, indices: list[int]
) -> list[float] | None:
    """The keyframe time (absolute) standing in for each sampled index; None when [first, stop) has no keyframe."""
    period = 1 / info.fps
    # A keyframe within half a frame before the window's first frame is that frame (rounded times).
    low, high = origin + (first - 0.5) * period, origin + stop * period
    keys = keyframe_times(cursor, origin, low, high)
    if not keys:
        return None
    return nearest(keys, [origin + index * period for index in indices])


def read_keyframes(
    cursor: FrameCursor, info: VideoInfo, origin: float, size: tuple[int, int], targets: list[float]
) -> tuple[list[np.ndarray], list[float]] | None:
    """Decode the frame each keyframe target lands on: (images, seconds after the first frame).

    Each distinct target costs one seek and the first frame it yields. None when a seek lands
    more than a frame away from its target (a bad index): the caller samples exactly instead.
    """
    av = import_av()
    period = 1 / info.fps
    decoded: dict[float, tuple[np.ndarray, float]] = {}
    for target in sorted(set(targets)):
        try:
            cursor.seek(target)
            if not cursor.advance():
                return None
        except av.error.FFmpegError as exc:
            raise VideoError(f"truncated or corrupt: could not decode the keyframe at {target - origin:.3f} s") from exc
        if abs(cursor.time - target) > period:
            return None
        assert cursor.frame is not None  # advance() returned True
        decoded[target] = (to_image(cursor.frame, info, size), round(cursor.time - origin, 6))
    cursor.seek(origin)  # leave the cursor where a fresh one would be, for an exact fallback
    return [decoded[t][0] for t in targets], [decoded[t][1] for t in targets]
