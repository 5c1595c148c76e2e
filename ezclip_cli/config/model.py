"""ModelConfig: what an EZ-CLIP model is, written into every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ezclip_cli.config.base import from_dict

DEFAULT_BACKBONE = "ViT-B-16-quickgelu"  # reference release: ViT-B/16 + OpenAI weights (docs/model.md section 1)
DEFAULT_PRETRAINED = "openai"


@dataclass(frozen=True)
class ModelConfig:
    """What an EZ-CLIP model is: the backbone it wraps and the learnable parts around it."""

    backbone: str = DEFAULT_BACKBONE  # open_clip name, or the path of an open_clip model-config JSON
    pretrained: str | None = DEFAULT_PRETRAINED  # open_clip tag, a local weights file, or None (random)
    num_frames: int = 8  # T, baked into the prompt tensor's shape (docs/model.md section 2)
    use_prompts: bool = True  # temporal visual prompts in every vision layer
    adapter_ratio: float = 0.25  # adapter hidden = int(ratio * D) (docs/model.md section 3)
    prompt_dropout: float = 0.1  # Dropout on P[l, t] before it seeds the prompt attention
    drop_path: float = 0.1  # stochastic depth, linspace(0, drop_path, L) over layers, per sample
    drop_path_positions: bool = False  # faithful: one DropPath draw per token position across the batch
    attn_dropout: float = 0.1  # the frozen attention's dropout in training (reference: same per-layer rate)
    # Filled in from the backbone once it is built; kept so a checkpoint describes itself.
    backbone_config: dict[str, Any] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return from_dict(cls, data)
