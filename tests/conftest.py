"""Shared fixtures: the tiny random-weight open_clip backbone, an isolated ezclip cache, the CLI runner.

Plain helpers (paths, `make_backbone`, `run_cli`/`run_main`, file writers) live in tests/helpers.py;
they are re-exported here for test files that import them from conftest.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    BALL_CLASSES,
    BALL_DIRECTIONS,
    REPO,
    TINY_CONFIG,
    UCF_DIRECTIONS,
    UCF_RENDERED_CLASSES,
    UCF_TRAIN_GROUPS,
    CliResult,
    make_backbone,
    put,
    run_cli,
    run_main,
    tiny_eval_model,
)
from tests.media import moving_ball_frames, write_broken, write_video

__all__ = ["REPO", "TINY_CONFIG", "make_backbone", "run_main"]

# Never reach for a hub in tests: every backbone is random or written by the test itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests run inside a SLURM array task must not have `ezclip tag` pick a shard of their inputs.
for _name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session", autouse=True)
def isolated_ezclip_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Text-embedding caches go to a temporary folder, never to the user's ~/.cache/ezclip."""
    folder = tmp_path_factory.mktemp("ezclip-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EZCLIP_CACHE", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def no_logging_leaks() -> Iterator[None]:
    """Whatever a test does to ezclip's loggers (a CLI run points a handler at capsys's stderr, which
    closes with the test) is undone, so a later test never logs into a closed stream."""
    loggers = [logging.getLogger("ezclip_cli")] + [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("ezclip_cli.") and isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.fixture(scope="session")
def tiny_config_path() -> Path:
    return TINY_CONFIG


@pytest.fixture
def tiny_backbone():
    return make_backbone(0)


@pytest.fixture
def plain_and_backbone():
    """A backbone and an untouched deep copy of its open_clip model, for equivalence checks."""
    backbone = make_backbone(0)
    return backbone, copy.deepcopy(backbone.clip)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """`cli("tag", ..., stdin=None)`: `ezclip ...` in this process -> CliResult(code, out, err)."""
    return functools.partial(run_cli, capsys=capsys)


@pytest.fixture(scope="module")
def ucf_videos(tmp_path_factory) -> Path:
    """A rendered UCF101-layout root: 3 classes, test group g = fold g, a few training videos."""
    root = tmp_path_factory.mktemp("ucf_rendered")
    put(root / "ucfTrainTestlist/classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_RENDERED_CLASSES)))
    train, test = {f: [] for f in (1, 2, 3)}, {f: [] for f in (1, 2, 3)}
    for i, name in enumerate(UCF_RENDERED_CLASSES):
        for g in range(1, 4 + UCF_TRAIN_GROUPS[i]):
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            path = root / "UCF-101" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, moving_ball_frames(8, 32, UCF_DIRECTIONS[i], seed=g), codec="mpeg4")
            for fold in (1, 2, 3):
                (test[fold].append(rel + "\n") if g == fold else train[fold].append(f"{rel} {i + 1}\n"))
    for fold in (1, 2, 3):
        put(root / f"ucfTrainTestlist/trainlist0{fold}.txt", "".join(train[fold]))
        put(root / f"ucfTrainTestlist/testlist0{fold}.txt", "".join(test[fold]))
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[Path]:
    from ezclip_cli.model.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for seed, kshot in ((1, 2), (2, 4)):
        extra = {"train_config": {"dataset": "k400", "kshot": kshot, "seed": seed, "base_novel": "base"}}
        paths.append(save_checkpoint(folder / f"seed{seed}.ezclip", tiny_eval_model(seed), extra=extra))
    return paths


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on shared 2-vCPU machines two OpenMP threads spin at every barrier while
    the other vCPU is taken (measured: 0.10 s per motion step with one thread, 1.16 s with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> Path:
    """Rendered mp4 clips of the four classes, list files for train/val, and one broken video."""
    folder = tmp_path_factory.mktemp("clips")
    lines = {"train": [], "val": []}
    for split, per_class in (("train", 3), ("val", 1)):
        for c, (label, direction) in enumerate(zip(BALL_CLASSES, BALL_DIRECTIONS)):
            for i in range(per_class):
                seed = 100 * c + i + (50 if split == "val" else 0)
                draw = torch.randint(120, 256, (3,), generator=torch.Generator().manual_seed(seed))
                color = tuple(int(v) for v in draw)
                frames = moving_ball_frames(16, 36, direction, radius=0.25, color=color, seed=seed)
                name = f"{split}/{direction}_{i}.mp4"
                (folder / split).mkdir(exist_ok=True)
                write_video(folder / name, frames)
                lines[split].append(f"{name}\t{label}")
    write_broken(folder / "train" / "broken.mp4", "truncated")
    (folder / "train.txt").write_text("\n".join(lines["train"]) + "\n", encoding="utf-8")
    with_broken = lines["train"] + [f"train/broken.mp4\t{BALL_CLASSES[0]}"]
    (folder / "train_with_broken.txt").write_text("\n".join(with_broken) + "\n")
    (folder / "val.txt").write_text("\n".join(lines["val"]) + "\n", encoding="utf-8")
    return folder
