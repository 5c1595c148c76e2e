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
from typing import Any, NoReturn

import typer

from ezclip_cli import __version__
from ezclip_cli.errors import EzclipError

app = typer.Typer(
    name="ezclip",
    help="Zero-shot video action tagging with EZ-CLIP (frozen CLIP + temporal prompts and adapters).\n\n"
    "Exit codes: 0 all inputs done; 1 some input failed (the rest still written) or a known error; 2 usage error.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
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


class ScoreKind(str, Enum):
    softmax = "softmax"
    cosine = "cosine"


class Protocol(str, Enum):
    zero_shot = "zero-shot"
    base_to_novel = "base-to-novel"
    few_shot = "few-shot"
    closed_set = "closed-set"


# ---- shared options -------------------------------------------------------------------------
CheckpointOpt = typer.Option(
    None,
    "--checkpoint",
    "-c",
    help="A model name from `ezclip models` (downloaded once), an ezclip checkpoint (.ezclip) or a reference "
    "EZ-CLIP .pt (auto-detected); 'none' = plain CLIP. Default (no --model either): ezclip-b16-k400.",
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
    help="open_clip weights tag (default openai, from open_clip's cache), a local weights file, "
    "or 'none' for random weights.",
)
NumFramesOpt = typer.Option(8, "--num-frames", "-t", min=1, help="Frames sampled per video (T).")
DeviceOpt = typer.Option("auto", "--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Only errors on stderr; no progress bar or progress lines.")
ProgressIntervalOpt = typer.Option(
    None,
    "--progress-interval",
    min=0.0,
    envvar="EZCLIP_PROGRESS_INTERVAL",
    show_envvar=True,
    help="When stderr is not a terminal (job logs, CI, 2>log): seconds between progress lines (default 30).",
)


def setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ezclip: %(message)s"))
    root = logging.getLogger("ezclip_cli")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.INFO)
    root.propagate = False


def make_progress(what: str, unit: str, quiet: bool, interval: float | None, failures: bool = True) -> Any:
    """The progress display for one command (None with --quiet): a bar on a terminal, else timed lines.

    `main()` closes it (bar stopped, last line written) when the command ends, however it ends.
    """
    if quiet:
        return None
    from ezclip_cli.progress import Progress

    progress = Progress(what, unit, interval=interval, failures=failures)
    _open_displays.append(progress)
    return progress


_open_displays: list[Any] = []  # progress displays of the running command, closed by main()


def close_displays() -> None:
    """Stop every progress display the command opened (before an error line is printed)."""
    while _open_displays:
        _open_displays.pop().close()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"ezclip: error: {message}", err=True)
    raise typer.Exit(code)


def version_callback(value: bool) -> None:
    if value:
        from ezclip_cli.versions import version_report

        for line in version_report(__version__):
            typer.echo(line)
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False,
        "--version",
        callback=version_callback,
        is_eager=True,
        help="Print the versions of ezclip, Python, torch, torchvision, open_clip, decord, PyAV and onnxruntime, "
        "and the device found (for bug reports).",
    ),
) -> None:
    """Zero-shot video action tagging with EZ-CLIP."""


# ---- info ------------------------------------------------------------------------------------
@app.command()
def info(
    checkpoint: Path | None = CheckpointOpt,
    model: str | None = ModelOpt,
    pretrained: str | None = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    no_prompts: bool = typer.Option(False, "--no-prompts", help="Count the model without temporal prompts."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a model's parameter breakdown (prompts, adapters, frozen backbone) and what it resolves to.

    Downloads nothing.
    """
    setup_logging(quiet=True)
    from ezclip_cli.loading import describe_model

    summary = describe_model(checkpoint, model, pretrained, num_frames, use_prompts=not no_prompts)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    rows = [
        *([("resolves to", summary["resolves_to"])] if summary.get("resolves_to") else []),
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


# ---- models ----------------------------------------------------------------------------------
@app.command("models")
def models_command(
    download: list[str] | None = typer.Option(
        None,
        "--download",
        help="Fetch this model into the cache now (repeatable; 'all' = every model), e.g. before going offline.",
    ),
    force: bool = typer.Option(False, "--force", help="With --download: fetch again even when it is cached."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    quiet: bool = QuietOpt,
) -> None:
    """List the named EZ-CLIP models (name, backbone, frames, trained on, published numbers, cached, size).

    The index is built in; EZCLIP_MODEL_INDEX=FILE replaces it. Models are cached in $EZCLIP_CACHE/models
    (default ~/.cache/ezclip/models); with --download the cached file's path is printed.
    """
    setup_logging(quiet)
    from ezclip_cli.models import cache_dir, describe_models, ensure_model, human_size, load_index

    index = load_index()
    if download:
        names = list(index.models) if "all" in download else list(dict.fromkeys(download))
        for name in names:
            index.entry(name)  # every name checked before anything is fetched
        for name in names:
            typer.echo(str(ensure_model(name, index, force=force)))
        return
    rows = describe_models(index)
    if as_json:
        typer.echo(
            json.dumps(
                {"default": index.default, "index": str(index.origin), "cache": str(cache_dir()), "models": rows},
                indent=2,
            )
        )
        return
    header = ("NAME", "BACKBONE", "FRAMES", "TRAINED ON", "PUBLISHED", "CACHED", "SIZE")
    table = [header] + [
        (
            row["name"] + (" *" if row["default"] else ""),
            row["backbone"] or "?",
            str(row["num_frames"] or "?"),
            row["trained_on"] or "?",
            _published(row["published"]),
            "yes" if row["cached"] else "no",
            human_size(row["size"]),
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    log.info("* default model; index %s; cache %s", index.origin, cache_dir())


def _published(published: dict) -> str:
    results = published.get("results") or {}
    if not results:
        return "-"
    label = {"zero-shot": "zero-shot top-1", "base-to-novel": "base-to-novel HM"}.get(published.get("protocol", ""), "")
    return f"{label} " + " / ".join(f"{k} {v}" for k, v in results.items())


# ---- tag -------------------------------------------------------------------------------------
@app.command()
def tag(
    inputs: list[str] | None = typer.Argument(
        None,
        help="Video files and folders (searched recursively); '-' reads paths from stdin. None with --from-embeddings.",
    ),
    labels: str = typer.Option(
        ..., "--labels", "-l", help="Label set: a bundled name (k400, ucf101, ...), a .txt/.csv file, or 'a,b,c'."
    ),
    checkpoint: Path | None = CheckpointOpt,
    model: str | None = ModelOpt,
    pretrained: str | None = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    template: list[str] | None = typer.Option(
        None,
        "--template",
        help="Prompt template with '{}' for the label (repeatable); default: the 16 EZ-CLIP templates.",
    ),
    no_descriptions: bool = typer.Option(False, "--no-descriptions", help="Ignore descriptions in a CSV label file."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write results here (resumable; '-' = stdout). Refuses files ezclip did not write; "
        "a symlink is written through to its target.",
    ),
    fmt: OutputFormat | None = typer.Option(
        None, "--format", "-f", help="csv, json or jsonl (default: from the -o suffix, else csv)."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per video."),
    window: float | None = typer.Option(None, "--window", min=0.01, help="Tag windows of this many seconds."),
    stride: float | None = typer.Option(
        None, "--stride", min=0.01, help="Seconds between window starts (default: --window)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Videos per model forward."),
    workers: int = typer.Option(
        -1, "--workers", "-j", help="Decoding processes (default: CPU count - 1, at most 8; 0 = in-process)."
    ),
    device: str = DeviceOpt,
    decoder: Decoder = typer.Option(
        Decoder.auto, "--decoder", help="auto = decord if installed, PyAV otherwise and as a per-file fallback."
    ),
    num_shards: int | None = typer.Option(
        None,
        "--num-shards",
        min=1,
        help="Split the inputs into N deterministic parts... (default: $SLURM_ARRAY_TASK_COUNT in a job array, else 1)",
    ),
    shard_index: int | None = typer.Option(
        None,
        "--shard-index",
        min=0,
        help="...and tag only part I, 0-based (default: this array task's place, "
        "from $SLURM_ARRAY_TASK_ID, _MIN and _STEP, else 0). Join the parts with `ezclip merge`.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start -o afresh instead of resuming it."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Text-embedding cache (default ~/.cache/ezclip)."),
    runtime: Runtime = typer.Option(
        Runtime.torch, "--runtime", help="torch, or onnx for an exported bundle (--model DIR) run by onnxruntime."
    ),
    save_embeddings: Path | None = typer.Option(
        None,
        "--save-embeddings",
        help="Also keep every video's (window's) embedding in this store folder (appends, resumes).",
    ),
    from_embeddings: Path | None = typer.Option(
        None, "--from-embeddings", help="Label the embeddings of this store instead of videos: no decoding, same rows."
    ),
    score: ScoreKind = typer.Option(
        ScoreKind.softmax,
        "--score",
        help="softmax: probability over the label set (sums to 1); cosine: raw similarity in [-1, 1].",
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Keep every label (up to --top-k) with probability >= P; may keep none.",
    ),
    min_score: float | None = typer.Option(
        None,
        "--min-score",
        min=-1.0,
        max=1.0,
        help="Keep every label (up to --top-k) with cosine similarity >= S; may keep none.",
    ),
    segments: bool = typer.Option(
        False,
        "--segments",
        help="With --window or --scenes: merge consecutive windows with the same top label into segments.",
    ),
    scenes: Path | None = typer.Option(
        None,
        "--scenes",
        help="Tag the scenes of a PySceneDetect list-scenes CSV (or a folder of VIDEO-Scenes.csv) instead of windows.",
    ),
    raw_csv: bool = typer.Option(
        False,
        "--raw-csv",
        help="CSV text as is: no apostrophe before values a spreadsheet would run as formulas (= + - @).",
    ),
    quiet: bool = QuietOpt,
    progress_interval: float | None = ProgressIntervalOpt,
    files_from: Path | None = typer.Option(
        None,
        "--files-from",
        help="Also tag the paths listed in this file, one per line (a manifest; safe under torchrun, "
        "where every rank reads it whole).",
    ),
) -> None:
    """Tag videos with zero-shot action labels (CSV, JSON or JSONL on stdout or -o)."""
    setup_logging(quiet)
    inputs = list(inputs or [])
    if files_from is not None:
        try:
            inputs += [line.strip() for line in files_from.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            fail(f"--files-from {files_from}: cannot read it ({reason})", 2)
    if from_embeddings is not None and inputs:
        fail("--from-embeddings labels the stored videos; give no video inputs with it", 2)
    if from_embeddings is None and not inputs:
        fail(
            "nothing to tag: give video files or folders, '-' to read paths from stdin, or --files-from FILE "
            "(or --from-embeddings STORE)",
            2,
        )
    if from_embeddings is not None and (save_embeddings is not None or window is not None or scenes is not None):
        fail("--from-embeddings reuses the stored windows; --save-embeddings, --window and --scenes do not apply", 2)
    if segments and window is None and scenes is None and from_embeddings is None:
        fail("--segments needs --window (or --scenes): it merges windows", 2)
    if scenes is not None and window is not None:
        fail("--scenes replaces --window; give one of them", 2)
    from ezclip_cli.shards import resolve_shard

    num_shards, shard_index, shard_source = resolve_shard(num_shards, shard_index)
    if shard_source:
        log.info("shard %d of %d (from %s)", shard_index, num_shards, shard_source)
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
        score=score.value,
        threshold=threshold,
        min_score=min_score,
        segments=segments,
        scenes=str(scenes) if scenes else None,
        raw_csv=raw_csv,
    )
    if from_embeddings is not None:
        from ezclip_cli.relabel import run_relabel

        given_frames = num_frames if checkpoint or model or pretrained else None
        run_relabel(
            from_embeddings,
            config,
            checkpoint=checkpoint,
            model=model,
            pretrained=pretrained,
            num_frames=given_frames,
            output=output,
            overwrite=overwrite,
        )
        raise typer.Exit(0)
    if runtime is Runtime.torch:  # a model name or the default is fetched (or refused) before any video work
        from ezclip_cli.loading import NO_CHECKPOINT, resolve_checkpoint

        resolved = resolve_checkpoint(checkpoint, model, pretrained)
        plain = resolved is None and model is None and pretrained is None
        checkpoint = Path(NO_CHECKPOINT) if plain else resolved
    # Under torchrun rank 0 shows its own part's progress; the other ranks stay quiet.
    progress = make_progress(
        "tagging",
        "windows" if window or scenes else "videos",
        quiet or os.environ.get("RANK", "0") != "0",
        progress_interval,
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
        progress=progress,
        save_embeddings=save_embeddings,
    )
    # Under torchrun only rank 0 reports failures: torchrun stops every rank once one exits non-zero.
    is_main = os.environ.get("RANK", "0") == "0"
    raise typer.Exit(1 if summary.failed and is_main else 0)


# ---- embed / search -------------------------------------------------------------------------
@app.command()
def embed(
    inputs: list[str] = typer.Argument(
        ..., help="Video files and folders (searched recursively); '-' reads paths from stdin."
    ),
    store: Path = typer.Option(..., "--store", "-s", help="Embedding store folder to create or append to."),
    checkpoint: Path | None = CheckpointOpt,
    model: str | None = ModelOpt,
    pretrained: str | None = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    window: float | None = typer.Option(None, "--window", min=0.01, help="Embed windows of this many seconds."),
    stride: float | None = typer.Option(
        None, "--stride", min=0.01, help="Seconds between window starts (default: --window)."
    ),
    scenes: Path | None = typer.Option(
        None, "--scenes", help="Embed the scenes of a PySceneDetect list-scenes CSV (or a folder of them)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Videos per model forward."),
    workers: int = typer.Option(
        -1, "--workers", "-j", help="Decoding processes (default: CPU count - 1, at most 8; 0 = in-process)."
    ),
    device: str = DeviceOpt,
    decoder: Decoder = typer.Option(
        Decoder.auto, "--decoder", help="auto = decord if installed, PyAV otherwise and as a per-file fallback."
    ),
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Split the inputs into N deterministic parts..."),
    shard_index: int = typer.Option(0, "--shard-index", min=0, help="...and embed only part I (0-based)."),
    quiet: bool = QuietOpt,
    progress_interval: float | None = ProgressIntervalOpt,
) -> None:
    """Decode and encode videos once into an embedding store (resumable); label or search it later."""
    setup_logging(quiet)
    if shard_index >= num_shards:
        fail(f"--shard-index {shard_index} must be below --num-shards {num_shards}", 2)
    if stride is not None and window is None:
        fail("--stride needs --window", 2)
    if scenes is not None and window is not None:
        fail("--scenes replaces --window; give one of them", 2)
    from ezclip_cli.config import TagConfig
    from ezclip_cli.embed import run_embedding
    from ezclip_cli.loading import NO_CHECKPOINT, resolve_checkpoint

    resolved = resolve_checkpoint(checkpoint, model, pretrained)  # the default model, as for tag
    checkpoint = Path(NO_CHECKPOINT) if resolved is None and model is None and pretrained is None else resolved

    config = TagConfig(
        labels="",
        window=window,
        stride=stride,
        batch_size=batch_size,
        workers=workers,
        device=device,
        decoder=decoder.value,
        num_shards=num_shards,
        shard_index=shard_index,
        scenes=str(scenes) if scenes else None,
    )
    summary = run_embedding(
        inputs,
        config,
        store,
        checkpoint=checkpoint,
        model=model,
        pretrained=pretrained,
        num_frames=num_frames,
        stdin=sys.stdin,
        progress=make_progress("embedding", "windows" if window or scenes else "videos", quiet, progress_interval),
    )
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def search(
    store: Path = typer.Argument(..., help="Embedding store folder (written by tag --save-embeddings or embed)."),
    queries: list[str] | None = typer.Argument(
        None, help="Text queries, e.g. 'a person surfing' (each ranked on its own)."
    ),
    like: Path | None = typer.Option(
        None, "--like", help="Rank by similarity to this video instead of text (itself left out)."
    ),
    top_k: int = typer.Option(20, "--top-k", "-k", min=1, help="Results per query."),
    per_video: bool = typer.Option(False, "--per-video", help="At most one result (the best window) per video."),
    checkpoint: Path | None = CheckpointOpt,
    model: str | None = ModelOpt,
    pretrained: str | None = PretrainedOpt,
    num_frames: int | None = typer.Option(
        None, "--num-frames", "-t", min=1, help="Frames of a --model given here (default 8)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results here instead of stdout."),
    fmt: OutputFormat | None = typer.Option(
        None, "--format", "-f", help="csv, json or jsonl (default: from the -o suffix, else csv)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing -o file."),
    decoder: Decoder = typer.Option(Decoder.auto, "--decoder", help="For a --like video that is not in the store."),
    quiet: bool = QuietOpt,
) -> None:
    """Rank stored videos (windows) by similarity to a text query or a video; tag's output formats.

    The score is the cosine similarity of the query and the stored embedding. The model is the one
    that wrote the store (named in it) unless --checkpoint/--model say otherwise; it must match.
    """
    setup_logging(quiet)
    from ezclip_cli.search import run_search

    run_search(
        store,
        queries or [],
        like=like,
        k=top_k,
        per_video=per_video,
        fmt=(fmt.value if fmt else None) or _format_from_suffix(output),
        output=output,
        overwrite=overwrite,
        decoder=decoder.value,
        checkpoint=checkpoint,
        model=model,
        pretrained=pretrained,
        num_frames=num_frames,
    )


def _format_from_suffix(output: Path | None) -> str:
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
    num_frames: int | None = typer.Option(None, "--num-frames", "-t", min=1, help="Frames per clip (T), default 8."),
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
        "token positions, raw class names, segment centres and published K-shot lists (few-shot, base-to-novel).",
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
    from ezclip_cli.train import resolve_train_config
    from ezclip_cli.train import train as run_training

    given = {
        "dataset": dataset,
        "root": root,
        "fold": fold,
        "train_split": train_split,
        "val_split": val_split,
        "train_list": train_list,
        "val_list": val_list,
        "kshot": kshot,
        "base_novel": base_novel,
        "out": out,
        "model": model,
        "pretrained": pretrained,
        "init": init,
        "num_frames": num_frames,
        "use_prompts": use_prompts,
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_epochs": warmup_epochs,
        "warmup_steps": warmup_steps,
        "motion_weight": motion_weight,
        "drop_path": drop_path,
        "attn_dropout": attn_dropout,
        "prompt_dropout": prompt_dropout,
        "flip": flip,
        "templates": template or None,
        "clip_grad": clip_grad,
        "precision": precision.value if precision else None,
        "grad_checkpointing": grad_checkpointing,
        "seed": seed,
        "workers": workers,
        "decoder": decoder.value if decoder else None,
        "log_every": log_every,
        "eval_every": eval_every,
        "save_every_steps": save_every_steps,
        "device": device,
        "labels": labels,
        "allow_missing_descriptions": allow_missing_descriptions,
        "kshot_list": kshot_list,
        "faithful": faithful,
        "jitter_per_frame": jitter_per_frame,
        "drop_path_positions": drop_path_positions,
        "raw_names": raw_names,
        "train_sampling": train_sampling,
    }
    given = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    settings = resolve_train_config(config, given, resume=resume)
    progress = make_progress("training", "steps", quiet, progress_interval, failures=False)
    run_training(settings, resume=resume, progress=progress)  # it reports where the checkpoints went


# ---- eval ------------------------------------------------------------------------------------
@app.command("eval")
def evaluate(
    checkpoint: list[Path] | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        help="A model name from `ezclip models`, an ezclip checkpoint, a reference EZ-CLIP .pt, or a run directory "
        "(its best.ezclip); 'none' = plain CLIP. Default (no --model either): ezclip-b16-k400. Repeatable: "
        "one per training seed (base-to-novel: the mean is reported) or one per --shots (few-shot).",
    ),
    model: str | None = ModelOpt,
    pretrained: str | None = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="hmdb51, ucf101, k400, k600 or ssv2."),
    root: Path | None = typer.Option(None, "--root", help="Dataset root in its official layout."),
    protocol: Protocol = typer.Option(
        Protocol.zero_shot,
        "--protocol",
        "-p",
        help="zero-shot (hmdb51/ucf101: 3 official splits; k600: 220 new classes, 3 subsets of 160), "
        "base-to-novel, few-shot, closed-set.",
    ),
    split: str | None = typer.Option(
        None, "--split", help="Split to score (default: test for hmdb51/ucf101, val otherwise)."
    ),
    fold: int | None = typer.Option(
        None, "--fold", min=1, help="Official split 1-3 of hmdb51/ucf101 (zero-shot default: all three; others: 1)."
    ),
    shots: list[int] | None = typer.Option(
        None,
        "--shots",
        min=1,
        help="Few-shot: K of each --checkpoint, in order (default: the kshot it was trained with).",
    ),
    clips: int = typer.Option(
        1, "--clips", min=1, help="Temporal clips per video: offsets inside each segment (softmax averaged)."
    ),
    crops: int = typer.Option(
        1, "--crops", min=1, help="Spatial crops per clip along the long side, e.g. 3 (softmax averaged)."
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", help="'clip' adds plain CLIP frame averaging (same backbone) to the report."
    ),
    faithful: bool = typer.Option(
        False,
        "--faithful",
        help="Reproduce the reference code's choices (K600 232 classes at once, split 1 "
        "only, drop_last at batch 80, raw class names, probability-averaged templates).",
    ),
    template: list[str] | None = typer.Option(
        None, "--template", help="Prompt template with '{}' (repeatable); default: the 16 EZ-CLIP templates."
    ),
    descriptions: Path | None = typer.Option(
        None,
        "--descriptions",
        "--labels",
        help="Description CSV (ours: label,description; or the reference's "
        "'SNo,Class Name,GPT3 discription'): one prompt per class.",
    ),
    allow_missing_descriptions: bool = typer.Option(
        False,
        "--allow-missing-descriptions",
        help="Classes the description CSV lacks use the templates (a warning), instead of an error.",
    ),
    ensemble: str | None = typer.Option(
        None,
        "--ensemble",
        help="Templates combine by 'embedding' (averaged text embedding, default) or "
        "'probability' (averaged softmax, reference).",
    ),
    raw_names: bool | None = typer.Option(
        None,
        "--raw-names/--natural-names",
        help="Class names in prompts as written ('ApplyEyeMakeup', reference) or as text ('apply eye makeup').",
    ),
    drop_last_batch: int | None = typer.Option(
        None,
        "--drop-last-batch",
        min=1,
        help="Leave unscored what a drop_last loader of this batch size would (reference: 80; --faithful sets it).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Report folder: report.json and PNG plots (default eval-DATASET-PROTOCOL)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Videos per batch."),
    workers: int = typer.Option(
        -1, "--workers", "-j", help="Decoding processes (default: CPU count - 1, at most 8; 0 = in-process)."
    ),
    decoder: Decoder = typer.Option(Decoder.auto, "--decoder", help="auto = decord if installed, PyAV otherwise."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Text-embedding cache (default ~/.cache/ezclip)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
    progress_interval: float | None = ProgressIntervalOpt,
) -> None:
    """Evaluate under the published protocols (docs/protocols.md) and write a JSON report with plots.

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
    from ezclip_cli.loading import resolve_checkpoint

    # Model names (and, with no model given, the default EZ-CLIP model) become local files here.
    given: list[Path] | list[None] = checkpoint or ([None] if model is None and pretrained is None else [])
    resolved = [resolve_checkpoint(c, model, pretrained) for c in given]
    config = EvalConfig(
        protocol=protocol.value,
        dataset=dataset,
        root=str(root),
        checkpoints=tuple(str(c) for c in resolved if c is not None),
        model=model,
        pretrained=pretrained,
        num_frames=num_frames,
        shots=tuple(shots or ()),
        split=split,
        fold=fold,
        clips=clips,
        crops=crops,
        batch_size=batch_size,
        workers=workers,
        templates=tuple(template or ()),
        descriptions=str(descriptions) if descriptions else None,
        baseline=baseline,
        faithful=faithful,
        decoder=decoder.value,
        device=device,
        allow_missing_descriptions=allow_missing_descriptions,
        ensemble=ensemble,
        raw_names=raw_names,
        drop_last_batch=drop_last_batch,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    progress = make_progress("evaluating", "videos", quiet or os.environ.get("RANK", "0") != "0", progress_interval)
    outcome = run_evaluation(config, out or Path(f"eval-{dataset}-{protocol.value}"), progress=progress)
    if outcome.files:
        log.info("report: %s (%d plots)", outcome.files[0], len(outcome.files) - 1)
    raise typer.Exit(outcome.exit_code)


# ---- merge -----------------------------------------------------------------------------------
@app.command()
def merge(
    parts: list[Path] = typer.Argument(
        ..., help="Output files of the shards (csv, json or jsonl; formats may differ)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the merged results here instead of stdout."),
    fmt: OutputFormat | None = typer.Option(
        None, "--format", "-f", help="csv, json or jsonl (default: from the -o suffix, else csv)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing -o file."),
    quiet: bool = QuietOpt,
) -> None:
    """Join shard outputs of `ezclip tag` into one file with every video exactly once.

    Refuses to mix outputs of different models, label sets, --top-k or --window settings.
    A video that failed in one part and was tagged in another keeps its tagged row.
    """
    setup_logging(quiet)
    from ezclip_cli.merge import merge_outputs
    from ezclip_cli.output import RowWriter, atomic_write

    if output is not None:
        if output.exists() and not overwrite:
            fail(f"{output} exists; use --overwrite to replace it or choose another -o", 2)
        if any(output.resolve() == part.resolve() for part in parts if part.exists()):
            fail(f"-o {output} is one of the parts being merged; choose another file", 2)
    fmt_value = (fmt.value if fmt else None) or _format_from_suffix(output)
    result = merge_outputs(parts)
    if output is not None:
        from ezclip_cli.output import resolve_target
        from ezclip_cli.resume import load_existing

        output = resolve_target(output)  # no directories or special files; a symlink is written through
        load_existing(output, fmt_value, result.top_k, True, True)  # --overwrite replaces only an ezclip output

    def write(stream: Any) -> None:
        writer = RowWriter(stream, fmt_value, result.top_k)
        for row in result.rows:
            writer.write(row)
        writer.close()

    def write_file(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            write(stream)

    if output is None:
        write(sys.stdout)
    else:
        atomic_write(output, write_file)  # readers never see half a merge
    log.info(
        "merged %d files: %d rows (%d failed), %d duplicate rows dropped%s",
        result.files,
        len(result.rows),
        result.failed,
        result.duplicates,
        f"; wrote {output}" if output else "",
    )


# ---- export ----------------------------------------------------------------------------------
@app.command()
def export(
    checkpoint: Path | None = CheckpointOpt,
    out: Path | None = typer.Option(None, "--out", "-o", help="Bundle folder to write."),
    labels: str | None = typer.Option(
        None, "--labels", "-l", help="Label set whose text embeddings ship in the bundle."
    ),
    formats: str = typer.Option(
        "onnx,safetensors",
        "--bundle-formats",
        help="What the bundle holds, a comma list: onnx (ONNX encoders), safetensors (PyTorch weights).",
    ),
    old_formats: str | None = typer.Option(
        None,
        "--format",
        hidden=True,
        help="Old spelling of --bundle-formats (--format means an output format elsewhere).",
    ),
    no_backbone: bool = typer.Option(
        False,
        "--no-backbone",
        help="Refer to open_clip's name and tag instead of copying the backbone "
        "(loading then needs those weights cached).",
    ),
    text_encoder: bool = typer.Option(
        False,
        "--text-encoder",
        help="Also export an ONNX text encoder and CLIP's BPE vocabulary (new label sets without PyTorch).",
    ),
    tolerance: float = typer.Option(
        1e-4,
        "--tolerance",
        min=0.0,
        help="Largest max abs difference of normalised embeddings, onnxruntime vs PyTorch, accepted.",
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
        formats=parse_formats(old_formats or formats),
        include_backbone=not no_backbone,
        text_encoder=text_encoder,
        tolerance=tolerance,
        overwrite=overwrite,
    )
    for line in report.summary_lines():
        log.info("%s", line)
    typer.echo(str(report.out))


# ---- help conventions ----------------------------------------------------------------------------
# Metavars are words a reader understands (VIDEO, FILE, N, SECONDS) where typer would print Python
# types (<list[str]>, <int range>). They are set on the built command, by parameter name and then by
# type, so options that any module adds get them too; an explicit `metavar=` always wins.
METAVARS_BY_NAME = {
    "inputs": "VIDEO",
    "parts": "FILE",
    "labels": "LABELS",
    "checkpoint": "PATH",
    "model": "NAME",
    "pretrained": "TAG",
    "output": "FILE",
    "out": "DIR",
    "cache_dir": "DIR",
    "root": "DIR",
    "resume": "PATH",
    "config": "FILE",
    "train_list": "FILE",
    "val_list": "FILE",
    "descriptions": "FILE",
    "files_from": "FILE",
    "window": "SECONDS",
    "stride": "SECONDS",
    "progress_interval": "SECONDS",
    "device": "DEVICE",
    "template": "TEMPLATE",
    "dataset": "NAME",
    "split": "SPLIT",
    "train_split": "SPLIT",
    "val_split": "SPLIT",
    "shard_index": "I",
    "kshot": "K",
    "shots": "K",
    "base_novel": "base",
    "baseline": "clip",
    "formats": "FORMATS",
    "lr": "LR",
}
METAVARS_BY_TYPE = {int: "N", float: "NUMBER", Path: "PATH"}


def readable_metavar(param: Any) -> str | None:
    """The metavar a parameter should show, or None to keep typer's (flags, and choices listed as a|b|c)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "is_flag", False):
        return None
    annotation = descriptor.annotation
    inner = getattr(annotation, "__args__", (annotation,))[0] if descriptor.is_list else annotation
    if inner is bool:
        return None
    if descriptor.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ()) + "]"
    if param.name in METAVARS_BY_NAME:
        return METAVARS_BY_NAME[param.name]
    if param.param_type_name == "argument":  # positional: its name says what it is (VIDEOS, not PATH)
        return param.name.upper()
    return METAVARS_BY_TYPE.get(inner, param.name.upper())


def apply_help_conventions(command: Any) -> Any:
    """Give every parameter of `command` and its subcommands a readable metavar where none was set."""
    for sub in getattr(command, "commands", {}).values():
        apply_help_conventions(sub)
    for param in command.params:
        if param.metavar is not None:
            continue
        metavar = readable_metavar(param)
        if metavar is None:
            continue
        param.metavar = metavar
        if param.param_type_name == "argument":
            # typer appends an argument's type (<list[str]>) after its name, and writes required ones
            # as {name}; the usage line reads `FILE...` / `[VIDEO]...` as in click and argparse.
            param.display_type_rich = lambda ctx: None
            usage = metavar if param.required else f"[{metavar}]"
            usage += "..." if param.nargs != 1 else ""
            param._usage_display_name = lambda usage=usage: usage
    return command


# Every environment variable ezclip reads, and the commands it changes: listed under "Environment"
# at the end of those commands' --help (the variables other modules read are named here too).
MODEL_COMMANDS = ("tag", "eval", "export", "models")
ENVIRONMENT = (
    (
        "EZCLIP_CACHE",
        "text-embedding and model cache folder (default ~/.cache/ezclip)",
        ("tag", "eval", "export", "models"),
    ),
    ("EZCLIP_MODEL_INDEX", "model index file or URL for model names (default: the built-in index)", MODEL_COMMANDS),
    ("EZCLIP_OFFLINE", "1: download nothing; a model that is not cached fails at once", MODEL_COMMANDS),
    (
        "HF_HUB_OFFLINE",
        "1: open_clip weights from the local Hugging Face cache only, no retries",
        ("tag", "train", "eval", "export", "models"),
    ),
    (
        "EZCLIP_PROGRESS_INTERVAL",
        "seconds between progress lines off a terminal (default 30)",
        ("tag", "train", "eval"),
    ),
    ("SLURM_ARRAY_TASK_ID, _COUNT", "in a SLURM job array: the defaults of --shard-index and --num-shards", ("tag",)),
    ("EZCLIP_DEBUG", "1: show the traceback of an error instead of one line", ("*",)),
)


def environment_help(name: str) -> str:
    """The "Environment" epilog of command `name` (every variable for ''; '' when none affects it)."""
    rows = [(var, text) for var, text, commands in ENVIRONMENT if name == "" or name in commands or "*" in commands]
    if not rows:
        return ""
    # \b keeps click from re-wrapping the table into one paragraph; the text goes on its own line so
    # the table fits 80 columns.
    return "\b\nEnvironment:\n" + "\n".join(f"  {var}\n      {text}" for var, text in rows)


def add_environment_help(command: Any) -> Any:
    """Append the Environment table to the help of every subcommand (and of the top-level command)."""
    for name, sub in getattr(command, "commands", {}).items():
        epilog = environment_help(name)
        if epilog and "Environment:" not in (sub.epilog or ""):
            sub.epilog = f"{sub.epilog}\n\n{epilog}" if sub.epilog else epilog
    if not command.epilog:
        command.epilog = environment_help("")  # all of them
    return command


def build_command() -> Any:
    """The click command `main()` runs: the typer app with the help conventions applied."""
    return add_environment_help(apply_help_conventions(typer.main.get_command(app)))


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
        try:
            # prog_name: usage lines and the completion variable (_EZCLIP_COMPLETE) name the installed
            # command, also under `python -m ezclip_cli` or a test runner.
            code = build_command().main(prog_name="ezclip", standalone_mode=False)
        finally:
            close_displays()
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
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if type(exc).__name__ == "Abort":  # click's wrapping of Ctrl-C, or of the SIGTERM handler's interrupt
            typer.echo("ezclip: terminated" if _terminated else "ezclip: interrupted", err=True)
            sys.exit(143 if _terminated else 130)
        if os.environ.get("EZCLIP_DEBUG") == "1":
            raise
        typer.echo(
            f"ezclip: internal error: {type(exc).__name__}: {exc} (EZCLIP_DEBUG=1 shows the traceback)", err=True
        )
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
