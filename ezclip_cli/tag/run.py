"""Tag many videos: decode in worker processes, batch through the model, hand on results as they finish.

Stages: inputs -> shard -> skip what the output already holds -> decode (decode_pool: spawned
workers, a bounded number of clips in flight) -> batches of B clips through the model
(predictors) -> one `TagResult` per video or window, in input order -> a writer (output.py,
or a list for `tag_videos`). Peak memory is bounded by the in-flight window, not by the number
of videos or their length (only the sampled frames are decoded, docs/model.md section 8).
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.files import OutputLock, resolve_target
from ezclip_cli.model.spec import ModelSpec
from ezclip_cli.progress import ProgressCallback, pause_point
from ezclip_cli.tag.output import RowWriter, open_for_append
from ezclip_cli.tag.parts import PartWriter, merge_parts, parts_dir, read_parts, remove_parts
from ezclip_cli.tag.plan import Task, plan_tasks, select_shard
from ezclip_cli.tag.pool import Decoded, DecodedClip, DecodePool
from ezclip_cli.tag.predictors import LoadedModel
from ezclip_cli.tag.results import ResultWriter, Stamp, TagResult, TagSummary
from ezclip_cli.tag.resume import load_existing, prepare_output, settings_id, still_to_do, task_key
from ezclip_cli.tag.workers import resolve_workers
from ezclip_cli.video.reader import DecodeSettings

if TYPE_CHECKING:
    import numpy as np

    from ezclip_cli.model.scoring import ScoreOptions
    from ezclip_cli.tag.predictors import VideoPredictor

log = logging.getLogger(__name__)

EmbeddingSink = Callable[[list[tuple[Task, DecodedClip]], "np.ndarray"], None]  # the embedding store's hook


class EmbeddingStore(Protocol):
    """Where `--save-embeddings` puts each batch's embeddings (store.writer.StoreWriter)."""

    def sink(self, decoded: list[tuple[Task, DecodedClip]], embeddings: np.ndarray) -> None: ...

    def check_done(self, done: dict[tuple, str]) -> None: ...

    def close(self) -> None: ...


# (predictor, model id, torchrun world size) -> the store this run appends to
StoreOpener = Callable[["VideoPredictor", str, int], EmbeddingStore]
NON_FINITE = "the model gave non-finite scores (NaN or infinity); its weights are corrupt"


# ---- the pipeline ------------------------------------------------------------------------------------
def predict_tasks(
    tasks: Iterable[Task | TagResult],
    pool: DecodePool,
    settings: DecodeSettings,
    predictor: VideoPredictor,
    batch_size: int,
    stamp: Stamp | None = None,
    sink: EmbeddingSink | None = None,
) -> Iterator[TagResult]:
    """The pipeline proper: decode (workers) -> batches of `batch_size` clips -> one result per task, in order.

    A task already failed in planning passes through; `stamp` (model, label set and settings ids)
    goes on every result; `sink(decoded tasks, embeddings)` (the embedding store) gets each batch
    before its results are handed on, so a written row always has its embedding stored.
    """
    pending: list[tuple[Task, Decoded] | TagResult] = []  # input order, failures included
    clips = 0
    for item in pool.map(tasks, settings):
        pending.append(item)
        clips += not isinstance(item, TagResult) and isinstance(item[1], DecodedClip)
        if clips >= batch_size:
            yield from predict_batch(pending, predictor, stamp or Stamp(), sink)
            pending, clips = [], 0
    yield from predict_batch(pending, predictor, stamp or Stamp(), sink)


def predict_batch(
    pending: list[tuple[Task, Decoded] | TagResult],
    predictor: VideoPredictor,
    stamp: Stamp,
    sink: EmbeddingSink | None,
) -> list[TagResult]:
    """Embed and rank the decoded clips of `pending` in one batch; every task's result in input order."""
    import numpy as np

    clips = [(item[0], item[1]) for item in pending if not isinstance(item, TagResult)]
    decoded = [(task, clip) for task, clip in clips if isinstance(clip, DecodedClip)]
    ranked: Iterator[tuple[list[str], list[float]]] = iter(())
    finite: Iterator[bool] = iter(())
    if decoded:
        embeddings = predictor.embed([clip.pixels for _, clip in decoded])
        if sink is not None:
            sink(decoded, embeddings)
        scorer = predictor.scorer
        ranked = iter(scorer(embeddings) if scorer is not None else [([], [])] * len(decoded))
        finite = iter(np.isfinite(embeddings).all(axis=1).tolist())
    results = []
    for item in pending:
        if isinstance(item, TagResult):
            results.append(item.stamped(stamp))
            continue
        task, clip = item
        if not isinstance(clip, DecodedClip):
            results.append(task.failed(clip).stamped(stamp))
            continue
        labels, scores = next(ranked)
        if not next(finite) or not all(math.isfinite(s) for s in scores):  # NaN is no score (and not JSON)
            results.append(task.failed(NON_FINITE).stamped(stamp))
            continue
        results.append(
            TagResult(
                str(task.path),
                task.video_id,
                start=task.start,
                end=task.end,
                duration=round(clip.duration, 3),
                labels=tuple(labels),
                scores=tuple(scores),
                num_frames=len(clip.timestamps),
                timestamps=clip.timestamps,
            ).stamped(stamp)
        )
    return results


def write_results(
    results: Iterable[TagResult],
    writer: ResultWriter,
    summary: TagSummary,
    expected: int,
    progress: ProgressCallback | None = None,
) -> None:
    """Hand every result to `writer` as it comes, count it, warn about failures and report progress."""
    if progress is not None:
        progress(0, expected, 0, "")
    started = time.perf_counter()
    try:
        for result in results:
            writer.write(result)
            summary.count(result)
            pause_point("rows", summary.total)  # tests stop a run here, after a known number of rows
            if not result.ok:
                log.warning("%s: %s", result.path, result.error)
            if progress is not None:
                progress(summary.total, expected, summary.failed, "")
    finally:
        writer.close()
    summary.loop_seconds = time.perf_counter() - started


# ---- the run -----------------------------------------------------------------------------------------
def run_tagging(
    inputs: Sequence[str],
    config: TagConfig,
    *,
    model: ModelSpec | LoadedModel | None = None,
    output: Path | None = None,
    overwrite: bool = False,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    writer: ResultWriter | None = None,
    progress: ProgressCallback | None = None,
    open_store: StoreOpener | None = None,
) -> TagSummary:
    """Tag `inputs`; results go to `output` (resumable), else to `writer`, else as rows to `stdout`.

    `model` is what model/spec.resolve_model made of the flags (None: the index's default model), or a model
    already loaded (api.Tagger keeps one for many calls).
    `progress(done, total, failed, status)` hears about every finished task of this process.
    `open_store(predictor, model_id, world)`: the embedding store every video's (window's) embedding is also
    appended to (store.writer.store_opener makes one for `--save-embeddings`).
    Under torchrun each rank tags a disjoint part and rank 0 writes them all.
    """
    from ezclip_cli.data.labels import build_prompts, labelset_fingerprint, load_labelset
    from ezclip_cli.distributed import ProcessGroup
    from ezclip_cli.model.scoring import scoring_id
    from ezclip_cli.tag.segments import SegmentWriter
    from ezclip_cli.video.reader import list_videos

    started = time.perf_counter()
    group = ProcessGroup()
    pool = store = lock = None
    aborted = True
    neutralise = not config.raw_csv
    try:
        if config.segments and config.window is None and config.scenes is None:
            raise UsageError("--segments needs --window (or --scenes): it merges windows")
        labelset = load_labelset(config.labels)
        prompts = build_prompts(labelset, config.templates or None, config.use_descriptions)
        labels_id = scoring_id(labelset_fingerprint(prompts)[:16], score_options(config))
        if config.segments and output is not None and output.exists() and output.stat().st_size and not overwrite:
            raise UsageError(f"--segments writes {output} whole and cannot resume it; use --overwrite or another -o")
        target, earlier = None, []
        if output is not None and group.is_main:  # refuse a foreign, locked or unwritable -o before the model loads
            target = resolve_target(output)
            lock = OutputLock(target).acquire()
            earlier = load_existing(target, config.output_format, config.top_k, overwrite, neutralise)
        found = list_videos(inputs, stdin=stdin, keep_missing=True)
        if not found:
            raise VideoError(f"no video files found in {', '.join(map(str, inputs))}")
        paths = select_shard(found, config.num_shards, config.shard_index)
        workers = resolve_workers(config.workers, len(paths))
        pool = DecodePool(workers, window=max(2 * workers, 1) + config.batch_size)  # starts workers now
        local_rank = group.local_rank if group.world > 1 else None
        predictor, settings, model_id = build_predictor(config, prompts, labelset.labels, model, local_rank)
        stamp = Stamp(model_id, labels_id, settings_id(config))
        if open_store is not None:
            store = open_store(predictor, model_id, group.world)
        planned = list(plan_tasks(paths, config))

        done: dict = {}
        existing = 0
        if output is not None and group.is_main:
            # rows of an earlier distributed run that was killed count as part of the file
            leftover = read_parts(parts_dir(output))
            assert target is not None  # resolved above under the same condition
            done, existing = prepare_output(
                target,
                config.output_format,
                config.top_k,
                stamp,
                overwrite,
                earlier + leftover,
                [t.video_id for t in planned],
                neutralise,
            )
            remove_parts(parts_dir(output))
        done = group.broadcast(done)
        if store is not None:
            store.check_done(done)
        done_ids = set(done.values())
        tasks = [t for t in planned if still_to_do(t, done, done_ids)]
        summary = TagSummary(skipped=len(planned) - len(tasks))
        sink: ResultWriter
        if group.world > 1:
            shared = group.broadcast(str(parts_dir(output)) if output else tempfile.mkdtemp(prefix="ezclip-parts-"))
            order = {task_key(t): i for i, t in reversed(list(enumerate(tasks)))}
            sink = PartWriter(Path(shared), group.rank, order)
            tasks = tasks[group.rank :: group.world]
        elif output is not None:
            assert target is not None  # a single process is the main one, so it resolved -o above
            sink = open_for_append(target, config.output_format, config.top_k, existing, neutralise)
        elif writer is not None:
            sink = writer
        else:
            sink = RowWriter(stdout or sys.stdout, config.output_format, config.top_k, neutralise=neutralise)
        if config.segments:
            sink = SegmentWriter(sink)
        results = predict_tasks(
            tasks, pool, settings, predictor, config.batch_size, stamp, store.sink if store is not None else None
        )
        write_results(results, sink, summary, len(tasks), progress)
        if group.world > 1:
            into = writer if output is None else None
            summary = merge_parts(group, summary, Path(shared), target or output, stdout, config, existing, into)
        aborted = False
    finally:
        if pool is not None:
            pool.close(abort=aborted)
        if store is not None:
            store.close()
        if lock is not None:
            lock.release()
        group.close()
    summary.seconds = time.perf_counter() - started
    if group.is_main:
        log.info("%s", summary.line(bool(config.window)))
    return summary


def build_predictor(
    config: TagConfig,
    prompts: list[list[str]],
    labels: Sequence[str],
    model: ModelSpec | LoadedModel | None,
    local_rank: int | None,
) -> tuple[VideoPredictor, DecodeSettings, str]:
    """The model side of tagging: (predictor, decoding settings, model id) for the chosen runtime."""
    from ezclip_cli.model.spec import resolve_model

    if config.runtime == "onnx":
        from ezclip_cli.export.runtime import load_bundle_predictor

        if not isinstance(model, ModelSpec) or model.kind != "bundle":
            raise UsageError("--runtime onnx needs an exported bundle: --model DIR (see `ezclip export`)")
        assert model.checkpoint is not None  # a bundle spec names its folder
        onnx, model_settings, model_id = load_bundle_predictor(
            model.checkpoint,
            config.labels,
            config.top_k,
            templates=config.templates or None,
            use_descriptions=config.use_descriptions,
            score_options=score_options(config),
        )
        # decord is imported after torch (it hangs otherwise), so "auto" means PyAV here: no torch at all.
        decoder = "pyav" if config.decoder == "auto" else config.decoder
        return onnx, replace(model_settings, decoder=decoder, seek=config.seek), model_id
    from ezclip_cli.tag.predictors import TorchPredictor

    if not isinstance(model, LoadedModel):
        model = LoadedModel.load(model if model is not None else resolve_model(), config.device, local_rank)
    ezclip = model.ezclip
    classifier = model.classifier(prompts, config.cache_dir)
    settings = DecodeSettings(ezclip.num_frames, ezclip.backbone.image_size, config.decoder, config.seek)
    predictor = TorchPredictor(ezclip, classifier, labels, config.top_k, model.device, score_options(config))
    return predictor, settings, model.model_id


def score_options(config: TagConfig) -> ScoreOptions:
    """The scoring choices of `config` (scoring.ScoreOptions)."""
    from ezclip_cli.model.scoring import ScoreOptions

    return ScoreOptions(config.score, config.threshold, config.min_score)
