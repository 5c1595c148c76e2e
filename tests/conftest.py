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

from tests.helpers import REPO, TINY_CONFIG, CliResult, make_backbone, run_cli, run_main

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
