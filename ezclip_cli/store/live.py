"""Which stored rows are live: the newest version of each file, one row per window.

A store is append-only, so re-embedding a file that changed (new size or modification time, so a
new video id, tag.plan.video_fingerprint) appends its new rows beside the old ones. The old rows are
dead from then on: a file has one content, and relabelling or `search --per-video` must return it
once. A video id is `WHO.WHAT` (WHO: the resolved path, WHAT: size and mtime), so the live version
of a file is the WHAT of the last row written for its WHO; of its rows, the last copy of each
window start counts (only hand-edited stores repeat a key).
"""

from __future__ import annotations

from collections.abc import Sequence

from ezclip_cli.tag.resume import start_key, video_key

__all__ = ["live_index"]


def live_index(video_ids: Sequence[str], starts: Sequence[float | None]) -> list[int]:
    """Indices (ascending) of the live rows among rows in write order: (video id, start) per row (NaN: none)."""
    current = {video_key(v): v for v in video_ids}  # the last version written of each file
    last: dict[tuple[str, float | None], int] = {}
    for i, (video_id, start) in enumerate(zip(video_ids, starts)):
        if current[video_key(video_id)] == video_id:
            last[(video_id, None if start is None or start != start else start_key(start))] = i  # NaN: no window
    return sorted(last.values())
