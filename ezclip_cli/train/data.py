"""Training data: video lists (benchmark or list files, k-shot, base classes), datasets, loaders, prompts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ezclip_cli.config import TrainConfig
from ezclip_cli.errors import UsageError

log = logging.getLogger("ezclip_cli.train")  # one logger name for the whole run, as train.log has always shown


def load_video_lists(config: TrainConfig) -> tuple[Any, Any | None]:
    """Train and validation VideoLists from a named benchmark or list files, with k-shot / base subsets."""
    from ezclip_cli.data import datasets, video_lists

    if config.train_list and config.dataset:
        raise UsageError("give either --dataset with --root or --train-list, not both")
    if config.train_list:
        train = video_lists.load_list_file(Path(config.train_list))
        val = video_lists.load_list_file(Path(config.val_list), classes=train.classes) if config.val_list else None
        full = train
    elif config.dataset:
        if not config.root:
            raise UsageError(f"--dataset {config.dataset} needs --root (the dataset's folder in its official layout)")
        if config.val_split == "test":
            raise UsageError(
                "val_split 'test': model selection never looks at a test split (docs/protocols.md); use 'val'"
            )
        root = Path(config.root)
        train = datasets.load_split(config.dataset, root, config.train_split, config.fold)
        val = datasets.load_split(config.dataset, root, config.val_split, config.fold) if config.val_split else None
        full = train
        if (config.base_novel or config.kshot_list) and config.dataset in ("ucf101", "hmdb51"):
            full = datasets.load_split(config.dataset, root, "trainval", config.fold)  # the whole official train list
    else:
        raise UsageError("no training data: give --dataset with --root, or --train-list")
    if val is not None and tuple(val.classes) != tuple(train.classes):
        raise UsageError("the validation split's classes differ from the training split's")
    if config.base_novel == "base":
        from ezclip_cli.data.splits import published_halves

        halves = published_halves(config.dataset, full.classes) if config.dataset else None
        base, novel = halves[:2] if halves else video_lists.split_base_novel(full)  # frequency: custom data only
        log.info(
            "base-to-novel: training on %d base classes (%d novel held out), %s",
            len(base),
            len(novel),
            "the published halves" if halves else "halves by training frequency (no published halves)",
        )
        train = video_lists.restrict_classes(train, base)
        full = video_lists.restrict_classes(full, base)
        val = video_lists.restrict_classes(val, base) if val is not None else None
    if config.kshot_list:
        train, val = _listed_kshot(config, full, val)
    elif config.kshot:
        train = video_lists.kshot_subset(train, config.kshot, config.seed)
    return train, val


def _listed_kshot(config: TrainConfig, pool: Any, val: Any | None) -> tuple[Any, Any | None]:
    """The training videos a K-shot list names, from the whole training pool; validation keeps the rest."""
    from ezclip_cli.data import video_lists
    from ezclip_cli.data.splits import KSHOT_PUBLISHED, load_kshot_list, published_kshot_name

    spec = config.kshot_list
    assert spec is not None  # called only when a K-shot list is set
    if spec == KSHOT_PUBLISHED:
        if not (config.dataset and config.kshot):
            raise UsageError("kshot_list 'published' needs --dataset and --kshot (which published list to take)")
        spec = published_kshot_name(config.dataset, config.kshot, config.base_novel == "base", config.seed)
    rows, source = load_kshot_list(spec)
    train = video_lists.select_listed(pool, rows, source)
    log.info("K-shot list %s: %d training videos of %d classes", source, len(train), len(train.classes))
    if val is not None:
        listed = {path for path, _ in train.items}
        kept = tuple(item for item in val.items if item[0] not in listed)
        if len(kept) < len(val.items):
            log.info("validation: %d listed training videos left out", len(val.items) - len(kept))
        val = video_lists.VideoList(val.name, val.split, val.classes, kept, val.missing) if kept else None
    return train, val


def build_datasets(
    config: TrainConfig, backbone: Any, lists: tuple[Any, Any | None] | None = None
) -> tuple[Any, Any | None, tuple[str, ...]]:
    """VideoDatasets (decoded from the files, augmented as docs/model.md 8) and the class names."""
    from ezclip_cli.train.dataset import VideoDataset
    from ezclip_cli.train.defaults import choose_flip

    train_list, val_list = lists or load_video_lists(config)
    flips = choose_flip(config.flip, config.dataset, train_list.classes)  # off for direction labels
    if flips.message:
        log.info("%s", flips.message)
    if flips.warning and config.faithful and config.flip:
        log.info(
            "faithful: horizontal flips on for every dataset, as the reference (its utils/Augmentation.py line 21 "
            "tests 'some' in the dataset name, which 'ssv2' fails, so SSv2 clips flip too); --no-flip turns them off"
        )
    elif flips.warning:
        log.warning("%s", flips.warning)
    flip = flips.flip
    common = dict(
        num_frames=config.num_frames,
        image_size=backbone.image_size,
        mean=backbone.mean,
        std=backbone.std,
        seed=config.seed,
        decoder=config.decoder,
    )
    train = VideoDataset(
        train_list,
        train=True,
        flip=flip,
        jitter_per_frame=bool(config.jitter_per_frame),
        centre_frames=config.train_sampling == "centre",
        **common,
    )
    val = VideoDataset(val_list, train=False, **common) if val_list is not None else None
    return train, val, tuple(train_list.classes)


class EpochIndexed(torch.utils.data.Dataset):
    """A dataset addressed by (epoch, index) keys, so long-lived workers follow the epoch.

    video_dataset.VideoDataset draws frames and augmentation from (seed, epoch, index) and asks for
    set_epoch before each epoch; handing the epoch over with every key does that inside the
    worker, so one set of workers serves the whole run instead of being re-spawned each epoch.
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def _at(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        self._at(key[0])
        return self.dataset[key[1]]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        self._at(keys[0][0])  # a micro-batch never spans two epochs
        indices = [index for _, index in keys]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(indices)  # keeps unreadable-video placeholders for collate
        return [self.dataset[index] for index in indices]


def make_loader(dataset: Any, batches: Any, workers: int, pin: bool) -> Any:
    from ezclip_cli.train.dataset import collate_videos

    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_videos,
        pin_memory=pin,
        persistent_workers=workers > 0,
        # spawn: decord and torch deadlock in forked workers. The loader's own generator
        # keeps the global RNG (dropout draws) untouched, which exact resume relies on.
        multiprocessing_context="spawn" if workers > 0 else None,
        generator=torch.Generator(),
    )


def class_prompts(
    classes: Sequence[str],
    templates: Sequence[str],
    descriptions: str | None = None,
    allow_missing: bool = False,
    raw_names: bool = False,
) -> list[list[str]]:
    """Prompt texts per class: its description (training on descriptions, as every published model
    was), else every template filled with the label's text (descriptions.class_texts)."""
    from ezclip_cli.data.descriptions import class_texts

    return class_texts(
        classes, templates=templates, descriptions=descriptions, allow_missing=allow_missing, raw_names=raw_names
    ).prompts


def pad_prompts(prompts: list[list[str]]) -> list[list[str]]:
    """Every class to the same number of texts (one text repeated), so a (K*M) token table can hold them."""
    width = max(len(texts) for texts in prompts)
    return [texts * width if len(texts) == 1 else texts for texts in prompts]
