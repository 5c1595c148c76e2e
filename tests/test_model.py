"""Invariants of the EZ-CLIP model (docs/model.md sections 2-7)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ezclip_cli.config import ModelConfig
from ezclip_cli.model.ezclip import build_model, drop_path, ezclip_loss, motion_loss, soft_target_kl_loss
from tests.helpers import make_backbone

T = 8


def tiny_model(use_prompts: bool = True, seed: int = 0, num_frames: int = T, **config):
    torch.manual_seed(seed)
    config = ModelConfig(num_frames=num_frames, use_prompts=use_prompts, **config)
    return build_model(make_backbone(seed), config, seed=seed)


def random_video(batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, T, 3, 32, 32, generator=g)  # (B, T, 3, H, W)


@pytest.mark.parametrize(
    "name, expected",
    [("ViT-B-16", 5_204_736), ("ViT-L-14", 16_360_704)],
)
def test_trainable_parameter_count_matches_the_paper(name, expected):
    from ezclip_cli.model.backbone import load_backbone

    model = build_model(load_backbone(name, None, meta=True), ModelConfig(num_frames=8))
    counts = model.parameter_breakdown()
    assert counts["trainable"] == expected
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    if name == "ViT-B-16":
        assert counts["prompts"] == 12 * 8 * 768
        assert counts["vision_adapters"] == 3_550_464
        assert counts["text_adapters"] == 1_580_544


def test_every_learned_parameter_gets_a_gradient_and_the_backbone_never_changes():
    # No stochastic depth here: a dropped branch legitimately has no gradient on that step.
    model = tiny_model(drop_path=0.0, attn_dropout=0.0, prompt_dropout=0.0)
    model.train()
    frozen_before = {n: p.detach().clone() for n, p in model.clip.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW(model.learned_parameters(), lr=1e-2)
    learned_ids = {id(p) for p in model.learned_parameters()}
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == learned_ids
    assert all(not p.requires_grad for p in model.parameters() if id(p) not in learned_ids)

    # Two steps: after the first, fc2 is non-zero so fc1 receives gradient too.
    labels = torch.tensor([0, 1])
    for _ in range(2):
        frames = model.encode_frames(random_video())
        text = model.encode_text(model.tokenize(["a ball moving left", "a ball moving right"]))
        loss = ezclip_loss(frames, text, labels, model.logit_scale)["loss"]
        optimizer.zero_grad()
        loss.backward()
        for name, p in model.learned_named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        optimizer.step()
    for name, p in model.learned_named_parameters():
        assert p.grad.abs().sum() > 0, f"{name} received no gradient"
    for n, p in model.clip.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"frozen weight {n} changed"
            assert p.grad is None


def test_prompts_off_and_adapters_at_init_is_exactly_clip_frame_averaging(plain_and_backbone):
    backbone, plain = plain_and_backbone
    model = build_model(backbone, ModelConfig(num_frames=T, use_prompts=False)).eval()
    video = random_video()
    tokens = model.tokenize(["a photo of action surfing", "a video of juggling"])
    with torch.no_grad():
        ours = model.encode_video(video)
        expected = F.normalize(plain.encode_image(video.flatten(0, 1)).view(2, T, -1).mean(1), dim=-1)
        assert (ours - expected).abs().max().item() <= 1e-5
        assert (model.encode_text(tokens) - plain.encode_text(tokens)).abs().max().item() <= 1e-5


def test_frame_order_matters_with_prompts_only():
    video = random_video()
    reversed_video = video.flip(1)
    with torch.no_grad():
        on = tiny_model(use_prompts=True).eval()
        on_diff = (on.encode_video(video) - on.encode_video(reversed_video)).abs().max().item()
        off = tiny_model(use_prompts=False).eval()
        off_diff = (off.encode_video(video) - off.encode_video(reversed_video)).abs().max().item()
    # Off: only summation order differs (~1e-7). On, at init, the effect is small but real.
    assert off_diff < 1e-6
    assert on_diff > 20 * max(off_diff, 1e-7) and on_diff > 1e-5


def test_same_seed_same_output():
    video = random_video()
    with torch.no_grad():
        a = tiny_model(seed=3).eval().encode_video(video)
        b = tiny_model(seed=3).eval().encode_video(video)
        c = tiny_model(seed=4).eval().encode_video(video)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_prompt_init_and_adapter_identity():
    model = tiny_model()
    bound = (6.0 / (3 * 16 * 16 + 64)) ** 0.5
    assert model.prompts.shape == (2, T, 64)  # (L, T, D)
    assert model.prompts.abs().max() <= bound
    fc2 = [p for name, p in model.learned_named_parameters() if ".fc2." in name]
    assert fc2 and all(torch.count_nonzero(p) == 0 for p in fc2)  # adapters start as the identity
    hidden = model.clip.visual.transformer.resblocks[0].adapter.fc1.out_features
    assert hidden == 16  # int(0.25 * 64)


def test_wrong_frame_count_is_refused():
    with pytest.raises(ValueError, match="8 frames"):
        tiny_model().encode_frames(torch.zeros(1, 4, 3, 32, 32))


def test_soft_target_kl_matches_hand_computation():
    torch.manual_seed(0)
    video, text = torch.randn(3, 5), torch.randn(3, 5)
    labels = torch.tensor([0, 1, 0])
    v, t = F.normalize(video, dim=-1), F.normalize(text, dim=-1)
    sim = 100 * v @ t.t()
    same = (labels[:, None] == labels[None, :]).float()
    target = torch.exp(10 * same) / torch.exp(10 * same).sum(1, keepdim=True)

    def kl(logits):
        logp = torch.log_softmax(logits, 1)
        return (target * (target.log() - logp)).sum(1).mean()

    expected = (kl(sim) + kl(sim.t())) / 2
    assert torch.allclose(soft_target_kl_loss(video, text, labels, 100.0), expected, atol=1e-5)


def test_motion_loss_matches_hand_computation():
    frames = torch.tensor([[[0.0], [1.0], [3.0]]])  # (B=1, T=3, D=1)
    # central diffs with clamped ends: (1-0)/2, (3-0)/2, (3-1)/2 -> mean 1.0; variance of 0,1,3 (unbiased) = 7/3
    expected = 1.0 / (1.0 + 7.0 / 3.0 + 1.0)
    assert motion_loss(frames).item() == pytest.approx(expected, rel=1e-6)
    assert motion_loss(torch.zeros(2, 8, 4)).item() == pytest.approx(1.0)  # static video: maximal loss


def test_motion_weight_zero_disables_motion_term():
    frames, text = torch.randn(2, T, 8), torch.randn(2, 8)
    labels = torch.tensor([0, 1])
    off = ezclip_loss(frames, text, labels, 100.0, motion_weight=0.0)
    on = ezclip_loss(frames, text, labels, 100.0, motion_weight=1.0)
    assert off["loss"] == pytest.approx(off["kl"].item())
    assert on["loss"].item() == pytest.approx(on["kl"].item() + on["motion"].item(), rel=1e-6)


def test_drop_path_drops_whole_videos():
    torch.manual_seed(0)
    x = torch.ones(6 * T, 5, 4)  # (B*T, N, D)
    out = drop_path(x, 0.5, training=True, group=T).view(6, T, -1)
    per_video = out.flatten(1)
    for row in per_video:  # each video either all kept (scaled) or all dropped
        assert torch.all(row == 0) or torch.all(row == 2.0)
    assert torch.equal(drop_path(x, 0.5, training=False, group=T), x)


def test_dropout_only_in_training():
    model = tiny_model()
    video = random_video()
    with torch.no_grad():
        model.eval()
        a, b = model.encode_video(video), model.encode_video(video)
        assert torch.equal(a, b)
        model.train()
        c = model.encode_video(video)
    assert not torch.allclose(a, c)
