"""`ezclip embed`: decode and encode videos once, into an embedding store, with no label set.

The same pipeline as `tag` (spawned decoder workers, batches through the model, windows or
scenes), with the store as the only output. A re-run resumes: videos (windows) already stored
are skipped before decoding, so a killed run continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError
from ezclip_cli.tag.results import TagResult

if TYPE_CHECKING:
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.progress import ProgressCallback
    from ezclip_cli.tag.results import TagSummary

log = logging.getLogger(__name__)


class _Discard:
    """A row writer that keeps nothing: `embed`'s result is the store."""

    def write(self, result: TagResult) -> None:
        pass

    def close(self) -> None:
        pass


def run_embedding(
    inputs: Sequence[str],
    config: TagConfig,
    store: Path,
    spec: ModelSpec,
    *,
    stdin: IO[str] | None = None,
    progress: ProgressCallback | None = None,
) -> TagSummary:
    """Append the embeddings of `inputs` to `store`; returns a TagSummary (ok, failed, already stored)."""
    from ezclip_cli.model.load import load_spec, model_identity, pick_device
    from ezclip_cli.store.writer import StoreWriter, stored_key
    from ezclip_cli.tag.plan import plan_tasks, select_shard
    from ezclip_cli.tag.pool import DecodePool
    from ezclip_cli.tag.predictors import TorchPredictor
    from ezclip_cli.tag.results import TagSummary
    from ezclip_cli.tag.run import predict_tasks, write_results
    from ezclip_cli.tag.workers import resolve_workers
    from ezclip_cli.video.reader import DecodeSettings, list_videos

    if config.runtime != "torch":
        raise UsageError("ezclip embed runs the PyTorch model; use `ezclip tag --runtime onnx --save-embeddings`")
    started = time.perf_counter()
    paths = select_shard(list_videos(inputs, stdin=stdin), config.num_shards, config.shard_index)
    workers = resolve_workers(config.workers, len(paths))
    pool = DecodePool(workers, window=max(2 * workers, 1) + config.batch_size)  # workers start while the model loads
    writer = None
    try:
        device = pick_device(config.device)
        ezclip = load_spec(spec, device=device)
        model_id = model_identity(ezclip, spec.source)
        writer = StoreWriter(store, model_id, float(ezclip.logit_scale), spec.to_dict())
        predictor = TorchPredictor(ezclip, None, [], 1, device)
        settings = DecodeSettings(ezclip.num_frames, ezclip.backbone.image_size, config.decoder, config.seek)
        planned = list(plan_tasks(paths, config))
        tasks = [t for t in planned if isinstance(t, TagResult) or stored_key(t.video_id, t.start) not in writer.keys]
        summary = TagSummary(skipped=len(planned) - len(tasks))
        results = predict_tasks(tasks, pool, settings, predictor, config.batch_size, sink=writer.sink)
        write_results(results, _Discard(), summary, len(tasks), progress)
    finally:
        pool.close()
        if writer is not None:
            writer.close()
    summary.seconds = time.perf_counter() - started
    log.info(
        "embedded %d %s into %s: %d ok, %d failed, %d already stored; %.1f s",
        summary.total,
        "windows" if config.window or config.scenes else "videos",
        store,
        summary.ok,
        summary.failed,
        summary.skipped,
        summary.seconds,
    )
    return summary
