"""The `ezclip` command line: flags -> config -> one library call -> writer.

The only module that imports typer. Heavy imports (torch, open_clip) happen inside command
bodies so `--help` stays instant. Known errors print one line; `EZCLIP_DEBUG=1` shows tracebacks.
Exit codes: 0 all inputs done, 1 some input failed or a known error, 2 usage error.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from ezclip_cli import __version__
from ezclip_cli.errors import EzclipError

app = typer.Typer(
    name="ezclip",
    help="Zero-shot video action tagging with EZ-CLIP (frozen CLIP + temporal prompts and adapters).\n\n"
    "Exit codes: 0 all inputs done; 1 some input failed (the rest still written) or a known error; 2 usage error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
log = logging.getLogger("ezclip_cli")


class OutputFormat(str, Enum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


class Decoder(str, Enum):
    auto = "auto"
    decord = "decord"
    pyav = "pyav"


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"


class Protocol(str, Enum):
    zero_shot = "zero-shot"
    base_to_novel = "base-to-novel"
    few_shot = "few-shot"
    closed_set = "closed-set"


# ---- shared options -------------------------------------------------------------------------
CheckpointOpt = typer.Option(
    None, "--checkpoint", "-c", help="An ezclip checkpoint (.ezclip) or a reference EZ-CLIP .pt (auto-detected)."
)
ModelOpt = typer.Option(
    None,
    "--model",
    "-m",
    help="open_clip model name (default ViT-B-16-quickgelu), a model-config JSON path, or a local model directory. "
    "Without --checkpoint the model is plain CLIP frame averaging (no trained EZ-CLIP parts).",
)
PretrainedOpt = typer.Option(
    None,
    "--pretrained",
    help="open_clip weights tag (default openai, from open_clip's cache), a local weights file, or 'none' for random weights.",
)
NumFramesOpt = typer.Option(8, "--num-frames", "-t", min=1, help="Frames sampled per video (T).")
DeviceOpt = typer.Option("auto", "--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Only errors on stderr; no progress bar.")


def setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ezclip: %(message)s"))
    root = logging.getLogger("ezclip_cli")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.INFO)
    root.propagate = False


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"ezclip: error: {message}", err=True)
    raise typer.Exit(code)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ezclip {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Print the version."),
) -> None:
    """Zero-shot video action tagging with EZ-CLIP."""


# ---- info ------------------------------------------------------------------------------------
@app.command()
def info(
    checkpoint: Optional[Path] = CheckpointOpt,
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    no_prompts: bool = typer.Option(False, "--no-prompts", help="Count the model without temporal prompts."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a model's parameter breakdown (prompts, adapters, frozen backbone); downloads nothing."""
    setup_logging(quiet=True)
    from ezclip_cli.loading import describe_model

    summary = describe_model(checkpoint, model, pretrained, num_frames, use_prompts=not no_prompts)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    rows = [
        ("model", f"{summary['backbone']} (pretrained: {summary['pretrained'] or 'none'})"),
        ("num_frames", str(summary["num_frames"])),
        ("prompts", f"{summary['prompts']:,}"),
        ("vision adapters", f"{summary['vision_adapters']:,}"),
        ("text adapters", f"{summary['text_adapters']:,}"),
        ("trainable", f"{summary['trainable']:,}"),
        ("frozen backbone", f"{summary['frozen_backbone']:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


# ---- tag -------------------------------------------------------------------------------------
@app.command()
def tag(
    inputs: List[str] = typer.Argument(..., help="Video files and folders (searched recursively); '-' reads paths from stdin."),
    labels: str = typer.Option(
        ..., "--labels", "-l", help="Label set: a bundled name (k400, ucf101, ...), a .txt/.csv file, or 'a,b,c'."
    ),
    checkpoint: Optional[Path] = CheckpointOpt,
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    template: Optional[List[str]] = typer.Option(
        None, "--template", help="Prompt template with '{}' for the label (repeatable); default: the 16 EZ-CLIP templates."
    ),
    no_descriptions: bool = typer.Option(False, "--no-descriptions", help="Ignore descriptions in a CSV label file."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write results here (resumable; '-' = stdout). Refuses files ezclip did not write; "
        "a symlink is written through to its target."
    ),
    fmt: Optional[OutputFormat] = typer.Option(
        None, "--format", "-f", help="csv, json or jsonl (default: from the -o suffix, else csv)."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per video."),
    window: Optional[float] = typer.Option(None, "--window", min=0.01, help="Tag windows of this many seconds."),
    stride: Optional[float] = typer.Option(None, "--stride", min=0.01, help="Seconds between window starts (default: --window)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Videos per model forward."),
    workers: int = typer.Option(-1, "--workers", "-j", help="Decoding processes (default: CPU count - 1, at most 8; 0 = in-process)."),
    device: str = DeviceOpt,
    decoder: Decoder = typer.Option(Decoder.auto, "--decoder", help="auto = decord if installed, PyAV otherwise and as a per-file fallback."),
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Split the inputs into N deterministic parts..."),
    shard_index: int = typer.Option(0, "--shard-index", min=0, help="...and tag only part I (0-based)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start -o afresh instead of resuming it."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Text-embedding cache (default ~/.cache/ezclip)."),
    runtime: Runtime = typer.Option(Runtime.torch, "--runtime", help="torch, or onnx for an exported bundle (--model DIR) run by onnxruntime."),
    raw_csv: bool = typer.Option(
        False, "--raw-csv", help="CSV text as is: no apostrophe before values a spreadsheet would run as formulas (= + - @)."
    ),
    quiet: bool = QuietOpt,
) -> None:
    """Tag videos with zero-shot action labels (CSV, JSON or JSONL on stdout or -o)."""
    setup_logging(quiet)
    if shard_index >= num_shards:
        fail(f"--shard-index {shard_index} must be below --num-shards {num_shards}", 2)
    if stride is not None and window is None:
        fail("--stride needs --window", 2)
    for text in template or ():
        if text.count("{}") != 1:
            fail(f"--template {text!r} must contain '{{}}' once, where the label goes", 2)
    if output is not None and str(output) == "-":
        output = None  # `-o -`: stdout, as everywhere in Unix
    from ezclip_cli.tagging import TagConfig, run_tagging

    fmt_value = (fmt.value if fmt else None) or _format_from_suffix(output)
    config = TagConfig(
        labels=labels,
        templates=tuple(template or ()),
        use_descriptions=not no_descriptions,
        top_k=top_k,
        window=window,
        stride=stride,
        batch_size=batch_size,
        workers=workers,
        device=device,
        decoder=decoder.value,
        num_shards=num_shards,
        shard_index=shard_index,
        output_format=fmt_value,
        cache_dir=str(cache_dir) if cache_dir else None,
        runtime=runtime.value,
        raw_csv=raw_csv,
    )
    summary = run_tagging(
        inputs,
        config,
        checkpoint=checkpoint,
        model=model,
        pretrained=pretrained,
        num_frames=num_frames,
        output=output,
        overwrite=overwrite,
        stdin=sys.stdin,
        progress=not quiet,
    )
    # Under torchrun only rank 0 reports failures: torchrun stops every rank once one exits non-zero.
    is_main = os.environ.get("RANK", "0") == "0"
    raise typer.Exit(1 if summary.failed and is_main else 0)


def _format_from_suffix(output: Optional[Path]) -> str:
    if output is not None and output.suffix.lower().lstrip(".") in {"csv", "json", "jsonl"}:
        return output.suffix.lower().lstrip(".")
    return "csv"


# ---- train -----------------------------------------------------------------------------------
class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@app.command()
def train(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="k400, k600, ucf101, hmdb51 or ssv2 (with --root)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset root in its official layout."),
    fold: Optional[int] = typer.Option(None, "--fold", min=1, help="Official split 1-3 of ucf101/hmdb51 (default 1)."),
    train_split: Optional[str] = typer.Option(None, "--train-split", help="Training split of --dataset (default train)."),
    val_split: Optional[str] = typer.Option(None, "--val-split", help="Validation split for model selection (default val; 'none' = no validation). Never a test split."),
    train_list: Optional[Path] = typer.Option(None, "--train-list", help="List file: 'path<TAB>label' per line, paths relative to the file."),
    val_list: Optional[Path] = typer.Option(None, "--val-list", help="Validation list file (model selection)."),
    kshot: Optional[int] = typer.Option(None, "--kshot", min=1, help="At most K training videos per class (few-shot)."),
    base_novel: Optional[str] = typer.Option(None, "--base-novel", help="'base': train on the base half of the classes (base-to-novel)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config (keys = these flags with underscores); flags given here override it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory: checkpoints, metrics, config, log, curves (default runs/ezclip)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run exactly: its directory or its last.ezclip."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Backbone: open_clip name (default ViT-B-16-quickgelu), a model-config JSON or a local model directory."
    ),
    pretrained: Optional[str] = PretrainedOpt,
    num_frames: Optional[int] = typer.Option(None, "--num-frames", "-t", min=1, help="Frames per clip (T), default 8."),
    use_prompts: Optional[bool] = typer.Option(None, "--use-prompts/--no-prompts", help="Temporal prompts (--no-prompts: adapters only, ablation)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs (default 150 as in the reference K400 run)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Optimizer steps; replaces --epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Clips per micro-batch per process (default 16)."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", min=1, help="Micro-batches per optimizer step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 1e-4)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0.2)."),
    warmup_epochs: Optional[float] = typer.Option(None, "--warmup-epochs", help="Linear warmup before the cosine decay (default 5)."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Warmup in optimizer steps; overrides --warmup-epochs."),
    motion_weight: Optional[float] = typer.Option(None, "--motion-weight", help="Weight of the motion loss (0 turns it off)."),
    drop_path: Optional[float] = typer.Option(None, "--drop-path", help="Stochastic depth, growing to this rate over layers (default 0.1)."),
    attn_dropout: Optional[float] = typer.Option(None, "--attn-dropout", help="Attention dropout in training (default 0.1)."),
    prompt_dropout: Optional[float] = typer.Option(None, "--prompt-dropout", help="Dropout on the prompt vectors (default 0.1)."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Horizontal flips (default: off for ssv2)."),
    template: Optional[List[str]] = typer.Option(None, "--template", help="Prompt template with '{}' (repeatable); default: the 16 EZ-CLIP templates."),
    clip_grad: Optional[float] = typer.Option(None, "--clip-grad", help="Clip the gradient norm to this value (default: no clipping)."),
    precision: Optional[Precision] = typer.Option(None, "--precision", help="auto (bf16 or fp16 on CUDA, fp32 elsewhere), fp32, bf16, fp16."),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing", help="Recompute activations in backward (less memory)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (model init, data order, augmentation, k-shot choice)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Data-loading processes per GPU (default: CPU count - 1, at most 8; 0 = in-process)."),
    decoder: Optional[Decoder] = typer.Option(None, "--decoder", help="auto = decord if installed, PyAV otherwise."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps between metrics.jsonl rows (default 10)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, help="Epochs between validations (default 1)."),
    save_every_steps: Optional[int] = typer.Option(None, "--save-every-steps", min=1, help="Also checkpoint every N steps."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (cuda, mps, cpu), cpu, cuda, mps; under torchrun each process takes its LOCAL_RANK GPU."),
    quiet: bool = QuietOpt,
) -> None:
    """Train the temporal prompts and adapters with the motion loss (single process or torchrun).

    Writes OUT/last.ezclip, best.ezclip, config.yaml, metrics.jsonl, train.log and curves.png;
    use the checkpoint with `ezclip tag --checkpoint OUT/best.ezclip`.
    """
    setup_logging(False)
    if quiet:  # the run log (train.log) still gets everything
        for handler in logging.getLogger("ezclip_cli").handlers:
            handler.setLevel(logging.ERROR)
    from ezclip_cli.train import resolve_train_config, train as run_training

    given = {
        "dataset": dataset, "root": root, "fold": fold, "train_split": train_split, "val_split": val_split,
        "train_list": train_list, "val_list": val_list, "kshot": kshot, "base_novel": base_novel, "out": out,
        "model": model, "pretrained": pretrained, "num_frames": num_frames, "use_prompts": use_prompts,
        "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "grad_accum": grad_accum, "lr": lr,
        "weight_decay": weight_decay, "warmup_epochs": warmup_epochs, "warmup_steps": warmup_steps,
        "motion_weight": motion_weight, "drop_path": drop_path, "attn_dropout": attn_dropout,
        "prompt_dropout": prompt_dropout, "flip": flip, "templates": template or None, "clip_grad": clip_grad,
        "precision": precision.value if precision else None, "grad_checkpointing": grad_checkpointing, "seed": seed,
        "workers": workers, "decoder": decoder.value if decoder else None, "log_every": log_every,
        "eval_every": eval_every, "save_every_steps": save_every_steps, "device": device,
    }
    given = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    settings = resolve_train_config(config, given, resume=resume)
    run_training(settings, resume=resume, progress=not quiet)  # it reports where the checkpoints went


# ---- eval ------------------------------------------------------------------------------------
@app.command("eval")
def evaluate(
    checkpoint: Optional[List[Path]] = typer.Option(
        None, "--checkpoint", "-c",
        help="An ezclip checkpoint, a reference EZ-CLIP .pt, or a run directory (its best.ezclip). Repeatable: "
        "one per training seed (base-to-novel: the mean is reported) or one per --shots (few-shot).",
    ),
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="hmdb51, ucf101, k400, k600 or ssv2."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset root in its official layout."),
    protocol: Protocol = typer.Option(
        Protocol.zero_shot, "--protocol", "-p",
        help="zero-shot (hmdb51/ucf101: 3 official splits; k600: 220 new classes, 3 subsets of 160), "
        "base-to-novel, few-shot, closed-set.",
    ),
    split: Optional[str] = typer.Option(None, "--split", help="Split to score (default: test for hmdb51/ucf101, val otherwise)."),
    fold: Optional[int] = typer.Option(None, "--fold", min=1, help="Official split 1-3 of hmdb51/ucf101 (zero-shot default: all three; others: 1)."),
    shots: Optional[List[int]] = typer.Option(
        None, "--shots", min=1, help="Few-shot: K of each --checkpoint, in order (default: the kshot it was trained with)."
    ),
    clips: int = typer.Option(1, "--clips", min=1, help="Temporal clips per video: offsets inside each segment (softmax averaged)."),
    crops: int = typer.Option(1, "--crops", min=1, help="Spatial crops per clip along the long side, e.g. 3 (softmax averaged)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="'clip' adds plain CLIP frame averaging (same backbone) to the report."),
    faithful: bool = typer.Option(
        False, "--faithful", help="Reproduce the reference code's protocol choices (K600 232 classes at once, split 1 only, drop_last)."
    ),
    template: Optional[List[str]] = typer.Option(None, "--template", help="Prompt template with '{}' (repeatable); default: the 16 EZ-CLIP templates."),
    descriptions: Optional[Path] = typer.Option(None, "--descriptions", help="Label CSV with a description column: one prompt per class."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder: report.json and PNG plots (default eval-DATASET-PROTOCOL)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Videos per batch."),
    workers: int = typer.Option(-1, "--workers", "-j", help="Decoding processes (default: CPU count - 1, at most 8; 0 = in-process)."),
    decoder: Decoder = typer.Option(Decoder.auto, "--decoder", help="auto = decord if installed, PyAV otherwise."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Text-embedding cache (default ~/.cache/ezclip)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Evaluate under the published protocols (method.md 9) and write a JSON report with plots.

    Exit 0 when every video was scored, 1 when some could not be read (listed in the report).
    Under torchrun each process scores a disjoint part and rank 0 writes the one report.
    """
    setup_logging(quiet or os.environ.get("RANK", "0") != "0")
    if dataset is None or root is None:
        fail("eval needs --dataset and --root (the dataset's folder in its official layout)", 2)
    from ezclip_cli.data import list_datasets

    if dataset not in list_datasets():
        fail(f"unknown --dataset '{dataset}'; available: {', '.join(list_datasets())}", 2)
    if baseline is not None and baseline != "clip":
        fail(f"unknown --baseline '{baseline}'; available: clip", 2)
    from ezclip_cli.evaluate import EvalConfig, run_evaluation

    config = EvalConfig(
        protocol=protocol.value, dataset=dataset, root=str(root),
        checkpoints=tuple(str(c) for c in checkpoint or ()), model=model, pretrained=pretrained, num_frames=num_frames,
        shots=tuple(shots or ()), split=split, fold=fold, clips=clips, crops=crops, batch_size=batch_size,
        workers=workers, templates=tuple(template or ()), descriptions=str(descriptions) if descriptions else None,
        baseline=baseline, faithful=faithful, decoder=decoder.value, device=device,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    outcome = run_evaluation(config, out or Path(f"eval-{dataset}-{protocol.value}"), progress=not quiet)
    if outcome.files:
        log.info("report: %s (%d plots)", outcome.files[0], len(outcome.files) - 1)
    raise typer.Exit(outcome.exit_code)


# ---- export ----------------------------------------------------------------------------------
@app.command()
def export(
    checkpoint: Optional[Path] = CheckpointOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle folder to write."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Label set whose text embeddings ship in the bundle."),
    formats: str = typer.Option("onnx,safetensors", "--format", help="Comma list of onnx, safetensors."),
    no_backbone: bool = typer.Option(
        False, "--no-backbone", help="Refer to open_clip's name and tag instead of copying the backbone (loading then needs those weights cached)."
    ),
    text_encoder: bool = typer.Option(
        False, "--text-encoder", help="Also export an ONNX text encoder and CLIP's BPE vocabulary (new label sets without PyTorch)."
    ),
    tolerance: float = typer.Option(
        1e-4, "--tolerance", min=0.0, help="Largest max abs difference of normalised embeddings, onnxruntime vs PyTorch, accepted."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle in --out."),
    quiet: bool = QuietOpt,
) -> None:
    """Write a self-contained model bundle (safetensors + ONNX), verified on reload; prints its path."""
    setup_logging(quiet)
    if checkpoint is None:
        fail("--checkpoint is required: the ezclip checkpoint (or reference .pt) to export", 2)
    if out is None:
        fail("--out is required: the bundle folder to write", 2)
    from ezclip_cli.export import export_bundle, parse_formats

    report = export_bundle(
        checkpoint,
        out,
        labels=labels,
        formats=parse_formats(formats),
        include_backbone=not no_backbone,
        text_encoder=text_encoder,
        tolerance=tolerance,
        overwrite=overwrite,
    )
    for line in report.summary_lines():
        log.info("%s", line)
    typer.echo(str(report.out))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every `finally` runs: workers stopped, output closed."""


_terminated: list[bool] = []  # set by the handler: typer reports any KeyboardInterrupt as a plain 130


def _on_sigterm(signum: int, frame: object) -> None:
    _terminated.append(True)
    raise Terminated()


def _stdout_gone() -> None:
    """The reader of stdout left (`| head`): not an error. Point fd 1 at /dev/null so the
    interpreter's final flush cannot fail, and end quietly with 0 (as `yes | head` does)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    sys.exit(0)


def main() -> None:
    """Console entry point: run the app, turning known errors into one line and an exit code."""
    import signal

    from ezclip_cli.output import OutputClosed

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _terminated.clear()
    try:
        code = app(standalone_mode=False)
        if _terminated:  # typer returned 130 for the KeyboardInterrupt that SIGTERM raised
            raise Terminated()
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except EzclipError as exc:
        if os.environ.get("EZCLIP_DEBUG") == "1":
            raise
        typer.echo(f"ezclip: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Terminated:
        typer.echo("ezclip: terminated", err=True)
        sys.exit(143)  # 128 + SIGTERM, as shells report it
    except KeyboardInterrupt:
        typer.echo("ezclip: interrupted", err=True)
        sys.exit(130)
    except (OutputClosed, BrokenPipeError):
        _stdout_gone()
    except Exception as exc:  # click usage errors (typer may vendor click) and anything unexpected
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        if os.environ.get("EZCLIP_DEBUG") == "1":
            raise
        typer.echo(f"ezclip: internal error: {type(exc).__name__}: {exc} (EZCLIP_DEBUG=1 shows the traceback)", err=True)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
