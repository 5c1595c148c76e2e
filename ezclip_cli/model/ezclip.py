"""EZ-CLIP: a frozen open_clip CLIP with temporal visual prompts and adapters (docs/model.md 2-7).

The open_clip model is kept whole; each of its transformer blocks is wrapped so that
open_clip's own `encode_image` / `encode_text` (patch embedding, pooling, projections,
gradient checkpointing) run unchanged around our additions:

    vision block l:  prompt q = DropPath(Attn_l(LN1_l(Dropout(P[l]) + mean_tokens(x))))  across T
                     x = x + Attn_l(LN1_l([x; q_t]))  -> drop q   -> x + Adapter(x)  -> x + MLP_l(LN2_l(x))
    text block l:    x = x + Attn_l(LN1_l(x), causal) -> x + Adapter(x) -> x + MLP_l(LN2_l(x))

Dims: B videos, T frames, N tokens per frame (CLS + patches), D width, K classes, L layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ezclip_cli.config import ModelConfig
from ezclip_cli.model.backbone import Backbone, text_transformer

if TYPE_CHECKING:
    # open_clip ships no type information, so mypy reads this as Any; it names what is wrapped.
    from open_clip.transformer import ResidualAttentionBlock


class Adapter(nn.Module):
    """x -> x + W2 GELU(W1 x + b1) + b2, W2/b2 zero-initialised: identity at init (docs/model.md 3)."""

    def __init__(self, width: int, ratio: float = 0.25):
        super().__init__()
        hidden = int(ratio * width)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool, group: int = 1, positions: bool = False) -> torch.Tensor:
    """Stochastic depth per sample: rows [g*group, (g+1)*group) share one draw.

    With `group=T` the frames of one video are dropped together (ours). `positions=True` is the
    reference's behaviour (faithful switch): its sequence-first layout made the draw one per token
    position (dim 1 here), shared by every sample of the batch.
    """
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    if positions:
        mask = torch.empty((1, x.shape[1]) + (1,) * (x.ndim - 2), device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep
    draws = x.shape[0] // group
    mask = torch.empty((draws,) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask.repeat_interleave(group, dim=0) / keep


class WrappedBlock(nn.Module):
    """Base of our block wrappers: open_clip asks its blocks for their weight dtype."""

    block: ResidualAttentionBlock
    drop_positions = False  # DropPath over token positions (faithful); set from ModelConfig.drop_path_positions

    def get_weight_dtype(self) -> torch.dtype:
        return self.block.get_weight_dtype()


class TextBlock(WrappedBlock):
    """A frozen open_clip text block with an adapter between attention and MLP."""

    def __init__(self, block: ResidualAttentionBlock, adapter: Adapter, drop_path_rate: float):
        super().__init__()
        self.block = block
        self.adapter = adapter
        self.drop_path_rate = drop_path_rate

    def forward(
        self,
        q_x: torch.Tensor,
        k_x: torch.Tensor | None = None,
        v_x: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:  # signature of open_clip's blocks
        blk = self.block
        x = q_x + self._drop(blk.ls_1(blk.attention(blk.ln_1(q_x), attn_mask=attn_mask)))  # (K, 77, D)
        x = self.adapter(x)
        return x + self._drop(blk.ls_2(blk.mlp(blk.ln_2(x))))

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_path_rate, self.training, positions=self.drop_positions)


class VisionBlock(WrappedBlock):
    """A frozen open_clip vision block with a temporal prompt token and an adapter (docs/model.md 2)."""

    def __init__(
        self,
        block: ResidualAttentionBlock,
        adapter: Adapter,
        num_frames: int,
        prompt: nn.Parameter | None,
        prompt_dropout: float,
        drop_path_rate: float,
    ):
        super().__init__()
        self.block = block
        self.adapter = adapter
        self.num_frames = num_frames
        self.prompt = prompt  # (T, D) or None when prompts are off
        self.prompt_dropout = nn.Dropout(prompt_dropout)
        self.drop_path_rate = drop_path_rate

    def forward(
        self,
        q_x: torch.Tensor,
        k_x: torch.Tensor | None = None,
        v_x: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        blk, x = self.block, q_x  # x: (B*T, N, D), frames of a video contiguous
        BT, N, D = x.shape
        if self.prompt is None or not _packed_attention(blk.attn):
            if self.prompt is not None:  # an unusual attention module: the plain form, [x; q] through it
                x = torch.cat([x, self._prompt_tokens(x).reshape(BT, 1, D)], dim=1)  # (B*T, N+1, D)
            x = (x + self._drop(blk.ls_1(blk.attention(blk.ln_1(x)))))[:, :N]
        else:
            q = self._prompt_tokens(x)  # (B, T, D)
            # LayerNorm acts per token, so LN1([x; q_t]) = [LN1(x); LN1(q_t)]. The prompt token's own output
            # is dropped, so only the N frame tokens need queries: the result stays (B*T, N, D), contiguous,
            # with no slice and no copy of the residual stream (EZ-CLIP, arXiv 2312.08010: temporal prompting).
            keys = torch.cat([blk.ln_1(x), blk.ln_1(q).reshape(BT, 1, D)], dim=1)  # (B*T, N+1, D)
            x = x + self._drop(blk.ls_1(prompted_attention(blk.attn, keys, N)))
        x = self.adapter(x)  # the prompt token is not part of x any more: it never reaches the MLP
        return x + self._drop(blk.ls_2(blk.mlp(blk.ln_2(x))))

    def _prompt_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """q = DropPath(Attn(LN1(Dropout(P) + mean of each frame's tokens))) across the T frames: (B, T, D)."""
        blk, (BT, N, D), T = self.block, x.shape, self.num_frames
        seeds = self.prompt_dropout(self.prompt).to(x.dtype) + x.view(BT // T, T, N, D).mean(dim=2)  # (B, T, D)
        return drop_path(
            blk.attention(blk.ln_1(seeds)), self.drop_path_rate, self.training, positions=self.drop_positions
        )

    def _drop(self, x: torch.Tensor) -> torch.Tensor:  # (B*T, ...): one draw per video
        return drop_path(x, self.drop_path_rate, self.training, group=self.num_frames, positions=self.drop_positions)


def prompted_attention(attn: nn.MultiheadAttention, tokens: torch.Tensor, num_queries: int) -> torch.Tensor:
    """`attn` over `tokens` (M, S, D), returning only the outputs of the first `num_queries` positions.

    Same numbers as `attn(tokens, tokens, tokens)[0][:, :num_queries]` (the packed projection, then
    scaled_dot_product_attention, as nn.MultiheadAttention does), but the out-projection runs only on
    the rows that are kept and the result is contiguous. Attention dropout applies in training only.
    """
    M, S, D = tokens.shape
    heads = attn.num_heads
    qkv = F.linear(tokens, attn.in_proj_weight, attn.in_proj_bias)  # (M, S, 3D): one matmul, as open_clip's
    q, k, v = qkv.view(M, S, 3, heads, D // heads).permute(2, 0, 3, 1, 4)  # each (M, heads, S, D/heads)
    dropout = attn.dropout if attn.training else 0.0
    out = F.scaled_dot_product_attention(q[:, :, :num_queries], k, v, dropout_p=dropout)  # (M, heads, n, D/heads)
    return attn.out_proj(out.transpose(1, 2).reshape(M, num_queries, D))


def _packed_attention(attn: nn.Module) -> bool:
    """An nn.MultiheadAttention that `prompted_attention` reproduces exactly (open_clip builds these)."""
    return (
        isinstance(attn, nn.MultiheadAttention)
        and attn._qkv_same_embed_dim
        and attn.batch_first
        and attn.in_proj_bias is not None
        and attn.bias_k is None
        and not attn.add_zero_attn
    )


class EZClip(nn.Module):
    """EZ-CLIP video and text encoders around a frozen open_clip backbone."""

    def __init__(self, backbone: Backbone, config: ModelConfig, seed: int = 0):
        super().__init__()
        self.clip = backbone.clip
        self.tokenizer = backbone.tokenizer
        self.backbone = backbone
        self.config = config.replace(
            backbone=backbone.name, pretrained=backbone.pretrained, backbone_config=backbone.model_config
        )
        self.clip.requires_grad_(False)
        vision_blocks = self.clip.visual.transformer.resblocks
        text_blocks = text_transformer(self.clip).resblocks
        device = next(self.clip.parameters()).device
        with torch.random.fork_rng(devices=[]):  # learned parts start from `seed`, the global RNG is untouched
            torch.manual_seed(seed)
            self._wrap_blocks(vision_blocks, text_blocks, config, device)

    def _wrap_blocks(
        self, vision_blocks: nn.ModuleList, text_blocks: nn.ModuleList, config: ModelConfig, device: torch.device
    ) -> None:
        # Rates grow linearly over depth in both towers, as in the reference.
        depth_v, depth_t = len(vision_blocks), len(text_blocks)
        rates_v, attn_v = _linspace(config.drop_path, depth_v), _linspace(config.attn_dropout, depth_v)
        rates_t, attn_t = _linspace(config.drop_path, depth_t), _linspace(config.attn_dropout, depth_t)
        blk: ResidualAttentionBlock  # the ModuleLists hold open_clip blocks; their items are typed as plain Modules
        for i, blk in enumerate(vision_blocks):
            blk.attn.dropout = attn_v[i]  # used by nn.MultiheadAttention in train mode only
            width = blk.ln_1.normalized_shape[0]
            prompt = None
            if config.use_prompts:
                prompt = nn.Parameter(torch.empty(config.num_frames, width, device=device))
                bound = math.sqrt(6.0 / (3 * 16 * 16 + width))  # docs/model.md 2 (reference fixes patch 16)
                nn.init.uniform_(prompt, -bound, bound)
            adapter = Adapter(width, config.adapter_ratio).to(device)
            vision_blocks[i] = wrapped_v = VisionBlock(
                blk, adapter, config.num_frames, prompt, config.prompt_dropout, rates_v[i]
            )
            wrapped_v.drop_positions = config.drop_path_positions
        for i, blk in enumerate(text_blocks):
            blk.attn.dropout = attn_t[i]
            adapter = Adapter(blk.ln_1.normalized_shape[0], config.adapter_ratio).to(device)
            text_blocks[i] = wrapped_t = TextBlock(blk, adapter, rates_t[i])
            wrapped_t.drop_positions = config.drop_path_positions

    # ---- parameters -------------------------------------------------------------------
    def learned_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Prompts and adapters: the only trainable parameters, under canonical names."""
        out: list[tuple[str, nn.Parameter]] = []
        for i, blk in enumerate(self.clip.visual.transformer.resblocks):
            if blk.prompt is not None:
                out.append((f"vision.{i}.prompt", blk.prompt))
            out += [(f"vision.{i}.adapter.{n}", p) for n, p in blk.adapter.named_parameters()]
        for i, blk in enumerate(text_transformer(self.clip).resblocks):
            out += [(f"text.{i}.adapter.{n}", p) for n, p in blk.adapter.named_parameters()]
        return out

    def learned_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.learned_named_parameters()]

    def learned_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.learned_named_parameters()}

    def load_learned_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.learned_named_parameters())
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"learned parameters mismatch: missing {missing[:4]}, unexpected {unexpected[:4]}")
        with torch.no_grad():
            for name, p in own.items():
                if p.shape != state[name].shape:
                    raise KeyError(f"{name}: shape {tuple(state[name].shape)} != {tuple(p.shape)}")
                p.copy_(state[name])

    def parameter_breakdown(self) -> dict[str, int]:
        """Counts for `ezclip info` and the 5.2M claim (docs/model.md 7)."""
        counts = {"prompts": 0, "vision_adapters": 0, "text_adapters": 0}
        for name, p in self.learned_named_parameters():
            adapters = "vision_adapters" if name.startswith("vision") else "text_adapters"
            counts["prompts" if name.endswith("prompt") else adapters] += p.numel()
        learned = {id(p) for p in self.learned_parameters()}
        counts["trainable"] = sum(counts.values())
        counts["frozen_backbone"] = sum(p.numel() for p in self.parameters() if id(p) not in learned)
        return counts

    @property
    def prompts(self) -> torch.Tensor | None:
        """P as one (L, T, D) tensor, the reference layout; None when prompts are off."""
        blocks = self.clip.visual.transformer.resblocks
        if blocks[0].prompt is None:
            return None
        return torch.stack([blk.prompt for blk in blocks])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().clamp(max=100.0)  # frozen; 100 for OpenAI weights

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    # ---- encoders ---------------------------------------------------------------------
    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Per-frame embeddings e_t = ln_post(CLS_t) @ proj, unnormalised: (B, T, 3, H, W) -> (B, T, D)."""
        B, T = video.shape[:2]
        if self.config.num_frames != T:
            raise ValueError(f"model was built for {self.config.num_frames} frames, got {T}")
        frames = self.clip.encode_image(video.flatten(0, 1))  # (B*T, D)
        return frames.view(B, T, -1)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Video embedding: L2-normalised mean of the frame embeddings, (B, T, 3, H, W) -> (B, D)."""
        return F.normalize(self.encode_frames(video).mean(dim=1), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.clip.parameters()).device
        return self.tokenizer(list(texts)).to(device)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings, unnormalised: (K, 77) -> (K, D).

        CLIP pools the EOT token under a causal mask, so positions after the longest prompt's
        EOT cannot change the result: we run only up to it (5-7x less work for short prompts,
        which matters for 400 classes x 16 templates on a CPU). Same numbers as open_clip's
        `encode_text`, which other text towers fall back to.
        """
        clip = self.clip
        if getattr(clip, "text_pool_type", None) != "argmax" or getattr(clip, "attn_mask", None) is None:
            return clip.encode_text(tokens)
        length = int(tokens.argmax(dim=-1).max()) + 1
        tokens = tokens[:, :length]  # (K, L')
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast) + clip.positional_embedding[:length].to(cast)
        x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
        x = clip.ln_final(x)[torch.arange(len(tokens), device=x.device), tokens.argmax(dim=-1)]  # (K, W)
        projection = clip.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    def build_text_classifier(
        self,
        prompts: Sequence[Sequence[str]],
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """One normalised embedding per class: its prompts encoded, normalised and averaged (K, D).

        Prompts go through the text encoder in batches of `batch_size` on the model's device;
        `progress(done, total)` hears after each batch (prompts encoded so far, of all).
        """
        flat = [text for texts in prompts for text in texts]
        chunks = []
        for start in range(0, len(flat), batch_size):
            tokens = self.tokenize(flat[start : start + batch_size])
            chunks.append(F.normalize(self.encode_text(tokens).float(), dim=-1))
            if progress is not None:
                progress(min(start + batch_size, len(flat)), len(flat))
        embeds = torch.cat(chunks)  # (sum of prompts, D)
        out, start = [], 0
        for texts in prompts:
            out.append(embeds[start : start + len(texts)].mean(dim=0))
            start += len(texts)
        return F.normalize(torch.stack(out), dim=-1)

    def forward(self, video: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
        """Logits = scale * cos(v, text_k): (B, T, 3, H, W), (K, D) -> (B, K)."""
        return self.logit_scale * self.encode_video(video).float() @ classifier.float().t()


# ---- losses (docs/model.md 6) ---------------------------------------------------------------
def soft_target_kl_loss(
    video: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """Symmetric KL with soft targets softmax(10 * [y_i == y_j]) over a batch of B videos.

    video: (B, D) and text: (B, D), text j being the prompt of video j's class.
    """
    video, text = F.normalize(video.float(), dim=-1), F.normalize(text.float(), dim=-1)
    sim = logit_scale * video @ text.t()  # (B, B)
    target = F.softmax(10.0 * (labels[:, None] == labels[None, :]).float(), dim=1)  # symmetric
    v2t = F.kl_div(F.log_softmax(sim, dim=1), target, reduction="batchmean")
    t2v = F.kl_div(F.log_softmax(sim.t(), dim=1), target, reduction="batchmean")
    return (v2t + t2v) / 2


def motion_loss(frames: torch.Tensor) -> torch.Tensor:
    """1 / (C + V + 1) on unnormalised per-frame embeddings (B, T, D).

    C: mean |E[t+1] - E[t-1]| / 2 with clamped ends; V: mean unbiased variance over t.
    """
    frames = frames.float()
    after = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)
    before = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    central = ((after - before).abs() / 2).mean()
    variance = frames.var(dim=1, unbiased=True).mean() if frames.shape[1] > 1 else frames.new_zeros(())
    return 1.0 / (central + variance + 1.0)


def ezclip_loss(
    frames: torch.Tensor,
    text: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    motion_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Total loss L = L_ce + w * L_motion with its parts, from per-frame embeddings (B, T, D)."""
    video = frames.mean(dim=1)
    parts = {"kl": soft_target_kl_loss(video, text, labels, logit_scale)}
    parts["motion"] = motion_loss(frames) if motion_weight else frames.new_zeros(()).float()
    parts["loss"] = parts["kl"] + motion_weight * parts["motion"]
    return parts


def build_model(backbone: Backbone, config: ModelConfig, seed: int = 0) -> EZClip:
    """EZ-CLIP around `backbone`; learned parts at their init (prompts random, adapters identity).

    The init is drawn from `seed`, so the same backbone and seed always give the same model.
    """
    return EZClip(backbone, config, seed)


def _linspace(end: float, steps: int) -> list[float]:
    if steps == 1:
        return [end]
    return [end * i / (steps - 1) for i in range(steps)]
