"""Loading the model a ModelSpec names (model/spec.py resolves the flags into one, once).

A checkpoint, a reference EZ-CLIP `.pt` (converted on load) or an exported bundle becomes an EZClip in eval
mode; with no checkpoint, plain CLIP: prompts off, adapters at their identity init, so the result is exactly
CLIP frame averaging (and we say so on stderr). Also here: the device choice, the model's identity for resume
and reports, and the model training starts from (`--init`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import DEFAULT_BACKBONE, DEFAULT_PRETRAINED, ModelConfig
from ezclip_cli.errors import CheckpointError, UsageError
from ezclip_cli.model.bundle import WEIGHTS_FILE, is_bundle, read_bundle_config
from ezclip_cli.model.spec import NO_CHECKPOINT, ModelSpec, resolve_model

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip

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
) -> EZClip:
    """An EZClip ready for inference (eval mode, frozen), from a checkpoint or a plain CLIP backbone.

    The arguments mean what `--checkpoint/--model/--pretrained/--num-frames` mean (model.spec.resolve_model):
    a checkpoint, bundle folder, run folder or model name; nothing at all is the index's default EZ-CLIP
    model, `checkpoint="none"` plain CLIP.
    """
    return load_spec(resolve_model(checkpoint, model, pretrained, num_frames), device=device, cache_dir=cache_dir)


def load_spec(spec: ModelSpec, *, device: str = "cpu", cache_dir: str | None = None) -> EZClip:
    """The EZClip `spec` names, in eval mode; with no checkpoint, exactly CLIP frame averaging (and we say so)."""
    from ezclip_cli.model.backbone import load_backbone
    from ezclip_cli.model.checkpoint import load_checkpoint
    from ezclip_cli.model.ezclip import build_model

    if spec.kind == "bundle":
        assert spec.checkpoint is not None  # a bundle spec always names its folder
        ezclip = load_bundle_model(spec.checkpoint, device=device, cache_dir=cache_dir)
        log.info("model: EZ-CLIP bundle %s (%s, %d frames)", spec.checkpoint, ezclip.config.backbone, ezclip.num_frames)
        return ezclip
    if spec.checkpoint is not None:
        if not spec.checkpoint.exists():
            raise CheckpointError(f"checkpoint not found: {spec.checkpoint}")
        ezclip, extra = load_checkpoint(spec.checkpoint, device=device, cache_dir=cache_dir, model_config=spec.backbone)
        if extra.get("source_sha256"):  # a converted named model: its identity is the digest of the download
            ezclip.content_id = str(extra["source_sha256"])
        log.info("model: EZ-CLIP %s (%s, %d frames)", spec.describe(), ezclip.config.backbone, ezclip.num_frames)
        return ezclip.eval()
    name = spec.backbone or DEFAULT_BACKBONE
    tag = spec.pretrained
    if tag is None:
        tag = DEFAULT_PRETRAINED if spec.backbone is None else _default_tag(name)
    backbone = load_backbone(name, tag, device=device, cache_dir=cache_dir)
    ezclip = build_model(backbone, ModelConfig(num_frames=spec.num_frames, use_prompts=False)).to(device)
    log.info(
        "model: plain CLIP frame averaging on %s (%s), no trained EZ-CLIP parts (give --checkpoint for EZ-CLIP)",
        name,
        backbone.pretrained or "random weights",
    )
    return ezclip.eval()


def start_from(init: str, num_frames: int, use_prompts: bool, device: str) -> tuple[Any, dict[str, Any]]:
    """(frozen backbone, learned state) of model `init` (an index name or a checkpoint) to fine-tune from.

    The backbone is rebuilt from the model's own weights, so training wraps a fresh copy.
    """
    from ezclip_cli.model.backbone import build_backbone_from_config, load_backbone
    from ezclip_cli.model.checkpoint import backbone_state_dict

    spec = resolve_model(init)
    if spec.checkpoint is None:
        raise UsageError("--init none: give a model name from `ezclip models` or a checkpoint (or leave --init out)")
    source = load_spec(spec, device="cpu")
    if source.num_frames != num_frames:
        frames = source.num_frames
        raise UsageError(f"--init {init} has {frames} frames; train it with --num-frames {frames}")
    if source.config.use_prompts != use_prompts:
        raise UsageError(
            f"--init {init} was trained {'with' if source.config.use_prompts else 'without'} prompts; "
            f"train it with {'--use-prompts' if source.config.use_prompts else '--no-prompts'}"
        )
    learned = {k: v.clone() for k, v in source.learned_state_dict().items()}
    config = source.config
    if config.pretrained in (None, "embedded"):
        weights = backbone_state_dict(source)
        backbone = build_backbone_from_config(config.backbone_config, config.backbone, weights, device)
        backbone.image_size, backbone.mean, backbone.std = (
            source.backbone.image_size,
            source.backbone.mean,
            source.backbone.std,
        )
    else:
        backbone = load_backbone(config.backbone, config.pretrained, device=device)
    log.info("training starts from %s (%s, %d frames)", init, config.backbone, num_frames)
    return backbone, learned


def load_bundle_model(
    path: str | Path, *, device: str = "cpu", cache_dir: str | None = None, config: dict[str, Any] | None = None
) -> EZClip:
    """The EZClip of an exported bundle in PyTorch (eval mode), from its model.safetensors."""
    from ezclip_cli.model.checkpoint import load_checkpoint

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
    """Parameter breakdown of an EZ-CLIP model; builds on the meta device, so nothing is downloaded.

    A model name (or nothing: the index's default) is described from its cached file, or from its
    index entry when it is not cached yet; `resolves_to` then says which model and where it comes from.
    """
    from ezclip_cli.model.backbone import build_backbone_from_config, load_backbone
    from ezclip_cli.model.checkpoint import read_checkpoint_header
    from ezclip_cli.model.ezclip import build_model

    resolves_to, entry = None, None
    pretrained_label: str | None
    named = _named_model(checkpoint, model, pretrained)
    if named is not None:
        from ezclip_cli.hub.index import cached_model, fetch_url, load_index, parse_source

        index = load_index()
        entry = index.entry(named)
        cached = cached_model(entry)
        role = " (the default)" if named == index.default and checkpoint is None else ""
        where = f"cached at {cached}" if cached else f"not cached; downloads from {fetch_url(parse_source(entry.url))}"
        resolves_to = f"{named}{role}, {where}"
        checkpoint = cached
    elif checkpoint is not None and str(checkpoint).strip().lower() == NO_CHECKPOINT:
        checkpoint = None
    if checkpoint is None and entry is not None:
        backbone = load_backbone(entry.architecture or DEFAULT_BACKBONE, None, meta=True)
        built = build_model(backbone, ModelConfig(num_frames=entry.num_frames or num_frames, use_prompts=True))
        pretrained_label = "embedded"
    elif checkpoint is not None:
        import json

        header = read_checkpoint_header(checkpoint)
        config = ModelConfig.from_dict(json.loads(header["config"]))
        import torch

        if config.backbone_config:
            with torch.device("meta"):
                backbone = build_backbone_from_config(config.backbone_config, config.backbone, None, device="meta")
        else:  # weights by reference from an old file that kept no config: the name says what it is
            backbone = load_backbone(config.backbone, None, meta=True)
        built = build_model(backbone, config)
        pretrained_label = config.pretrained
    else:
        name = model or DEFAULT_BACKBONE
        backbone = load_backbone(name, None, meta=True)
        built = build_model(backbone, ModelConfig(num_frames=num_frames, use_prompts=use_prompts))
        pretrained_label = pretrained if pretrained is not None else (DEFAULT_PRETRAINED if model is None else None)
    counts = built.parameter_breakdown()
    return {
        **({"resolves_to": resolves_to} if resolves_to else {}),
        "backbone": built.config.backbone,
        "pretrained": pretrained_label,
        "num_frames": built.config.num_frames,
        "use_prompts": built.config.use_prompts,
        **counts,
    }


def _named_model(checkpoint: str | Path | None, model: str | None, pretrained: str | None) -> str | None:
    """The index name `checkpoint` stands for (the default when nothing is given), else None. Never downloads."""
    if checkpoint is None:
        if model is not None or pretrained is not None:
            return None
        from ezclip_cli.hub.index import load_index

        return load_index().default
    text = str(checkpoint)
    if text.strip().lower() == NO_CHECKPOINT or Path(text).expanduser().exists():
        return None
    from ezclip_cli.hub.index import load_index

    return text if text in load_index().models else None


def model_fingerprint(model: EZClip, reloaded_as: str | None = None) -> str:
    """A short id of what the model computes: config, learned tensors and backbone identity.

    Named backbones are identified by name + tag; random or embedded ones by their tensors; a model
    converted from a named download by that download's sha256 (stable, and no hashing of 150M weights).
    Resume and the text-embedding cache key on it. `reloaded_as="embedded"`: the id this model gets
    once saved with its backbone and loaded back (export.bundle_model_id).
    """
    import hashlib
    import json

    digest = hashlib.sha256()
    config = model.config if reloaded_as is None else model.config.replace(pretrained=reloaded_as)
    digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    content_id = getattr(model, "content_id", None) if reloaded_as is None else None
    if content_id:
        digest.update(f"content:{content_id}".encode())
        return digest.hexdigest()[:16]
    tensors = dict(model.learned_named_parameters())
    if config.pretrained in (None, "embedded"):
        tensors.update({f"backbone.{k}": v for k, v in model.clip.state_dict().items() if ".adapter." not in k})
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def model_identity(model: EZClip, source: str | Path | None = None) -> str:
    """The id outputs, stores and text caches key on for `model` loaded from `source` (checkpoint or --model).

    An exported bundle is known by all its files, ONNX graphs included (the same id for both runtimes);
    anything else by `model_fingerprint`.
    """
    if source is not None and is_bundle(source):
        from ezclip_cli.model.bundle import bundle_fingerprint

        return bundle_fingerprint(source)
    return model_fingerprint(model)
