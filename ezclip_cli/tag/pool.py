"""Decoding for tagging: worker processes that turn tasks into model-ready pixels, in input order.

Only the sampled frames are decoded (video.read_frames), resized and centre-cropped as `ezclip
eval` does, and sent back as uint8: a quarter of float32 through the pipe. At most `window`
tasks are in flight, so memory is bounded however many or long the videos are.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ezclip_cli.errors import VideoError
from ezclip_cli.tag.plan import Task
from ezclip_cli.tag.results import TagResult
from ezclip_cli.video.reader import DecodeSettings

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class DecodedClip:
    """A task's frames ready for the model: uint8 (T, 3, S, S), their times (s) and the video's duration."""

    pixels: np.ndarray
    timestamps: tuple[float, ...]
    duration: float


Decoded = DecodedClip | str  # a clip, or the one-line reason it could not be decoded


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
    import ezclip_cli.video  # noqa: F401
    import ezclip_cli.video.preprocess  # noqa: F401


def decode_task(task: Task, settings: DecodeSettings) -> Decoded:
    """Frames of one task, resized and centre-cropped for the model, or the reason it failed."""
    from ezclip_cli.video.preprocess import eval_pixels
    from ezclip_cli.video.reader import read_frames

    size = settings.image_size
    try:
        clip = read_frames(
            task.path,
            settings.num_frames,
            start=task.start,
            end=task.end,
            short_side=int(size * 256 / 224),
            # auto = PyAV for tagging: faster than decord on typical clips (README, Performance) and the same
            # scaler, so the same pixels, for every runtime; decord only when asked for (--decoder decord).
            decoder="pyav" if settings.decoder == "auto" else settings.decoder,
            upscale=True,  # the decoder's scaler, both ways: numpy below only crops
            seek=settings.seek,
        )
    except VideoError as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug must not stop the batch either
        return f"could not decode: {type(exc).__name__}: {exc}".splitlines()[0]
    # One preprocessing for every runtime (PyTorch, ONNX, Ray, embed): the decoder scales the short side
    # to S*256/224 and numpy crops (and resizes what the decoder left, e.g. clips smaller than that), so
    # the same pixels reach a checkpoint and its exported bundle, and decoding workers import no torch.
    pixels = eval_pixels(clip.frames, size)
    return DecodedClip(pixels, tuple(round(t, 3) for t in clip.timestamps), clip.duration)


class DecodePool:
    """Decoded tasks in input order, at most `window` in flight (bounded memory).

    Worker processes start as soon as the pool exists, so create it before loading the model:
    their start-up then overlaps the model's. `workers=0` decodes in this process.
    """

    def __init__(self, workers: int, window: int):
        self.window = window
        self.pool: ProcessPoolExecutor | None = None
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
        self, tasks: Iterable[Task | TagResult], settings: DecodeSettings
    ) -> Iterator[tuple[Task, Decoded] | TagResult]:
        """(task, its decoded clip or error) per task, in input order; a result planned as failed passes through."""
        pending: deque[tuple[Task | TagResult, Future[Decoded] | None]] = deque()
        for task in tasks:
            pending.append((task, self._submit(task, settings)))
            while len(pending) >= self.window:
                yield self._result(*pending.popleft(), settings)
        while pending:
            yield self._result(*pending.popleft(), settings)

    def _submit(self, task: Task | TagResult, settings: DecodeSettings) -> Future[Decoded] | None:
        if isinstance(task, TagResult) or self.pool is None:
            return None  # already failed, or decoded lazily in _result (in-process)
        return self.pool.submit(decode_task, task, settings)

    def _result(
        self, task: Task | TagResult, handle: Future[Decoded] | None, settings: DecodeSettings
    ) -> tuple[Task, Decoded] | TagResult:
        if isinstance(task, TagResult):
            return task
        if handle is None:
            return task, decode_task(task, settings)
        try:
            return task, handle.result()
        except Exception as exc:  # a worker that died (e.g. a decoder crash) fails only its task
            return task, f"decoder process failed: {type(exc).__name__}"

    def close(self, abort: bool = False) -> None:
        """Stop the workers; `abort` (an interrupt, an error) ends them now instead of after their decode."""
        if self.pool is not None:
            if abort:  # shutdown() alone waits for decodes in progress; private, but the only handle on them
                for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                    process.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
