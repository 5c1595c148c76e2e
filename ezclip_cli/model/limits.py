"""Sanity limits for model sizes that come from a file's metadata, checked before anything is built.

A checkpoint's metadata alone decides how big a model is (width, layers, vocabulary...): a
2 KB file could ask for terabytes. `check_model_size` estimates the parameter count from an
open_clip model config and refuses, with one line, what no real CLIP is or this machine cannot
hold. The estimate is of the dominant terms (transformer blocks, embeddings), not exact.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ezclip_cli.errors import CheckpointError

# Far above any released CLIP (ViT-bigG-14: 2.5 billion parameters) and far below terabytes.
MAX_PARAMETERS = 20_000_000_000
# Each field: the most a plausible CLIP has, with room to spare.
FIELD_LIMITS = {
    "embed_dim": 16384,
    "width": 16384,
    "layers": 512,
    "heads": 1024,
    "head_width": 4096,
    "patch_size": 1024,
    "image_size": 4096,
    "context_length": 16384,
    "vocab_size": 10_000_000,
    "mlp_ratio": 64,
}
MAX_NUM_FRAMES = 1024
MAX_TOKENS = 65536  # patches per frame: attention is quadratic in them


def _number(where: str, key: str, value: Any, integer: bool = True) -> float:
    """A positive number within FIELD_LIMITS, or a CheckpointError naming the field."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        raise CheckpointError(
            f"{where}: model config field '{key}' = {value!r} is not a positive {'whole ' if integer else ''}number"
        )
    limit = FIELD_LIMITS.get(key)
    if limit is not None and value > limit:
        raise CheckpointError(f"{where}: model config field '{key}' = {value} is beyond any CLIP (limit {limit})")
    return float(value)


def _field(where: str, cfg: dict[str, Any], key: str, default: float, integer: bool = True) -> float:
    if key not in cfg or cfg[key] is None:
        return default
    value = cfg[key]
    if key == "image_size" and isinstance(value, (list, tuple)) and len(value) == 2:
        return math.sqrt(_number(where, key, value[0]) * _number(where, key, value[1]))
    if key == "layers" and isinstance(value, (list, tuple)):  # ResNet stages (refused later as not a ViT)
        return sum(_number(where, key, v) for v in value)
    return _number(where, key, value, integer)


def estimate_parameters(where: str, backbone_config: dict[str, Any], num_frames: int) -> int:
    """Rough parameter count of an open_clip config plus EZ-CLIP's prompts (checked field by field)."""
    if not isinstance(backbone_config, dict):
        raise CheckpointError(f"{where}: the open_clip model config is not a mapping")
    vision, text = backbone_config.get("vision_cfg") or {}, backbone_config.get("text_cfg") or {}
    if not isinstance(vision, dict) or not isinstance(text, dict):
        raise CheckpointError(f"{where}: vision_cfg and text_cfg must be mappings")
    embed = _field(where, backbone_config, "embed_dim", 512)
    width, layers = _field(where, vision, "width", 768), _field(where, vision, "layers", 12)
    patch, image = _field(where, vision, "patch_size", 16), _field(where, vision, "image_size", 224)
    ratio = _field(where, vision, "mlp_ratio", 4.0, integer=False)
    for key in ("head_width", "heads"):
        _field(where, vision, key, 1)
    tokens = (image / patch) ** 2 + 1
    if tokens > MAX_TOKENS:
        raise CheckpointError(f"{where}: {int(tokens)} patches per frame (image_size / patch_size) is beyond any CLIP")
    visual = layers * (4 + 2 * ratio) * width**2 + tokens * width + 3 * patch**2 * width + width * embed
    t_width, t_layers = _field(where, text, "width", 512), _field(where, text, "layers", 12)
    t_ratio = _field(where, text, "mlp_ratio", 4.0, integer=False)
    vocab, context = _field(where, text, "vocab_size", 49408), _field(where, text, "context_length", 77)
    _field(where, text, "heads", 1)
    textual = t_layers * (4 + 2 * t_ratio) * t_width**2 + (vocab + context) * t_width + t_width * embed
    prompts = layers * num_frames * width
    return int(visual + textual + prompts)


def available_memory() -> int | None:
    """Bytes of memory this process could still get (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_size(where: str, config: dict[str, Any], check_memory: bool = True) -> int:
    """Refuse a ModelConfig dict whose model no CLIP is, or that this machine cannot hold (float32).

    Returns the estimated parameter count. Nothing is allocated.
    """
    num_frames = config.get("num_frames", 8)
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or not 1 <= num_frames <= MAX_NUM_FRAMES:
        raise CheckpointError(f"{where}: num_frames = {num_frames!r} is not a whole number in 1..{MAX_NUM_FRAMES}")
    count = estimate_parameters(where, config.get("backbone_config") or {}, num_frames)
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: its metadata describes a model of ~{count / 1e9:,.0f} billion parameters, beyond any CLIP "
            f"(limit {MAX_PARAMETERS / 1e9:.0f} billion); the file is corrupt or not meant for ezclip"
        )
    free = available_memory() if check_memory else None
    if free is not None and count * 4 > free:
        raise CheckpointError(
            f"{where}: the model needs ~{count * 4 / 2**30:.1f} GiB and only {free / 2**30:.1f} GiB "
            "of memory is available"
        )
    return count
