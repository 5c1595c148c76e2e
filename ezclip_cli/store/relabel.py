"""Re-label stored embeddings: `ezclip tag --from-embeddings STORE --labels NEW`, no video decoded.

The rows are the rows `tag` writes for the same videos (same top-k, same scores: the one scorer of
scoring.py on the same float32 embeddings), stamped with the same video, model and label-set ids,
so they resume into, and compare with, outputs of `tag`. Only the label set's text embeddings are
needed: from the text cache when it is warm (no model is loaded at all), else from the model that
wrote the store, which is checked against the store's fingerprint.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError
from ezclip_cli.store.format import StoredEmbeddings, load_store, refuse_model, stored_result

if TYPE_CHECKING:
    import torch

    from ezclip_cli.model.ezclip import EZClip
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.results import TagSummary

log = logging.getLogger(__name__)
CHUNK = 8192  # embeddings scored per matrix product: (8192 x D) @ (D x K) stays small in memory


def store_model(stored: StoredEmbeddings, store: Path, model: ModelSpec | None = None) -> EZClip:
    """The model that wrote `store`: the one given (resolved flags), else the one the store names; checked."""
    from ezclip_cli.model.load import load_spec, model_identity
    from ezclip_cli.model.spec import ModelSpec

    given = model is not None
    spec = model if model is not None else ModelSpec.from_dict(stored.info.get("model") or {})
    ezclip = load_spec(spec, device="cpu")
    model_id = model_identity(ezclip, spec.source)
    if model_id != stored.model_id:
        if given:
            raise refuse_model(store, stored.model_id, model_id)
        raise UsageError(
            f"{store}: the model named in the store ({spec.describe()}) is not the model that wrote the store "
            "any more; pass that model with --checkpoint/--model"
        )
    return ezclip


def label_classifier(
    stored: StoredEmbeddings,
    store: Path,
    prompts: list[list[str]],
    cache_dir: str | None,
    model: ModelSpec | None = None,
) -> torch.Tensor:
    """Text embeddings (K, D) of `prompts` for the store's model: cached, or computed with that model."""
    from ezclip_cli.tag.predictors import build_classifier, read_cached_classifier

    ezclip = store_model(stored, store, model) if model is not None else None  # a given model is always checked
    classifier = read_cached_classifier(prompts, cache_dir, stored.model_id)
    if classifier is None:
        ezclip = ezclip or store_model(stored, store, model)
        classifier = build_classifier(ezclip, prompts, cache_dir, stored.model_id)
    return classifier.cpu()


def stored_order(stored: StoredEmbeddings) -> list[int]:
    """Rows grouped by video (first-stored video first), windows in time order: the order `tag` writes."""
    import numpy as np

    first: dict[tuple, int] = {}
    videos = list(zip(stored.columns["path"], stored.columns["video_id"]))
    for i, video in enumerate(videos):
        first.setdefault(video, i)
    starts = np.nan_to_num(stored.columns["start"], nan=0.0).tolist()
    return sorted(range(len(stored)), key=lambda i: (first[videos[i]], starts[i]))


def run_relabel(
    store: Path,
    config: TagConfig,
    *,
    model: ModelSpec | None = None,
    output: Path | None = None,
    overwrite: bool = False,
    stdout: IO[str] | None = None,
) -> TagSummary:
    """Write `tag`'s rows for every stored video (window) under the label set of `config`; returns a TagSummary.

    `model`: the model the user named (checked against the store's); None = the one the store names.
    """
    from ezclip_cli.data.labels import build_prompts, labelset_fingerprint, load_labelset
    from ezclip_cli.files import OutputLock, resolve_target
    from ezclip_cli.model.scoring import scoring_id
    from ezclip_cli.tag.run import score_options

    started = time.perf_counter()
    stored = load_store(store)
    labelset = load_labelset(config.labels)
    prompts = build_prompts(labelset, config.templates or None, config.use_descriptions)
    labels_id = scoring_id(labelset_fingerprint(prompts)[:16], score_options(config))
    neutralise = not config.raw_csv
    lock = None
    if output is not None:  # the same checks as `tag -o`: refuse a foreign, locked or unwritable file first
        if config.segments and output.exists() and output.stat().st_size and not overwrite:
            raise UsageError(f"--segments writes {output} whole and cannot resume it; use --overwrite or another -o")
        output = resolve_target(output)
        lock = OutputLock(output).acquire()
    try:
        return _relabel(
            stored,
            store,
            config,
            prompts,
            labelset.labels,
            labels_id,
            output,
            overwrite,
            stdout,
            neutralise,
            started,
            model=model,
        )
    finally:
        if lock is not None:
            lock.release()


def _relabel(
    stored: StoredEmbeddings,
    store: Path,
    config: TagConfig,
    prompts: list[list[str]],
    labels: Sequence[str],
    labels_id: str,
    output: Path | None,
    overwrite: bool,
    stdout: IO[str] | None,
    neutralise: bool,
    started: float,
    model: ModelSpec | None = None,
) -> TagSummary:
    """run_relabel once its output is checked and locked."""
    from ezclip_cli.model.scoring import Scorer
    from ezclip_cli.tag.output import RowWriter, open_for_append
    from ezclip_cli.tag.results import ResultWriter, Stamp, TagSummary
    from ezclip_cli.tag.resume import load_existing, prepare_output, row_key, settings_id
    from ezclip_cli.tag.run import score_options
    from ezclip_cli.tag.segments import SegmentWriter

    classifier = label_classifier(stored, store, prompts, config.cache_dir, model)
    scorer = Scorer(classifier, stored.logit_scale, labels, config.top_k, score_options(config))
    stamp = Stamp(stored.model_id, labels_id, settings_id(config))
    index = stored_order(stored)
    done: dict[tuple, str] = {}
    if output is not None:
        earlier = load_existing(output, config.output_format, config.top_k, overwrite, neutralise)
        current = dict.fromkeys(stored.columns["video_id"])  # every stored video is current
        done, existing = prepare_output(
            output, config.output_format, config.top_k, stamp, overwrite, earlier, current, neutralise
        )
        writer: ResultWriter = open_for_append(output, config.output_format, config.top_k, existing, neutralise)
    else:
        writer = RowWriter(stdout or sys.stdout, config.output_format, config.top_k, neutralise=neutralise)
    every = zip(index, stored.rows(index))
    order = [(i, r) for i, r in every if done.get(row_key(r)) != r["video_id"]]
    summary = TagSummary(skipped=len(stored) - len(order))
    if config.segments:
        writer = SegmentWriter(writer)
    try:
        for begin in range(0, len(order), CHUNK):
            chunk = order[begin : begin + CHUNK]
            scored = scorer(stored.embeddings[[i for i, _ in chunk]])
            for (_, meta), (labels, scores) in zip(chunk, scored):
                result = stored_result(meta, labels, scores).stamped(stamp)
                writer.write(result)
                summary.count(result)
    finally:
        writer.close()
    summary.seconds = summary.loop_seconds = time.perf_counter() - started
    log.info(
        "re-labelled %d stored embeddings with %d labels (%d already done), no video decoded; %.2f s",
        summary.total,
        len(labels),
        summary.skipped,
        summary.seconds,
    )
    return summary
