"""VideoList, a split as (video path, class index) pairs; list files, class folders and subsets.

A ``VideoList`` holds canonical class names and the videos of one split. Lists come from a
benchmark's annotation files (``datasets.py``), from a list file or from one folder per class
(here); subsets keep K videos per class, the videos a published list names, or some classes.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ezclip_cli.data.text_files import read_text_file
from ezclip_cli.errors import DatasetError
from ezclip_cli.video.reader import is_video_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoList:
    """One split of a dataset: canonical class names and (video path, class index) pairs."""

    name: str
    split: str
    classes: tuple[str, ...]  # index = label id
    items: tuple[tuple[Path, int], ...]
    missing: int = 0  # annotated videos not found on disk

    def __len__(self) -> int:
        return len(self.items)


# ---------------------------------------------------------------------------- helpers


def require_file(path: Path, what: str) -> Path:
    """``path``, or a DatasetError naming ``what`` is missing (an annotation file, a list file)."""
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    return path


def keep_present(
    name: str, split: str, classes: Sequence[str], annotated: Sequence[tuple[Path | None, int]], where: Path
) -> VideoList:
    """Drop annotated videos that are absent (path None), warn about them, reject empty."""
    items = tuple((path, label) for path, label in annotated if path is not None)
    missing = len(annotated) - len(items)
    if not items:
        raise DatasetError(f"no videos of {name} {split} found under {where} ({len(annotated)} annotated)")
    if missing:
        logger.warning(
            "%s %s: %d of %d annotated videos not found under %s; skipped", name, split, missing, len(annotated), where
        )
    return VideoList(name, split, tuple(classes), items, missing)


# ---------------------------------------------------------------------------- own data


def load_list_file(path: Path, classes: Sequence[str] | None = None) -> VideoList:
    """Read ``relative/path.mp4<TAB>label`` lines (paths relative to the list's folder).

    Without a tab the first whitespace separates path and label (labels may contain
    spaces). Blank lines and ``#`` comments are ignored. Without ``classes`` the class
    list is the sorted set of labels; with it, an unknown label is an error. A line with a
    second tab (a third column) is refused: it would otherwise become a class "label\textra".
    """
    path = Path(path)
    require_file(path, "list file")
    rows: list[tuple[Path, str, int]] = []
    for line_no, raw in enumerate(read_text_file(path, "list file", DatasetError).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.count("\t") > 1:
            raise DatasetError(
                f"{path.name}:{line_no}: {line.count(chr(9)) + 1} tab-separated fields; "
                "want '<video path><TAB><label>' (one tab)"
            )
        video, _, label = line.partition("\t") if "\t" in line else line.partition(" ")
        video, label = video.strip(), label.strip()
        if not label:
            raise DatasetError(f"{path.name}:{line_no}: want '<video path><TAB><label>'")
        rows.append((path.parent / video, label, line_no))
    if classes is None:
        classes = sorted({label for _, label, _ in rows})
    class_index = {c: i for i, c in enumerate(classes)}
    annotated: list[tuple[Path | None, int]] = []
    for video_path, label, line_no in rows:
        if label not in class_index:
            raise DatasetError(f"{path.name}:{line_no}: unknown label '{label}'")
        annotated.append((video_path if video_path.is_file() else None, class_index[label]))
    return keep_present(path.name, "list", classes, annotated, path.parent)


def load_folder_dataset(root: Path) -> VideoList:
    """One subfolder per class (sorted names); video files anywhere inside it."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items: list[tuple[Path | None, int]] = []
    for label, name in enumerate(classes):
        videos = sorted(
            Path(folder) / file
            for folder, _, files in os.walk(root / name)  # does not follow directory links
            for file in files
            if is_video_path(file)
        )
        if not videos:
            logger.warning("%s: class folder '%s' has no video files", root, name)
        items.extend((v, label) for v in videos)
    if not classes:
        raise DatasetError(f"no class folders in {root}")
    return keep_present(root.name, "all", classes, items, root)


# ---------------------------------------------------------------------------- subsets


def kshot_subset(videos: VideoList, k: int, seed: int) -> VideoList:
    """At most ``k`` videos per class, the same ones for the same ``seed``.

    Each class draws from its own generator (seeded by ``seed`` and the class name), so
    the choice for one class does not depend on the others. Items keep their order.
    """
    if k < 1:
        raise DatasetError(f"k-shot needs k >= 1, got {k}")
    by_class: dict[int, list[int]] = {i: [] for i in range(len(videos.classes))}
    for position, (_, label) in enumerate(videos.items):
        by_class[label].append(position)
    chosen: set[int] = set()
    short: list[str] = []
    for label, positions in by_class.items():
        if len(positions) < k:
            short.append(videos.classes[label])
            chosen.update(positions)
        else:
            chosen.update(random.Random(f"{seed}:{videos.classes[label]}").sample(positions, k))
    if short:
        logger.warning(
            "%s %s: %d classes have fewer than %d videos; keeping all of theirs: %s",
            videos.name,
            videos.split,
            len(short),
            k,
            ", ".join(short),
        )
    items = tuple(item for i, item in enumerate(videos.items) if i in chosen)
    if not items:
        raise DatasetError(f"{videos.name} {videos.split}: empty {k}-shot subset")
    return VideoList(videos.name, videos.split, videos.classes, items, videos.missing)


def select_listed(videos: VideoList, rows: Sequence[tuple[str, str]], where: str) -> VideoList:
    """The videos a published K-shot list names (``(video stem, class)`` rows), matched by file stem.

    Each video keeps the class the dataset's own annotation gives it; a listed class that
    disagrees (after ``splits.normalise_name``) is counted and warned about, as are listed
    videos absent from ``videos``. Items keep their order.
    """
    from ezclip_cli.data.splits import normalise_name

    by_stem = {path.stem: position for position, (path, _) in enumerate(videos.items)}
    chosen: set[int] = set()
    absent, disagree = 0, 0
    for stem, name in rows:
        position = by_stem.get(stem)
        if position is None:
            absent += 1
            continue
        chosen.add(position)
        disagree += normalise_name(videos.classes[videos.items[position][1]]) != normalise_name(name)
    if absent:
        logger.warning(
            "%s: %d of %d listed videos are not in %s %s; training without them",
            where,
            absent,
            len(rows),
            videos.name,
            videos.split,
        )
    if disagree:
        logger.warning(
            "%s: %d listed videos are annotated with another class in %s; the annotation wins",
            where,
            disagree,
            videos.name,
        )
    items = tuple(item for i, item in enumerate(videos.items) if i in chosen)
    if not items:
        raise DatasetError(f"{where}: none of its {len(rows)} videos is in {videos.name} {videos.split}")
    return VideoList(videos.name, videos.split, videos.classes, items, videos.missing)


def split_base_novel(train: VideoList) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Base and novel classes by training frequency: the fallback for datasets without published halves.

    The named benchmarks use the published lists (``splits.published_halves``): their
    frequencies tie (every HMDB51 class has the same count), so this rule does not give them.
    Classes are ranked by their number of training videos, most first; equal counts are
    ranked by class index. The first ceil(C/2) are base, the rest novel. Both halves are
    returned in class-index order. Pass the full training split (``trainval`` for ucf101
    and hmdb51) so the halves do not depend on missing files or hold-outs.
    """
    counts = [0] * len(train.classes)
    for _, label in train.items:
        counts[label] += 1
    ranked = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    base = set(ranked[: math.ceil(len(counts) / 2)])
    return (
        tuple(c for i, c in enumerate(train.classes) if i in base),
        tuple(c for i, c in enumerate(train.classes) if i not in base),
    )


def restrict_classes(videos: VideoList, classes: Sequence[str]) -> VideoList:
    """Keep only videos of ``classes``; labels are re-indexed to the order of ``classes``."""
    if len(set(classes)) != len(classes):
        raise DatasetError("restrict_classes: duplicate class names")
    old_index = {c: i for i, c in enumerate(videos.classes)}
    unknown = [c for c in classes if c not in old_index]
    if unknown:
        raise DatasetError(f"unknown class '{unknown[0]}' for {videos.name} {videos.split}")
    new_label = {old_index[c]: i for i, c in enumerate(classes)}
    items = tuple((path, new_label[label]) for path, label in videos.items if label in new_label)
    if not items:
        raise DatasetError(f"{videos.name} {videos.split}: no videos of the requested classes")
    return VideoList(videos.name, videos.split, tuple(classes), items, videos.missing)
