"""Benchmarks by name (k400, k600, ucf101, hmdb51, ssv2): their official annotation files read into VideoLists.

Annotation files are read as published (layouts in docs/protocols.md section 6);
frames are decoded from the video files when an item is loaded, never extracted first.

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
import io
import json
import math
import os
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ezclip_cli.data.text_files import read_text_file
from ezclip_cli.data.video_lists import VideoList, keep_present, require_file
from ezclip_cli.errors import DatasetError
from ezclip_cli.video.reader import is_video_path

VAL_FRACTION = 0.1  # of each class of the official train list (ucf101, hmdb51)
VAL_SEED = 0
# Annotation files are the big ones (Kinetics-700's train.csv, SSv2's JSON: tens of MB).
ANNOTATION_MAX_BYTES = 1024 * 2**20


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


def _text(path: Path) -> str:
    """An annotation file's text: bounded (ANNOTATION_MAX_BYTES) and UTF-8, else one line naming file and line."""
    return read_text_file(path, "annotation file", DatasetError, ANNOTATION_MAX_BYTES)


def _read_kinetics_csv(path: Path) -> tuple[list[dict[str, str]], bool]:
    """Rows of one Kinetics CSV and whether it has a label column."""
    require_file(path, "annotation file")
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
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
    return keep_present(name, split, classes, annotated, video_dir)


# ---------------------------------------------------------------------------- ucf101


def _load_ucf101(root: Path, split: str, fold: int) -> VideoList:
    lists = root / "ucfTrainTestlist"
    class_file = require_file(lists / "classInd.txt", "annotation file")
    classes: list[str] = []
    for line_no, line in enumerate(_text(class_file).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise DatasetError(f"{class_file}:{line_no}: want '<id> <Class>' with ids 1, 2, 3, ...")
        classes.append(parts[1])
    class_index = {c.lower(): i for i, c in enumerate(classes)}
    kind = "test" if split == "test" else "train"
    list_file = require_file(lists / f"{kind}list{fold:02d}.txt", "annotation file")
    entries: list[tuple[str, int]] = []
    for line_no, line in enumerate(_text(list_file).splitlines(), start=1):
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
    return keep_present("ucf101", split, classes, annotated, video_dir)


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
        split_file = require_file(split_dir / f"{name}_test_split{fold}.txt", "annotation file")
        for line_no, line in enumerate(_text(split_file).splitlines(), start=1):
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
    return keep_present("hmdb51", split, classes, annotated, where)


# ---------------------------------------------------------------------------- ssv2

_SSV2_JSON = {"train": "something-something-v2-train.json", "val": "something-something-v2-validation.json"}


def _read_json(path: Path) -> Any:
    require_file(path, "annotation file")
    try:
        return json.loads(_text(path))
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
    return keep_present("ssv2", split, classes, annotated, video_dir)


_TRAINVAL_TEST = ("train", "val", "trainval", "test")
_LOADERS: dict[str, tuple[Callable[[Path, str, int], VideoList], tuple[str, ...], tuple[int, ...]]] = {
    "k400": (lambda root, split, fold: _load_kinetics("k400", root, split), ("train", "val", "test"), (1,)),
    "k600": (lambda root, split, fold: _load_kinetics("k600", root, split), ("train", "val", "test"), (1,)),
    "ucf101": (_load_ucf101, _TRAINVAL_TEST, (1, 2, 3)),
    "hmdb51": (_load_hmdb51, _TRAINVAL_TEST, (1, 2, 3)),
    "ssv2": (_load_ssv2, ("train", "val"), (1,)),
}
