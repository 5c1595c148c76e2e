"""What the trained parameters are stored in between optimizer steps: fp32 (ours) or fp16 (the reference).

The reference keeps the whole model in fp16, converts it to fp32 for each AdamW step and back to
fp16 right after (its ``train.py`` lines 171-172 and 285-287: ``convert_models_to_fp32``,
``optimizer.step()``, ``clip.model.convert_weights``). So every update smaller than half the fp16
spacing of a weight is lost: at lr 5e-6 a weight near 0.01 (fp16 spacing about 7.6e-6) barely moves.
ezclip keeps fp32 master weights under autocast. ``--master-weights fp16`` (on under
``--faithful`` on CUDA, where the reference ran) rounds, after every step, exactly the parameters
``convert_weights`` converts: the weights and biases of Linear/Conv layers and attention
projections, and parameters named ``proj`` or ``text_projection``. LayerNorms and the prompt
tokens stay fp32 there too.
"""

from __future__ import annotations

import torch
from torch import nn

from ezclip_cli.config.faithful import MASTER_WEIGHTS

__all__ = ["MASTER_WEIGHTS", "fp16_rounded_parameters", "resolve_master_weights", "round_to_fp16_"]

_ATTENTION_PARAMS = (
    "in_proj_weight",
    "q_proj_weight",
    "k_proj_weight",
    "v_proj_weight",
    "in_proj_bias",
    "bias_k",
    "bias_v",
)
_NAMED_PARAMS = ("text_projection", "proj")


def resolve_master_weights(requested: str | None, faithful: bool, device: str) -> str:
    """The storage a run uses: the requested one, else fp16 under --faithful on CUDA, else fp32."""
    if requested is not None:
        return requested
    return "fp16" if faithful and device.startswith("cuda") else "fp32"


def fp16_rounded_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters the reference's ``convert_weights`` keeps in fp16 (module order, no repeats)."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        names: tuple[str, ...] = ()
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            names = ("weight", "bias")
        elif isinstance(module, nn.MultiheadAttention):
            names = (*_ATTENTION_PARAMS, "out_proj.weight", "out_proj.bias")
        names += _NAMED_PARAMS
        for name in names:
            owner: nn.Module | None = module
            *path, leaf = name.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            param = getattr(owner, leaf, None) if owner is not None else None
            if isinstance(param, nn.Parameter) and param.requires_grad:
                found.setdefault(id(param), param)
    return list(found.values())


@torch.no_grad()
def round_to_fp16_(params: list[nn.Parameter]) -> None:
    """Round each parameter to the nearest fp16 value in place (its storage dtype unchanged)."""
    for param in params:
        param.copy_(param.to(torch.float16).to(param.dtype))
