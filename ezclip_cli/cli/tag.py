"""`ezclip tag` and `ezclip merge`: videos (or stored embeddings) in, label rows out; shard outputs joined.

Plain functions; cli.py registers them on the app. Heavy imports stay inside the bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ezclip_cli.cli.engine import (
    DecodeWorkersOpt,
    Engine,
    EngineOpt,
    GpusPerWorkerOpt,
    ModelWorkersOpt,
    RayAddressOpt,
    refuse_ray_flags,
)
from ezclip_cli.cli.options import (
    BatchSizeOpt,
    CheckpointOpt,
    Decoder,
    DeviceOpt,
    ModelOpt,
    NumFramesOpt,
    OutputFormat,
    PretrainedOpt,
    ProgressIntervalOpt,
    QuietOpt,
    Runtime,
    ScoreKind,
    Seek,
    SeekOpt,
    TagDecoderOpt,
    WorkersOpt,
    config_from,
    fail,
    format_from_suffix,
    given_model,
    log,
    make_progress,
    setup_logging,
)
from ezclip_cli.distributed import is_main_process


# ---- tag -------------------------------------------------------------------------------------
def tag(
    ctx: typer.Context,
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
        None, "--format", "-f", help="csv, json, jsonl or parquet (default: from the -o suffix, else csv)."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per video."),
    window: float | None = typer.Option(None, "--window", min=0.01, help="Tag windows of this many seconds."),
    stride: float | None = typer.Option(
        None, "--stride", min=0.01, help="Seconds between window starts (default: --window)."
    ),
    batch_size: int = BatchSizeOpt,
    workers: str = WorkersOpt,
    device: str = DeviceOpt,
    decoder: Decoder = TagDecoderOpt,
    seek: Seek = SeekOpt,
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
        help="Also tag the paths listed in this file, one per line or NUL-separated as find -print0 writes "
        "(a manifest; safe under torchrun, where every rank reads it whole).",
    ),
    engine: Engine = EngineOpt,
    ray_address: str | None = RayAddressOpt,
    decode_workers: int | None = DecodeWorkersOpt,
    model_workers: int = ModelWorkersOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Also write an HTML page to review the run (as `ezclip report` does); needs -o.",
    ),
) -> None:
    """Tag videos with zero-shot action labels (CSV, JSON or JSONL on stdout or -o)."""
    setup_logging(quiet)
    inputs = list(inputs or [])
    if files_from is not None:
        from ezclip_cli.video.path_lists import read_path_list_file

        inputs += read_path_list_file(files_from)  # one per line or NUL-separated (find -print0); bounded
    refuse_ray_flags(engine, save_embeddings, from_embeddings)
    if report is not None and (output is None or str(output) == "-" or engine is Engine.ray):
        fail("--report reads the run's rows from -o FILE (and needs --engine local); or run `ezclip report` after", 2)
    if report is not None:
        from ezclip_cli.review.report import check_target

        check_target(report)  # someone else's file is refused before any work
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
    from ezclip_cli.tag.plan import resolve_shard

    num_shards, shard_index, shard_source = resolve_shard(num_shards, shard_index)
    if shard_source:
        log.info("shard %d of %d (from %s)", shard_index, num_shards, shard_source)
    if output is not None and str(output) == "-":
        output = None  # `-o -`: stdout, as everywhere in Unix
    from ezclip_cli.store.writer import store_opener
    from ezclip_cli.tag.run import TagConfig, run_tagging

    fmt_value = (fmt.value if fmt else None) or format_from_suffix(output)
    if fmt_value == "parquet" and output is None:
        fail("-f parquet writes a file, not a stream: give -o FILE.parquet", 2)
    config = config_from(
        ctx,
        TagConfig,
        templates=tuple(template or ()),
        use_descriptions=not no_descriptions,
        num_shards=num_shards,  # resolved above (flags or SLURM)
        shard_index=shard_index,
        output_format=fmt_value,
    )
    if from_embeddings is not None:
        from ezclip_cli.store.relabel import run_relabel

        run_relabel(
            from_embeddings,
            config,
            model=given_model(checkpoint, model, pretrained, num_frames),
            output=output,
            overwrite=overwrite,
        )
        raise typer.Exit(0)
    if runtime is Runtime.onnx and checkpoint is None and model is None:
        fail("--runtime onnx needs an exported bundle: --model DIR (see `ezclip export`)", 2)
    from ezclip_cli.model.spec import resolve_model

    # The model is resolved once, here: a name or the default is fetched (or refused) before any video work.
    spec = resolve_model(checkpoint, model, pretrained, num_frames)
    if spec.kind == "plain":  # plain CLIP on open_clip weights: offline fails at once, before torch loads
        from ezclip_cli.config import DEFAULT_BACKBONE, DEFAULT_PRETRAINED
        from ezclip_cli.hub.offline import refuse_unreachable_weights_early

        tag_ = pretrained if pretrained is not None else (DEFAULT_PRETRAINED if model is None else None)
        refuse_unreachable_weights_early(model or DEFAULT_BACKBONE, tag_)
    if engine is Engine.ray:
        from ezclip_cli.cli.engine import tag_on_ray

        tag_on_ray(
            inputs,
            config,
            spec,
            ray_address=ray_address,
            gpus_per_worker=gpus_per_worker,
            output=output,
            overwrite=overwrite,
            quiet=quiet,
            progress_interval=progress_interval,
            decode_workers=decode_workers,
            model_workers=model_workers,
        )
    # Under torchrun rank 0 shows its own part's progress; the other ranks stay quiet.
    progress = make_progress(
        "tagging",
        "windows" if window or scenes else "videos",
        quiet or not is_main_process(),
        progress_interval,
    )
    summary = run_tagging(
        inputs,
        config,
        model=spec,
        output=output,
        overwrite=overwrite,
        stdin=sys.stdin,
        progress=progress,
        open_store=store_opener(save_embeddings, spec) if save_embeddings is not None else None,
    )
    # Under torchrun only rank 0 reports failures: torchrun stops every rank once one exits non-zero.
    is_main = is_main_process()
    if report is not None and is_main and output is not None:
        from ezclip_cli.cli.review import write_run_report

        write_run_report([output], report, quiet=quiet, progress_interval=progress_interval, model=spec.describe())
    raise typer.Exit(1 if summary.failed and is_main else 0)


# ---- merge -----------------------------------------------------------------------------------
def merge(
    parts: list[Path] = typer.Argument(
        ..., help="Output files of the shards (csv, json, jsonl or parquet; formats may differ)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the merged results here instead of stdout."),
    fmt: OutputFormat | None = typer.Option(
        None, "--format", "-f", help="csv, json, jsonl or parquet (default: from the -o suffix, else csv)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing -o file."),
    quiet: bool = QuietOpt,
) -> None:
    """Join shard outputs of `ezclip tag` into one file with every video exactly once.

    Refuses to mix outputs of different models, label sets, --top-k or --window settings.
    A video that failed in one part and was tagged in another keeps its tagged row.
    """
    setup_logging(quiet)
    from ezclip_cli.files import atomic_write
    from ezclip_cli.tag.merge import merge_outputs
    from ezclip_cli.tag.output import RowWriter

    if output is not None:
        if output.exists() and not overwrite:
            fail(f"{output} exists; use --overwrite to replace it or choose another -o", 2)
        if any(output.resolve() == part.resolve() for part in parts if part.exists()):
            fail(f"-o {output} is one of the parts being merged; choose another file", 2)
    fmt_value = (fmt.value if fmt else None) or format_from_suffix(output)
    if fmt_value == "parquet" and output is None:
        fail("-f parquet writes a file, not a stream: give -o FILE.parquet", 2)
    result = merge_outputs(parts)
    if output is not None:
        from ezclip_cli.files import resolve_target
        from ezclip_cli.tag.resume import load_existing

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
    elif fmt_value == "parquet":
        from ezclip_cli.tag.columnar import write_table

        write_table(output, result.rows)  # atomic too
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
