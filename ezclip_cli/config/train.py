"""TrainConfig: how `ezclip train` runs; keys = YAML keys = flags; it checks itself."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ezclip_cli.config.model import DEFAULT_BACKBONE, DEFAULT_PRETRAINED
from ezclip_cli.errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """How `ezclip train` runs (docs/model.md sections 6 and 8; issue 4). Keys = YAML keys = flags.

    Data comes from a benchmark by name (`dataset` + `root`) or from list files
    (`train_list`, `val_list`). `max_steps`, when set, replaces `epochs`.
    """

    # data
    dataset: str | None = None  # k400, k600, ucf101, hmdb51, ssv2 (with root)
    root: str | None = None
    fold: int = 1  # ucf101/hmdb51 official split 1-3
    train_split: str = "train"
    val_split: str | None = "val"  # model selection; never a test split; None = no validation
    train_list: str | None = None  # "path<TAB>label" lines, paths relative to the list file
    val_list: str | None = None
    kshot: int | None = None  # at most K training videos per class (few-shot, base-to-novel)
    base_novel: str | None = None  # "base": train and validate on the base half (docs/protocols.md)
    templates: tuple[str, ...] = ()  # empty = the 16 reference templates (labels.DEFAULT_TEMPLATES)
    labels: str | None = None  # description CSV (ours or the reference's GPT-3 files): train on one text per class
    allow_missing_descriptions: bool = False  # classes the CSV lacks train on the templates (warned), not an error
    kshot_list: str | None = None  # K-shot videos from a list: a file, a bundled name, or "published"
    # Faithful switches (faithful.py): None = ours, or the reference's when `faithful` is true
    faithful: bool = False
    jitter_per_frame: bool | None = None
    drop_path_positions: bool | None = None
    raw_names: bool | None = None
    train_sampling: str | None = None  # "random" (one random frame per segment) or "centre"
    flip: bool | None = None  # None = auto: off for direction-sensitive label sets (ssv2, left/right, ...)
    master_weights: str | None = None  # "fp32" or "fp16"; None = fp32, or fp16 under faithful on CUDA
    decoder: str = "auto"
    workers: int = -1  # data-loading processes per rank; -1 = CPU count - 1 (at most 8); 0 = in-process
    # model
    model: str = DEFAULT_BACKBONE  # open_clip name, model-config JSON or local directory
    pretrained: str | None = DEFAULT_PRETRAINED
    init: str | None = None  # start from this model's backbone and learned parts (index name or checkpoint)
    num_frames: int = 8
    use_prompts: bool = True
    drop_path: float = 0.1
    attn_dropout: float = 0.1
    prompt_dropout: float = 0.1
    # optimisation
    epochs: int = 150  # reference K400 run
    max_steps: int | None = None  # optimizer steps; replaces epochs when set
    batch_size: int = 16  # clips per rank per micro-batch (reference K400: 80 on one A100-80GB)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-4
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_epochs: float = 5.0
    warmup_steps: int | None = None  # overrides warmup_epochs (use it with max_steps)
    motion_weight: float = 1.0  # 0 turns the motion loss off (ablation)
    clip_grad: float | None = None  # max gradient norm; None = no clipping (the reference never clipped)
    precision: str = "auto"  # auto = bf16 (or fp16 + GradScaler) on CUDA, fp32 elsewhere
    grad_checkpointing: bool = False
    seed: int = 0
    device: str = "auto"
    # outputs
    out: str = "runs/ezclip"
    log_every: int = 10  # steps between metrics.jsonl rows
    eval_every: int | None = None  # epochs between validations (+ the last epoch); None = auto (train_defaults)
    save_every_steps: int | None = None  # also checkpoint every N steps (besides every epoch)

    def __post_init__(self) -> None:
        for name in ("templates", "betas"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.templates, str):
            object.__setattr__(self, "templates", (self.templates,))
        problems = []
        positive = ("num_frames", "epochs", "batch_size", "grad_accum", "log_every", "fold")
        problems += [f"{n} must be >= 1" for n in positive if getattr(self, n) < 1]
        optional_positive = ("max_steps", "kshot", "save_every_steps", "eval_every")
        problems += [
            f"{n} must be >= 1" for n in optional_positive if getattr(self, n) is not None and getattr(self, n) < 1
        ]
        problems += [
            f"{n} must be a finite number"
            for n in sorted(_TRAIN_FLOATS)
            if isinstance(getattr(self, n), float) and not math.isfinite(getattr(self, n))
        ]
        if self.lr <= 0:
            problems.append("lr must be > 0")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.base_novel not in (None, "base"):
            problems.append("base_novel must be 'base' or null")
        if len(self.betas) != 2:
            problems.append("betas needs two numbers")
        if self.warmup_epochs < 0 or (self.warmup_steps is not None and self.warmup_steps < 0):
            problems.append("warmup must be >= 0")
        if self.clip_grad is not None and self.clip_grad <= 0:
            problems.append("clip_grad must be > 0")
        from ezclip_cli.data.labels import template_problem

        problems += [p for p in map(template_problem, self.templates) if p]
        from ezclip_cli.config.faithful import MASTER_WEIGHTS, SAMPLINGS, check_choice, faithful_train_values

        problems += check_choice("train_sampling", self.train_sampling, SAMPLINGS)
        problems += check_choice("master_weights", self.master_weights, MASTER_WEIGHTS)
        if problems:
            raise UsageError("bad training config: " + "; ".join(problems))
        if self.faithful:  # every switch the flag stands for, unless set on its own
            for key, value in faithful_train_values(self).items():
                object.__setattr__(self, key, value)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples as lists), ready for YAML and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Unknown keys are a usage error listing the known ones; values are coerced to the field's type."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown training config key(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**{k: _coerce_train_value(k, v) for k, v in data.items()})


_TRAIN_FLOATS = {
    "lr",
    "weight_decay",
    "eps",
    "warmup_epochs",
    "motion_weight",
    "drop_path",
    "attn_dropout",
    "prompt_dropout",
    "clip_grad",
}
_TRAIN_INTS = {
    "fold",
    "kshot",
    "workers",
    "num_frames",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum",
    "warmup_steps",
    "seed",
    "log_every",
    "eval_every",
    "save_every_steps",
}
_TRAIN_BOOLS = {
    "flip",
    "use_prompts",
    "grad_checkpointing",
    "allow_missing_descriptions",
    "faithful",
    "jitter_per_frame",
    "drop_path_positions",
    "raw_names",
}
_TRAIN_NULLABLE = {
    "master_weights",
    "dataset",
    "root",
    "val_split",
    "train_list",
    "val_list",
    "kshot",
    "base_novel",
    "flip",
    "labels",
    "kshot_list",
    "jitter_per_frame",
    "drop_path_positions",
    "raw_names",
    "train_sampling",
    "pretrained",
    "init",
    "max_steps",
    "warmup_steps",
    "clip_grad",
    "save_every_steps",
    "eval_every",
}


def _coerce_train_value(key: str, value: Any) -> Any:
    """YAML 1.1 reads `1e-4` as a string and users write `none`: accept both, refuse nonsense."""
    if value is None or (
        key in _TRAIN_NULLABLE and isinstance(value, str) and value.strip().lower() in ("none", "null", "")
    ):
        if key not in _TRAIN_NULLABLE:
            raise UsageError(f"training config key '{key}' needs a value")
        return None
    try:
        if key in _TRAIN_FLOATS:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if key in _TRAIN_INTS:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if key == "betas":
            return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"training config key '{key}': bad value {value!r}") from None
    if key in _TRAIN_BOOLS and not isinstance(value, bool):
        raise UsageError(f"training config key '{key}': want true or false, got {value!r}")
    if key == "templates":
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise UsageError(
                f"training config key 'templates': want a text or a list of texts with '{{}}', got {value!r}"
            )
        return tuple(value)
    if key not in _TRAIN_FLOATS | _TRAIN_INTS | _TRAIN_BOOLS and not isinstance(value, str):
        raise UsageError(f"training config key '{key}': want text, got {value!r}")
    return value
