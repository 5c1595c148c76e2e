"""`ezclip embed` and `ezclip search`: videos into an embedding store, stored videos ranked by a query.

Plain functions; cli.py registers them on the app. Heavy imports stay inside the bodies.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from ezclip_cli.cli.options import (
    BatchSizeOpt,
    CheckpointOpt,
    Decoder,
    DeviceOpt,
    ModelOpt,
    NumFramesOpt,
    PretrainedOpt,
    ProgressIntervalOpt,
    QuietOpt,
    Seek,
    SeekOpt,
    TagDecoderOpt,
    WorkersOpt,
    config_from,
    format_from_suffix,
    given_model,
    make_progress,
    setup_logging,
)


class SearchFormat(str, Enum):
    """search's formats: tag's three, with search's own columns, and bare paths for the shell."""

    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"
    paths = "paths"


# ---- embed / search -------------------------------------------------------------------------
def embed(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(
        ..., help="Video files and folders (searched recursively); '-' reads paths from stdin."
    ),
    store: Path = typer.Option(
        ...,
        "--save-embeddings",
        "--store",
        "-s",
        help="Embedding store folder to create or append to (as tag --save-embeddings).",
    ),
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
    batch_size: int = BatchSizeOpt,
    workers: str = WorkersOpt,
    device: str = DeviceOpt,
    decoder: Decoder = TagDecoderOpt,
    seek: Seek = SeekOpt,
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Split the inputs into N deterministic parts..."),
    shard_index: int = typer.Option(0, "--shard-index", min=0, help="...and embed only part I (0-based)."),
    quiet: bool = QuietOpt,
    progress_interval: float | None = ProgressIntervalOpt,
) -> None:
    """Decode and encode videos once into an embedding store (resumable); label or search it later."""
    setup_logging(quiet)
    from ezclip_cli.config import TagConfig
    from ezclip_cli.model.spec import resolve_model
    from ezclip_cli.store.embed import run_embedding

    spec = resolve_model(checkpoint, model, pretrained, num_frames)  # the default model, as for tag

    config = config_from(ctx, TagConfig, labels="")  # checks --window, --stride, --shard-index and the rest
    summary = run_embedding(
        inputs,
        config,
        store,
        spec,
        stdin=sys.stdin,
        progress=make_progress("embedding", "windows" if window or scenes else "videos", quiet, progress_interval),
    )
    raise typer.Exit(1 if summary.failed else 0)


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
        None, "--num-frames", min=1, help="Frames of a --model given here (default 8)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results here instead of stdout."),
    fmt: SearchFormat | None = typer.Option(
        None,
        "--format",
        "-f",
        help="csv, json, jsonl, parquet (columns rank, query, score, path, start, end, duration, video_id, "
        "model_id) or paths (each path once, best first, for shell pipelines); default: from the -o suffix, else csv.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing -o file."),
    decoder: Decoder = typer.Option(Decoder.auto, "--decoder", help="For a --like video that is not in the store."),
    quiet: bool = QuietOpt,
) -> None:
    """Rank stored videos (windows) by similarity to a text query or a video: one row per hit, with its rank.

    The score is the cosine similarity of the query and the stored embedding. The model is the one
    that wrote the store (named in it) unless --checkpoint/--model say otherwise; it must match.
    """
    setup_logging(quiet)
    from ezclip_cli.store.search import run_search

    run_search(
        store,
        queries or [],
        like=like,
        k=top_k,
        per_video=per_video,
        fmt=(fmt.value if fmt else None) or format_from_suffix(output),
        output=output,
        overwrite=overwrite,
        decoder=decoder.value,
        model=given_model(checkpoint, model, pretrained, num_frames),
    )
