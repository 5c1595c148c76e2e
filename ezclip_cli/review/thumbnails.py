"""Contact sheets: a few of the frames the model saw, small JPEGs inlined as data URIs.

Every tagged row lists the timestamps of its sampled frames (tag's uniform segment sampling,
docs/model.md section 8). A sheet picks `count` of a video's timestamps with that same sampling
(the centre of `count` equal segments of the list) and decodes exactly those frames with tag's
readers (`read_frames_at`: decord where its seeking is exact, else PyAV; rotation applied), so a
reviewer sees what the model saw, at the times the row states.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

from ezclip_cli.errors import VideoError
from ezclip_cli.review.outputs import ReviewedVideo, resolve_video
from ezclip_cli.video.reader import read_frames_at, sample_indices

THUMB_SHORT_SIDE = 72  # px: enough to recognise a scene, ~2-3 KB as JPEG
JPEG_QUALITY = 70


@dataclass(frozen=True)
class Thumbnail:
    time: float  # seconds after the first frame: the frame's own time as decoded
    uri: str  # data:image/jpeg;base64,...


def pick_times(timestamps: list[float], count: int) -> list[float]:
    """`count` of `timestamps` (ascending), spread as tag spreads its samples; all of them when fewer."""
    if count <= 0 or not timestamps:
        return []
    if len(timestamps) <= count:
        return list(timestamps)
    return [timestamps[i] for i in sample_indices(len(timestamps), count)]


def contact_sheet(
    video: ReviewedVideo, count: int, short_side: int = THUMB_SHORT_SIDE, decoder: str = "auto"
) -> list[Thumbnail]:
    """Up to `count` thumbnails of the frames the model saw in `video`; none for a video with no tagged row.

    Raises VideoError (with its one-line reason) when the file cannot be read now.
    """
    times = pick_times(video.timestamps, count)
    if not times:
        return []
    try:
        clip = read_frames_at(resolve_video(video.path), times, short_side=short_side, decoder=decoder)
    except (OSError, ValueError) as exc:  # a file gone since tagging, a header that lies
        raise VideoError(f"cannot read it now ({exc})") from exc
    return [Thumbnail(time, jpeg_data_uri(frame)) for frame, time in zip(clip.frames, clip.timestamps)]


def jpeg_data_uri(image: np.ndarray) -> str:
    """A (H, W, 3) uint8 RGB image as a JPEG data URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
