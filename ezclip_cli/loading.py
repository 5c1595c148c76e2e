"""Model resolution for tag, eval and export (README, "Models and checkpoints").

`--checkpoint` wins: an ezclip checkpoint or a reference EZ-CLIP `.pt`. Otherwise
`--model/--pretrained` give plain CLIP: prompts off, adapters at their identity init, so
the result is exactly CLIP frame averaging (and we say so on stderr).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ezclip_cli.config import DEFAULT_BACKBONE, DEFAULT_PRETRAINED, ModelConfig
from ezclip_cli.errors import CheckpointError, UsageError
from ezclip_cli.onnx_runtime import WEIGHTS_FILE, is_bundle, read_bundle_config

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> str:
    """auto -> cuda, then mps, then cpu; an explicit device that is not there is a usage error."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: MPS is not available on this machine")
    if device.split(":")[0] not in {"cpu", "cuda", "mps"}:
        raise UsageError(f"unknown --device '{device}'; use auto, cpu, cuda, cuda:N or mps")
    return device


def load_model(
    checkpoint: str | Path | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
    device: str = "cpu",
    cache_dir: str | None = None,
) -> Any:
    """An EZClip ready for inference (eval mode, frozen), from a checkpoint or a plain CLIP backbone.

    `checkpoint` (or `model`) may also be an exported bundle folder (`ezclip export`).
    """
    from ezclip_cli.backbone import load_backbone
    from ezclip_cli.checkpoint import load_checkpoint
    from ezclip_cli.model import build_model

    bundle = checkpoint if checkpoint is not None else model  # --checkpoint wins, as below
    if bundle is not None and is_bundle(bundle):
        ezclip = load_bundle_model(bundle, device=device, cache_dir=cache_dir)
        log.info("model: EZ-CLIP bundle %s (%s, %d frames)", bundle, ezclip.config.backbone, ezclip.num_frames)
        return ezclip
    if checkpoint is not None:
        ezclip, _ = load_checkpoint(checkpoint, device=device, cache_dir=cache_dir, model_config=model)
        if pretrained is not None:
            log.warning("--pretrained is ignored with --checkpoint (the checkpoint names its backbone)")
        log.info("model: EZ-CLIP checkpoint %s (%s, %d frames)", checkpoint, ezclip.config.backbone, ezclip.num_frames)
        return ezclip.eval()
    name = model or DEFAULT_BACKBONE
    tag = pretrained if pretrained is not None else (DEFAULT_PRETRAINED if model is None else _default_tag(name))
    backbone = load_backbone(name, tag, device=device, cache_dir=cache_dir)
    ezclip = build_model(backbone, ModelConfig(num_frames=num_frames, use_prompts=False)).to(device)
    log.info(
        "model: plain CLIP frame averaging on %s (%s), no trained EZ-CLIP parts (give --checkpoint for EZ-CLIP)",
        name,
        backbone.pretrained or "random weights",
    )
    return ezclip.eval()


def load_bundle_model(
    path: str | Path, *, device: str = "cpu", cache_dir: str | None = None, config: dict[str, Any] | None = None
) -> Any:
    """The EZClip of an exported bundle in PyTorch (eval mode), from its model.safetensors."""
    from ezclip_cli.checkpoint import load_checkpoint

    path = Path(path)
    config = config or read_bundle_config(path)
    if "weights" not in config["files"] or not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"{path}: no {WEIGHTS_FILE} (exported without the safetensors format); use --runtime onnx or re-export"
        )
    model, _ = load_checkpoint(path / WEIGHTS_FILE, device=device, cache_dir=cache_dir)
    return model.eval()


def _default_tag(name: str) -> str | None:
    """OpenAI weights where open_clip has them for this name, else the first tag it lists."""
    import open_clip

    tags = [t for m, t in open_clip.list_pretrained() if m == name]
    if not tags:
        return None if name.endswith(".json") else DEFAULT_PRETRAINED
    return "openai" if "openai" in tags else tags[0]


def describe_model(
    checkpoint: str | Path | None,
    model: str | None,
    pretrained: str | None,
    num_frames: int,
    use_prompts: bool = True,
) -> dict[str, Any]:
    """Parameter breakdown of an EZ-CLIP model; builds on the meta device, so nothing is downloaded."""
    from ezclip_cli.backbone import build_backbone_from_config, load_backbone
    from ezclip_cli.checkpoint import read_checkpoint_header
    from ezclip_cli.model import build_model

    if checkpoint is not None:
        import json

        header = read_checkpoint_header(checkpoint)
        config = ModelConfig.from_dict(json.loads(header["config"]))
        import torch

        with torch.device("meta"):
            backbone = build_backbone_from_config(config.backbone_config, config.backbone, None, device="meta")
        built = build_model(backbone, config)
        pretrained_label = config.pretrained
    else:
        name = model or DEFAULT_BACKBONE
        backbone = load_backbone(name, None, meta=True)
        built = build_model(backbone, ModelConfig(num_frames=num_frames, use_prompts=use_prompts))
        pretrained_label = pretrained if pretrained is not None else (DEFAULT_PRETRAINED if model is None else None)
    counts = built.parameter_breakdown()
    return {
        "backbone": built.config.backbone,
        "pretrained": pretrained_label,
        "num_frames": built.config.num_frames,
        "use_prompts": built.config.use_prompts,
        **counts,
    }


def model_fingerprint(model: Any) -> str:
    """A short id of what the model computes: config, learned tensors and backbone identity.

    Named backbones are identified by name + tag; random or embedded ones by their tensors.
    Resume and the text-embedding cache key on it.
    """
    import hashlib
    import json

    digest = hashlib.sha256()
    config = model.config.to_dict()
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    tensors = dict(model.learned_named_parameters())
    if model.config.pretrained in (None, "embedded"):
        tensors.update({f"backbone.{k}": v for k, v in model.clip.state_dict().items() if ".adapter." not in k})
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
