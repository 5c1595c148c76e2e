"""What an evaluation scores: the test units of each protocol (folds, K600 subsets, base/novel halves), the models."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ezclip_cli.config.eval import (
    HALVES_SPLITS,
    K600_NEW_CLASSES,
    K600_RENAMED_FROM_K400,
    K600_SUBSET_SIZE,
    K600_SUBSETS,
    OFFICIAL_FOLDS,
    PROTOCOLS,
    TEST_SPLITS,
    ZERO_SHOT_DATASETS,
    EvalConfig,
)
from ezclip_cli.data.datasets import load_split
from ezclip_cli.data.video_lists import VideoList, restrict_classes, split_base_novel
from ezclip_cli.errors import DatasetError, UsageError

log = logging.getLogger(__name__)


# ---- protocols: which videos, against which classes ------------------------------------------------
@dataclass(frozen=True)
class EvalUnit:
    """One scored set: its videos and the label set they are classified against (videos.classes)."""

    name: str  # fold1, subset2, new232, base, novel, or the split's name
    videos: VideoList
    split: str
    fold: int | None = None
    part: str | None = None  # base-to-novel: "base" or "novel"


def k600_new_classes(faithful: bool = False) -> tuple[str, ...]:
    """K600 classes absent from K400, in K600 order: 220 (renames excluded) or, faithful, 232."""
    from ezclip_cli.data.labels import load_labelset

    k400, k600 = load_labelset("k400").labels, load_labelset("k600").labels
    difference = [c for c in k600 if c not in set(k400)]
    if faithful:
        return tuple(difference)
    renamed = set(K600_RENAMED_FROM_K400.values())
    assert set(K600_RENAMED_FROM_K400) <= set(k400) and renamed <= set(difference), "bundled K400/K600 lists changed"
    new = tuple(c for c in difference if c not in renamed)
    assert len(new) == K600_NEW_CLASSES, len(new)
    return new


def plan_units(
    protocol: str,
    dataset: str,
    root: str | Path,
    *,
    split: str | None = None,
    fold: int | None = None,
    faithful: bool = False,
    splits: str | None = None,
) -> tuple[list[EvalUnit], list[str]]:
    """The units a protocol scores on a dataset root (docs/protocols.md, faithful: 7), and notes for the report."""
    root = Path(root)
    notes: list[str] = []
    test_split = split or TEST_SPLITS.get(dataset, "test")
    if protocol == "zero-shot":
        if dataset not in ZERO_SHOT_DATASETS:
            raise UsageError(
                f"zero-shot is defined for {', '.join(ZERO_SHOT_DATASETS)} (docs/protocols.md); "
                f"use --protocol closed-set to score {dataset} on its own classes"
            )
        if dataset == "k600":
            return _plan_k600(root, test_split, faithful, notes, splits or "own"), notes
        folds = (fold,) if fold else ((1,) if faithful else OFFICIAL_FOLDS[dataset])
        if faithful and not fold:
            notes.append(
                "faithful: split 1 only, as the reference (docs/model.md 9.3); "
                "the standard is mean +- std over splits 1-3"
            )
        elif fold:
            notes.append(f"one official split ({fold}) only, by request; the standard is mean +- std over splits 1-3")
        units = [EvalUnit(f"fold{f}", load_split(dataset, root, test_split, f), test_split, f) for f in folds]
        return units, notes
    fold = fold or 1
    if protocol == "base-to-novel":
        from ezclip_cli.data.splits import published_halves

        videos = load_split(dataset, root, test_split, fold)
        halves = published_halves(dataset, videos.classes)
        if halves is not None:
            base, novel, absent = halves
            notes.append(
                f"base/novel halves: the published lists (ViFi-CLIP labels/, labelsets/splits/"
                f"{dataset}_base.txt and _novel.txt): {len(base)} base, {len(novel)} novel; "
                "each half scored against its own classes"
                + (f"; {absent} published classes are not in this root" if absent else "")
            )
        else:  # no published halves: the frequency rule (video_lists.split_base_novel)
            halves_split = HALVES_SPLITS.get(dataset, "train")
            train = load_split(dataset, root, halves_split, fold)
            base, novel = split_base_novel(train)
            notes.append(
                f"no published halves for {dataset}: base/novel by video count in {halves_split} "
                f"(fold {fold}): {len(base)} base, {len(novel)} novel; "
                "each half scored against its own classes"
            )
        return [
            EvalUnit("base", restrict_classes(videos, base), test_split, fold, "base"),
            EvalUnit("novel", restrict_classes(videos, novel), test_split, fold, "novel"),
        ], notes
    if protocol in ("few-shot", "closed-set"):
        videos = load_split(dataset, root, test_split, fold)
        fold_used = fold if dataset in OFFICIAL_FOLDS else None
        return [
            EvalUnit(test_split if fold_used is None else f"{test_split}-fold{fold}", videos, test_split, fold_used)
        ], notes
    raise UsageError(f"unknown protocol '{protocol}'; available: {', '.join(PROTOCOLS)}")


def _plan_k600(root: Path, split: str, faithful: bool, notes: list[str], splits: str = "own") -> list[EvalUnit]:
    if splits == "published":
        return _plan_k600_published(root, notes)
    if splits == "reference":
        return _plan_k600_reference(root, notes)
    videos = load_split("k600", root, split)
    new = k600_new_classes(faithful)
    absent = [c for c in new if c not in set(videos.classes)]
    if absent:
        raise DatasetError(
            f"{root}: the K600 annotations lack {len(absent)} of the {len(new)} classes new in K600 "
            f"(e.g. '{absent[0]}'); is this a Kinetics-600 root?"
        )
    if faithful:
        notes.append(
            "faithful: the 232 K600 names not in K400 (string difference, renamed K400 classes included; the "
            f"reference's lists/kinetics_600_labels_exclusive.csv) scored at once on the root's {split} videos "
            "(--splits own; the reference's own list is --splits reference; docs/protocols.md 7)"
        )
        return [EvalUnit(f"new{len(new)}", restrict_classes(videos, new), split)]
    from ezclip_cli.data.splits import published_k600_subsets

    notes.append(
        f"K600 new classes: K600 minus K400 minus {len(K600_RENAMED_FROM_K400)} renamed K400 classes = "
        f"{len(new)}; scored on the {K600_SUBSETS} published subsets of {K600_SUBSET_SIZE} "
        "(ViFi-CLIP labels/ZS_split1-3_K600.csv, labelsets/splits/k600_zero_shot_1-3.txt)"
    )
    return [
        EvalUnit(f"subset{i + 1}", restrict_classes(videos, subset), split)
        for i, subset in enumerate(published_k600_subsets(videos.classes))
    ]


def _plan_k600_reference(root: Path, notes: list[str]) -> list[EvalUnit]:
    """The reference's 232 classes at once on its own 11,462 videos (test_600_exclusive.txt, --splits reference)."""
    from ezclip_cli.data.published_videos import reference_k600_videos

    new = k600_new_classes(True)
    videos = reference_k600_videos(root, new)
    notes.append(
        f"K600: the {len(new)} K600 names not in K400 (the reference's lists/kinetics_600_labels_exclusive.csv) "
        "scored at once on the reference's own video list (dataset_splits/K-600/Zero_shot/test_600_exclusive.txt, "
        "labelsets/splits/reference_k600_exclusive_videos.txt.gz; videos from the root's train, val and test folders)"
        + (f"; {videos.missing} listed videos not found" if videos.missing else "")
    )
    return [EvalUnit(f"new{len(new)}", videos, "reference")]


def _plan_k600_published(root: Path, notes: list[str]) -> list[EvalUnit]:
    """The 3 published subsets, each on its published video list (ViFi-CLIP ZS_splitN_K600_eval.txt)."""
    from ezclip_cli.data.labels import load_labelset
    from ezclip_cli.data.published_videos import published_k600_videos
    from ezclip_cli.data.splits import published_k600_subsets

    on_disk: dict[str, dict[str, Path]] = {}
    units = [
        EvalUnit(f"subset{i + 1}", published_k600_videos(root, i + 1, subset, on_disk), "published")
        for i, subset in enumerate(published_k600_subsets(load_labelset("k600").labels))
    ]
    notes.append(
        f"K600: the {K600_SUBSETS} published subsets of {K600_SUBSET_SIZE} classes on their published video lists "
        "(ViFi-CLIP datasets_splits/k600_splits/ZS_split1-3_K600_eval.txt, labelsets/splits/"
        "k600_zero_shot_N_videos.txt.gz; videos from the root's train, val and test folders)"
        + "".join(f"; {u.name}: {u.videos.missing} listed videos not found" for u in units if u.videos.missing)
    )
    return units


# ---- models ------------------------------------------------------------------------------------------
@dataclass
class EvalModel:
    """A model the report scores: a checkpoint, plain CLIP by name, or the baseline of a checkpoint."""

    id: str  # ezclip-1, clip
    kind: str  # "ezclip" (trained parts) or "clip" (frozen backbone, frame averaging)
    group: str  # summary row: ezclip, ezclip@8-shot, clip
    checkpoint: str | None = None
    shots: int | None = None
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)  # fingerprint, backbone, ... (filled when loaded)


def resolve_checkpoint(given: str | Path) -> Path:
    """The checkpoint file (or bundle) `given` names: a file, a run folder's best.ezclip, or a model name."""
    from ezclip_cli.model.spec import resolve_model

    path = resolve_model(given).checkpoint
    if path is None:
        raise UsageError("--checkpoint none in eval: leave --checkpoint out to score plain CLIP")
    return path


def checkpoint_training(path: Path) -> dict[str, Any]:
    """The training config inside an ezclip checkpoint ({} for reference files or none stored)."""
    from ezclip_cli.model.checkpoint import detect_kind, read_checkpoint_header

    if path.is_dir() or detect_kind(path) != "ezclip":
        return {}
    try:
        return json.loads(read_checkpoint_header(path).get("extra") or "{}").get("train_config") or {}
    except (json.JSONDecodeError, AttributeError):
        return {}


def plan_models(config: EvalConfig) -> list[EvalModel]:
    """The checkpoints (or plain CLIP) in order, grouped for the summary; the baseline comes last."""
    specs: list[EvalModel] = []
    if not config.checkpoints:
        if config.protocol == "few-shot":
            raise UsageError("few-shot needs trained checkpoints: --checkpoint C --shots K, once per K (2, 4, 8, 16)")
        specs.append(EvalModel("clip", "clip", "clip"))
    for i, given in enumerate(config.checkpoints):
        path = resolve_checkpoint(given)
        training = checkpoint_training(path)
        shots = config.shots[i] if config.shots else training.get("kshot")
        if config.protocol == "few-shot" and not shots:
            raise UsageError(f"{path}: no K known; give --shots K for each --checkpoint (or train with --kshot)")
        if config.protocol == "zero-shot" and training.get("dataset") == config.dataset:
            log.warning("%s was trained on %s: this is not a zero-shot result", path, config.dataset)
        if config.protocol == "base-to-novel" and training and training.get("base_novel") != "base":
            log.warning("%s was not trained on the base half (train --base-novel base)", path)
        group = f"ezclip@{shots}-shot" if config.protocol == "few-shot" else "ezclip"
        specs.append(
            EvalModel(
                f"ezclip-{i + 1}",
                "ezclip",
                group,
                str(path),
                shots if config.protocol == "few-shot" else None,
                training.get("seed"),
            )
        )
    if config.baseline == "clip":
        if not config.checkpoints:
            log.warning("--baseline clip: the model is already plain CLIP; no second run")
        else:
            specs.append(EvalModel("clip", "clip", "clip"))
    return specs
