"""`ezclip train`: flags and recipe files -> TrainConfig -> the training loop.

A plain function; cli.py registers it on the app. Heavy imports stay inside the body.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

import typer

from ezclip_cli.cli.options import (
    Decoder,
    PretrainedOpt,
    ProgressIntervalOpt,
    QuietOpt,
    command_values,
    make_progress,
    setup_logging,
)


# ---- train -----------------------------------------------------------------------------------
class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def train(
    ctx: typer.Context,
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="k400, k600, ucf101, hmdb51 or ssv2 (with --root)."
    ),
    root: Path | None = typer.Option(None, "--root", help="Dataset root in its official layout."),
    fold: int | None = typer.Option(None, "--fold", min=1, help="Official split 1-3 of ucf101/hmdb51 (default 1)."),
    train_split: str | None = typer.Option(None, "--train-split", help="Training split of --dataset (default train)."),
    val_split: str | None = typer.Option(
        None,
        "--val-split",
        help="Validation split for model selection (default val; 'none' = no validation). Never a test split.",
    ),
    train_list: Path | None = typer.Option(
        None, "--train-list", help="List file: 'path<TAB>label' per line, paths relative to the file."
    ),
    val_list: Path | None = typer.Option(None, "--val-list", help="Validation list file (model selection)."),
    kshot: int | None = typer.Option(None, "--kshot", min=1, help="At most K training videos per class (few-shot)."),
    base_novel: str | None = typer.Option(
        None, "--base-novel", help="'base': train on the base half of the classes (base-to-novel)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML config (keys = these flags with underscores); flags given here override it."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory: checkpoints, metrics, config, log, curves (default runs/ezclip)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue a run exactly: its directory or its last.ezclip."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Backbone: open_clip name (default ViT-B-16-quickgelu), a model-config JSON or a local model directory.",
    ),
    pretrained: str | None = PretrainedOpt,
    init: str | None = typer.Option(
        None,
        "--init",
        help="Start from a model (a name from `ezclip models`, e.g. ezclip-b16-k400, or a checkpoint): "
        "its backbone and learned prompts and adapters; replaces --model/--pretrained.",
    ),
    num_frames: int | None = typer.Option(None, "--num-frames", min=1, help="Frames per clip (T), default 8."),
    use_prompts: bool | None = typer.Option(
        None, "--use-prompts/--no-prompts", help="Temporal prompts (--no-prompts: adapters only, ablation)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Epochs (default 150 as in the reference K400 run)."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Optimizer steps; replaces --epochs."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", "-b", min=1, help="Clips per micro-batch per process (default 16)."
    ),
    grad_accum: int | None = typer.Option(None, "--grad-accum", min=1, help="Micro-batches per optimizer step."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default 1e-4)."),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0.2)."),
    warmup_epochs: float | None = typer.Option(
        None, "--warmup-epochs", help="Linear warmup before the cosine decay (default 5)."
    ),
    warmup_steps: int | None = typer.Option(
        None, "--warmup-steps", help="Warmup in optimizer steps; overrides --warmup-epochs."
    ),
    motion_weight: float | None = typer.Option(
        None, "--motion-weight", help="Weight of the motion loss (0 turns it off)."
    ),
    drop_path: float | None = typer.Option(
        None, "--drop-path", help="Stochastic depth, growing to this rate over layers (default 0.1)."
    ),
    attn_dropout: float | None = typer.Option(
        None, "--attn-dropout", help="Attention dropout in training (default 0.1)."
    ),
    prompt_dropout: float | None = typer.Option(
        None, "--prompt-dropout", help="Dropout on the prompt vectors (default 0.1)."
    ),
    flip: bool | None = typer.Option(
        None,
        "--flip/--no-flip",
        help="Horizontal flips (default: on, but off when the labels are "
        "direction-sensitive: ssv2, or any label naming a direction a mirror reverses, such as left, right, "
        "clockwise, anticlockwise).",
    ),
    template: list[str] | None = typer.Option(
        None, "--template", help="Prompt template with '{}' (repeatable); default: the 16 EZ-CLIP templates."
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="Description CSV (ours or the reference's GPT-3 files): train on one description "
        "per class, as the published models were.",
    ),
    allow_missing_descriptions: bool | None = typer.Option(
        None,
        "--allow-missing-descriptions",
        help="Classes the description CSV lacks train on the templates (a warning), instead of an error.",
    ),
    kshot_list: str | None = typer.Option(
        None,
        "--kshot-list",
        help="K-shot training videos from a list: a 'video<TAB>class' file, a bundled name "
        "(hmdb51_16shot, k400_base_16shot_s1, ...) or 'published' (the one for --dataset, --kshot, --seed).",
    ),
    faithful: bool | None = typer.Option(
        None,
        "--faithful",
        help="The reference code's training choices: per-frame colour jitter, DropPath over "
        "token positions, raw class names, segment centres and published K-shot lists (few-shot, base-to-novel), "
        "flips on SSv2 too, fp16 master weights on CUDA.",
    ),
    jitter_per_frame: bool | None = typer.Option(
        None, "--jitter-per-frame/--jitter-per-clip", help="Colour jitter drawn per frame (reference) or per clip."
    ),
    drop_path_positions: bool | None = typer.Option(
        None,
        "--drop-path-positions/--drop-path-samples",
        help="DropPath per token position across the batch (reference) or per video.",
    ),
    raw_names: bool | None = typer.Option(
        None,
        "--raw-names/--natural-names",
        help="Class names in prompts as written ('ApplyEyeMakeup', reference) or as text ('apply eye makeup').",
    ),
    train_sampling: str | None = typer.Option(
        None, "--train-sampling", help="Training frames: 'random' (one per segment, default) or 'centre'."
    ),
    clip_grad: float | None = typer.Option(
        None, "--clip-grad", help="Clip the gradient norm to this value (default: no clipping)."
    ),
    precision: Precision | None = typer.Option(
        None, "--precision", help="auto (bf16 or fp16 on CUDA, fp32 elsewhere), fp32, bf16, fp16."
    ),
    master_weights: str | None = typer.Option(
        None,
        "--master-weights",
        help="Trained weights kept in fp32 (default) or rounded to fp16 after every step "
        "(fp16: the reference; --faithful sets it on CUDA).",
    ),
    grad_checkpointing: bool | None = typer.Option(
        None, "--grad-checkpointing/--no-grad-checkpointing", help="Recompute activations in backward (less memory)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random seed (model init, data order, augmentation, k-shot choice)."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-j",
        help="Data-loading processes per GPU (default: CPU count - 1, at most 8; 0 = in-process).",
    ),
    decoder: Decoder | None = typer.Option(None, "--decoder", help="auto = decord if installed, PyAV otherwise."),
    log_every: int | None = typer.Option(
        None, "--log-every", min=1, help="Steps between metrics.jsonl rows (default 10)."
    ),
    eval_every: int | None = typer.Option(
        None,
        "--eval-every",
        min=1,
        help="Epochs between validations, and always after the last step (default: every "
        "epoch, or the fewest epochs that keep validation under a fifth of the clips decoded when the validation set "
        "is large next to an epoch; the log states the choice).",
    ),
    save_every_steps: int | None = typer.Option(
        None, "--save-every-steps", min=1, help="Also checkpoint every N steps."
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="auto (cuda, mps, cpu), cpu, cuda, mps; under torchrun each process takes its LOCAL_RANK GPU.",
    ),
    quiet: bool = QuietOpt,
    progress_interval: float | None = ProgressIntervalOpt,
) -> None:
    """Train the temporal prompts and adapters with the motion loss (single process or torchrun).

    Writes OUT/last.ezclip, best.ezclip, config.yaml, metrics.jsonl, train.log and curves.png;
    use the checkpoint with `ezclip tag --checkpoint OUT/best.ezclip`.
    """
    setup_logging(False)
    if quiet:  # the run log (train.log) still gets everything
        for handler in logging.getLogger("ezclip_cli").handlers:
            handler.setLevel(logging.ERROR)
    from ezclip_cli.train.resolve import resolve_train_config
    from ezclip_cli.train.run import train as run_training

    given = command_values(ctx, templates=template or None)  # every flag, by the config key it sets
    for not_a_setting in ("config", "resume", "template", "quiet", "progress_interval"):
        given.pop(not_a_setting, None)
    settings = resolve_train_config(config, given, resume=resume)
    progress = make_progress("training", "steps", quiet, progress_interval, failures=False)
    run_training(settings, resume=resume, progress=progress)  # it reports where the checkpoints went
