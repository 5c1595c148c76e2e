"""`ezclip report` and `ezclip convert`: a tagging run as a page to look at, or as a review tool's import."""

from __future__ import annotations

from pathlib import Path

import typer

from ezclip_cli.cli.options import Decoder, ProgressIntervalOpt, QuietOpt, make_progress, setup_logging


def report(
    outputs: list[Path] = typer.Argument(..., help="Outputs of `ezclip tag` (any format; shard outputs of one run)."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The HTML file to write (replaces only an earlier report)."
    ),
    thumbnails: int = typer.Option(8, "--thumbnails", min=0, help="Frames the model saw, shown per video (0: none)."),
    max_videos: int = typer.Option(
        500, "--max-videos", min=1, help="Video cards at most (a stated uniform sample beyond); counts cover all."
    ),
    labels: str | None = typer.Option(
        None, "--labels", "-l", help="The run's label set, to list labels no video got (default: the labels seen)."
    ),
    decoder: Decoder = typer.Option(Decoder.auto, "--decoder", help="For the thumbnails: tag's decoders."),
    quiet: bool = QuietOpt,
    progress_interval: float | None = ProgressIntervalOpt,
) -> None:
    """Write one self-contained HTML page to review a tagging run: frames, labels, timelines, filters."""
    setup_logging(quiet)
    write_run_report(outputs, output, thumbnails, max_videos, labels, decoder.value, quiet, progress_interval)


def write_run_report(
    outputs: list[Path],
    output: Path,
    thumbnails: int = 8,
    max_videos: int = 500,
    labels: str | None = None,
    decoder: str = "auto",
    quiet: bool = False,
    progress_interval: float | None = None,
    model: str | None = None,
) -> None:
    """The report of `outputs` at `output`, with progress on stderr (`tag --report` calls it too)."""
    from ezclip_cli.cli.options import log
    from ezclip_cli.review.outputs import load_run
    from ezclip_cli.review.report import ReportSettings, write_report

    run = load_run(outputs)
    settings = ReportSettings(thumbnails, max_videos, decoder if decoder != "torchcodec" else "auto", labels, model)
    progress = make_progress("report", "videos", quiet, progress_interval)
    summary = write_report(run, output, settings, progress)
    if progress is not None:
        progress.close()
    log.info(
        "report of %d videos (%d failed) written to %s%s",
        summary["videos"],
        summary["failed"],
        output,
        f"; cards for a sample of {summary['shown']}" if summary.get("sample") else "",
    )


def convert(
    outputs: list[Path] = typer.Argument(..., help="Outputs of `ezclip tag` (any format; shard outputs of one run)."),
    to: str = typer.Option(..., "--to", help="fiftyone (a dataset folder) or labelstudio (tasks + labeling config)."),
    output: Path = typer.Option(..., "--output", "-o", help="The folder to write into."),
    labels: str | None = typer.Option(
        None, "--labels", "-l", help="The run's label set, for Label Studio's choices (default: the labels seen)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export in the folder."),
    quiet: bool = QuietOpt,
) -> None:
    """Export a tagging run for FiftyOne or Label Studio: predictions a reviewer can accept or correct."""
    setup_logging(quiet)
    from ezclip_cli.cli.options import log
    from ezclip_cli.review.convert import convert as write
    from ezclip_cli.review.outputs import load_run

    written = write(load_run(outputs), to.strip().lower(), output, labels, overwrite)
    log.info("wrote %s", ", ".join(str(p) for p in written))
