"""Evaluation under the published protocols (docs/protocols.md): plans, scoring, metrics, reports.

    protocol + dataset + root -> units: one VideoList each (an official fold, a K600 subset,
                                 the base or the novel half, a named split)
    for each model (the checkpoints, then the plain-CLIP baseline) and each unit:
        text classifier of the unit's classes -> every video scored: N clips x M crops,
        softmax averaged over the views -> top-k per video; unreadable videos listed
    -> metrics per evaluation -> summary rows (mean, std over units and runs) -> report.json + PNGs

Counting rules (the report says them too): accuracies divide by the videos that were scored;
an unreadable video is a failure, listed with its reason and counted, never in a denominator;
the last batch is scored whatever its size (``--faithful`` leaves out the videos the reference's
drop_last loaders left out, eval.reference_drops; docs/protocols.md 7).

Models: one --checkpoint per training seed (base-to-novel and zero-shot pool them: mean, std) or
one per K (few-shot: K from --shots, else the checkpoint's training config `kshot`); a run
directory means its best.ezclip. `--baseline clip` adds the first checkpoint's frozen backbone.

Under torchrun, batch b of a unit goes to rank b mod WORLD_SIZE: each video is scored in the
same batch as in one process, so rank 0's gathered results (sorted by video index) are the
single-process results; every rank returns the report and the CLI writes it on rank 0 alone.

This module holds the run; its parts live in one module per job:
eval_config (protocols, datasets, EvalConfig), eval_plans (units and models), eval_scoring (views, batches,
scoring, the torchrun gather), metrics, report (entries, summary, report.json, the console table),
report_plots (PNGs). The report's JSON schema is docs/report_schema.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ezclip_cli.config.eval import EvalConfig
from ezclip_cli.eval.plans import plan_models, plan_units
from ezclip_cli.eval.report import build_report, evaluation_entry
from ezclip_cli.eval.scoring import gather_results, plan_batches, score_videos
from ezclip_cli.progress import ProgressCallback

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip


log = logging.getLogger(__name__)


def build_clip_baseline(ezclip: EZClip, device: str) -> EZClip:
    """Plain CLIP frame averaging on the same backbone weights: prompts off, adapters at their identity init."""
    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model.backbone import build_backbone_from_config
    from ezclip_cli.model.checkpoint import backbone_state_dict
    from ezclip_cli.model.ezclip import build_model

    config = ezclip.config
    backbone = build_backbone_from_config(config.backbone_config, config.backbone, backbone_state_dict(ezclip), device)
    backbone.image_size, backbone.mean, backbone.std = (
        ezclip.backbone.image_size,
        ezclip.backbone.mean,
        ezclip.backbone.std,
    )
    model = build_model(backbone, ModelConfig(num_frames=ezclip.num_frames, use_prompts=False)).to(device)
    return model.eval()


# ---- the run -----------------------------------------------------------------------------------------
@dataclass
class EvalOutcome:
    """What `run_evaluation` returns: the report (docs/report_schema.json) and the exit code it implies."""

    report: dict[str, Any]
    exit_code: int  # 0 every video scored, 1 some failed; under torchrun rank 0 alone says so (others 0)


def run_evaluation(config: EvalConfig, *, progress: ProgressCallback | None = None) -> EvalOutcome:
    """Score every model on every unit of the protocol and return the report; nothing is written.

    `progress(done, total, failed, status)` counts this rank's videos over all models and units (rank 0 only).
    Under torchrun every rank returns the whole report. report.write_report writes report.json and
    the plots, report.report_console the summary table.
    """
    from ezclip_cli.distributed import ProcessGroup
    from ezclip_cli.model.load import load_model, model_fingerprint, pick_device
    from ezclip_cli.tag.predictors import build_classifier
    from ezclip_cli.tag.run import default_workers
    from ezclip_cli.version import __version__

    group = ProcessGroup()
    try:
        units, notes = plan_units(
            config.protocol,
            config.dataset,
            config.root,
            split=config.split,
            fold=config.fold,
            faithful=config.faithful,
            splits=config.splits,
        )
        skips: list[list[int]] = [[] for _ in units]
        if config.reference_drops:  # the videos the reference's drop_last loaders never scored
            from ezclip_cli.eval.reference_drops import reference_skips

            for i, unit in enumerate(units):
                skips[i], note = reference_skips(config.protocol, config.dataset, unit)
                notes.append(note)
        from ezclip_cli.data.descriptions import class_texts
        from ezclip_cli.eval.scoring import template_classifier

        # every unit's class texts before any model loads: a missing description fails fast
        texts = [
            class_texts(
                u.videos.classes,
                templates=config.templates,
                descriptions=config.descriptions,
                allow_missing=config.allow_missing_descriptions,
                raw_names=bool(config.raw_names),
            )
            for u in units
        ]
        if config.descriptions:
            notes.append(
                f"class texts: descriptions from {config.descriptions} "
                f"({sum(t.described for t in texts)} of {sum(len(t.sources) for t in texts)} unit classes); "
                "per class in evaluations[].per_class[].text"
            )
        if config.ensemble == "probability":
            notes.append("template ensemble by averaging per-template softmax probabilities, as the reference")
        specs = plan_models(config)
        device = pick_device(config.device)
        if device == "cuda" and group.world > 1:
            device = f"cuda:{group.local_rank}"
            torch.cuda.set_device(torch.device(device))
        workers = default_workers() if config.workers < 0 else config.workers
        report_progress = progress if group.is_main else None
        total = len(specs) * sum(
            sum(
                len(b)
                for b in plan_batches(
                    len(u.videos),
                    config.batch_size,
                    drop_last_batch=config.drop_last_batch,
                    rank=group.rank,
                    world_size=group.world,
                    skip=skip,
                )[0]
            )
            for u, skip in zip(units, skips)
        )
        counts = [0, 0]  # videos scored or failed, of those failed

        def advance(videos: int, failed: int) -> None:
            counts[0], counts[1] = counts[0] + videos, counts[1] + failed
            if report_progress is not None:
                report_progress(counts[0], total, counts[1], "")

        advance(0, 0)
        evaluations: list[dict[str, Any]] = []
        warned: set[str] = set()
        first = None  # the first checkpoint's model: the baseline shares its backbone weights
        for spec in specs:
            if spec.kind == "ezclip":
                model = load_model(spec.checkpoint, config.model, device=device)
                first = first or model
            elif first is not None:
                model = build_clip_baseline(first, device)
                log.info(
                    "baseline: plain CLIP frame averaging on %s's backbone (prompts off, adapters at init)",
                    specs[0].checkpoint,
                )
            else:
                model = load_model(
                    "none", config.model, config.pretrained, config.num_frames, device=device
                )  # plain CLIP
            fingerprint = model_fingerprint(model)
            spec.info = {
                "fingerprint": fingerprint,
                "backbone": model.config.backbone,
                "pretrained": model.config.pretrained,
                "num_frames": model.num_frames,
                "image_size": model.backbone.image_size,
                "use_prompts": model.config.use_prompts,
            }
            for unit, unit_texts, skip in zip(units, texts, skips):
                if config.ensemble == "probability":
                    classifier = template_classifier(model, unit_texts.prompts, config.cache_dir, fingerprint)
                else:
                    classifier = build_classifier(model, unit_texts.prompts, config.cache_dir, fingerprint)
                local, dropped = score_videos(
                    model,
                    classifier,
                    unit.videos,
                    clips=config.clips,
                    crops=config.crops,
                    batch_size=config.batch_size,
                    workers=workers,
                    decoder=config.decoder,
                    device=device,
                    drop_last_batch=config.drop_last_batch,
                    rank=group.rank,
                    world_size=group.world,
                    progress=advance,
                    templates=classifier.shape[0] // len(unit.videos.classes),
                    skip=skip,
                )
                results = gather_results(local, group)
                evaluations.append(evaluation_entry(spec, unit, results, dropped, unit_texts.sources))
                for failure in evaluations[-1]["failures"]:
                    if failure["path"] not in warned and group.is_main:
                        warned.add(failure["path"])
                        log.warning("unreadable video %s: %s", failure["path"], failure["error"])
        if config.drop_last_batch and any(e["dropped"] for e in evaluations):
            notes.append(
                f"eval batches of {config.drop_last_batch} with drop_last over this list (--drop-last-batch): "
                "the dropped videos are counted in 'dropped', not scored"
            )
        report = build_report(config, units, specs, evaluations, notes, __version__, group.world)
        # torchrun stops every rank once one exits non-zero, so rank 0 alone carries the exit code
        # (the others' results are in its report) and the others end with 0 while it writes.
        failed = report["counts"]["failed"]
        return EvalOutcome(report, 0 if failed == 0 or not group.is_main else 1)
    finally:
        group.close()
