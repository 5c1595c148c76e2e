"""The published K600 zero-shot video lists (ViFi-CLIP ``ZS_split{1,2,3}_K600_eval.txt``), read from a K600 root.

Papers since ViFi-CLIP score each 160-class K600 subset on these videos (about 88 per class,
drawn from K600's train, val and test folders), not on the val split. They are shipped gzipped
as ``labelsets/splits/k600_zero_shot_N_videos.txt.gz``, one ``folder/stem<TAB>class`` line per
video (source in ``labelsets/splits/README.md``); ``ezclip eval --splits published`` scores them.
The class is the list's (the label the papers scored against), matched to the subset's names.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

from ezclip_cli.data.datasets import _index_videos_by_stem
from ezclip_cli.data.splits import match_names, splits_dir
from ezclip_cli.data.video_lists import VideoList
from ezclip_cli.errors import DatasetError

log = logging.getLogger(__name__)

K600_VIDEO_FOLDERS = ("train", "val", "test")


def published_k600_list_path(number: int) -> Path:
    return splits_dir() / f"k600_zero_shot_{number}_videos.txt.gz"


def read_published_k600_list(number: int) -> list[tuple[str, str, str]]:
    """(folder, video stem, class) per line of subset `number`'s published video list, in its order."""
    path = published_k600_list_path(number)
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        video, _, name = line.partition("\t")
        folder, _, stem = video.partition("/")
        if folder not in K600_VIDEO_FOLDERS or not stem or not name:
            raise DatasetError(f"{path}:{line_no}: want '<train|val|test>/<stem><TAB><class>'")
        rows.append((folder, stem, name))
    return rows


def published_k600_videos(
    root: Path, number: int, classes: Sequence[str], on_disk: dict[str, dict[str, Path]] | None = None
) -> VideoList:
    """Subset `number`'s published videos present under ``root/<folder>/`` (class folders allowed),
    labelled with the list's class in `classes` order. `on_disk` caches the folder scans across subsets."""
    on_disk = {} if on_disk is None else on_disk
    rows = read_published_k600_list(number)
    path = published_k600_list_path(number)
    names = match_names(sorted({name for _, _, name in rows}), classes, str(path))
    canonical = dict(zip(sorted({name for _, _, name in rows}), names))
    index = {c: i for i, c in enumerate(classes)}
    items, missing = [], 0
    for folder, stem, name in rows:
        if folder not in on_disk:
            on_disk[folder] = _index_videos_by_stem(root / folder, depth=1)
        video = on_disk[folder].get(stem)
        if video is None:
            missing += 1
            continue
        items.append((video, index[canonical[name]]))
    if not items:
        raise DatasetError(
            f"none of the {len(rows)} videos of {path.name} is under {root}/{{train,val,test}}/; "
            "is this a Kinetics-600 root with all three folders?"
        )
    if missing:
        log.warning(
            "%s: %d of %d published videos not found under %s; scored without them", path.name, missing, len(rows), root
        )
    return VideoList("k600", f"published{number}", tuple(classes), tuple(items), missing)
