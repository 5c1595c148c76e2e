"""`ezclip eval`: flags -> EvalConfig -> the published protocols -> report.json and plots.

A plain function; cli.py registers it on the app. Heavy imports stay inside the body.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ezclip_cli.cli.options import (
    Decoder,
    DeviceOpt,
    EvalProtocol,
    ModelOpt,
    NumFramesOpt,
    PretrainedOpt,
    ProgressIntervalOpt,
    QuietOpt,
    fail,
    log,
    make_progress,
    setup_logging,
)
from ezclip_cli.distributed import is_main_process


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
    protocol: EvalProtocol = typer.Option(
        EvalProtocol.zero_shot,
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
        help="Reproduce the reference code's choices (K600 232 classes at once on its own video list, split 1 "
        "only, the reference's dropped videos, raw class names, probability-averaged templates).",
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
        help="Leave unscored what a drop_last loader of this batch size would leave of this list.",
    ),
    reference_drops: bool | None = typer.Option(
        None,
        "--reference-drops/--no-reference-drops",
        help="Leave unscored the videos the reference's drop_last loaders left out of its lists (--faithful sets it).",
    ),
    splits: str | None = typer.Option(
        None,
        "--splits",
        help="K600 zero-shot videos: 'own' (the root's --split, default), 'published' (ViFi-CLIP's video lists, "
        "3 subsets of 160 classes) or 'reference' (the reference's list, 232 classes; --faithful sets it).",
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
    setup_logging(quiet or not is_main_process())
    if dataset is None or root is None:
        fail("eval needs --dataset and --root (the dataset's folder in its official layout)", 2)
    from ezclip_cli.data.datasets import list_datasets

    if dataset not in list_datasets():
        fail(f"unknown --dataset '{dataset}'; available: {', '.join(list_datasets())}", 2)
    if baseline is not None and baseline != "clip":
        fail(f"unknown --baseline '{baseline}'; available: clip", 2)
    from ezclip_cli.config.eval import EvalConfig
    from ezclip_cli.eval.run import run_evaluation
    from ezclip_cli.model.spec import resolve_model

    # Model names (and, with no model given, the default EZ-CLIP model) become local files here, once.
    given: list[Path] | list[None] = checkpoint or ([None] if model is None and pretrained is None else [])
    resolved = [resolve_model(c, model, pretrained, num_frames).checkpoint for c in given]
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
        reference_drops=reference_drops,
        splits=splits,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    progress = make_progress("evaluating", "videos", quiet or not is_main_process(), progress_interval)
    outcome = run_evaluation(config, progress=progress)
    if is_main_process():
        from ezclip_cli.eval.report import report_console, write_report

        files = write_report(outcome.report, out or Path(f"eval-{dataset}-{protocol.value}"))
        report_console(outcome.report)
        log.info("report: %s (%d plots)", files[0], len(files) - 1)
    raise typer.Exit(outcome.exit_code)
