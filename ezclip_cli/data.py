"""Datasets for training and evaluation: benchmarks by name, list files, subsets, loading.

Annotation files are read as published (layouts in docs/protocols.md section 6);
frames are decoded from the video files when an item is loaded, never extracted first.
A split is a ``VideoList``: class names plus (video path, class index) pairs.

Split names per dataset:
- k400, k600: ``train``, ``val`` (the ``validate.csv``), ``test``.
- ssv2: ``train``, ``val`` (the ``validation.json``); test labels are not public.
- ucf101, hmdb51 (folds 1-3): ``test`` (the official test list); ``trainval`` (the whole
  official train list); ``val`` (a fixed 10 % of each class of that list, seeded with
  ``VAL_SEED``, so model selection never looks at the test set, docs/protocols.md);
  ``train`` (the official train list without the ``val`` videos).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ezclip_cli.errors import DatasetError, VideoError
from ezclip_cli.train_defaults import DIRECTION_SENSITIVE_DATASETS
from ezclip_cli.video import is_video_path, read_frames  # decoders open lazily, per call

logger = logging.getLogger(__name__)

# Horizontal flips turn "pushing left to right" into "... right to left" (docs/model.md 9.6).
DIRECTION_SENSITIVE = DIRECTION_SENSITIVE_DATASETS  # benchmarks; labels naming directions: train_defaults

VAL_FRACTION = 0.1  # of each class of the official train list (ucf101, hmdb51)
VAL_SEED = 0

MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)  # of the short side (TSN, docs/model.md 8)


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


# ---------------------------------------------------------------------------- registry


def list_datasets() -> list[str]:
    """Names accepted by ``load_split``."""
    return sorted(_LOADERS)


def load_split(dataset: str, root: Path, split: str, fold: int = 1) -> VideoList:
    """Read one split of a benchmark from its official annotation files under ``root``.

    Annotated videos missing on disk are counted in ``missing`` and skipped with a
    warning; a split with no video present raises ``DatasetError``.
    """
    if dataset not in _LOADERS:
        raise DatasetError(f"unknown dataset '{dataset}'; available: {', '.join(list_datasets())}")
    loader, splits, folds = _LOADERS[dataset]
    if split not in splits:
        raise DatasetError(f"unknown split '{split}' for {dataset}; available: {', '.join(splits)}")
    if fold not in folds:
        raise DatasetError(f"{dataset} has no fold {fold}; available: {', '.join(map(str, folds))}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{dataset} root not found: {root}")
    return loader(root, split, fold)


# ---------------------------------------------------------------------------- helpers


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    return path


def _index_videos_by_stem(folder: Path, depth: int) -> dict[str, Path]:
    """Map file stem -> path for video files in ``folder`` and up to ``depth`` levels below.

    One directory scan instead of one ``stat`` per annotated video (K400 has 240k).
    """
    found: dict[str, Path] = {}
    pending = [(folder, 0)]
    while pending:
        current, level = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if level < depth:
                    pending.append((Path(entry.path), level + 1))
            elif is_video_path(entry.name):
                found.setdefault(Path(entry.name).stem, Path(entry.path))
    return found


def _finish(
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


def _hold_out(entries: Sequence[tuple[Any, int]], classes: Sequence[str]) -> set[int]:
    """Positions in ``entries`` that form the validation hold-out: per class, a seeded
    ``VAL_FRACTION`` (at least one video when the class has two or more)."""
    by_class: dict[int, list[int]] = {}
    for position, (_, label) in enumerate(entries):
        by_class.setdefault(label, []).append(position)
    held: set[int] = set()
    for label, positions in sorted(by_class.items()):
        n = len(positions)
        n_val = max(1, math.floor(n * VAL_FRACTION + 0.5)) if n >= 2 else 0
        rng = random.Random(f"{VAL_SEED}:{classes[label]}")
        held.update(rng.sample(sorted(positions, key=lambda p: str(entries[p][0])), n_val))
    return held


def _select_train_val(entries: list[tuple[Any, int]], classes: Sequence[str], split: str) -> list[tuple[Any, int]]:
    if split == "trainval":
        return entries
    held = _hold_out(entries, classes)
    keep_held = split == "val"
    return [e for i, e in enumerate(entries) if (i in held) == keep_held]


# ---------------------------------------------------------------------------- kinetics

_KINETICS_CSV = {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}


def _read_kinetics_csv(path: Path) -> tuple[list[dict[str, str]], bool]:
    """Rows of one Kinetics CSV and whether it has a label column."""
    _require_file(path, "annotation file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = set(reader.fieldnames or ())
    for column in ("youtube_id", "time_start", "time_end"):
        if column not in header:
            raise DatasetError(f"{path}: no '{column}' column (want label,youtube_id,time_start,time_end,split)")
    return rows, "label" in header


def _load_kinetics(name: str, root: Path, split: str) -> VideoList:
    annotations = root / "annotations"
    train_csv = annotations / _KINETICS_CSV["train"]
    train_rows, labelled = _read_kinetics_csv(train_csv)
    if not labelled:
        raise DatasetError(f"{train_csv}: no 'label' column")
    classes = sorted({row["label"] for row in train_rows})
    class_index = {c: i for i, c in enumerate(classes)}
    csv_path = annotations / _KINETICS_CSV[split]
    rows, labelled = (train_rows, True) if split == "train" else _read_kinetics_csv(csv_path)
    if not labelled:
        raise DatasetError(f"{csv_path}: no 'label' column; labelled annotations are needed")
    video_dir = root / split
    on_disk = _index_videos_by_stem(video_dir, depth=1)  # <split>/<label>/x.mp4 or <split>/x.mp4
    annotated: list[tuple[Path | None, int]] = []
    for line, row in enumerate(rows, start=2):
        label = row["label"]
        if label not in class_index:
            raise DatasetError(f"{csv_path}:{line}: label '{label}' is not in {train_csv}")
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError:
            raise DatasetError(f"{csv_path}:{line}: bad time_start/time_end") from None
        stem = f"{row['youtube_id']}_{start:06d}_{end:06d}"
        annotated.append((on_disk.get(stem), class_index[label]))
    return _finish(name, split, classes, annotated, video_dir)


# ---------------------------------------------------------------------------- ucf101


def _load_ucf101(root: Path, split: str, fold: int) -> VideoList:
    lists = root / "ucfTrainTestlist"
    class_file = _require_file(lists / "classInd.txt", "annotation file")
    classes: list[str] = []
    for line_no, line in enumerate(class_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise DatasetError(f"{class_file}:{line_no}: want '<id> <Class>' with ids 1, 2, 3, ...")
        classes.append(parts[1])
    class_index = {c.lower(): i for i, c in enumerate(classes)}
    kind = "test" if split == "test" else "train"
    list_file = _require_file(lists / f"{kind}list{fold:02d}.txt", "annotation file")
    entries: list[tuple[str, int]] = []
    for line_no, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        relative = line.split()[0]  # trainlist lines also carry the 1-based class id
        folder = relative.split("/")[0]
        if folder.lower() not in class_index:
            raise DatasetError(f"{list_file}:{line_no}: unknown class folder '{folder}'")
        entries.append((relative, class_index[folder.lower()]))
    if kind == "train":
        entries = _select_train_val(entries, classes, split)
    video_dir = root / "UCF-101"
    annotated = [((video_dir / rel) if (video_dir / rel).is_file() else None, label) for rel, label in entries]
    return _finish("ucf101", split, classes, annotated, video_dir)


# ---------------------------------------------------------------------------- hmdb51

_HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>\d+)\.txt$")
_HMDB_CODES = {"trainval": "1", "train": "1", "val": "1", "test": "2"}  # 0 = unused


def _load_hmdb51(root: Path, split: str, fold: int) -> VideoList:
    split_dir = root / "testTrainMulti_7030_splits"
    if not split_dir.is_dir():
        raise DatasetError(f"annotation folder not found: {split_dir}")
    classes = sorted({m["cls"] for p in split_dir.iterdir() if (m := _HMDB_SPLIT_FILE.match(p.name))})
    if not classes:
        raise DatasetError(f"no <class>_test_splitN.txt files in {split_dir}")
    entries: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        split_file = _require_file(split_dir / f"{name}_test_split{fold}.txt", "annotation file")
        for line_no, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{split_file}:{line_no}: want '<video.avi> <0|1|2>'")
            if parts[1] == _HMDB_CODES[split]:
                entries.append((f"{name}/{parts[0]}", label))
    if split != "test":
        entries = _select_train_val(entries, classes, split)
    video_dirs = [root / "hmdb51", root]  # root/hmdb51/<class>/x.avi or root/<class>/x.avi
    annotated: list[tuple[Path | None, int]] = []
    for relative, label in entries:
        path = next((d / relative for d in video_dirs if (d / relative).is_file()), None)
        annotated.append((path, label))
    where = video_dirs[0] if video_dirs[0].is_dir() else root
    return _finish("hmdb51", split, classes, annotated, where)


# ---------------------------------------------------------------------------- ssv2

_SSV2_JSON = {"train": "something-something-v2-train.json", "val": "something-something-v2-validation.json"}


def _read_json(path: Path) -> Any:
    _require_file(path, "annotation file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def _load_ssv2(root: Path, split: str, fold: int) -> VideoList:
    labels_dir = root / "labels"
    labels_path = labels_dir / "labels.json"
    template_index = {name: int(index) for name, index in _read_json(labels_path).items()}
    classes = tuple(sorted(template_index, key=template_index.__getitem__))
    if sorted(template_index.values()) != list(range(len(classes))):
        raise DatasetError(f"{labels_path}: class indices are not 0..{len(classes) - 1}")
    split_path = labels_dir / _SSV2_JSON[split]
    video_dir = root / "20bn-something-something-v2"
    on_disk = _index_videos_by_stem(video_dir, depth=0)
    annotated: list[tuple[Path | None, int]] = []
    for entry in _read_json(split_path):
        # Templates mark the placeholders as "[something]"; labels.json writes "something".
        name = entry["template"].replace("[something]", "something")
        if name not in template_index:
            raise DatasetError(f"{split_path}: video {entry['id']}: template '{name}' not in {labels_path}")
        annotated.append((on_disk.get(str(entry["id"])), template_index[name]))
    return _finish("ssv2", split, classes, annotated, video_dir)


_TRAINVAL_TEST = ("train", "val", "trainval", "test")
_LOADERS: dict[str, tuple[Callable[[Path, str, int], VideoList], tuple[str, ...], tuple[int, ...]]] = {
    "k400": (lambda root, split, fold: _load_kinetics("k400", root, split), ("train", "val", "test"), (1,)),
    "k600": (lambda root, split, fold: _load_kinetics("k600", root, split), ("train", "val", "test"), (1,)),
    "ucf101": (_load_ucf101, _TRAINVAL_TEST, (1, 2, 3)),
    "hmdb51": (_load_hmdb51, _TRAINVAL_TEST, (1, 2, 3)),
    "ssv2": (_load_ssv2, ("train", "val"), (1,)),
}


# ---------------------------------------------------------------------------- own data


def load_list_file(path: Path, classes: Sequence[str] | None = None) -> VideoList:
    """Read ``relative/path.mp4<TAB>label`` lines (paths relative to the list's folder).

    Without a tab the first whitespace separates path and label (labels may contain
    spaces). Blank lines and ``#`` comments are ignored. Without ``classes`` the class
    list is the sorted set of labels; with it, an unknown label is an error.
    """
    path = Path(path)
    _require_file(path, "list file")
    rows: list[tuple[Path, str, int]] = []
    for line_no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
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
    return _finish(path.name, "list", classes, annotated, path.parent)


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
    return _finish(root.name, "all", classes, items, root)


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
    from ezclip_cli.splits import normalise_name

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


# ---------------------------------------------------------------------------- augmentation


class ClipAugmentation(NamedTuple):
    """Parameters drawn once per clip and applied to all of its frames."""

    crop: tuple[int, int, int, int]  # top, left, height, width
    flip: bool
    jitter: tuple[tuple[str, float], ...]  # (op, factor) in the order applied; () = none
    grayscale: bool
    # Faithful (EZ-CLIP, arXiv 2312.08010, reference code): frames 2..T draw their own jitter; () = per clip
    frame_jitter: tuple[tuple[tuple[str, float], ...], ...] = ()


_JITTER_RANGES = (  # torchvision ColorJitter(0.4, 0.4, 0.2, 0.1) factor ranges
    ("brightness", 0.6, 1.4),
    ("contrast", 0.6, 1.4),
    ("saturation", 0.8, 1.2),
    ("hue", -0.1, 0.1),
)
_JITTER_OPS = {
    "brightness": F.adjust_brightness,
    "contrast": F.adjust_contrast,
    "saturation": F.adjust_saturation,
    "hue": F.adjust_hue,
}


def sample_multiscale_crop(rng: random.Random, height: int, width: int, image_size: int) -> tuple[int, int, int, int]:
    """TSN's GroupMultiScaleCrop: side lengths from ``MULTISCALE_SCALES`` of the short
    side (within 3 px of ``image_size`` snap to it), height and width at most one scale
    step apart, placed at one of 13 fixed offsets. Returns (top, left, h, w)."""
    base = min(height, width)
    sizes = [int(base * s) for s in MULTISCALE_SCALES]
    sizes = [max(1, image_size if abs(s - image_size) < 3 else s) for s in sizes]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= 1]
    crop_h, crop_w = rng.choice(pairs)
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
    grid = [
        (0, 0),
        (0, 4),
        (4, 0),
        (4, 4),
        (2, 2),
        (2, 0),
        (2, 4),
        (4, 2),
        (0, 2),
        (1, 1),
        (1, 3),
        (3, 1),
        (3, 3),
    ]  # (row, column) in quarter steps
    row, col = rng.choice(grid)
    return row * h_step, col * w_step, crop_h, crop_w


def sample_clip_augmentation(
    rng: random.Random, height: int, width: int, image_size: int, flip: bool, jitter_frames: int = 0
) -> ClipAugmentation:
    """Draw one clip's training augmentation (colour jitter per clip, or per frame as the reference).

    The same draws happen whether or not ``flip`` is allowed, so turning flips off
    changes nothing else. ``jitter_frames`` > 1 (the faithful switch): the clip is jittered
    or not as one (p 0.8, as the reference), but frames 2..T draw their own factors and order
    from a separate generator, so crop, flip, grayscale and frame 1 stay as without it."""
    crop = sample_multiscale_crop(rng, height, width, image_size)
    do_flip = rng.random() < 0.5
    jitter: tuple[tuple[str, float], ...] = ()
    if rng.random() < 0.8:
        factors = [(name, rng.uniform(low, high)) for name, low, high in _JITTER_RANGES]
        rng.shuffle(factors)
        jitter = tuple(factors)
    grayscale = rng.random() < 0.2
    frame_jitter: tuple[tuple[tuple[str, float], ...], ...] = ()
    if jitter and jitter_frames > 1:
        per_frame = random.Random(f"{rng.random()}:frames")  # drawn after the others: they do not move
        frame_jitter = (jitter,)
        for _ in range(jitter_frames - 1):
            factors = [(name, per_frame.uniform(low, high)) for name, low, high in _JITTER_RANGES]
            per_frame.shuffle(factors)
            frame_jitter += (tuple(factors),)
    return ClipAugmentation(crop, flip and do_flip, jitter, grayscale, frame_jitter)


def apply_clip_augmentation(frames: torch.Tensor, aug: ClipAugmentation, image_size: int) -> torch.Tensor:
    """uint8 (T,3,H,W) -> float (T,3,image_size,image_size) in [0, 1]."""
    top, left, h, w = aug.crop
    x = F.crop(frames, top, left, h, w)
    x = F.resize(x, [image_size, image_size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    if aug.flip:
        x = x.flip(-1)
    x = x.float().div_(255)  # (T,3,S,S)
    if aug.frame_jitter:
        frames_out = []
        for frame, jitter in zip(x, aug.frame_jitter):
            for name, factor in jitter:
                frame = _JITTER_OPS[name](frame, factor)
            frames_out.append(frame)
        x = torch.stack(frames_out)
    else:
        for name, factor in aug.jitter:
            x = _JITTER_OPS[name](x, factor)
    if aug.grayscale:
        x = F.rgb_to_grayscale(x, num_output_channels=3)
    return x


def eval_resize_crop(frames: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (T,3,H,W) -> float (T,3,S,S): short side to image_size*256/224, centre crop."""
    short = int(image_size * 256 / 224)
    x = frames
    if min(x.shape[-2:]) != short:
        x = F.resize(x, short, interpolation=InterpolationMode.BILINEAR, antialias=True)
    x = F.center_crop(x, [image_size, image_size])
    return x.float().div_(255)


# ---------------------------------------------------------------------------- torch dataset


class _Unreadable(NamedTuple):
    """Placeholder that ``__getitems__`` puts where a video could not be read."""

    path: str
    reason: str


def _read_clip(
    path: Path, num_frames: int, short_side: int | None, decoder: str, rng: random.Random | None
) -> np.ndarray:
    """uint8 (T,H,W,3); each call opens and closes its own decoder (safe in workers)."""
    return read_frames(path, num_frames, short_side=short_side, decoder=decoder, rng=rng).frames


class VideoDataset(torch.utils.data.Dataset):
    """Decoded, augmented and normalised clips of a ``VideoList``.

    Items are ``{"video": float (T,3,S,S), "label": int, "index": int}``, or ``None``
    for a video that cannot be read (warned, path kept in ``self.skipped`` in the process
    that read it). Training randomness (frame choice and augmentation) depends only on
    (seed, epoch, index): call ``set_epoch`` before each epoch and re-create worker
    processes (no ``persistent_workers``) so they see it. Picklable for "spawn" workers.
    """

    def __init__(
        self,
        videos: VideoList,
        num_frames: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
        flip: bool = True,
        seed: int = 0,
        short_side: int = 256,
        decoder: str = "auto",
        jitter_per_frame: bool = False,
        centre_frames: bool = False,
    ) -> None:
        if num_frames < 1 or image_size < 1:
            raise DatasetError(f"num_frames and image_size must be >= 1, got {num_frames}, {image_size}")
        if len(mean) != 3 or len(std) != 3:
            raise DatasetError("mean and std need 3 values (R, G, B)")
        self.videos = videos
        self.num_frames = num_frames
        self.image_size = image_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.train = train
        self.flip = flip
        self.seed = seed
        self.short_side = short_side
        self.decoder = decoder
        self.epoch = 0
        self.skipped: list[str] = []
        self.jitter_per_frame = jitter_per_frame  # faithful: colour jitter drawn per frame
        self.centre_frames = centre_frames  # training on segment centres (the reference's few-shot/b2n configs)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.videos.classes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos.items)

    def _rng(self, index: int, purpose: str) -> random.Random:
        # String seeds hash with SHA-512: the same in every process and Python run.
        return random.Random(f"{self.seed}:{self.epoch}:{index}:{purpose}")

    def _load(self, index: int) -> dict[str, Any] | _Unreadable:
        path, label = self.videos.items[index]
        if self.train:
            sampling, size = (None if self.centre_frames else self._rng(index, "frames")), self.short_side
        else:
            sampling, size = None, int(self.image_size * 256 / 224)
        try:
            frames = _read_clip(path, self.num_frames, size, self.decoder, sampling)
        except VideoError as e:
            logger.warning("skipping unreadable video %s: %s", path, e)
            self.skipped.append(str(path))
            return _Unreadable(str(path), str(e))
        if not frames.flags.writeable:
            frames = frames.copy()
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T,3,H,W) uint8
        if self.train:
            aug = sample_clip_augmentation(
                self._rng(index, "augment"),
                x.shape[-2],
                x.shape[-1],
                self.image_size,
                self.flip,
                len(x) if self.jitter_per_frame else 0,
            )
            x = apply_clip_augmentation(x, aug, self.image_size)
        else:
            x = eval_resize_crop(x, self.image_size)
        x = F.normalize(x, self.mean, self.std)  # (T,3,S,S)
        return {"video": x.contiguous(), "label": int(label), "index": int(index)}

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        item = self._load(index)
        return None if isinstance(item, _Unreadable) else item

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any] | _Unreadable]:
        # DataLoader fetches batches through this, keeping unreadable paths for collate.
        return [self._load(i) for i in indices]


def collate_videos(batch: Sequence[dict[str, Any] | _Unreadable | None]) -> dict[str, Any] | None:
    """Stack readable items; unreadable ones are dropped and listed in ``"skipped"``.

    Returns ``{"video": (B,T,3,S,S), "label": (B,), "index": (B,), "skipped": [path]}``,
    or ``None`` when no item of the batch could be read (each was already warned about).
    """
    good = [item for item in batch if isinstance(item, dict)]
    skipped = [
        item.path if isinstance(item, _Unreadable) else "<unknown>" for item in batch if not isinstance(item, dict)
    ]
    if not good:
        return None
    return {
        "video": torch.stack([item["video"] for item in good]),  # (B,T,3,S,S)
        "label": torch.tensor([item["label"] for item in good], dtype=torch.long),
        "index": torch.tensor([item["index"] for item in good], dtype=torch.long),
        "skipped": skipped,
    }
