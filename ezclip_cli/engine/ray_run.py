"""`ezclip tag --engine ray`: tag's run on a Ray cluster, decoding on CPU workers feeding model actors.

The driver does what `tag` does before and after the pipeline (label set, model identity, resume,
the output writer) and hands the middle to Ray Data: the videos still to do become a dataset,
`decode_clips` runs on `--decode-workers` CPU tasks, `TagClips` on `--model-workers` actors (each
`--gpus-per-worker` GPUs), and Ray streams the rows back with its own backpressure, scheduling and
retries. The driver alone writes the output, row by row as blocks arrive, so the output file is
the one record of what is done: exactly once comes from tag's resume identity (a rerun skips what
the file holds and retries failures, also after the driver was killed), and a task Ray retries on
another worker delivers its block once, so no row is written twice.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.files import OutputLock, resolve_target
from ezclip_cli.progress import ProgressCallback, pause_point
from ezclip_cli.tag.results import Stamp, TagResult, TagSummary

if TYPE_CHECKING:
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.plan import Task
    from ezclip_cli.tag.results import ResultWriter
    from ezclip_cli.video.reader import DecodeSettings

log = logging.getLogger(__name__)
DECODE_RETRIES = 3
INSTALL = "--engine ray needs Ray Data: pip install 'ezclip[ray]'"


@dataclass(frozen=True)
class RaySizing:
    """How the Ray pipeline is sized: where the cluster is, and each stage's workers."""

    address: str | None = None  # a running cluster ("auto", "ray://host:10001"); None: this process's or a new one
    decode_workers: int | None = None  # CPU tasks decoding at once; None = Ray's autoscaling
    model_workers: int = 1  # model actors
    gpus_per_worker: float = 0.0  # GPUs per model actor (fractions share one GPU)
    decode_batch: int = 4  # clips per decode task


def require_ray() -> Any:
    """ray, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL) from None
    return ray


def model_stamp(config: TagConfig, spec: ModelSpec) -> tuple[Stamp, DecodeSettings]:
    """The ids the actors will stamp on rows (resume needs them before any video is read) and the decoding
    settings: the model loaded once on the driver's CPU, which also checks model and labels before Ray works."""
    from ezclip_cli.data.labels import build_prompts, labelset_fingerprint, load_labelset
    from ezclip_cli.model.scoring import scoring_id
    from ezclip_cli.tag.resume import settings_id
    from ezclip_cli.tag.run import build_predictor, score_options

    labelset = load_labelset(config.labels)
    prompts = build_prompts(labelset, config.templates or None, config.use_descriptions)
    _, settings, model_id = build_predictor(replace(config, device="cpu"), prompts, labelset.labels, spec, None)
    labels_id = scoring_id(labelset_fingerprint(prompts)[:16], score_options(config))
    return Stamp(model_id, labels_id, settings_id(config)), settings


def task_items(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """The dataset rows for `tasks`: path, video id, window bounds (NaN for a whole video)."""
    nan = float("nan")
    return [
        {
            "path": str(t.path),
            "video_id": t.video_id,
            "start": nan if t.start is None else t.start,
            "end": nan if t.end is None else t.end,
            "task_duration": nan if t.duration is None else t.duration,
        }
        for t in tasks
    ]


def build_dataset(
    tasks: Sequence[Task],
    config: TagConfig,
    sizing: RaySizing,
    model_args: dict[str, Any],
    settings: DecodeSettings,
) -> Any:
    """tasks -> decode (CPU tasks) -> model (actors) as a lazy Ray dataset of tag's rows."""
    import ray.data

    from ezclip_cli.engine.ray_data import TagClips, decode_clips

    blocks = max(1, math.ceil(len(tasks) / sizing.decode_batch))
    ds: Any = ray.data.from_items(task_items(tasks), override_num_blocks=blocks)
    decode_kwargs = {
        "num_frames": settings.num_frames,
        "image_size": settings.image_size,
        "decoder": settings.decoder,
        "seek": settings.seek,
    }
    ds = ds.map_batches(
        decode_clips,
        fn_kwargs=decode_kwargs,
        batch_size=sizing.decode_batch,
        num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=sizing.decode_workers),
        # Ray's own retries for a decoder lost with its worker or node. Also keeps this stage a pool of
        # CPU tasks of its own: Ray Data fuses a task stage into the next actor stage when their remote
        # arguments are equal, which would put decoding inside the model actors.
        max_retries=DECODE_RETRIES,
    )
    return ds.map_batches(
        TagClips,
        fn_constructor_kwargs={"config": config, **model_args},
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=sizing.model_workers),
        num_gpus=sizing.gpus_per_worker or None,
        num_cpus=0 if sizing.gpus_per_worker else 1,  # a GPU actor leaves its node's cores to the decoders
    )


def run_ray_tagging(
    inputs: Sequence[str],
    config: TagConfig,
    sizing: RaySizing,
    spec: ModelSpec,
    *,
    output: Path | None = None,
    overwrite: bool = False,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    writer: ResultWriter | None = None,
    progress: ProgressCallback | None = None,
) -> TagSummary:
    """Tag `inputs` on Ray; rows as `run_tagging` writes them (to `output`, resumable; `writer`; or stdout)."""
    from ezclip_cli.tag.output import RowWriter, open_for_append
    from ezclip_cli.tag.plan import plan_tasks, select_shard
    from ezclip_cli.tag.resume import load_existing, prepare_output, still_to_do, task_key
    from ezclip_cli.tag.segments import SegmentWriter
    from ezclip_cli.video.reader import list_videos

    ray = require_ray()
    started = time.perf_counter()
    neutralise = not config.raw_csv
    lock = sink = None
    started_ray = False
    summary = TagSummary()
    try:
        target, earlier = None, []
        if output is not None:
            if config.segments and output.exists() and output.stat().st_size and not overwrite:
                raise UsageError(f"--segments writes {output} whole and cannot resume it; --overwrite or another -o")
            target = resolve_target(output)
            lock = OutputLock(target).acquire()
            earlier = load_existing(target, config.output_format, config.top_k, overwrite, neutralise)
        found = list_videos(inputs, stdin=stdin, keep_missing=True)
        if not found:
            raise VideoError(f"no video files found in {', '.join(map(str, inputs))}")
        paths = select_shard(found, config.num_shards, config.shard_index)
        stamp, settings = model_stamp(config, spec)
        planned = list(plan_tasks(paths, config))
        done: dict = {}
        existing = 0
        if target is not None:
            done, existing = prepare_output(
                target, config.output_format, config.top_k, stamp, overwrite, earlier, [t.video_id for t in planned]
            )
        done_ids = set(done.values())
        todo = [t for t in planned if still_to_do(t, done, done_ids)]
        summary.skipped = len(planned) - len(todo)
        if target is not None:
            sink = open_for_append(target, config.output_format, config.top_k, existing, neutralise)
        elif writer is not None:
            sink = writer
        else:
            sink = RowWriter(stdout or sys.stdout, config.output_format, config.top_k, neutralise=neutralise)
        if config.segments:
            sink = SegmentWriter(sink)
        if progress is not None:
            progress(0, len(todo), 0, "")
        failed_early = [t for t in todo if isinstance(t, TagResult)]  # could not even be probed
        tasks: list[Task] = [t for t in todo if not isinstance(t, TagResult)]
        for result in failed_early:
            _write(sink, result.stamped(stamp), summary, len(todo), progress)
        if tasks:
            started_ray = _connect(ray, sizing)
            _quiet_ray_data(config.segments)
            model_args = spec.to_dict()  # every actor loads this very model (absolute paths, no second lookup)
            dataset = build_dataset(tasks, config, sizing, model_args, settings)
            written: set[tuple] = set()
            loop = time.perf_counter()
            for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                for record in batch.drop_columns(_extra(batch)).to_pylist():
                    result = TagResult.from_record(record)
                    if task_key(result) in written:  # never twice in one output, whatever a retry delivered
                        continue
                    written.add(task_key(result))
                    _write(sink, result, summary, len(todo), progress)
            summary.loop_seconds = time.perf_counter() - loop
        sink.close()
        sink = None
    finally:
        if sink is not None:
            sink.close()
        if lock is not None:
            lock.release()
        if started_ray:
            ray.shutdown()
    summary.seconds = time.perf_counter() - started
    log.info("%s", summary.line(bool(config.window), " on Ray"))
    return summary


def _write(
    sink: ResultWriter, result: TagResult, summary: TagSummary, expected: int, progress: ProgressCallback | None
) -> None:
    sink.write(result)
    summary.count(result)
    pause_point("rows", summary.total)  # tests stop the driver here, after a known number of rows
    if not result.ok:
        log.warning("%s: %s", result.path, result.error)
    if progress is not None:
        progress(summary.total, expected, summary.failed, "")


def _extra(batch: Any) -> list[str]:
    return [name for name in ("embedding",) if name in batch.column_names]


def _connect(ray: Any, sizing: RaySizing) -> bool:
    """Join the cluster at `sizing.address`, or this process's Ray, or start a local one; True if started here."""
    if ray.is_initialized():
        return False
    address = sizing.address or os.environ.get("RAY_ADDRESS") or None
    # log_to_driver off: the workers' own log lines would interleave with ezclip's progress on stderr.
    ray.init(address=address, log_to_driver=False, include_dashboard=False, configure_logging=False)
    return True


def _quiet_ray_data(keep_order: bool) -> None:
    """ezclip draws its own progress; Ray Data's bars off. Order kept only where rows are merged (--segments)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = keep_order
    context.execution_options.verbose_progress = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-run INFO lines are not ezclip's
