"""Tag many videos: decode in worker processes, batch through the model, write rows as they finish.

Stages: inputs -> shard -> skip what the output already holds -> decode (spawned workers,
a bounded number of clips in flight) -> batches of B clips through the model -> top-k rows
in input order. Peak memory is bounded by the in-flight window, not by the number of videos
or their length (only the sampled frames are decoded, docs/model.md section 8).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.files import OutputLock, resolve_target
from ezclip_cli.output import RowWriter, open_for_append, read_rows, scores_finite
from ezclip_cli.progress import ProgressCallback
from ezclip_cli.resume import load_existing, prepare_output, settings_id, still_to_do, video_key

if TYPE_CHECKING:
    from ezclip_cli.scoring import ScoreOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One prediction to make: a whole video, or one window of it."""

    path: Path
    video_id: str
    start: float | None = None
    end: float | None = None
    duration: float | None = None


@dataclass
class TagSummary:
    total: int = 0  # tasks (videos, or windows) considered in this shard
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output from an earlier run
    seconds: float = 0.0  # the whole run, model loading included
    loop_seconds: float = 0.0  # decoding + model + writing, after set-up


# ---- inputs ---------------------------------------------------------------------------------
def video_fingerprint(path: Path) -> str:
    """Identity of a video file for resume: `WHO.WHAT`, WHO from its resolved path (one file, however
    it is named), WHAT from its size and modification time (changed content)."""
    real = os.path.realpath(path)
    try:
        stat = os.stat(real)
        content = f"{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        content = "missing"
    return f"{hashlib.sha1(real.encode()).hexdigest()[:16]}.{hashlib.sha1(content.encode()).hexdigest()[:8]}"


def select_shard(paths: Sequence[Path], num_shards: int, shard_index: int) -> list[Path]:
    """Deterministic disjoint parts: a path's shard is a hash of the path, independent of order."""
    if num_shards == 1:
        return list(paths)
    # The resolved path: a job array may name the folder relatively in one job and absolutely in another.
    return [
        p for p in paths if int(hashlib.sha1(os.path.realpath(p).encode()).hexdigest(), 16) % num_shards == shard_index
    ]


def window_bounds(duration: float, window: float, stride: float | None) -> list[tuple[float, float]]:
    """[start, end) windows covering the video; the last one may be shorter."""
    stride = stride or window
    starts = [0.0]
    while starts[-1] + window < duration - 1e-6:
        starts.append(starts[-1] + stride)
    return [(round(s, 6), round(min(s + window, duration), 6)) for s in starts]


def plan_tasks(paths: Iterable[Path], config: TagConfig) -> Iterator[Task | dict[str, Any]]:
    """Tasks in input order; a video that cannot even be probed (window mode) yields an error row."""
    from ezclip_cli.segments import scene_bounds
    from ezclip_cli.video import probe_video

    paths = list(paths)
    for path in paths:
        vid = video_fingerprint(path)
        if config.window is None and config.scenes is None:
            yield Task(path, vid)
            continue
        try:
            info = probe_video(path, decoder=config.decoder)
            if config.scenes is not None:
                bounds = scene_bounds(path, config.scenes, len(paths), info.duration)
            else:
                assert config.window is not None  # the loop went on above when neither is set
                bounds = window_bounds(info.duration, config.window, config.stride)
        except VideoError as exc:
            yield error_row(Task(path, vid), str(exc))
            continue
        for start, end in bounds:
            yield Task(path, vid, start, end, info.duration)


# ---- decoding (runs in worker processes) ------------------------------------------------------
def _init_worker(parent: int | None = None) -> None:
    """Decoder worker start-up: die with ezclip's main process (no torch here: --runtime onnx has none)."""
    if parent is not None:
        _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """End this worker when ezclip's main process dies, even by SIGKILL (no chance to clean up there).

    Linux delivers SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); everywhere, a daemon
    thread also checks that the parent is still ours (an orphan is re-parented).
    """
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="ezclip-parent-watch", daemon=True).start()


def _warm_up() -> None:
    """Import the decoding stack in a worker while the main process loads the model (numpy + PyAV, no torch)."""
    import ezclip_cli.preprocess  # noqa: F401
    import ezclip_cli.video  # noqa: F401


def decode_task(task: Task, settings: dict[str, Any]) -> dict[str, Any]:
    """Frames of one task, resized and centre-cropped for the model, or the reason it failed."""
    from ezclip_cli.preprocess import eval_pixels
    from ezclip_cli.video import read_frames

    size = settings["image_size"]
    try:
        clip = read_frames(
            task.path,
            settings["num_frames"],
            start=task.start,
            end=task.end,
            short_side=int(size * 256 / 224),
            decoder=settings["decoder"],
        )
    except VideoError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a decoder bug must not stop the batch either
        return {"error": f"could not decode: {type(exc).__name__}: {exc}".splitlines()[0]}
    # (T, 3, S, S) uint8: a quarter of float32 through the pipe and in the in-flight window. The torch
    # runtime resizes as eval does (torchvision, 2-3x faster than numpy here); the ONNX runtime in numpy,
    # so it needs no torch at all (preprocess.eval_pixels, within one grey level of torchvision).
    if settings.get("torch_free"):
        pixels = eval_pixels(clip.frames, size)
    else:
        pixels = _torch_pixels(clip.frames, size)
    return {
        "pixels": pixels,
        "timestamps": [round(t, 3) for t in clip.timestamps],
        "duration": clip.duration,
    }


def _torch_pixels(frames: Any, image_size: int) -> Any:
    """uint8 (T, H, W, 3) numpy -> uint8 (T, 3, S, S) numpy through data.eval_resize_crop (as `ezclip eval`)."""
    import multiprocessing

    import numpy as np
    import torch

    from ezclip_cli.data import eval_resize_crop

    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)  # a decoder worker: the main process owns the cores for the model
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W)
    return eval_resize_crop(x, image_size).mul_(255).round_().to(torch.uint8).numpy()


class Decoder:
    """Decoded tasks in input order, at most `window` in flight (bounded memory).

    Worker processes start (and import torch) as soon as the decoder exists, so create it
    before loading the model: their start-up then overlaps the model's.
    """

    def __init__(self, workers: int, window: int):
        self.window = window
        self.pool = None
        if workers > 0:
            import multiprocessing as mp

            # spawn: decord and torch deadlock in forked workers.
            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            for _ in range(workers):
                self.pool.submit(_warm_up)

    def map(
        self, tasks: Iterable[Task | dict[str, Any]], settings: dict[str, Any]
    ) -> Iterator[tuple[Task | dict[str, Any], dict[str, Any] | None]]:
        self.settings = settings
        pending: deque[tuple[Any, Future | None]] = deque()
        for task in tasks:
            pending.append((task, self._submit(task)))
            while len(pending) >= self.window:
                yield self._result(*pending.popleft())
        while pending:
            yield self._result(*pending.popleft())

    def _submit(self, task: Task | dict[str, Any]) -> Future | None:
        if not isinstance(task, Task):
            return None  # already an error row
        if self.pool is None:
            return None  # decoded lazily in _result (in-process)
        return self.pool.submit(decode_task, task, self.settings)

    def _result(self, task: Any, handle: Future | None) -> tuple[Any, dict[str, Any] | None]:
        if not isinstance(task, Task):
            return task, None
        if handle is None:
            return task, decode_task(task, self.settings)
        try:
            return task, handle.result()
        except Exception as exc:  # a worker that died (e.g. a decoder crash) fails only its task
            return task, {"error": f"decoder process failed: {type(exc).__name__}"}

    def close(self, abort: bool = False) -> None:
        """Stop the workers; `abort` (an interrupt, an error) ends them now instead of after their decode."""
        if self.pool is not None:
            if abort:  # shutdown() alone waits for decodes in progress; private, but the only handle on them
                for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                    process.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)


# ---- model side ---------------------------------------------------------------------------------
def text_cache_path(prompts: list[list[str]], cache_dir: str | None, model_id: str) -> Path:
    """Where the text embeddings of `prompts` under model `model_id` are cached."""
    from ezclip_cli.labels import labelset_fingerprint

    folder = Path(cache_dir) if cache_dir else default_cache_dir() / "text"
    return folder / f"{model_id}-{labelset_fingerprint(prompts)[:16]}.safetensors"


def read_cached_classifier(prompts: list[list[str]], cache_dir: str | None, model_id: str, device: Any = "cpu") -> Any:
    """The cached text embeddings of a label set, or None (no model needed: re-labelling stored embeddings)."""
    path = text_cache_path(prompts, cache_dir, model_id)
    if path.is_file():
        try:
            from safetensors.torch import load_file

            return load_file(str(path))["classifier"].to(device)
        except Exception:  # a damaged cache entry is rebuilt
            log.debug("text cache %s unreadable; rebuilding", path)
    return None


def build_classifier(model: Any, prompts: list[list[str]], cache_dir: str | None, model_id: str) -> Any:
    """Text embeddings of the label set, cached on disk by model and prompt text."""
    import torch

    cached = read_cached_classifier(prompts, cache_dir, model_id, device=next(model.parameters()).device)
    if cached is not None:
        return cached
    path = text_cache_path(prompts, cache_dir, model_id)
    folder = path.parent
    with torch.inference_mode():
        classifier = model.build_text_classifier(prompts).float()
    try:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({"classifier": classifier.cpu().contiguous()}, str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("text cache not written: %s", exc)
    return classifier


def default_cache_dir() -> Path:
    base = os.environ.get("EZCLIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ezclip"
    )
    return Path(base)


class Predictor:
    """Batches of decoded clips -> top-k labels and scores (softmax over the label set by default)."""

    def __init__(
        self,
        model: Any,
        classifier: Any,
        labels: Sequence[str],
        top_k: int,
        device: str,
        score_options: ScoreOptions | None = None,
    ):
        import torch

        from ezclip_cli.scoring import Scorer

        self.model, self.classifier, self.labels = model, classifier, list(labels)
        self.top_k = min(top_k, len(labels))
        self.device = device
        mean = torch.tensor(model.backbone.mean).view(1, 1, 3, 1, 1)
        std = torch.tensor(model.backbone.std).view(1, 1, 3, 1, 1)
        self.mean, self.std = mean.to(device), std.to(device)
        self.autocast = device.startswith("cuda")
        self.scorer = None  # no label set (`ezclip embed`): only embeddings come out
        if classifier is not None:
            self.scorer = Scorer(classifier, model.logit_scale, labels, top_k, score_options)

    def embed(self, pixels: list[Any]) -> Any:
        """Normalised video embeddings (B, D) float32 of decoded clips (uint8 (T, 3, S, S) each)."""
        import numpy as np
        import torch

        video = torch.from_numpy(np.stack(pixels)).to(self.device)  # (B, T, 3, S, S) uint8
        video = (video.float() / 255 - self.mean) / self.std
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.autocast):
            return self.model.encode_video(video).float()

    def predict(self, pixels: list[Any]) -> tuple[Any, list[tuple[list[str], list[float]]]]:
        """(embeddings as a (B, D) float32 numpy array, ranked labels and scores per clip)."""
        embeddings = self.embed(pixels)
        scored = self.scorer(embeddings) if self.scorer is not None else [([], [])] * len(pixels)
        return embeddings.cpu().numpy(), scored

    def __call__(self, pixels: list[Any]) -> list[tuple[list[str], list[float]]]:
        return self.predict(pixels)[1]


# ---- rows ----------------------------------------------------------------------------------------
def error_row(task: Task, reason: str) -> dict[str, Any]:
    return {
        "path": str(task.path),
        "status": "error",
        "error": reason,
        "start": task.start,
        "end": task.end,
        "duration": task.duration,
        "labels": [],
        "scores": [],
        "num_frames": None,
        "timestamps": [],
        "video_id": task.video_id,
    }


def ok_row(task: Task, decoded: dict[str, Any], labels: list[str], scores: list[float]) -> dict[str, Any]:
    return {
        "path": str(task.path),
        "status": "ok",
        "error": None,
        "start": task.start,
        "end": task.end,
        "duration": round(decoded["duration"], 3),
        "labels": labels,
        "scores": scores,
        "num_frames": len(decoded["timestamps"]),
        "timestamps": decoded["timestamps"],
        "video_id": task.video_id,
    }


def task_key(task: Task) -> tuple:
    """The row key (resume.row_key) a task's row gets: the video, whatever its path spelling, and start."""
    return (video_key(task.video_id), None if task.start is None else round(task.start, 3))


# ---- the run ---------------------------------------------------------------------------------------
def run_tagging(
    inputs: Sequence[str],
    config: TagConfig,
    *,
    checkpoint: Path | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
    output: Path | None = None,
    overwrite: bool = False,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    progress: ProgressCallback | None = None,
    save_embeddings: Path | None = None,
) -> TagSummary:
    """Tag `inputs` and write rows to `output` (resumable) or `stdout`; returns the counts.

    `progress(done, total, failed, status)` hears about every finished task of this process.
    `save_embeddings`: also append every video's (window's) embedding to that store (embeddings.py).
    """
    from ezclip_cli.distributed import ProcessGroup
    from ezclip_cli.labels import build_prompts, labelset_fingerprint, load_labelset
    from ezclip_cli.video import list_videos

    started = time.perf_counter()
    group = ProcessGroup()  # under torchrun each rank tags a disjoint part; rank 0 writes
    decoder = None
    store = None
    lock = None
    aborted = True
    neutralise = not config.raw_csv
    try:
        from ezclip_cli.scoring import scoring_id
        from ezclip_cli.segments import SegmentWriter

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
        workers = default_workers() if config.workers < 0 else config.workers
        decoder = Decoder(workers, window=max(2 * workers, 1) + config.batch_size)  # starts workers now
        predictor, settings, model_id = build_predictor(
            config,
            prompts,
            labelset.labels,
            checkpoint,
            model,
            pretrained,
            num_frames,
            group.local_rank if group.world > 1 else None,
        )
        stamp = {"model_id": model_id, "labels_id": labels_id, "settings_id": settings_id(config)}
        if save_embeddings is not None:
            from ezclip_cli.embeddings import model_spec, open_store_for_tagging

            spec = model_spec(checkpoint, model, pretrained, num_frames)
            store = open_store_for_tagging(save_embeddings, predictor, model_id, spec, group.world)
        planned = list(plan_tasks(paths, config))

        done: dict = {}
        existing = 0
        if output is not None and group.is_main:
            # rows of an earlier distributed run that was killed count as part of the file
            leftover = [{k: v for k, v in r.items() if k != "_order"} for r in read_parts(parts_dir(output))]
            assert target is not None  # resolved above under the same condition
            done, existing = prepare_output(
                target, config.output_format, config.top_k, stamp, overwrite, earlier + leftover, planned, neutralise
            )
            remove_parts(parts_dir(output))
        done = group.broadcast(done)
        if store is not None:
            from ezclip_cli.embeddings import warn_unstored

            warn_unstored(done, store)
        done_ids = set(done.values())
        tasks = [(i, t) for i, t in enumerate(planned) if still_to_do(t, done, done_ids)]
        summary = TagSummary(skipped=len(planned) - len(tasks))
        if group.world > 1:
            shared = group.broadcast(str(parts_dir(output)) if output else tempfile.mkdtemp(prefix="ezclip-parts-"))
            writer: Any = PartWriter(Path(shared), group.rank)
            tasks = tasks[group.rank :: group.world]
        elif output is not None:
            assert target is not None  # a single process is the main one, so it resolved -o above
            writer = open_for_append(target, config.output_format, config.top_k, existing, neutralise)
        else:
            writer = RowWriter(stdout or sys.stdout, config.output_format, config.top_k, neutralise=neutralise)
        if config.segments:
            writer = SegmentWriter(writer)
        tag_tasks(tasks, config, decoder, settings, predictor, writer, stamp, summary, progress, store and store.sink)
        if group.world > 1:
            summary = merge_distributed(group, summary, Path(shared), target or output, stdout, config, existing)
        aborted = False
    finally:
        if decoder is not None:
            decoder.close(abort=aborted)
        if store is not None:
            store.close()
        if lock is not None:
            lock.release()
        group.close()
    summary.seconds = time.perf_counter() - started
    if group.is_main:
        log.info(
            "tagged %d %s: %d ok, %d failed, %d already done; %.1f s (%.2f/s)",
            summary.total,
            "windows" if config.window else "videos",
            summary.ok,
            summary.failed,
            summary.skipped,
            summary.seconds,
            summary.total / max(summary.seconds, 1e-9),
        )
    return summary


def build_predictor(
    config: TagConfig,
    prompts: list[list[str]],
    labels: Sequence[str],
    checkpoint: Path | None,
    model: str | None,
    pretrained: str | None,
    num_frames: int,
    local_rank: int | None,
) -> tuple[Any, dict[str, Any], str]:
    """The model side of tagging: (predictor, decoding settings, model id) for the chosen runtime."""
    if config.runtime == "onnx":
        from ezclip_cli.onnx_runtime import load_bundle_predictor

        if not score_options(config).is_default:
            raise UsageError("--score cosine, --threshold and --min-score need --runtime torch")
        bundle = checkpoint or model
        if bundle is None:
            raise UsageError("--runtime onnx needs an exported bundle: --model DIR (see `ezclip export`)")
        predictor, model_settings, model_id = load_bundle_predictor(
            bundle,
            config.labels,
            config.top_k,
            templates=config.templates or None,
            use_descriptions=config.use_descriptions,
        )
        # decord is imported after torch (it hangs otherwise), so "auto" means PyAV here: no torch at all.
        decoder = "pyav" if config.decoder == "auto" else config.decoder
        return predictor, {**model_settings, "decoder": decoder}, model_id
    from ezclip_cli.loading import load_model, model_identity, pick_device

    device = pick_device(config.device)
    if local_rank is not None and device.startswith("cuda"):
        device = f"cuda:{local_rank}"  # torchrun: one GPU per process
    ezclip = load_model(checkpoint, model, pretrained, num_frames, device=device)
    # A bundle is known by all its files (both runtimes alike): a swapped ONNX graph is another model.
    model_id = model_identity(ezclip, checkpoint if checkpoint is not None else model)
    classifier = build_classifier(ezclip, prompts, config.cache_dir, model_id)
    settings = {"num_frames": ezclip.num_frames, "image_size": ezclip.backbone.image_size, "decoder": config.decoder}
    return Predictor(ezclip, classifier, labels, config.top_k, device, score_options(config)), settings, model_id


def score_options(config: TagConfig) -> ScoreOptions:
    """The scoring choices of `config` (scoring.ScoreOptions)."""
    from ezclip_cli.scoring import ScoreOptions

    return ScoreOptions(config.score, config.threshold, config.min_score)


def tag_tasks(
    tasks: list[tuple[int, Any]],
    config: TagConfig,
    decoder: Decoder,
    settings: dict[str, Any],
    predictor: Predictor,
    writer: Any,
    stamp: dict[str, str],
    summary: TagSummary,
    progress: ProgressCallback | None,
    sink: Any = None,
) -> None:
    """The pipeline proper: decode (workers) -> batch -> predict -> write, rows in task order."""
    report = progress or None  # callers that still pass progress=False mean "no progress"
    if report is not None:
        report(0, len(tasks), 0, "")
    order = {id(task): index for index, task in tasks}

    def emit(row: dict[str, Any], task: Any) -> None:
        row.update(stamp)
        if isinstance(writer, PartWriter):
            row["_order"] = order[id(task)]  # so rank 0 can merge the parts in input order
        writer.write(row)
        summary.total += 1
        if row["status"] == "ok":
            summary.ok += 1
        else:
            summary.failed += 1
            log.warning("%s: %s", row["path"], row["error"])
        if report is not None:
            report(summary.total, len(tasks), summary.failed, "")

    loop_started = time.perf_counter()
    try:
        pending: list[tuple[Any, dict[str, Any] | None]] = []  # input order, errors included
        for task, decoded in decoder.map((task for _, task in tasks), settings):
            pending.append((task, decoded))
            if sum(1 for _, d in pending if d is not None and "pixels" in d) >= config.batch_size:
                flush_batch(pending, predictor, emit, sink)
        flush_batch(pending, predictor, emit, sink)
    finally:
        writer.close()
    summary.loop_seconds = time.perf_counter() - loop_started


# ---- torchrun: parts written per rank, merged by rank 0 --------------------------------------------
def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


class PartWriter:
    """One rank's rows as JSONL in the shared parts folder (line-oriented, so kills lose nothing)."""

    def __init__(self, folder: Path, rank: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.stream = open(folder / f"rank{rank}.{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def write(self, row: dict[str, Any]) -> None:
        self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def read_parts(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        rows += read_rows(part, "jsonl")
    return sorted(rows, key=lambda r: r.get("_order", 0))


def remove_parts(folder: Path) -> None:
    if folder.is_dir():
        for part in folder.glob("*.jsonl"):
            part.unlink()
        folder.rmdir()


def merge_distributed(
    group: Any,
    summary: TagSummary,
    folder: Path,
    output: Path | None,
    stdout: IO[str] | None,
    config: TagConfig,
    existing: int,
) -> TagSummary:
    """Rank 0 writes every rank's rows, in input order, to the one output; counts are summed."""
    group.barrier()
    summaries = group.gather(summary)
    total = TagSummary(skipped=summary.skipped, loop_seconds=max(s.loop_seconds for s in summaries))
    for s in summaries:
        total.total, total.ok, total.failed = total.total + s.total, total.ok + s.ok, total.failed + s.failed
    if group.is_main:
        rows = read_parts(folder)
        neutralise = not config.raw_csv
        if output is not None:
            writer: Any = open_for_append(output, config.output_format, config.top_k, existing, neutralise)
        else:
            writer = RowWriter(stdout or sys.stdout, config.output_format, config.top_k, neutralise=neutralise)
        for row in rows:
            row.pop("_order", None)
            writer.write(row)
        writer.close()
        remove_parts(folder)
    group.barrier()
    return total


def flush_batch(
    pending: list[tuple[Any, dict[str, Any] | None]],
    predictor: Predictor,
    emit: Callable[[dict[str, Any], Any], None],
    sink: Any = None,
) -> None:
    """Predict the decoded clips of `pending` in one batch, then emit every row in input order.

    `sink(decoded_tasks, embeddings)` (the embedding store) gets the batch before its rows are written,
    so a row in the output always has its embedding stored.
    """
    clips = [decoded["pixels"] for _, decoded in pending if decoded is not None and "pixels" in decoded]
    if clips and sink is not None:
        embeddings, scored = predictor.predict(clips)
        sink([(t, d) for t, d in pending if d is not None and "pixels" in d], embeddings)
        results = iter(scored)
    else:
        results = iter(predictor(clips) if clips else [])
    for task, decoded in pending:
        if decoded is None:  # an error row planned before decoding
            emit(dict(task), task)
        elif "error" in decoded:
            emit(error_row(task, decoded["error"]), task)
        else:
            labels, scores = next(results)
            if scores_finite(scores):
                emit(ok_row(task, decoded, labels, scores), task)
            else:  # NaN is no score (and not JSON): the model's weights are broken
                emit(
                    error_row(task, "the model gave non-finite scores (NaN or infinity); its weights are corrupt"), task
                )
    pending.clear()


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def tag_videos(
    inputs: Sequence[str | Path],
    labels: str,
    *,
    checkpoint: str | Path | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
    save_embeddings: str | Path | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Library entry point: tag videos and return the rows as dicts (only `save_embeddings`, a store, is written)."""
    import io
    import json

    config = TagConfig(labels=labels, output_format="jsonl", **options)
    buffer = io.StringIO()
    run_tagging(
        [str(i) for i in inputs],
        config,
        checkpoint=Path(checkpoint) if checkpoint else None,
        model=model,
        pretrained=pretrained,
        num_frames=num_frames,
        stdout=buffer,
        save_embeddings=Path(save_embeddings) if save_embeddings else None,
    )
    return [json.loads(line) for line in buffer.getvalue().splitlines()]
