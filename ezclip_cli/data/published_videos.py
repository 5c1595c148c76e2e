"""Published K600 zero-shot video lists, read from a K600 root: ViFi-CLIP's and the EZ-CLIP reference's.

Two video sets were published for K600 zero-shot, and neither is the K600 ``val`` split:

- ViFi-CLIP ``datasets_splits/k600_splits/ZS_split{1,2,3}_K600_eval.txt``: one list per 160-class
  subset (14,084 / 13,978 / 14,136 videos, about 88 per class, drawn from K600's train, val and
  test folders); papers since ViFi-CLIP score each subset on these (``--splits published``).
  Shipped as ``labelsets/splits/k600_zero_shot_N_videos.txt.gz``, ``folder/stem<TAB>class`` lines.
- The EZ-CLIP reference's ``dataset_splits/K-600/Zero_shot/test_600_exclusive.txt``: 11,462 videos
  of its 232 classes, in one flat folder, so the K600 folder of each is unknown (of those that
  ViFi-CLIP also lists, 1,080 are in train and 292 in val). Its ``test.py`` scored the 232
  classes at once on these (``--splits reference``, set by ``--faithful``). Shipped as
  ``labelsets/splits/reference_k600_exclusive_videos.txt.gz``, ``stem<TAB>class`` lines in the
  reference's list order (the order its drop_last loader saw).

Sources and commits are in ``labelsets/splits/README.md``. The class of a video is the list's
(the label the papers scored against), matched to the dataset's names.
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
REFERENCE_K600_LIST = "reference_k600_exclusive_videos.txt.gz"


def published_k600_list_path(number: int) -> Path:
    return splits_dir() / f"k600_zero_shot_{number}_videos.txt.gz"


def reference_k600_list_path() -> Path:
    return splits_dir() / REFERENCE_K600_LIST


def read_video_list(path: Path) -> list[tuple[str | None, str, str]]:
    """(folder or None, video stem, class) per line of a shipped gzipped list, in its order.

    A line is ``folder/stem<TAB>class`` (folder one of train, val, test) or ``stem<TAB>class``
    (folder unknown: the video is looked for in all three)."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    rows: list[tuple[str | None, str, str]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        video, _, name = line.partition("\t")
        folder, _, stem = video.rpartition("/")
        if (folder and folder not in K600_VIDEO_FOLDERS) or not stem or not name:
            raise DatasetError(f"{path}:{line_no}: want '[train|val|test/]<stem><TAB><class>'")
        rows.append((folder or None, stem, name))
    return rows


def read_published_k600_list(number: int) -> list[tuple[str | None, str, str]]:
    """(folder, video stem, class) per line of subset `number`'s published video list, in its order."""
    return read_video_list(published_k600_list_path(number))


def published_k600_videos(
    root: Path, number: int, classes: Sequence[str], on_disk: dict[str, dict[str, Path]] | None = None
) -> VideoList:
    """Subset `number`'s published videos present under ``root/<folder>/`` (class folders allowed),
    labelled with the list's class in `classes` order. `on_disk` caches the folder scans across subsets."""
    return listed_videos(root, published_k600_list_path(number), classes, f"published{number}", on_disk)


def reference_k600_videos(
    root: Path, classes: Sequence[str], on_disk: dict[str, dict[str, Path]] | None = None
) -> VideoList:
    """The reference's 11,462 K600 zero-shot videos present under ``root/{train,val,test}/``, in its order."""
    return listed_videos(root, reference_k600_list_path(), classes, "reference", on_disk)


def listed_videos(
    root: Path, path: Path, classes: Sequence[str], split: str, on_disk: dict[str, dict[str, Path]] | None = None
) -> VideoList:
    """The videos of a shipped list found under `root`, in list order; a missing one is counted and warned."""
    on_disk = {} if on_disk is None else on_disk
    rows = read_video_list(path)
    listed = sorted({name for _, _, name in rows})
    canonical = dict(zip(listed, match_names(listed, classes, str(path))))
    index = {c: i for i, c in enumerate(classes)}
    items, missing = [], 0
    for folder, stem, name in rows:
        video = None
        for where in (folder,) if folder else K600_VIDEO_FOLDERS:
            if where not in on_disk:
                on_disk[where] = _index_videos_by_stem(root / where, depth=1)
            video = on_disk[where].get(stem)
            if video is not None:
                break
        if video is None:
            missing += 1
            continue
        items.append((video, index[canonical[name]]))
    if not items:
        raise DatasetError(
            f"none of the {len(rows)} videos of {path.name} is under {root}/{{train,val,test}}/; "
            "is this a Kinetics-600 root with its train, val and test folders?"
        )
    if missing:
        log.warning(
            "%s: %d of %d listed videos not found under %s; scored without them", path.name, missing, len(rows), root
        )
    return VideoList("k600", split, tuple(classes), tuple(items), missing)
