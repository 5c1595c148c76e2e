"""`ezclip info`, `ezclip models` and `ezclip export`: what a model is, which named models exist, bundles.

Plain functions; cli.py registers them on the app. Heavy imports stay inside the bodies.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ezclip_cli.cli.options import (
    CheckpointOpt,
    ListFormat,
    ModelOpt,
    NumFramesOpt,
    PretrainedOpt,
    QuietOpt,
    fail,
    log,
    setup_logging,
)


# ---- info ------------------------------------------------------------------------------------
def info(
    checkpoint: Path | None = CheckpointOpt,
    model: str | None = ModelOpt,
    pretrained: str | None = PretrainedOpt,
    num_frames: int = NumFramesOpt,
    no_prompts: bool = typer.Option(False, "--no-prompts", help="Count the model without temporal prompts."),
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="table, or json for scripts."),
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json."),
) -> None:
    """Show a model's parameter breakdown (prompts, adapters, frozen backbone) and what it resolves to.

    Downloads nothing.
    """
    setup_logging(quiet=True)
    from ezclip_cli.model.load import describe_model

    summary = describe_model(checkpoint, model, pretrained, num_frames, use_prompts=not no_prompts)
    if as_json or fmt is ListFormat.json:
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
def models_command(
    download: list[str] | None = typer.Option(
        None,
        "--download",
        help="Fetch this model into the cache now (repeatable; 'all' = every model), e.g. before going offline.",
    ),
    force: bool = typer.Option(False, "--force", help="With --download: fetch again even when it is cached."),
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="table, or json for scripts."),
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json."),
    quiet: bool = QuietOpt,
) -> None:
    """List the named EZ-CLIP models (name, backbone, frames, trained on, published numbers, cached, size).

    The index is built in; EZCLIP_MODEL_INDEX=FILE replaces it. Models are cached in $EZCLIP_CACHE/models
    (default ~/.cache/ezclip/models); with --download the cached file's path is printed.
    """
    setup_logging(quiet)
    from ezclip_cli.hub.index import cache_dir, describe_models, human_size, load_index
    from ezclip_cli.model.spec import fetch_model

    index = load_index()
    if download:
        names = list(index.models) if "all" in download else list(dict.fromkeys(download))
        for name in names:
            index.entry(name)  # every name checked before anything is fetched
        for name in names:
            typer.echo(str(fetch_model(name, index, force=force)))
        return
    rows = describe_models(index)
    if as_json or fmt is ListFormat.json:
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


# ---- export ----------------------------------------------------------------------------------
def export(
    checkpoint: Path | None = CheckpointOpt,
    out: Path | None = typer.Option(None, "--out", "-o", help="Bundle folder to write."),
    labels: str | None = typer.Option(
        None, "--labels", "-l", help="Label set whose text embeddings ship in the bundle."
    ),
    template: list[str] | None = typer.Option(
        None,
        "--template",
        help="Prompt template with '{}' for the label (repeatable), as given to `ezclip tag`; "
        "default: the 16 EZ-CLIP templates.",
    ),
    no_descriptions: bool = typer.Option(
        False, "--no-descriptions", help="Ignore descriptions in a CSV label file, as `ezclip tag` does."
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
        help="Also export an ONNX text encoder and CLIP's tokenizer.json (new label sets without PyTorch).",
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
    from ezclip_cli.data.labels import template_problem
    from ezclip_cli.export.bundle import export_bundle, parse_formats

    for problem in filter(None, map(template_problem, template or ())):
        fail(f"--{problem}", 2)
    if (template or no_descriptions) and not labels:
        fail("--template and --no-descriptions shape the shipped text embeddings; give --labels with them", 2)
    report = export_bundle(
        checkpoint,
        out,
        labels=labels,
        templates=tuple(template or ()),
        use_descriptions=not no_descriptions,
        formats=parse_formats(old_formats or formats),
        include_backbone=not no_backbone,
        text_encoder=text_encoder,
        tolerance=tolerance,
        overwrite=overwrite,
    )
    for line in report.summary_lines():
        log.info("%s", line)
    typer.echo(str(report.out))
