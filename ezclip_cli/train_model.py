"""The model a run trains: the frozen backbone with fresh or --init learned parts, and the forward DDP wraps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ezclip_cli.config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from ezclip_cli.backbone import Backbone
    from ezclip_cli.model import EZClip


def build_train_model(config: TrainConfig, device: str) -> tuple[EZClip, Backbone]:
    """The model in training mode on `device`, and its backbone (whose image size and normalisation the data uses)."""
    from ezclip_cli.backbone import load_backbone, text_transformer
    from ezclip_cli.model import build_model

    # Frozen backbone and learned parts, both drawn from the seed (the same on every rank).
    start = None
    if config.init:  # fine-tune a released or earlier model: its backbone and learned parts (--init)
        from ezclip_cli.loading import start_from

        backbone, start = start_from(config.init, config.num_frames, config.use_prompts, device)
    else:
        backbone = load_backbone(config.model, config.pretrained, device=device, seed=config.seed)
    model_config = ModelConfig(
        num_frames=config.num_frames,
        use_prompts=config.use_prompts,
        prompt_dropout=config.prompt_dropout,
        drop_path=config.drop_path,
        attn_dropout=config.attn_dropout,
        drop_path_positions=bool(config.drop_path_positions),
    )
    model = build_model(backbone, model_config, seed=config.seed).to(device)
    if start is not None:
        model.load_learned_state_dict(start)
    if config.grad_checkpointing:
        model.clip.visual.set_grad_checkpointing(True)
        text_transformer(model.clip).grad_checkpointing = True
    # Dropout and DropPath on; the backbone stays frozen (requires_grad False) but never runs
    # under no_grad: the prompts of layer 0 need gradients through every layer above.
    model.train()
    return model, backbone


class _TrainForward(nn.Module):
    """The one forward DDP wraps: per-frame video embeddings and text embeddings."""

    def __init__(self, model: EZClip):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_frames(video), self.model.encode_text(tokens)  # (B, T, D), (U, D)
