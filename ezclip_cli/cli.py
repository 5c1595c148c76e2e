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
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results here (resumable) instead of stdout."),
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
    quiet: bool = QuietOpt,
) -> None:
    """Tag videos with zero-shot action labels (CSV, JSON or JSONL on stdout or -o)."""
    setup_logging(quiet)
    if shard_index >= num_shards:
        fail(f"--shard-index {shard_index} must be below --num-shards {num_shards}", 2)
    if stride is not None and window is None:
        fail("--stride needs --window", 2)
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
    raise typer.Exit(0 if summary.failed == 0 else 1)


def _format_from_suffix(output: Optional[Path]) -> str:
    if output is not None and output.suffix.lower().lstrip(".") in {"csv", "json", "jsonl"}:
        return output.suffix.lower().lstrip(".")
    return "csv"


# ---- train -----------------------------------------------------------------------------------
@app.command()
def train(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="k400, k600, ucf101, hmdb51 or ssv2 (with --root)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset root in its official layout."),
    train_list: Optional[Path] = typer.Option(None, "--train-list", help="List file: 'path<TAB>label' per line."),
    val_list: Optional[Path] = typer.Option(None, "--val-list", help="Validation list file (model selection)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; flags given here override it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (checkpoints, metrics, config)."),
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    num_frames: Optional[int] = typer.Option(None, "--num-frames", "-t", min=1, help="Frames per clip (T), default 8."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs (default 150 as in the reference K400 run)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Clips per step (per process)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 1e-4)."),
    motion_weight: Optional[float] = typer.Option(None, "--motion-weight", help="Weight of the motion loss (0 turns it off)."),
    no_prompts: Optional[bool] = typer.Option(None, "--no-prompts", help="Train adapters only (ablation)."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Horizontal flips (default off for ssv2)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run from its last checkpoint."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Data-loading processes."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train the temporal prompts and adapters with the motion loss (single process or torchrun)."""
    setup_logging(quiet)
    fail("`ezclip train` is not built yet (tracked in the training issue)", 2)


# ---- eval ------------------------------------------------------------------------------------
@app.command("eval")
def evaluate(
    checkpoint: Optional[Path] = CheckpointOpt,
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="hmdb51, ucf101, k400, k600 or ssv2."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset root in its official layout."),
    protocol: Protocol = typer.Option(Protocol.zero_shot, "--protocol", "-p", help="zero-shot, base-to-novel, few-shot, closed-set."),
    clips: int = typer.Option(1, "--clips", min=1, help="Temporal clips per video (softmax averaged)."),
    crops: int = typer.Option(1, "--crops", min=1, help="Spatial crops per clip (softmax averaged)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="'clip' adds plain CLIP frame averaging to the report."),
    faithful: bool = typer.Option(False, "--faithful", help="Reproduce the reference code's protocol choices."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (JSON + PNG plots)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Evaluate under the published protocols and write a JSON report with plots."""
    setup_logging(quiet)
    fail("`ezclip eval` is not built yet (tracked in the evaluation issue)", 2)


# ---- export ----------------------------------------------------------------------------------
@app.command()
def export(
    checkpoint: Optional[Path] = CheckpointOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle folder to write."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Label set whose text embeddings ship in the bundle."),
    formats: str = typer.Option("onnx,safetensors", "--format", help="Comma list of onnx, safetensors."),
    no_backbone: bool = typer.Option(False, "--no-backbone", help="Refer to open_clip's name and tag instead of copying the backbone."),
    text_encoder: bool = typer.Option(False, "--text-encoder", help="Also export an ONNX text encoder."),
    quiet: bool = QuietOpt,
) -> None:
    """Write a self-contained model bundle (safetensors + ONNX), verified on reload."""
    setup_logging(quiet)
    fail("`ezclip export` is not built yet (tracked in the export issue)", 2)


def main() -> None:
    """Console entry point: run the app, turning known errors into one line and an exit code."""
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except EzclipError as exc:
        if os.environ.get("EZCLIP_DEBUG") == "1":
            raise
        typer.echo(f"ezclip: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("ezclip: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # A closed pipe (`| head`) is not an error of ours; keep Python from complaining at exit.
        sys.stderr.close()
        sys.exit(0)
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
