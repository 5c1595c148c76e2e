"""The EZ-CLIP training loop: single process or DDP under torchrun (docs/model.md 6, 8).

    per step:  clips (B, T, 3, S, S) + one random template of each clip's class
               -> frames (B, T, D), text (B, D) -> L = KL_sym + w * L_motion (model.ezclip_loss)
               -> AdamW on prompts and adapters only, lr = linear warmup then cosine to 0

A run directory holds:
    config.yaml              the resolved TrainConfig (also inside every checkpoint)
    last.ezclip              learned parts + config; `extra` = train_config, epoch, step, classes
    last.state.safetensors   what exact resume needs: optimizer, GradScaler, RNG states, counters
    best.ezclip              last at its best validation top-1 (= last when there is no validation)
    metrics.jsonl            one row per logged step and per validation
    train.log, curves.png    the run log (skipped videos listed) and the training curves

Exact resume: the data order is a function of (seed, epoch) only, each clip's frames,
augmentation and template of (seed, epoch, index), and the dropout RNG is saved and restored;
validation runs on a forked RNG. A run stopped after k steps and resumed therefore repeats
the uninterrupted run. Nothing here is pickled; everything is safetensors + JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ezclip_cli.config import ModelConfig, TrainConfig, dump_yaml, load_yaml
from ezclip_cli.errors import CheckpointError, UsageError
from ezclip_cli.output import atomic_write
from ezclip_cli.progress import ProgressCallback

if TYPE_CHECKING:
    from ezclip_cli.model import EZClip

log = logging.getLogger(__name__)

STATE_FORMAT = "ezclip-train-state"
DEBUG_RANK_DIR_ENV = "EZCLIP_DEBUG_RANK_DIR"  # tests: every rank writes its learned params and losses here


# ---- config -------------------------------------------------------------------------------------
def resolve_train_config(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None, resume: str | Path | None = None
) -> TrainConfig:
    """Defaults < the resumed run's config < the YAML file < flags that were given (None = not given)."""
    data: dict[str, Any] = {}
    if resume is not None:
        data.update(read_run_config(resume))
    if config_file is not None:
        data.update(load_yaml(config_file))
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_dict(data)


def read_run_config(resume: str | Path) -> dict[str, Any]:
    """The training config stored in a run's last checkpoint."""
    from ezclip_cli.checkpoint import read_checkpoint_header

    checkpoint, _ = resume_files(resume)
    extra = json.loads(read_checkpoint_header(checkpoint).get("extra") or "{}")
    if "train_config" not in extra:
        raise CheckpointError(f"{checkpoint}: no training config inside; it was not written by `ezclip train`")
    return extra["train_config"]


def resume_files(resume: str | Path) -> tuple[Path, Path]:
    """(checkpoint, state file) of a run directory or of a `.ezclip` checkpoint beside its state."""
    path = Path(resume)
    checkpoint = path / "last.ezclip" if path.is_dir() else path
    state = checkpoint.with_name(checkpoint.name.removesuffix(".ezclip") + ".state.safetensors")
    if not checkpoint.is_file():
        raise CheckpointError(f"nothing to resume: {checkpoint} not found")
    if not state.is_file():
        raise CheckpointError(
            f"cannot resume from {checkpoint}: no training state {state.name} beside it (resume from last.ezclip)"
        )
    return checkpoint, state


# ---- schedule and data order ---------------------------------------------------------------------
def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """lr of optimizer step `step` (0-based): linear warmup to `peak`, then cosine to 0 (docs/model.md 8)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _seed_of(*parts: Any) -> int:
    """A 63-bit seed from any parts, the same in every process and Python run."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def epoch_order(num_items: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's share of the epoch's permutation, a function of (seed, epoch) only.

    As DistributedSampler: the permutation is padded by wrapping so each rank gets the same count.
    """
    generator = torch.Generator().manual_seed(_seed_of(seed, epoch, "order"))
    order = torch.randperm(num_items, generator=generator).tolist()
    per_rank = math.ceil(num_items / world_size)
    order = (order * math.ceil(per_rank * world_size / num_items))[: per_rank * world_size]
    return order[rank::world_size]


def plan_epoch(
    num_items: int, config: TrainConfig, epoch: int, rank: int = 0, world_size: int = 1
) -> list[list[list[int]]]:
    """Optimizer steps of one epoch, each a list of micro-batches of dataset indices.

    Incomplete micro-batches are dropped (the soft-target KL wants full batches) unless the shard
    is smaller than one batch; leftover micro-batches that cannot fill a step are dropped too.
    """
    order = epoch_order(num_items, config.seed, epoch, rank, world_size)
    size = config.batch_size
    micro = [order[i : i + size] for i in range(0, len(order), size)]
    if len(micro) > 1 and len(micro[-1]) < size:
        micro.pop()
    accum = config.grad_accum
    steps = [micro[i : i + accum] for i in range(0, len(micro), accum)]
    if len(steps) > 1 and len(steps[-1]) < accum:
        steps.pop()
    return steps


def template_index(seed: int, epoch: int, index: int, count: int) -> int:
    """Which template clip `index` is paired with this epoch (the reference draws one per clip per step)."""
    return 0 if count == 1 else random.Random(f"{seed}:{epoch}:{index}:template").randrange(count)


# ---- devices, precision, processes ---------------------------------------------------------------
@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we destroy it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """DDP from torchrun's env vars (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); nccl on CUDA, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = not dist.is_initialized()
    if owns:
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)  # before NCCL binds this process to a GPU
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank, world_size, local_rank, owns)


def pick_train_device(device: str, ddp: Distributed) -> str:
    from ezclip_cli.loading import pick_device

    chosen = pick_device(device)
    if chosen == "cuda" and ddp.enabled:
        chosen = f"cuda:{ddp.local_rank}"
    if chosen.startswith("cuda") and torch.device(chosen).index is not None:
        torch.cuda.set_device(torch.device(chosen))  # NCCL collectives and all_gather_object use it
    return chosen


def resolve_precision(precision: str, device: str) -> str:
    """fp32, bf16 or fp16. auto: bf16 on CUDA when supported, else fp16 (+ GradScaler); fp32 off CUDA."""
    cuda = device.startswith("cuda")
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise UsageError("precision fp16 needs a CUDA device (it trains with a GradScaler); use bf16 or fp32")
    return precision


def _autocast(device: str, precision: str) -> torch.autocast:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=precision != "fp32")


def _default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


# ---- data ----------------------------------------------------------------------------------------
def load_video_lists(config: TrainConfig) -> tuple[Any, Any | None]:
    """Train and validation VideoLists from a named benchmark or list files, with k-shot / base subsets."""
    from ezclip_cli import data

    if config.train_list and config.dataset:
        raise UsageError("give either --dataset with --root or --train-list, not both")
    if config.train_list:
        train = data.load_list_file(Path(config.train_list))
        val = data.load_list_file(Path(config.val_list), classes=train.classes) if config.val_list else None
        full = train
    elif config.dataset:
        if not config.root:
            raise UsageError(f"--dataset {config.dataset} needs --root (the dataset's folder in its official layout)")
        if config.val_split == "test":
            raise UsageError(
                "val_split 'test': model selection never looks at a test split (docs/protocols.md); use 'val'"
            )
        root = Path(config.root)
        train = data.load_split(config.dataset, root, config.train_split, config.fold)
        val = data.load_split(config.dataset, root, config.val_split, config.fold) if config.val_split else None
        full = train
        if (config.base_novel or config.kshot_list) and config.dataset in ("ucf101", "hmdb51"):
            full = data.load_split(config.dataset, root, "trainval", config.fold)  # the whole official train list
    else:
        raise UsageError("no training data: give --dataset with --root, or --train-list")
    if val is not None and tuple(val.classes) != tuple(train.classes):
        raise UsageError("the validation split's classes differ from the training split's")
    if config.base_novel == "base":
        from ezclip_cli.splits import published_halves

        halves = published_halves(config.dataset, full.classes) if config.dataset else None
        base, novel = halves[:2] if halves else data.split_base_novel(full)  # frequency: custom data only
        log.info(
            "base-to-novel: training on %d base classes (%d novel held out), %s",
            len(base),
            len(novel),
            "the published halves" if halves else "halves by training frequency (no published halves)",
        )
        train = data.restrict_classes(train, base)
        full = data.restrict_classes(full, base)
        val = data.restrict_classes(val, base) if val is not None else None
    if config.kshot_list:
        train, val = _listed_kshot(config, full, val)
    elif config.kshot:
        train = data.kshot_subset(train, config.kshot, config.seed)
    return train, val


def _listed_kshot(config: TrainConfig, pool: Any, val: Any | None) -> tuple[Any, Any | None]:
    """The training videos a K-shot list names, from the whole training pool; validation keeps the rest."""
    from ezclip_cli import data
    from ezclip_cli.splits import KSHOT_PUBLISHED, load_kshot_list, published_kshot_name

    spec = config.kshot_list
    assert spec is not None  # called only when a K-shot list is set
    if spec == KSHOT_PUBLISHED:
        if not (config.dataset and config.kshot):
            raise UsageError("kshot_list 'published' needs --dataset and --kshot (which published list to take)")
        spec = published_kshot_name(config.dataset, config.kshot, config.base_novel == "base", config.seed)
    rows, source = load_kshot_list(spec)
    train = data.select_listed(pool, rows, source)
    log.info("K-shot list %s: %d training videos of %d classes", source, len(train), len(train.classes))
    if val is not None:
        listed = {path for path, _ in train.items}
        kept = tuple(item for item in val.items if item[0] not in listed)
        if len(kept) < len(val.items):
            log.info("validation: %d listed training videos left out", len(val.items) - len(kept))
        val = data.VideoList(val.name, val.split, val.classes, kept, val.missing) if kept else None
    return train, val


def build_datasets(
    config: TrainConfig, backbone: Any, lists: tuple[Any, Any | None] | None = None
) -> tuple[Any, Any | None, tuple[str, ...]]:
    """VideoDatasets (decoded from the files, augmented as docs/model.md 8) and the class names."""
    from ezclip_cli.data import VideoDataset
    from ezclip_cli.train_defaults import choose_flip

    train_list, val_list = lists or load_video_lists(config)
    flips = choose_flip(config.flip, config.dataset, train_list.classes)  # off for direction labels
    if flips.message:
        log.info("%s", flips.message)
    if flips.warning:
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

    data.VideoDataset draws frames and augmentation from (seed, epoch, index) and asks for
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


def _loader(dataset: Any, batches: Any, workers: int, pin: bool) -> Any:
    from ezclip_cli.data import collate_videos

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


class _RunBatches:
    """The run's micro-batches of (epoch, index) keys, from (epoch, step in epoch) to the last step."""

    def __init__(
        self,
        num_items: int,
        config: TrainConfig,
        epoch: int,
        skip_steps: int,
        step: int,
        total_steps: int,
        ddp: Distributed,
    ):
        self.args = (num_items, config, epoch, skip_steps, step, total_steps, ddp)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        num_items, config, epoch, skip, step, total, ddp = self.args
        while step < total:
            plan = plan_epoch(num_items, config, epoch, ddp.rank, ddp.world_size)[skip:][: total - step]
            for step_plan in plan:
                for micro in step_plan:
                    yield [(epoch, index) for index in micro]
            step, epoch, skip = step + len(plan), epoch + 1, 0


def class_prompts(
    classes: Sequence[str],
    templates: Sequence[str],
    descriptions: str | None = None,
    allow_missing: bool = False,
    raw_names: bool = False,
) -> list[list[str]]:
    """Prompt texts per class: its description (training on descriptions, as every published model
    was), else every template filled with the label's text (descriptions.class_texts)."""
    from ezclip_cli.descriptions import class_texts

    return class_texts(
        classes, templates=templates, descriptions=descriptions, allow_missing=allow_missing, raw_names=raw_names
    ).prompts


def pad_prompts(prompts: list[list[str]]) -> list[list[str]]:
    """Every class to the same number of texts (one text repeated), so a (K*M) token table can hold them."""
    width = max(len(texts) for texts in prompts)
    return [texts * width if len(texts) == 1 else texts for texts in prompts]


# ---- validation ----------------------------------------------------------------------------------
def validation_batches(num_items: int, batch_size: int, ddp: Distributed | None = None) -> list[list[int]]:
    """This rank's validation batches: a strided share, no padding, so every video is scored once."""
    ddp = ddp or Distributed()
    indices = list(range(ddp.rank, num_items, ddp.world_size))
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def evaluate_top_k(
    model: Any,
    dataset: Any,
    prompts: list[list[str]],
    *,
    batch_size: int,
    device: str,
    precision: str = "fp32",
    workers: int = 0,
    ddp: Distributed | None = None,
    loader: Any | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 over every readable clip (segment centres), text classifier from all templates.

    Sharded over ranks without padding, counts summed, so each video is scored exactly once.
    Runs on a forked RNG and restores the model's mode: training is unaffected. `loader` (over
    `validation_batches`) lets a caller keep its workers between validations.
    """
    ddp = ddp or Distributed()
    was_training = model.training
    cuda_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    counts = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, scored, skipped
    with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
        model.eval()
        with _autocast(device, precision):
            classifier = model.build_text_classifier(prompts).float()  # (K, D)
        k = min(5, classifier.shape[0])
        batches = validation_batches(len(dataset), batch_size, ddp)
        loader = loader if loader is not None else _loader(dataset, batches, workers, device.startswith("cuda"))
        for planned, batch in zip(batches, loader):
            if batch is None:
                counts[3] += len(planned)  # an all-unreadable batch; each was warned about
                continue
            counts[3] += len(batch["skipped"])
            video, labels = batch["video"].to(device), batch["label"].to(device)  # (B, T, 3, S, S), (B,)
            with _autocast(device, precision):
                logits = model(video, classifier)  # (B, K)
            top = logits.float().topk(k, dim=-1).indices  # (B, k)
            hits = top == labels[:, None]
            counts[0] += hits[:, 0].sum()
            counts[1] += hits.any(dim=1).sum()
            counts[2] += len(labels)
    model.train(was_training)
    if ddp.enabled:
        dist.all_reduce(counts)
    correct1, correct5, scored, skipped = counts.tolist()
    return {
        "val_top1": correct1 / max(scored, 1),
        "val_top5": correct5 / max(scored, 1),
        "val_videos": int(scored),
        "val_skipped": int(skipped),
    }


# ---- training state (no pickle) ------------------------------------------------------------------
def capture_rng(device: str) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def restore_rng(state: dict[str, Any], device: str) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.startswith("cuda") and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))


def save_train_state(
    path: Path,
    *,
    optimizer: Any,
    scaler: Any,
    param_names: list[str],
    rng: list[dict[str, Any]],
    counters: dict[str, Any],
) -> None:
    """Optimizer moments, GradScaler, per-rank RNG states and loop counters: tensors + JSON metadata, atomic."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for key, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
    rng_json = []
    for rank, state in enumerate(rng):
        tensors[f"rng.{rank}.torch"] = state["torch"].cpu().contiguous()
        if "cuda" in state:
            tensors[f"rng.{rank}.cuda"] = state["cuda"].cpu().contiguous()
        version, internal, gauss = state["python"]
        kind, keys, pos, has_gauss, cached = state["numpy"]
        tensors[f"rng.{rank}.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
        rng_json.append(
            {"python": [version, list(internal), gauss], "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
        )
    metadata = {
        "format": STATE_FORMAT,
        "counters": json.dumps(counters),
        "param_names": json.dumps(param_names),
        "scaler": json.dumps(scaler.state_dict()),
        "rng": json.dumps(rng_json),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_train_state(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: corrupt training state ({exc})") from exc
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an ezclip training state")
    optim: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, slot = key.split(".", 2)
            optim.setdefault(int(index), {})[slot] = value
    rng = []
    for rank, entry in enumerate(json.loads(meta["rng"])):
        version, internal, gauss = entry["python"]
        kind, pos, has_gauss, cached = entry["numpy"]
        state = {
            "python": (version, tuple(internal), gauss),
            "numpy": (kind, tensors[f"rng.{rank}.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached),
            "torch": tensors[f"rng.{rank}.torch"],
        }
        if f"rng.{rank}.cuda" in tensors:
            state["cuda"] = tensors[f"rng.{rank}.cuda"]
        rng.append(state)
    return {
        "optimizer": optim,
        "scaler": json.loads(meta["scaler"]),
        "param_names": json.loads(meta["param_names"]),
        "counters": json.loads(meta["counters"]),
        "rng": rng,
    }


def _gather_rng(device: str, ddp: Distributed) -> list[dict[str, Any]]:
    mine = capture_rng(device)
    if not ddp.enabled:
        return [mine]
    everyone: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(everyone, mine)  # in memory between our own ranks; files stay pickle-free
    return everyone


# ---- the loop ------------------------------------------------------------------------------------
class _TrainForward(nn.Module):
    """The one forward DDP wraps: per-frame video embeddings and text embeddings."""

    def __init__(self, model: EZClip):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_frames(video), self.model.encode_text(tokens)  # (B, T, D), (U, D)


class _StepProgress:
    """Optimizer steps for the caller's progress callback, with the latest loss/lr/throughput text."""

    def __init__(self, callback: ProgressCallback | None, total: int, done: int):
        self.callback, self.total, self.status = callback, total, ""
        if callback is not None:
            callback(done, total, 0, "")

    def update(self, step: int, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        if self.callback is not None:
            self.callback(step, self.total, 0, self.status)


class _RunFiles:
    """Everything rank 0 writes into the run directory."""

    def __init__(self, out: Path, main: bool):
        self.out, self.main = out, main
        self.last, self.best = out / "last.ezclip", out / "best.ezclip"
        self.state = out / "last.state.safetensors"
        self.metrics = out / "metrics.jsonl"
        self.handler: logging.Handler | None = None
        self.saved_level: int | None = None
        self.written: set[str] = set()  # names this process wrote (the DDP test checks rank 1 wrote none)

    def open_log(self) -> None:
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.written.add("train.log")
        self.handler = logging.FileHandler(self.out / "train.log", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.INFO)
        package = logging.getLogger("ezclip_cli")
        package.addHandler(self.handler)
        if package.getEffectiveLevel() > logging.INFO:  # the run log is complete even when stderr is quiet
            self.saved_level = package.level
            package.setLevel(logging.INFO)

    def close_log(self) -> None:
        if self.handler is not None:
            package = logging.getLogger("ezclip_cli")
            package.removeHandler(self.handler)
            self.handler.close()
            if self.saved_level is not None:
                package.setLevel(self.saved_level)

    def note(self, message: str) -> None:
        """A line for train.log only (not stderr)."""
        if self.handler is not None:
            self.handler.handle(logging.LogRecord(__name__, logging.INFO, __file__, 0, message, None, None))

    def write_config(self, config: TrainConfig) -> None:
        if self.main:
            dump_yaml(config.to_dict(), self.out / "config.yaml")
            self.written.add("config.yaml")

    def write_checkpoint(
        self, model: Any, extra: dict[str, Any], write_state: Callable[[Path], None], best: bool
    ) -> None:
        """The state file first, then the checkpoint; both carry one token, so resume spots a torn pair."""
        from ezclip_cli.checkpoint import save_checkpoint

        if not self.main:
            return
        write_state(self.state)
        save_checkpoint(self.last, model, extra=extra)
        self.written.update((self.state.name, self.last.name))
        if best:
            atomic_write(self.best, lambda tmp: shutil.copyfile(self.last, tmp))
            self.written.add(self.best.name)

    def write_curves(self) -> Path | None:
        if not self.main:
            return None
        curves = plot_curves(self.metrics, self.out / "curves.png")
        if curves is not None:
            self.written.add(curves.name)
        return curves

    def append_metrics(self, row: dict[str, Any]) -> None:
        if self.main:
            self.written.add(self.metrics.name)
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """On resume, forget rows a crashed run logged after its last checkpoint."""
        if self.main and self.metrics.is_file():
            rows = [line for line in self.metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
            kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
            self.metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def train(
    config: TrainConfig,
    *,
    train_data: Any | None = None,
    val_data: Any | None = None,
    classes: Sequence[str] | None = None,
    resume: str | Path | None = None,
    stop_at_step: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train the temporal prompts and adapters; returns final metrics and the paths of best/last.

    Data comes from `config` (benchmark or list files) unless `train_data` (and optionally
    `val_data`) are given: map-style datasets whose items are VideoDataset's dicts
    (`video` (T, 3, S, S) normalised, `label`, `index`), with `classes` passed or as an attribute.
    `resume` is a run directory or a `last.ezclip` beside its state. `stop_at_step` ends the run
    after that many optimizer steps with checkpoints written, as an interruption would (the
    schedule is unchanged, so resuming continues the same run). Under torchrun, runs DDP.
    """
    ddp = init_distributed(config.device)
    files = _RunFiles(Path(config.out), ddp.main)
    package = logging.getLogger("ezclip_cli")
    package_level = package.level
    try:
        if resume is None and files.last.exists():
            raise UsageError(
                f"{files.out} already holds a run; continue it with --resume {files.out} or choose another --out"
            )
        files.open_log()
        if not ddp.main:
            package.setLevel(logging.WARNING)  # one rank speaks
        run = _Run(config, ddp, files, train_data, val_data, classes, progress)
        if resume is not None:
            run.restore(resume)
        else:
            run.seed_training_rng()
        return run.fit(stop_at_step)
    finally:
        files.close_log()
        package.setLevel(package_level)
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()


class _Run:
    """One training run: model, optimizer, schedule, counters, and the files rank 0 writes."""

    def __init__(
        self,
        config: TrainConfig,
        ddp: Distributed,
        files: _RunFiles,
        train_data: Any,
        val_data: Any,
        classes: Sequence[str] | None,
        progress: ProgressCallback | None,
    ):
        from ezclip_cli.backbone import load_backbone, text_transformer
        from ezclip_cli.labels import DEFAULT_TEMPLATES
        from ezclip_cli.model import build_model

        self.started = time.perf_counter()
        self.config, self.ddp, self.files, self.progress = config, ddp, files, progress
        self.device = pick_train_device(config.device, ddp)
        self.precision = resolve_precision(config.precision, self.device)
        lists = load_video_lists(config) if train_data is None else None  # bad data fails before any model loads

        # Frozen backbone and learned parts, both drawn from the seed (the same on every rank).
        start = None
        if config.init:  # fine-tune a released or earlier model: its backbone and learned parts (--init)
            from ezclip_cli.loading import start_from

            backbone, start = start_from(config.init, config.num_frames, config.use_prompts, self.device)
        else:
            backbone = load_backbone(config.model, config.pretrained, device=self.device, seed=config.seed)
        model_config = ModelConfig(
            num_frames=config.num_frames,
            use_prompts=config.use_prompts,
            prompt_dropout=config.prompt_dropout,
            drop_path=config.drop_path,
            attn_dropout=config.attn_dropout,
            drop_path_positions=bool(config.drop_path_positions),
        )
        self.model = build_model(backbone, model_config, seed=config.seed).to(self.device)
        if start is not None:
            self.model.load_learned_state_dict(start)
        if config.grad_checkpointing:
            self.model.clip.visual.set_grad_checkpointing(True)
            text_transformer(self.model.clip).grad_checkpointing = True
        # Dropout and DropPath on; the backbone stays frozen (requires_grad False) but never runs
        # under no_grad: the prompts of layer 0 need gradients through every layer above.
        self.model.train()

        if train_data is None:
            train_data, val_data, classes = build_datasets(config, backbone, lists)
        if len(train_data) == 0:
            raise UsageError("the training set is empty")
        self.train_data, self.val_data = train_data, val_data
        self.classes = tuple(classes if classes is not None else train_data.classes)
        self.templates = tuple(config.templates) or DEFAULT_TEMPLATES
        self.prompts = class_prompts(
            self.classes, self.templates, config.labels, config.allow_missing_descriptions, bool(config.raw_names)
        )
        if config.labels:
            log.info("training on the class descriptions of %s", config.labels)
        padded = pad_prompts(self.prompts)  # with descriptions: one text per class (M = 1)
        self.texts_per_class = len(padded[0])
        tokens = self.model.tokenize([p for per_class in padded for p in per_class])
        self.tokens = tokens.view(len(self.classes) * self.texts_per_class, -1)  # (K*M, 77), row = class*M + template
        if val_data is None:
            log.warning("no validation split: best.ezclip is the last checkpoint")
        self.workers = _default_workers() if config.workers < 0 else config.workers

        self.steps_per_epoch = len(plan_epoch(len(train_data), config, 0, ddp.rank, ddp.world_size))
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        warmup = config.warmup_steps
        if warmup is None:
            warmup = round(config.warmup_epochs * self.steps_per_epoch)
        if warmup > self.total_steps // 2:
            log.warning(
                "warmup (%d steps) takes over half of the %d-step run; set warmup_steps", warmup, self.total_steps
            )
        self.warmup = min(warmup, self.total_steps)

        self.params = self.model.learned_parameters()
        self.param_names = [name for name, _ in self.model.learned_named_parameters()]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.forward: nn.Module = _TrainForward(self.model)
        if ddp.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            self.forward = DistributedDataParallel(self.forward, device_ids=ids, broadcast_buffers=False)

        self.step, self.epoch, self.skip_steps, self.best_top1 = 0, 0, 0, -1.0
        self.batches: Iterator[Any] | None = None  # one training loader for the whole run (fit)
        self.val_loader = None
        self.eval_every = self.choose_eval_every()
        if val_data is not None:
            val_batches = validation_batches(len(val_data), config.batch_size, ddp)
            self.val_loader = _loader(val_data, val_batches, self.workers, self.device.startswith("cuda"))
        # the loss sums become 0-d tensors once a step adds to them (synced only when a row is logged)
        self.window: dict[str, float | torch.Tensor] = {
            "loss": 0.0,
            "kl": 0.0,
            "motion": 0.0,
            "micro": 0,
            "clips": 0,
            "since": time.perf_counter(),
        }
        self.last_row: dict[str, Any] = {}
        self.last_val: dict[str, Any] | None = None
        self.skipped_total = 0
        self.debug_losses: list[float] = []

    def choose_eval_every(self) -> int:
        """--eval-every, or epochs that keep validation a small share of the work (train_defaults)."""
        from ezclip_cli.train_defaults import auto_eval_every, eval_every_message

        if self.val_data is None:
            return 1
        config = self.config
        clips = self.steps_per_epoch * config.batch_size * config.grad_accum * self.ddp.world_size
        clips = min(clips, len(self.train_data))
        every = config.eval_every or auto_eval_every(clips, len(self.val_data))
        chosen = config.eval_every is None
        log.info("%s", eval_every_message(every, self.steps_per_epoch, clips, len(self.val_data), chosen))
        return every

    # ---- state ------------------------------------------------------------------------------------
    def seed_training_rng(self) -> None:
        seed = _seed_of(self.config.seed, self.ddp.rank, "train")
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # dropout draws: different on each rank, reproducible

    def restore(self, resume: str | Path) -> None:
        """Learned parameters, optimizer, GradScaler, RNG and counters of a saved run."""
        from ezclip_cli.checkpoint import read_checkpoint_header

        checkpoint, state_file = resume_files(resume)
        state = load_train_state(state_file)
        extra = json.loads(read_checkpoint_header(checkpoint).get("extra") or "{}")
        counters = state["counters"]
        if extra.get("state_token") != counters.get("state_token"):
            raise CheckpointError(
                f"{checkpoint} and {state_file.name} are from different saves (a crash between the two?)"
            )
        if state["param_names"] != self.param_names:
            raise CheckpointError(f"{checkpoint}: its learned parameters do not match this config")
        saved = extra.get("train_config", {})
        changed = sorted(k for k, v in self.config.to_dict().items() if k != "out" and saved.get(k, v) != v)
        if changed:
            log.warning("resuming with changed settings (%s): not an exact continuation", ", ".join(changed))
        self.model.load_learned_state_dict(_read_learned(checkpoint))
        param_groups = self.optimizer.state_dict()["param_groups"]  # hyper-parameters from the config
        self.optimizer.load_state_dict({"state": state["optimizer"], "param_groups": param_groups})
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.skip_steps = counters["step"], counters["epoch"], counters["step_in_epoch"]
        self.best_top1 = counters["best_val_top1"]
        if len(state["rng"]) != self.ddp.world_size:
            log.warning(
                "resuming on %d processes, saved on %d: dropout draws differ", self.ddp.world_size, len(state["rng"])
            )
        restore_rng(state["rng"][min(self.ddp.rank, len(state["rng"]) - 1)], self.device)
        self.files.truncate_metrics(self.step)
        log.info("resumed %s at step %d (epoch %d)", checkpoint, self.step, self.epoch + 1)

    def save(self, epoch_done: int, in_epoch: int, val: dict[str, Any] | None) -> None:
        """last (+ best when validation improved, or at epoch ends without validation)."""
        rng = _gather_rng(self.device, self.ddp)  # a collective: every rank calls save
        improved = val is not None and val["val_top1"] > self.best_top1
        if improved:
            assert val is not None  # improved implies it
            self.best_top1 = val["val_top1"]
        token = uuid.uuid4().hex
        counters = {
            "step": self.step,
            "epoch": epoch_done,
            "step_in_epoch": in_epoch,
            "best_val_top1": self.best_top1,
            "state_token": token,
            "world_size": self.ddp.world_size,
        }
        extra = {
            "train_config": self.config.to_dict(),
            "epoch": epoch_done,
            "step": self.step,
            "step_in_epoch": in_epoch,
            "classes": list(self.classes),
            "state_token": token,
            **(val or {}),
        }

        def write_state(path: Path) -> None:
            save_train_state(
                path,
                optimizer=self.optimizer,
                scaler=self.scaler,
                param_names=self.param_names,
                rng=rng,
                counters=counters,
            )

        best = improved or (self.val_data is None and in_epoch == 0)
        self.files.write_checkpoint(self.model, extra, write_state, best=best)

    # ---- the loop ---------------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None) -> dict[str, Any]:
        config, ddp = self.config, self.ddp
        self.files.write_config(config)
        log.info(
            "training %s on %d clips of %d classes: %d steps (%d per epoch) x %d clips x %d process(es), %s on %s; "
            "%s trainable parameters",
            config.model,
            len(self.train_data),
            len(self.classes),
            self.total_steps,
            self.steps_per_epoch,
            config.batch_size * config.grad_accum,
            ddp.world_size,
            self.precision,
            self.device,
            f"{sum(p.numel() for p in self.params):,}",
        )
        # progress=False from older callers means none; one rank speaks
        bar = _StepProgress((self.progress or None) if ddp.main else None, self.total_steps, self.step)
        sampler = _RunBatches(
            len(self.train_data), config, self.epoch, self.skip_steps, self.step, self.total_steps, ddp
        )
        self.batches = iter(
            _loader(EpochIndexed(self.train_data), sampler, self.workers, self.device.startswith("cuda"))
        )
        stopped = False
        try:
            while self.step < self.total_steps and not stopped:
                stopped = self.run_epoch(bar, stop_at_step)
        finally:
            self.batches = self.val_loader = None  # let the worker processes go
        curves = self.files.write_curves() if not stopped else None
        if os.environ.get(DEBUG_RANK_DIR_ENV):
            _write_debug_rank(
                Path(os.environ[DEBUG_RANK_DIR_ENV]), self.model, self.debug_losses, ddp, sorted(self.files.written)
            )
        seconds = time.perf_counter() - self.started
        top1 = f", best val top-1 {self.best_top1:.4f}" if self.best_top1 >= 0 else ""
        log.info(
            "done: %d steps in %.1f s%s; checkpoints %s and %s",
            self.step,
            seconds,
            top1,
            self.files.best,
            self.files.last,
        )
        return {
            "steps": self.step,
            "epochs": self.epoch,
            "stopped": stopped,
            **{k: self.last_row.get(k) for k in ("loss", "kl", "motion")},
            **(self.last_val or {}),
            "best_val_top1": self.best_top1 if self.best_top1 >= 0 else None,
            "skipped": self.skipped_total,
            "seconds": seconds,
            "out": str(self.files.out),
            "last": str(self.files.last),
            "best": str(self.files.best),
            "curves": str(curves) if curves else None,
        }

    def run_epoch(self, bar: _StepProgress, stop_at_step: int | None) -> bool:
        """The rest of the current epoch, then validation and checkpoints. True when stopped early."""
        config = self.config
        # The same plan _RunBatches walks: this loop consumes the loader step by step.
        plan = plan_epoch(len(self.train_data), config, self.epoch, self.ddp.rank, self.ddp.world_size)[
            self.skip_steps :
        ]
        plan = plan[: self.total_steps - self.step]  # a max_steps run ends inside its last epoch
        self.skip_steps = 0
        skipped: list[str] = []
        for position, step_plan in enumerate(plan, start=1):
            assert self.batches is not None  # fit() opened the loader before the first epoch
            lr = self.optimizer_step(step_plan, self.batches, skipped)
            last_of_epoch = position == len(plan)
            if self.step % config.log_every == 0 or last_of_epoch:
                self.last_row = _log_window(self.window, self.step, self.epoch, lr, self.device, self.ddp)
                self.files.append_metrics(self.last_row)
                row = self.last_row
                bar.update(self.step, f"loss {row['loss']:.4f}  lr {lr:.2e}  {row['clips_per_s']:.1f} clips/s")
            else:
                bar.update(self.step)
            if last_of_epoch:
                break
            if stop_at_step is not None and self.step >= stop_at_step:
                self.skipped_total += _report_skipped(skipped, self.epoch, self.ddp, self.files)
                self.save(self.epoch, self.step - self.epoch * self.steps_per_epoch, None)
                return True
            if config.save_every_steps and self.step % config.save_every_steps == 0:
                self.save(self.epoch, self.step - self.epoch * self.steps_per_epoch, None)
        self.skipped_total += _report_skipped(skipped, self.epoch, self.ddp, self.files)
        self.end_epoch()
        return stop_at_step is not None and self.step >= stop_at_step

    def optimizer_step(self, step_plan: list[list[int]], batches: Iterator[Any], skipped: list[str]) -> float:
        """Accumulate the step's micro-batches, clip, step AdamW at the scheduled lr. Returns the lr."""
        from ezclip_cli.model import ezclip_loss

        config, device = self.config, self.device
        lr = learning_rate(self.step, self.total_steps, self.warmup, config.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        losses = torch.zeros(3, device=device)  # loss, kl, motion summed over micro-batches
        ran = 0
        for _ in step_plan:
            batch = next(batches)
            if batch is not None:
                skipped += batch["skipped"]
            if not _all_ranks_have(batch is not None, device, self.ddp):
                continue  # all ranks skip a micro-batch together, or DDP would wait forever
            video = batch["video"].to(device, non_blocking=True)  # (B, T, 3, S, S)
            labels = batch["label"].to(device)  # (B,)
            count = self.texts_per_class
            chosen = [template_index(config.seed, self.epoch, i, count) for i in batch["index"].tolist()]
            rows = labels * count + torch.tensor(chosen, device=device)  # (B,) one text per clip
            unique, inverse = torch.unique(rows, return_inverse=True)  # encode each distinct text once
            with _autocast(device, self.precision):
                frames, text = self.forward(video, self.tokens[unique])  # (B, T, D), (U, D)
            # The soft-target KL sees this rank's batch only (no all-gather of embeddings), as the
            # reference trained on one GPU; DDP averages the gradients across ranks.
            parts = ezclip_loss(frames, text[inverse], labels, self.model.logit_scale, config.motion_weight)
            self.scaler.scale(parts["loss"] / len(step_plan)).backward()
            losses += torch.stack([parts["loss"], parts["kl"], parts["motion"]]).detach()
            ran += 1
            self.window["clips"] += len(labels)
        if ran:
            if config.clip_grad is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.params, config.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.window["micro"] += ran
        for i, key in enumerate(("loss", "kl", "motion")):
            self.window[key] += losses[i]
        if os.environ.get(DEBUG_RANK_DIR_ENV):
            self.debug_losses.append(float(losses[0]) / max(ran, 1))
        return lr

    def end_epoch(self) -> None:
        """Validate (every eval_every epochs and at the end) and checkpoint."""
        config = self.config
        final = self.step >= self.total_steps
        val = None
        if self.val_data is not None and ((self.epoch + 1) % self.eval_every == 0 or final):
            val = evaluate_top_k(
                self.model,
                self.val_data,
                self.prompts,
                batch_size=config.batch_size,
                device=self.device,
                precision=self.precision,
                ddp=self.ddp,
                loader=self.val_loader,
            )
            self.last_val = val
            self.files.append_metrics({"step": self.step, "epoch": self.epoch + 1, **val})
            log.info(
                "epoch %d step %d: val top-1 %.4f top-5 %.4f (%d videos)",
                self.epoch + 1,
                self.step,
                val["val_top1"],
                val["val_top5"],
                val["val_videos"],
            )
        self.epoch += 1
        self.save(self.epoch, 0, val)


def _read_learned(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt", device="cpu") as f:
        return {k[len("learned.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("learned.")}  # noqa: SIM118


def _all_ranks_have(have: bool, device: str, ddp: Distributed) -> bool:
    if not ddp.enabled:
        return have
    flag = torch.tensor([1 if have else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _log_window(
    window: dict[str, Any], step: int, epoch: int, lr: float, device: str, ddp: Distributed
) -> dict[str, Any]:
    """Mean losses over the micro-batches since the last row (all ranks), and global throughput."""
    totals = torch.stack(
        [torch.as_tensor(window[k], dtype=torch.float64, device=device) for k in ("loss", "kl", "motion")]
        + [
            torch.tensor(float(window["micro"]), dtype=torch.float64, device=device),
            torch.tensor(float(window["clips"]), dtype=torch.float64, device=device),
        ]
    )
    if ddp.enabled:
        dist.all_reduce(totals)
    loss, kl, motion, micro, clips = totals.tolist()
    now = time.perf_counter()
    row = {
        "step": step,
        "epoch": epoch + 1,
        "loss": loss / max(micro, 1),
        "kl": kl / max(micro, 1),
        "motion": motion / max(micro, 1),
        "lr": lr,
        "clips_per_s": clips / max(now - window["since"], 1e-9),
    }
    window.update(loss=0.0, kl=0.0, motion=0.0, micro=0, clips=0, since=now)
    return row


def _report_skipped(skipped: list[str], epoch: int, ddp: Distributed, files: _RunFiles) -> int:
    """Unreadable videos of this epoch (all ranks): a count on stderr, every path in train.log."""
    if ddp.enabled:
        everyone: list[Any] = [None] * ddp.world_size
        dist.all_gather_object(everyone, skipped)
        skipped = [p for part in everyone for p in part]
    if skipped:
        log.warning("epoch %d: %d unreadable video(s) skipped (paths in train.log)", epoch + 1, len(skipped))
        for path in sorted(set(skipped)):
            files.note(f"skipped unreadable video: {path}")
    return len(skipped)


def _write_debug_rank(folder: Path, model: Any, losses: list[float], ddp: Distributed, written: list[str]) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.learned_state_dict().items()}
    meta = {
        "rank": str(ddp.rank),
        "world_size": str(ddp.world_size),
        "losses": json.dumps(losses),
        "written": json.dumps(written),
    }
    save_file(tensors, str(folder / f"rank{ddp.rank}.safetensors"), metadata=meta)


# ---- curves --------------------------------------------------------------------------------------
def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(metrics: str | Path, out: str | Path) -> Path | None:
    """Loss parts, lr and validation accuracy against the step, as a PNG (Agg, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(metrics)
    steps = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_top1" in r]
    if not steps:
        return None
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_ax, lr_ax, val_ax = figure.subplots(1, 3)
    x = [r["step"] for r in steps]
    for key in ("loss", "kl", "motion"):
        loss_ax.plot(x, [r[key] for r in steps], label=key)
    loss_ax.set(title="training loss", xlabel="step")
    loss_ax.legend()
    lr_ax.plot(x, [r["lr"] for r in steps])
    lr_ax.set(title="learning rate", xlabel="step")
    if vals:
        for key in ("val_top1", "val_top5"):
            val_ax.plot([r["step"] for r in vals], [r[key] for r in vals], marker="o", label=key)
        val_ax.legend()
    else:
        val_ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=val_ax.transAxes)
    val_ax.set(title="validation accuracy", xlabel="step", ylim=(0, 1.02))
    out = Path(out)
    atomic_write(out, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    return out
