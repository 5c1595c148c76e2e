"""Evaluation under the published protocols (docs/protocols.md): plans, scoring, metrics, reports.

    protocol + dataset + root -> units: one VideoList each (an official fold, a K600 subset,
                                 the base or the novel half, a named split)
    for each model (the checkpoints, then the plain-CLIP baseline) and each unit:
        text classifier of the unit's classes -> every video scored: N clips x M crops,
        softmax averaged over the views -> top-k per video; unreadable videos listed
    -> metrics per evaluation -> summary rows (mean, std over units and runs) -> report.json + PNGs

Counting rules (the report says them too): accuracies divide by the videos that were scored;
an unreadable video is a failure, listed with its reason and counted, never in a denominator;
the last batch is scored whatever its size (only ``--faithful`` drops it, docs/model.md 9.5).

Models: one --checkpoint per training seed (base-to-novel and zero-shot pool them: mean, std) or
one per K (few-shot: K from --shots, else the checkpoint's training config `kshot`); a run
directory means its best.ezclip. `--baseline clip` adds the first checkpoint's frozen backbone.

Under torchrun, batch b of a unit goes to rank b mod WORLD_SIZE: each video is scored in the
same batch as in one process, so rank 0's gathered results (sorted by video index) are the
single-process results, and rank 0 alone writes the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ezclip_cli.data import VideoList, eval_resize_crop, load_split, restrict_classes, split_base_novel
from ezclip_cli.errors import DatasetError, UsageError, VideoError
from ezclip_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

PROTOCOLS = ("zero-shot", "base-to-novel", "few-shot", "closed-set")
REPORT_FORMAT = "ezclip-eval-report"
REPORT_VERSION = 1
TOP_K = 5  # top-5 needs 5 classes; with fewer, top-K is "top-all" (always 1.0)

ZERO_SHOT_DATASETS = ("hmdb51", "ucf101", "k600")
OFFICIAL_FOLDS = {"hmdb51": (1, 2, 3), "ucf101": (1, 2, 3)}
TEST_SPLITS = {"hmdb51": "test", "ucf101": "test", "k400": "val", "k600": "val", "ssv2": "val"}
HALVES_SPLITS = {"hmdb51": "trainval", "ucf101": "trainval"}  # whole official train list; others: "train"

# K600 is not a superset of K400 (labelsets/README.md). These 12 K400 classes live on in K600
# under a new name; the other 20 K400 names absent from K600 were dropped. "New in K600" is
# K600 minus K400 minus these renamed ones: 232 - 12 = 220 classes (the standard protocol).
# The reference took the plain string difference (232, docs/model.md 9.2), which scores renamed
# K400 classes as "unseen".
K600_RENAMED_FROM_K400: dict[str, str] = {
    "baby waking up": "waking up",
    "balloon blowing": "inflating balloons",
    "changing wheel": "changing wheel (not on bike)",
    "cooking sausages": "cooking sausages (not on barbeque)",
    "dying hair": "dyeing hair",
    "garbage collecting": "person collecting garbage",
    "hugging": "hugging (not baby)",
    "making bed": "making the bed",
    "opening bottle": "opening bottle (not wine)",
    "passing American football (not in game)": "passing american football (not in game)",
    "throwing ball": "throwing ball (not baseball or American football)",
    "tying tie": "tying necktie",
}
K600_NEW_CLASSES = 220
K600_SUBSETS = 3
K600_SUBSET_SIZE = 160


# ---- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    """How `ezclip eval` runs. Written into every report (``config``)."""

    protocol: str
    dataset: str
    root: str
    checkpoints: tuple[str, ...] = ()  # several: seeds (base-to-novel) or one per shots entry (few-shot)
    model: str | None = None  # plain CLIP when no checkpoint (loading.load_model)
    pretrained: str | None = None
    num_frames: int = 8  # plain CLIP only; a checkpoint knows its T
    shots: tuple[int, ...] = ()  # few-shot: K of each checkpoint (default: its training config's kshot)
    split: str | None = None  # default: the protocol's test split (TEST_SPLITS)
    fold: int | None = None  # hmdb51/ucf101 official split; zero-shot default = all three
    clips: int = 1  # temporal views: offsets inside each TSN segment
    crops: int = 1  # spatial views along the long side
    batch_size: int = 8  # videos per batch (all their views are scored together)
    workers: int = -1  # decoding processes; -1 = CPU count - 1 (at most 8); 0 = in-process
    templates: tuple[str, ...] = ()  # empty = the 16 reference templates
    descriptions: str | None = None  # description CSV (ours or the reference's GPT-3 files), one text per class
    allow_missing_descriptions: bool = False  # classes the CSV lacks use the templates (warned) instead of an error
    ensemble: str | None = None  # "embedding" (default) or "probability" (faithful): how templates combine
    raw_names: bool | None = None  # class names as written in prompts ("ApplyEyeMakeup"); faithful: true
    drop_last_batch: int | None = None  # leave unscored what a drop_last loader of this batch would; faithful: 80
    baseline: str | None = None  # "clip": also score the frozen backbone (frame averaging)
    faithful: bool = False  # the reference's protocol choices (docs/model.md 9)
    decoder: str = "auto"
    device: str = "auto"
    cache_dir: str | None = None  # text-embedding cache

    def __post_init__(self) -> None:
        for name in ("checkpoints", "shots", "templates"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"unknown protocol '{self.protocol}'; available: {', '.join(PROTOCOLS)}")
        if self.clips < 1 or self.crops < 1 or self.batch_size < 1 or self.num_frames < 1:
            problems.append("clips, crops, batch_size and num_frames must be >= 1")
        if self.baseline not in (None, "clip"):
            problems.append(f"unknown baseline '{self.baseline}'; available: clip")
        if self.shots and self.protocol != "few-shot":
            problems.append("--shots is for the few-shot protocol")
        if self.shots and len(self.shots) != len(self.checkpoints):
            problems.append(
                f"{len(self.shots)} --shots for {len(self.checkpoints)} --checkpoint; give one K per checkpoint"
            )
        if any(k < 1 for k in self.shots):
            problems.append("shots must be >= 1")
        if self.fold is not None and self.fold < 1:
            problems.append("fold must be >= 1")
        for template in self.templates:
            if template.count("{}") != 1:
                problems.append(f"template must contain '{{}}' once: {template!r}")
        from ezclip_cli.faithful import ENSEMBLES, check_choice, faithful_eval_values

        problems += check_choice("ensemble", self.ensemble, ENSEMBLES)
        if self.drop_last_batch is not None and self.drop_last_batch < 1:
            problems.append("drop_last_batch must be >= 1")
        if problems:
            raise UsageError("; ".join(problems))
        if self.faithful:  # every switch the flag stands for, unless set on its own
            for key, value in faithful_eval_values(self).items():
                object.__setattr__(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


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
    from ezclip_cli.labels import load_labelset

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
            return _plan_k600(root, test_split, faithful, notes), notes
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
        from ezclip_cli.splits import published_halves

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
        else:  # no published halves: the frequency rule (data.split_base_novel)
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


def _plan_k600(root: Path, split: str, faithful: bool, notes: list[str]) -> list[EvalUnit]:
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
            "faithful: the 232 K600 names not in K400 (string difference, renamed K400 classes included) "
            "scored at once, as the reference (docs/model.md 9.2)"
        )
        return [EvalUnit(f"new{len(new)}", restrict_classes(videos, new), split)]
    from ezclip_cli.splits import published_k600_subsets

    notes.append(
        f"K600 new classes: K600 minus K400 minus {len(K600_RENAMED_FROM_K400)} renamed K400 classes = "
        f"{len(new)}; scored on the {K600_SUBSETS} published subsets of {K600_SUBSET_SIZE} "
        "(ViFi-CLIP labels/ZS_split1-3_K600.csv, labelsets/splits/k600_zero_shot_1-3.txt)"
    )
    return [
        EvalUnit(f"subset{i + 1}", restrict_classes(videos, subset), split)
        for i, subset in enumerate(published_k600_subsets(videos.classes))
    ]


# ---- test-time views ---------------------------------------------------------------------------------
class _ClipOffset(random.Random):
    """Stands in for the training RNG of video.sample_indices: clip c of N takes position
    (2c + 1) / 2N inside every TSN segment, so N clips are N evenly spaced temporal offsets."""

    clip = 0
    clips = 1

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + (2 * self.clip + 1) * (stop - start) // (2 * self.clips)


def clip_sampler(clip: int, clips: int) -> random.Random | None:
    """The `rng` argument of read_frames for clip `clip` of `clips` (None = segment centres, one clip)."""
    if clips == 1:
        return None
    sampler = _ClipOffset()
    sampler.clip, sampler.clips = clip, clips
    return sampler


def clip_frame_indices(num_source: int, num_frames: int, clip: int, clips: int) -> list[int]:
    """Frame indices of one temporal view (what read_frames decodes for it)."""
    from ezclip_cli.video import sample_indices

    return sample_indices(num_source, num_frames, clip_sampler(clip, clips))


def spatial_crops(frames: torch.Tensor, image_size: int, crops: int) -> torch.Tensor:
    """uint8 (T,3,H,W) -> uint8 (M,T,3,S,S).

    One crop: short side to S*256/224 and the centre (data.eval_resize_crop, as `ezclip tag`).
    M crops: short side to S, then M squares evenly spaced along the long side, its two ends
    included (3 = left/centre/right, or top/centre/bottom for portrait video).
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    if crops == 1:
        return eval_resize_crop(frames, image_size).mul_(255).round_().to(torch.uint8)[None]
    x = frames
    if min(x.shape[-2:]) != image_size:
        x = F.resize(x, image_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    H, W = x.shape[-2:]
    long_side = max(H, W)
    starts = [round(j * (long_side - image_size) / (crops - 1)) for j in range(crops)]
    if W >= H:
        views = [x[..., :, s : s + image_size] for s in starts]
    else:
        views = [x[..., s : s + image_size, :] for s in starts]
    return torch.stack([v[..., :image_size, :image_size] for v in views]).contiguous()


def read_views(path: Path, num_frames: int, image_size: int, clips: int, crops: int, decoder: str) -> torch.Tensor:
    """All N x M views of one video: uint8 (N*M, T, 3, S, S), clip-major. Raises VideoError."""
    from ezclip_cli.video import read_frames

    short_side = int(image_size * 256 / 224) if crops == 1 else image_size
    views = []
    for c in range(clips):
        clip = read_frames(path, num_frames, short_side=short_side, decoder=decoder, rng=clip_sampler(c, clips))
        array = clip.frames if clip.frames.flags.writeable else clip.frames.copy()
        frames = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)  # (T, 3, H, W)
        views.append(spatial_crops(frames, image_size, crops))
    return torch.cat(views)  # (N*M, T, 3, S, S)


class _ViewReader(torch.utils.data.Dataset):
    """Item i: {"index": i, "views": uint8 (V,T,3,S,S)} or {"index": i, "error": reason}. Picklable (spawn)."""

    def __init__(
        self, items: Sequence[tuple[Path, int]], num_frames: int, image_size: int, clips: int, crops: int, decoder: str
    ):
        self.items = list(items)
        self.settings = (num_frames, image_size, clips, crops, decoder)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.items[index][0]
        try:
            return {"index": index, "views": read_views(path, *self.settings)}
        except VideoError as exc:
            return {"index": index, "error": str(exc)}
        except Exception as exc:  # a decoder bug fails this video only
            return {"index": index, "error": f"could not decode: {type(exc).__name__}: {exc}".splitlines()[0]}


def _keep_list(batch: list[Any]) -> list[Any]:
    return batch


def _init_worker(_: int) -> None:
    torch.set_num_threads(1)  # the main process owns the cores for the model


# ---- scoring -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoResult:
    """One video's outcome: its top-k class indices (best first) and their averaged softmax scores."""

    index: int  # position in the unit's VideoList
    label: int
    top: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    error: str | None = None


def plan_batches(
    num_videos: int,
    batch_size: int,
    *,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    drop_last_batch: int | None = None,
) -> tuple[list[list[int]], list[int]]:
    """This rank's batches of video indices (batch b goes to rank b mod world_size) and the dropped indices.

    Batches are cut from the whole list, so their composition does not depend on world_size.
    The last, shorter batch is kept unless `drop_last`. `drop_last_batch` N (faithful: 80, the
    reference's eval loaders) leaves out exactly the videos a drop_last loader of batch N left out,
    whatever `batch_size` is.
    """
    from ezclip_cli.faithful import dropped_by_reference

    dropped: list[int] = dropped_by_reference(num_videos, drop_last_batch) if drop_last_batch else []
    kept = num_videos - len(dropped)
    batches = [list(range(s, min(s + batch_size, kept))) for s in range(0, kept, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        dropped = batches.pop() + dropped
    return batches[rank::world_size], dropped


def score_videos(
    model: Any,
    classifier: torch.Tensor,
    videos: VideoList,
    *,
    clips: int = 1,
    crops: int = 1,
    batch_size: int = 8,
    workers: int = 0,
    decoder: str = "auto",
    device: str = "cpu",
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    progress: Any = None,
    drop_last_batch: int | None = None,
    templates: int = 1,
) -> tuple[list[VideoResult], list[int]]:
    """Score this rank's share of `videos`: softmax over the classifier's K classes, averaged over
    the N*M views of each video. Returns (results sorted by index, indices dropped by drop_last).

    `templates` M > 1: the classifier holds M*K rows, template-major (faithful.template_classifier),
    and each template's softmax is averaged (the reference's ensemble)."""
    batches, dropped = plan_batches(
        len(videos), batch_size, drop_last=drop_last, rank=rank, world_size=world_size, drop_last_batch=drop_last_batch
    )
    if not batches:
        return [], dropped
    reader = _ViewReader(videos.items, model.num_frames, model.backbone.image_size, clips, crops, decoder)
    loader = torch.utils.data.DataLoader(
        reader,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_keep_list,
        # spawn: decord and torch deadlock in forked workers
        multiprocessing_context="spawn" if workers > 0 else None,
        worker_init_fn=_init_worker if workers > 0 else None,
    )
    mean = torch.tensor(model.backbone.mean, device=device).view(1, 1, 3, 1, 1)
    std = torch.tensor(model.backbone.std, device=device).view(1, 1, 3, 1, 1)
    k = min(TOP_K, classifier.shape[0] // templates)
    results: list[VideoResult] = []
    for batch in loader:
        good = [item for item in batch if "views" in item]
        for item in batch:
            if "error" in item:
                results.append(VideoResult(item["index"], videos.items[item["index"]][1], error=item["error"]))
        if good:
            probs = _average_softmax(
                model, classifier, [item["views"] for item in good], batch_size, mean, std, device, templates
            )
            scores, top = probs.topk(k, dim=-1)  # (B, k)
            for item, idx, sc in zip(good, top.tolist(), scores.tolist()):
                label = videos.items[item["index"]][1]
                results.append(VideoResult(item["index"], label, tuple(idx), tuple(round(s, 6) for s in sc)))
        if progress is not None:
            progress(len(batch), sum("error" in item for item in batch))
    return sorted(results, key=lambda r: r.index), dropped


def _average_softmax(
    model: Any,
    classifier: torch.Tensor,
    views: list[torch.Tensor],
    chunk: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: str,
    templates: int = 1,
) -> torch.Tensor:
    """(B videos of V views) -> (B, K): mean over views of softmax(logits) (and over templates, M > 1)."""
    from ezclip_cli.faithful import class_probabilities

    video = torch.stack(views).to(device)  # (B, V, T, 3, S, S) uint8
    B, V = video.shape[:2]
    flat = video.flatten(0, 1)  # (B*V, T, 3, S, S)
    probs = []
    with torch.inference_mode(), torch.autocast("cuda", enabled=device.startswith("cuda")):
        for part in flat.split(chunk):
            x = (part.float() / 255 - mean) / std
            probs.append(class_probabilities(model(x, classifier), templates))  # (b, K)
    return torch.cat(probs).view(B, V, -1).mean(dim=1)  # (B, K)


# ---- torchrun ----------------------------------------------------------------------------------------
def gather_results(local: list[VideoResult], group: Any) -> list[VideoResult]:
    """Every rank's results (a distributed.ProcessGroup), on every rank, sorted by video index."""
    parts = group.gather([dataclasses.astuple(r) for r in local])
    return sorted((VideoResult(*row) for part in parts for row in part), key=lambda r: r.index)


# ---- metrics -----------------------------------------------------------------------------------------
def compute_metrics(labels: Sequence[int], top: Sequence[Sequence[int]], num_classes: int) -> dict[str, Any]:
    """Top-1, top-5, mean per-class accuracy, per-class counts and the confusion matrix of scored videos.

    `top[i]` lists video i's predicted classes, best first. A class with no scored video has
    accuracy None and is left out of the mean per-class accuracy. Rows of the confusion
    matrix are true classes, columns top-1 predictions.
    """
    if len(labels) != len(top):
        raise ValueError(f"{len(labels)} labels but {len(top)} predictions")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    correct5 = 0
    for label, predicted in zip(labels, top):
        confusion[label, predicted[0]] += 1
        correct5 += label in tuple(predicted)[:TOP_K]
    videos = confusion.sum(axis=1)
    correct = np.diag(confusion)
    per_class = [None if n == 0 else float(c / n) for c, n in zip(correct, videos)]
    seen = [a for a in per_class if a is not None]
    scored = int(videos.sum())
    return {
        "top1": float(correct.sum() / scored) if scored else None,
        "top5": float(correct5 / scored) if scored else None,
        "mean_class_accuracy": float(np.mean(seen)) if seen else None,
        "per_class_videos": videos.tolist(),
        "per_class_correct": correct.tolist(),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }


def mean_std(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean and population standard deviation (ddof 0) of the values that exist."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"mean": None, "std": None, "values": []}
    return {"mean": float(np.mean(kept)), "std": float(np.std(kept)), "values": kept}


def harmonic_mean(base: float | None, novel: float | None) -> float | None:
    """2 b n / (b + n), the base-to-novel summary (0 when both are 0)."""
    if base is None or novel is None:
        return None
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)


# ---- models ------------------------------------------------------------------------------------------
@dataclass
class ModelSpec:
    """A model the report scores: a checkpoint, plain CLIP by name, or the baseline of a checkpoint."""

    id: str  # ezclip-1, clip
    kind: str  # "ezclip" (trained parts) or "clip" (frozen backbone, frame averaging)
    group: str  # summary row: ezclip, ezclip@8-shot, clip
    checkpoint: str | None = None
    shots: int | None = None
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)  # fingerprint, backbone, ... (filled when loaded)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, a run directory (`ezclip train --out`) meaning its best.ezclip, or a bundle."""
    path = Path(path)
    if path.is_dir() and (path / "best.ezclip").is_file():
        return path / "best.ezclip"
    return path  # a file, or an exported bundle folder (load_model tells them apart)


def checkpoint_training(path: Path) -> dict[str, Any]:
    """The training config inside an ezclip checkpoint ({} for reference files or none stored)."""
    from ezclip_cli.checkpoint import detect_kind, read_checkpoint_header

    if path.is_dir() or detect_kind(path) != "ezclip":
        return {}
    try:
        return json.loads(read_checkpoint_header(path).get("extra") or "{}").get("train_config") or {}
    except (json.JSONDecodeError, AttributeError):
        return {}


def plan_models(config: EvalConfig) -> list[ModelSpec]:
    """The checkpoints (or plain CLIP) in order, grouped for the summary; the baseline comes last."""
    specs: list[ModelSpec] = []
    if not config.checkpoints:
        if config.protocol == "few-shot":
            raise UsageError("few-shot needs trained checkpoints: --checkpoint C --shots K, once per K (2, 4, 8, 16)")
        specs.append(ModelSpec("clip", "clip", "clip"))
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
            ModelSpec(
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
            specs.append(ModelSpec("clip", "clip", "clip"))
    return specs


def build_clip_baseline(ezclip: Any, device: str) -> Any:
    """Plain CLIP frame averaging on the same backbone weights: prompts off, adapters at their identity init."""
    from ezclip_cli.backbone import build_backbone_from_config
    from ezclip_cli.checkpoint import backbone_state_dict
    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model import build_model

    config = ezclip.config
    backbone = build_backbone_from_config(config.backbone_config, config.backbone, backbone_state_dict(ezclip), device)
    backbone.image_size, backbone.mean, backbone.std = (
        ezclip.backbone.image_size,
        ezclip.backbone.mean,
        ezclip.backbone.std,
    )
    model = build_model(backbone, ModelConfig(num_frames=ezclip.num_frames, use_prompts=False)).to(device)
    return model.eval()


# ---- the run -----------------------------------------------------------------------------------------
@dataclass
class EvalOutcome:
    report: dict[str, Any]
    files: list[Path]  # written by rank 0 (report.json first); empty on other ranks
    exit_code: int  # 0 every video scored, 1 some failed; under torchrun rank 0 alone says so (others 0)


def run_evaluation(
    config: EvalConfig, out: str | Path | None = None, *, progress: ProgressCallback | None = None
) -> EvalOutcome:
    """Score every model on every unit of the protocol; rank 0 writes report.json and plots into `out`.

    `progress(done, total, failed, status)` counts this rank's videos over all models and units (rank 0 only).
    """
    from ezclip_cli import __version__
    from ezclip_cli.distributed import ProcessGroup
    from ezclip_cli.loading import load_model, model_fingerprint, pick_device
    from ezclip_cli.tagging import build_classifier, default_workers

    group = ProcessGroup()
    try:
        units, notes = plan_units(
            config.protocol, config.dataset, config.root, split=config.split, fold=config.fold, faithful=config.faithful
        )
        from ezclip_cli.descriptions import class_texts
        from ezclip_cli.faithful import template_classifier

        # every unit's class texts before any model loads: a missing description fails fast
        texts = [
            class_texts(
                u.videos.classes,
                templates=config.templates,
                descriptions=config.descriptions,
                allow_missing=config.allow_missing_descriptions,
                raw_names=bool(config.raw_names),
            )
            for u in units
        ]
        if config.descriptions:
            notes.append(
                f"class texts: descriptions from {config.descriptions} "
                f"({sum(t.described for t in texts)} of {sum(len(t.sources) for t in texts)} unit classes); "
                "per class in evaluations[].per_class[].text"
            )
        if config.ensemble == "probability":
            notes.append("template ensemble by averaging per-template softmax probabilities, as the reference")
        specs = plan_models(config)
        device = pick_device(config.device)
        if device == "cuda" and group.world > 1:
            device = f"cuda:{group.local_rank}"
            torch.cuda.set_device(torch.device(device))
        workers = default_workers() if config.workers < 0 else config.workers
        report_progress = (progress or None) if group.is_main else None  # progress=False from older callers: none
        total = len(specs) * sum(
            sum(
                len(b)
                for b in plan_batches(
                    len(u.videos),
                    config.batch_size,
                    drop_last_batch=config.drop_last_batch,
                    rank=group.rank,
                    world_size=group.world,
                )[0]
            )
            for u in units
        )
        counts = [0, 0]  # videos scored or failed, of those failed

        def advance(videos: int, failed: int) -> None:
            counts[0], counts[1] = counts[0] + videos, counts[1] + failed
            if report_progress is not None:
                report_progress(counts[0], total, counts[1], "")

        advance(0, 0)
        evaluations: list[dict[str, Any]] = []
        warned: set[str] = set()
        first = None  # the first checkpoint's model: the baseline shares its backbone weights
        for spec in specs:
            if spec.kind == "ezclip":
                model = load_model(spec.checkpoint, config.model, None, device=device)
                first = first or model
            elif first is not None:
                model = build_clip_baseline(first, device)
                log.info(
                    "baseline: plain CLIP frame averaging on %s's backbone (prompts off, adapters at init)",
                    specs[0].checkpoint,
                )
            else:
                model = load_model(
                    "none", config.model, config.pretrained, config.num_frames, device=device
                )  # plain CLIP
            fingerprint = model_fingerprint(model)
            spec.info = {
                "fingerprint": fingerprint,
                "backbone": model.config.backbone,
                "pretrained": model.config.pretrained,
                "num_frames": model.num_frames,
                "image_size": model.backbone.image_size,
                "use_prompts": model.config.use_prompts,
            }
            for unit, unit_texts in zip(units, texts):
                if config.ensemble == "probability":
                    classifier = template_classifier(model, unit_texts.prompts, config.cache_dir, fingerprint)
                else:
                    classifier = build_classifier(model, unit_texts.prompts, config.cache_dir, fingerprint)
                local, dropped = score_videos(
                    model,
                    classifier,
                    unit.videos,
                    clips=config.clips,
                    crops=config.crops,
                    batch_size=config.batch_size,
                    workers=workers,
                    decoder=config.decoder,
                    device=device,
                    drop_last_batch=config.drop_last_batch,
                    rank=group.rank,
                    world_size=group.world,
                    progress=advance,
                    templates=classifier.shape[0] // len(unit.videos.classes),
                )
                results = gather_results(local, group)
                evaluations.append(_evaluation_entry(spec, unit, results, dropped, unit_texts.sources))
                for failure in evaluations[-1]["failures"]:
                    if failure["path"] not in warned and group.is_main:
                        warned.add(failure["path"])
                        log.warning("unreadable video %s: %s", failure["path"], failure["error"])
        if config.drop_last_batch and any(e["dropped"] for e in evaluations):
            notes.append(
                f"eval batches of {config.drop_last_batch} with drop_last, as the reference: "
                "the dropped videos are counted in 'dropped', not scored"
            )
        report = build_report(config, units, specs, evaluations, notes, __version__, group.world)
        errors = validate_report(report)
        assert not errors, errors  # the report is ours: a schema mismatch is a bug
        files: list[Path] = []
        if group.is_main and out is not None:
            files = write_report(report, Path(out))
            report_console(report)
        # Nobody leaves before rank 0 has written: torchrun stops every rank once one exits
        # non-zero, so rank 0 alone carries the exit code (the others' results are in its report).
        group.barrier()
        failed = report["counts"]["failed"]
        return EvalOutcome(report, files, 0 if failed == 0 or not group.is_main else 1)
    finally:
        group.close()


def _evaluation_entry(
    spec: ModelSpec,
    unit: EvalUnit,
    results: list[VideoResult],
    dropped: list[int],
    text_sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    classes = unit.videos.classes
    scored = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    metrics = compute_metrics([r.label for r in scored], [r.top for r in scored], len(classes))
    per_class = [
        {"class": name, "videos": n, "correct": c, "accuracy": _round(a)}
        for name, n, c, a in zip(
            classes, metrics["per_class_videos"], metrics["per_class_correct"], metrics["per_class_accuracy"]
        )
    ]
    for row, source in zip(per_class, text_sources or ()):
        row["text"] = source  # which class text scored it: "description" or "templates"
    return {
        "model": spec.id,
        "unit": unit.name,
        "split": unit.split,
        "fold": unit.fold,
        "part": unit.part,
        "num_classes": len(classes),
        "videos": len(unit.videos),
        "scored": len(scored),
        "failed": len(failed),
        "dropped": len(dropped),
        "metrics": {k: _round(metrics[k]) for k in ("top1", "top5", "mean_class_accuracy")},
        "per_class": per_class,
        "confusion": metrics["confusion"],
        "failures": [{"path": str(unit.videos.items[r.index][0]), "error": r.error} for r in failed],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def summarize(protocol: str, specs: Sequence[ModelSpec], evaluations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per group of models: mean and std over its units (folds, subsets) and runs (seeds)."""
    groups: dict[str, list[ModelSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.group, []).append(spec)
    rows = []
    for group, members in groups.items():
        ids = [m.id for m in members]
        mine = [e for e in evaluations if e["model"] in ids]
        row: dict[str, Any] = {
            "group": group,
            "kind": members[0].kind,
            "shots": members[0].shots,
            "models": ids,
            "metrics": {},
            "harmonic_mean_of_means": None,
            "gain_over_clip": None,
        }
        if protocol == "base-to-novel":
            base = [
                next((e["metrics"]["top1"] for e in mine if e["model"] == i and e["part"] == "base"), None) for i in ids
            ]
            novel = [
                next((e["metrics"]["top1"] for e in mine if e["model"] == i and e["part"] == "novel"), None)
                for i in ids
            ]
            row["metrics"] = {
                "base_top1": mean_std(base),
                "novel_top1": mean_std(novel),
                "harmonic_mean": mean_std(harmonic_mean(b, n) for b, n in zip(base, novel)),
            }
            row["harmonic_mean_of_means"] = harmonic_mean(
                row["metrics"]["base_top1"]["mean"], row["metrics"]["novel_top1"]["mean"]
            )
        else:
            row["metrics"] = {
                name: mean_std(e["metrics"][name] for e in mine) for name in ("top1", "top5", "mean_class_accuracy")
            }
        row["metrics"] = {
            k: {s: (_round(v) if s != "values" else [_round(x) for x in v]) for s, v in stat.items()}
            for k, stat in row["metrics"].items()
        }
        row["harmonic_mean_of_means"] = _round(row["harmonic_mean_of_means"])
        rows.append(row)
    clip = next((r for r in rows if r["kind"] == "clip"), None)
    for row in rows:
        if clip is not None and row is not clip:
            row["gain_over_clip"] = {
                k: _round(row["metrics"][k]["mean"] - clip["metrics"][k]["mean"])
                for k in row["metrics"]
                if row["metrics"][k]["mean"] is not None and clip["metrics"][k]["mean"] is not None
            }
    return sorted(rows, key=lambda r: (r["kind"] == "clip", r["shots"] or 0))


def build_report(
    config: EvalConfig,
    units: Sequence[EvalUnit],
    specs: Sequence[ModelSpec],
    evaluations: list[dict[str, Any]],
    notes: list[str],
    version: str,
    world_size: int,
) -> dict[str, Any]:
    failures: dict[str, str] = {}
    for e in evaluations:
        for f in e["failures"]:
            failures.setdefault(f["path"], f["error"])
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "ezclip_version": version,
        "protocol": config.protocol,
        "dataset": config.dataset,
        "root": str(config.root),
        "faithful": config.faithful,
        "notes": [
            *(
                [
                    "FAITHFUL MODE: the reference code's protocol choices (docs/model.md 9), for comparison with "
                    "published numbers; not the standard protocol"
                ]
                if config.faithful
                else []
            ),
            *notes,
            "accuracies divide by the scored videos; unreadable videos are failures, listed, and in no denominator",
            "std is the population standard deviation (ddof 0) over units (splits, subsets) and runs",
        ],
        "config": config.to_dict(),
        "run": {"world_size": world_size},
        "splits": [
            {
                "unit": u.name,
                "split": u.split,
                "fold": u.fold,
                "part": u.part,
                "num_classes": len(u.videos.classes),
                "videos": len(u.videos),
                "missing_in_split": u.videos.missing,
            }
            for u in units
        ],
        "models": [
            {
                "id": s.id,
                "kind": s.kind,
                "group": s.group,
                "checkpoint": s.checkpoint,
                "shots": s.shots,
                "seed": s.seed,
                **s.info,
            }
            for s in specs
        ],
        "evaluations": evaluations,
        "summary": summarize(config.protocol, specs, evaluations),
        "counts": {
            "evaluated": sum(e["scored"] + e["failed"] for e in evaluations),
            "scored": sum(e["scored"] for e in evaluations),
            "failed": sum(e["failed"] for e in evaluations),
            "dropped": sum(e["dropped"] for e in evaluations),
            "unreadable_videos": len(failures),
        },
        "failures": [{"path": p, "error": r} for p, r in sorted(failures.items())],
        "plots": [],
    }


# ---- outputs -----------------------------------------------------------------------------------------
def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """report.json and the plots (confusion matrix, per-class accuracy) of every trained model's evaluations."""
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    report["plots"] = [p.name for p in plots]
    path = out / "report.json"
    tmp = out / f".report.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return [path, *plots]


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """PNG files: per evaluation of the trained models (of every model when there is none)."""
    kinds = {m["id"]: m["kind"] for m in report["models"]}
    plotted = [e for e in report["evaluations"] if kinds[e["model"]] == "ezclip"] or list(report["evaluations"])
    baseline = {e["unit"]: e for e in report["evaluations"] if kinds[e["model"]] == "clip"}
    paths = []
    for e in plotted:
        stem = f"{e['model']}_{e['unit']}"
        compare = baseline.get(e["unit"]) if kinds[e["model"]] == "ezclip" else None
        paths.append(plot_confusion(e, out / f"confusion_{stem}.png"))
        paths.append(plot_per_class(e, out / f"per_class_{stem}.png", compare))
    return paths


def plot_confusion(evaluation: dict[str, Any], path: Path) -> Path:
    """Row-normalised confusion matrix (true class down, predicted across)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(evaluation["confusion"], dtype=float)  # (K, K)
    K = len(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = min(max(5.0, 3.0 + 0.16 * K), 30.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(normalised, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    names = [c["class"] for c in evaluation["per_class"]]
    if K <= 20:  # counts in the cells while they fit
        for (i, j), count in np.ndenumerate(matrix.astype(int)):
            if count:
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if normalised[i, j] > 0.5 else "white",
                )
    if K <= 60:
        size = 8 if K <= 20 else 5
        ax.set_xticks(range(K), names, rotation=90, fontsize=size)
        ax.set_yticks(range(K), names, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top1 = evaluation["metrics"]["top1"]
    ax.set_title(f"{evaluation['model']} {evaluation['unit']}: top-1 {_percent(top1)} ({evaluation['scored']} videos)")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_per_class(evaluation: dict[str, Any], path: Path, baseline: dict[str, Any] | None = None) -> Path:
    """Per-class top-1 accuracy, best class first; the frozen CLIP baseline beside it when scored."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = evaluation["per_class"]
    other = {c["class"]: c["accuracy"] for c in baseline["per_class"]} if baseline else {}
    order = sorted(range(len(rows)), key=lambda i: (-(rows[i]["accuracy"] or 0.0), i))
    K = len(rows)
    height = min(max(3.0, 1.5 + 0.22 * K), 60.0)
    fig = Figure(figsize=(8, height), dpi=80 if K > 100 else 100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(K)
    width = 0.4 if other else 0.8
    ours = [rows[i]["accuracy"] or 0.0 for i in order]
    ax.barh(y - (width / 2 if other else 0), ours, height=width, color="tab:blue", label=evaluation["model"])
    if other:
        assert baseline is not None  # other is empty without it
        theirs = [other.get(rows[i]["class"]) or 0.0 for i in order]
        ax.barh(y + width / 2, theirs, height=width, color="tab:orange", label=f"{baseline['model']} (frozen)")
    ax.set_yticks(y, [rows[i]["class"] for i in order], fontsize=8 if K <= 60 else 5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("top-1 accuracy")
    mean = evaluation["metrics"]["mean_class_accuracy"]
    ax.set_title(f"{evaluation['model']} {evaluation['unit']}: mean per-class {_percent(mean)}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


_COLUMNS = {
    "base-to-novel": (("base_top1", "base"), ("novel_top1", "novel"), ("harmonic_mean", "HM")),
    "default": (("top1", "top-1"), ("top5", "top-5"), ("mean_class_accuracy", "mean class")),
}


def report_console(report: dict[str, Any], file: Any = None) -> None:
    """The summary as a rich table on stderr (mean +- std in %, scored and failed videos)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=file is None, file=file)
    columns = _COLUMNS.get(report["protocol"], _COLUMNS["default"])
    title = f"{report['dataset']} {report['protocol']}" + (" (FAITHFUL MODE)" if report["faithful"] else "")
    table = Table(title=title)
    table.add_column("model")
    for _, header in columns:
        table.add_column(header, justify="right")
    table.add_column("scored", justify="right")
    table.add_column("failed", justify="right")
    for row in report["summary"]:
        mine = [e for e in report["evaluations"] if e["model"] in row["models"]]
        cells = []
        for key, _ in columns:
            stat = row["metrics"].get(key, {})
            text = _percent(stat.get("mean"))
            if stat.get("values") and len(stat["values"]) > 1:
                text += f" ± {100 * stat['std']:.1f}"
            if key == "harmonic_mean" and row["harmonic_mean_of_means"] is not None:
                text = f"{_percent(row['harmonic_mean_of_means'])}"
            cells.append(text)
        table.add_row(row["group"], *cells, str(sum(e["scored"] for e in mine)), str(sum(e["failed"] for e in mine)))
        if row["gain_over_clip"]:
            gains = [row["gain_over_clip"].get(k) for k, _ in columns]
            table.add_row("  gain vs clip", *["" if g is None else f"{100 * g:+.1f}" for g in gains], "", "")
    console.print(table)
    counts = report["counts"]
    if counts["failed"]:
        console.print(f"{counts['unreadable_videos']} unreadable video(s), not scored: see 'failures' in report.json")


# ---- the report schema (docs/report_schema.json is a copy, checked by the tests) ----------------------
_NUM_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_STAT = {
    "type": "object",
    "required": ["mean", "std", "values"],
    "additionalProperties": False,
    "properties": {
        "mean": _NUM_OR_NULL,
        "std": {"type": ["number", "null"], "minimum": 0},
        "values": {"type": "array", "items": {"type": "number"}},
    },
}
_COUNT = {"type": "integer", "minimum": 0}
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "report_schema.json",
    "title": "ezclip eval report",
    "description": "Written by `ezclip eval` to OUT/report.json. Accuracies are fractions in [0, 1] whose "
    "denominators are the scored videos; top5 is top-min(5, K) for K classes; unreadable videos are failures "
    "(listed, counted, in no denominator); 'dropped' counts videos left unscored by --faithful's drop_last; std is the "
    "population standard deviation over units and runs.",
    "type": "object",
    "required": [
        "format",
        "format_version",
        "ezclip_version",
        "protocol",
        "dataset",
        "root",
        "faithful",
        "notes",
        "config",
        "run",
        "splits",
        "models",
        "evaluations",
        "summary",
        "counts",
        "failures",
        "plots",
    ],
    "additionalProperties": False,
    "properties": {
        "format": {"const": REPORT_FORMAT},
        "format_version": {"const": REPORT_VERSION},
        "ezclip_version": {"type": "string"},
        "protocol": {"enum": list(PROTOCOLS)},
        "dataset": {"type": "string"},
        "root": {"type": "string"},
        "faithful": {"type": "boolean", "description": "true: the reference's protocol choices (docs/model.md 9)"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "config": {
            "type": "object",
            "description": "EvalConfig: the options of the run",
            "required": ["protocol", "dataset", "clips", "crops", "batch_size", "faithful"],
        },
        "run": {
            "type": "object",
            "required": ["world_size"],
            "properties": {"world_size": {"type": "integer", "minimum": 1}},
        },
        "splits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["unit", "split", "fold", "part", "num_classes", "videos", "missing_in_split"],
                "properties": {
                    "unit": {"type": "string"},
                    "split": {"type": "string"},
                    "fold": {"type": ["integer", "null"]},
                    "part": {"enum": ["base", "novel", None]},
                    "num_classes": {"type": "integer", "minimum": 1},
                    "videos": _COUNT,
                    "missing_in_split": _COUNT,
                },
            },
        },
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "kind",
                    "group",
                    "checkpoint",
                    "shots",
                    "seed",
                    "fingerprint",
                    "backbone",
                    "num_frames",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"enum": ["ezclip", "clip"]},
                    "group": {"type": "string"},
                    "checkpoint": {"type": ["string", "null"]},
                    "shots": {"type": ["integer", "null"]},
                    "seed": {"type": ["integer", "null"]},
                    "fingerprint": {"type": "string", "description": "loading.model_fingerprint"},
                    "backbone": {"type": "string"},
                    "pretrained": {"type": ["string", "null"]},
                    "num_frames": {"type": "integer", "minimum": 1},
                    "image_size": {"type": "integer"},
                    "use_prompts": {"type": "boolean"},
                },
            },
        },
        "evaluations": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/evaluation"}},
        "summary": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["group", "kind", "shots", "models", "metrics", "harmonic_mean_of_means", "gain_over_clip"],
                "properties": {
                    "group": {"type": "string"},
                    "kind": {"enum": ["ezclip", "clip"]},
                    "shots": {"type": ["integer", "null"]},
                    "models": {"type": "array", "items": {"type": "string"}},
                    "metrics": {
                        "type": "object",
                        "description": "top1/top5/mean_class_accuracy, or for base-to-novel "
                        "base_top1/novel_top1/harmonic_mean (per run)",
                        "additionalProperties": {"$ref": "#/$defs/stat"},
                    },
                    "harmonic_mean_of_means": {
                        "type": ["number", "null"],
                        "description": "base-to-novel: HM of the mean base and mean novel top-1",
                    },
                    "gain_over_clip": {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": "number"},
                        "description": "mean minus the frozen CLIP baseline's mean, per metric",
                    },
                },
            },
        },
        "counts": {
            "type": "object",
            "additionalProperties": False,
            "required": ["evaluated", "scored", "failed", "dropped", "unreadable_videos"],
            "properties": {k: _COUNT for k in ("evaluated", "scored", "failed", "dropped", "unreadable_videos")},
        },
        "failures": {"type": "array", "items": {"$ref": "#/$defs/failure"}},
        "plots": {"type": "array", "items": {"type": "string"}},
    },
    "$defs": {
        "stat": _STAT,
        "failure": {
            "type": "object",
            "required": ["path", "error"],
            "additionalProperties": False,
            "properties": {"path": {"type": "string"}, "error": {"type": "string"}},
        },
        "evaluation": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "model",
                "unit",
                "split",
                "fold",
                "part",
                "num_classes",
                "videos",
                "scored",
                "failed",
                "dropped",
                "metrics",
                "per_class",
                "confusion",
                "failures",
            ],
            "properties": {
                "model": {"type": "string"},
                "unit": {"type": "string"},
                "split": {"type": "string"},
                "fold": {"type": ["integer", "null"]},
                "part": {"enum": ["base", "novel", None]},
                "num_classes": {"type": "integer", "minimum": 1},
                "videos": _COUNT,
                "scored": _COUNT,
                "failed": _COUNT,
                "dropped": _COUNT,
                "metrics": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["top1", "top5", "mean_class_accuracy"],
                    "properties": {"top1": _NUM_OR_NULL, "top5": _NUM_OR_NULL, "mean_class_accuracy": _NUM_OR_NULL},
                },
                "per_class": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["class", "videos", "correct", "accuracy"],
                        "properties": {
                            "class": {"type": "string"},
                            "videos": _COUNT,
                            "correct": _COUNT,
                            "accuracy": _NUM_OR_NULL,
                            "text": {"enum": ["description", "templates"]},
                        },
                    },
                },
                "confusion": {
                    "type": "array",
                    "description": "rows: true class, columns: top-1 prediction",
                    "items": {"type": "array", "items": _COUNT},
                },
                "failures": {"type": "array", "items": {"$ref": "#/$defs/failure"}},
            },
        },
    },
}


def validate_report(report: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Errors of `report` against the report schema ([] = valid).

    A small validator for the JSON Schema keywords the schema uses: type, const, enum,
    minimum, maximum, required, properties, additionalProperties, items, minItems, $ref.
    """
    schema = REPORT_SCHEMA if schema is None else schema
    errors: list[str] = []
    _validate(report, schema, schema, "$", errors)
    return errors


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str, errors: list[str]) -> None:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_TYPES[t](value) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{where}: missing '{key}'")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], root, f"{where}.{key}", errors)
            elif extra is False:
                errors.append(f"{where}: unexpected '{key}'")
            elif isinstance(extra, dict):
                _validate(item, extra, root, f"{where}.{key}", errors)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, f"{where}[{i}]", errors)
