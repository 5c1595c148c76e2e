"""The vision block's restructured prompt path against the textbook form of EZ-CLIP section 2.

The textbook form appends q_t to frame t's tokens, runs the block's own attention over the N+1
tokens and then drops the extra token. The model computes the same thing without the copy (the
prompt only serves as a key/value); these tests pin that the numbers and gradients agree.
"""

from __future__ import annotations

import pytest
import torch

from ezclip_cli.config import ModelConfig
from ezclip_cli.model.ezclip import VisionBlock, build_model, prompted_attention
from tests.helpers import make_backbone

T = 8


def textbook_forward(self: VisionBlock, q_x, k_x=None, v_x=None, attn_mask=None):
    """The prompt step as EZ-CLIP (arXiv 2312.08010) describes it: concatenate, attend, drop the prompt token."""
    blk, x = self.block, q_x
    BT, N, D = x.shape
    x = torch.cat([x, self._prompt_tokens(x).reshape(BT, 1, D)], dim=1)
    x = x + self._drop(blk.ls_1(blk.attention(blk.ln_1(x))))
    x = self.adapter(x[:, :N])
    return x + self._drop(blk.ls_2(blk.mlp(blk.ln_2(x))))


def trained_like_model():
    model = build_model(make_backbone(0), ModelConfig(num_frames=T), seed=0)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # adapters away from identity, so every path carries signal
        for p in model.learned_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def video(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, T, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("grad", [False, True])
def test_prompt_path_matches_the_textbook_form(monkeypatch, grad):
    model = trained_like_model().eval()
    clip = video()
    with torch.set_grad_enabled(grad):
        ours = model.encode_frames(clip)
        if grad:
            ours.square().sum().backward()
            ours_grads = {n: p.grad.clone() for n, p in model.learned_named_parameters() if n.startswith("vision")}
            model.zero_grad(set_to_none=True)
        monkeypatch.setattr(VisionBlock, "forward", textbook_forward)
        expected = model.encode_frames(clip)
        if grad:
            expected.square().sum().backward()
    assert (ours - expected).abs().max().item() <= 1e-5
    if grad:
        theirs = dict(model.learned_named_parameters())
        assert len(ours_grads) == 2 * 5  # per layer: the prompt and the adapter's four tensors
        for name, mine in ours_grads.items():
            assert torch.allclose(mine, theirs[name].grad, atol=1e-5, rtol=1e-4), name


def test_prompted_attention_is_multihead_attention_on_the_kept_rows():
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    tokens = torch.randn(6, 11, 64)
    with torch.no_grad():
        expected = attn(tokens, tokens, tokens, need_weights=False)[0][:, :10]
        ours = prompted_attention(attn, tokens, 10)
    assert ours.shape == (6, 10, 64) and ours.is_contiguous()
    assert (ours - expected).abs().max().item() <= 1e-6


def test_training_mode_without_dropout_matches_too(monkeypatch):
    model = build_model(
        make_backbone(0), ModelConfig(num_frames=T, drop_path=0.0, attn_dropout=0.0, prompt_dropout=0.0), seed=0
    ).train()
    clip = video(1)
    ours = model.encode_frames(clip)
    monkeypatch.setattr(VisionBlock, "forward", textbook_forward)
    assert (ours - model.encode_frames(clip)).abs().max().item() <= 1e-5
