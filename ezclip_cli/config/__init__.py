"""Configs, one frozen dataclass per concern; each checks itself in __post_init__ with the CLI's messages.

ModelConfig   what an EZ-CLIP model is (written into every checkpoint and bundle)
TagConfig     how `ezclip tag` runs
TrainConfig   how `ezclip train` runs
EvalConfig    how `ezclip eval` runs
"""

from ezclip_cli.config.base import dump_yaml, from_dict, load_yaml
from ezclip_cli.config.eval import EvalConfig
from ezclip_cli.config.model import DEFAULT_BACKBONE, DEFAULT_PRETRAINED, ModelConfig
from ezclip_cli.config.tag import TagConfig
from ezclip_cli.config.train import PRECISIONS, TrainConfig

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_PRETRAINED",
    "PRECISIONS",
    "EvalConfig",
    "ModelConfig",
    "TagConfig",
    "TrainConfig",
    "dump_yaml",
    "from_dict",
    "load_yaml",
]
