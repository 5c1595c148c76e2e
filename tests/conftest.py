"""Shared fixtures: a tiny random-weight open_clip backbone (testing.md) and its config file."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "backbones" / "tiny-vit.json"

# Never reach for a hub in tests: every backbone is random or written by the test itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
