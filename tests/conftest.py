"""Shared fixtures: a tiny random-weight open_clip backbone and its config file."""
from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "backbones" / "tiny-vit.json"

# Never reach for a hub in tests: every backbone is random or written by the test itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests run inside a SLURM array task must not have `ezclip tag` pick a shard of their inputs.
for _name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def tiny_config_path() -> Path:
    return TINY_CONFIG


def make_backbone(seed: int = 0, config: Path = TINY_CONFIG):
    import torch

    from ezclip_cli.backbone import load_backbone

    torch.manual_seed(seed)
    return load_backbone(str(config), None, seed=seed)


@pytest.fixture
def tiny_backbone():
    return make_backbone(0)


@pytest.fixture
def plain_and_backbone():
    """A backbone and an untouched deep copy of its open_clip model, for equivalence checks."""
    backbone = make_backbone(0)
    return backbone, copy.deepcopy(backbone.clip)


def run_main(*args: str, capsys) -> tuple[int, str]:
    """`ezclip ARGS` in this process (known errors -> one line and an exit code, as in a shell).

    Returns the exit code and what went to stderr; the logging set-up the CLI makes is undone.
    """
    from ezclip_cli.cli import main

    package = logging.getLogger("ezclip_cli")
    saved = (package.handlers[:], package.level, package.propagate)  # the CLI points a handler at capsys's stderr
    argv = sys.argv
    sys.argv = ["ezclip", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
        package.handlers[:], package.level, package.propagate = saved
    return code, capsys.readouterr().err
