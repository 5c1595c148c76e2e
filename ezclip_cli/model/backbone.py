"""Load the frozen open_clip backbone: by name and tag, from a local file or folder, or random.

A name resolves through open_clip's config registry; `--model` may also be the path of an
open_clip model-config JSON (custom sizes, e.g. the tests' tiny backbone) or a local
directory (`open_clip_config.json` + weights). Only ViT towers are supported: the temporal
prompts are extra tokens inside transformer blocks (docs/model.md section 2).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ezclip_cli.errors import BackboneError
from ezclip_cli.hub.offline import hub_cache_only, hub_endpoint, no_weights_error, offline_reason, unreachable

log = logging.getLogger(__name__)

RANDOM_TAGS = {"none", "random", ""}


@dataclass
class Backbone:
    """A frozen open_clip CLIP with what is needed to feed it."""

    clip: Any  # open_clip.model.CLIP (or CustomTextCLIP with an open_clip text transformer)
    tokenizer: Any
    name: str  # the name it was asked for (open_clip name or config path)
    pretrained: str | None  # the tag or file its weights came from; None = random
    model_config: dict[str, Any]  # open_clip model config (embed_dim, vision_cfg, text_cfg, ...)
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def normalize_pretrained(pretrained: str | None) -> str | None:
    if pretrained is None or pretrained.strip().lower() in RANDOM_TAGS:
        return None
    return pretrained


def register_model_config(model_config: dict[str, Any], hint: str = "ezclip") -> str:
    """Register an open_clip config dict under a content-derived name and return that name."""
    import open_clip

    blob = json.dumps(model_config, sort_keys=True).encode()
    name = f"{Path(hint).stem}-{hashlib.sha256(blob).hexdigest()[:10]}"
    if name not in open_clip.list_models():
        # open_clip reads the file when it is added and keeps the config in memory: the folder can go.
        with tempfile.TemporaryDirectory(prefix="ezclip-cfg-") as folder:
            (Path(folder) / f"{name}.json").write_text(json.dumps(model_config))
            open_clip.add_model_config(Path(folder) / f"{name}.json")
    return name


def resolve_model_name(name: str) -> tuple[str, dict[str, Any]]:
    """Map `--model` to an open_clip model name and its config dict."""
    import open_clip

    path = Path(name)
    if name.endswith(".json") or (path.is_file() and path.suffix == ".json"):
        if not path.is_file():
            raise BackboneError(f"model config not found: {name}")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise BackboneError(f"cannot read model config {name}: {exc}") from exc
        config = config.get("model_cfg", config)
        if not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
            raise BackboneError(f"{name}: not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
        return register_model_config(config, hint=path.stem), config
    if path.is_dir():
        config_file = path / "open_clip_config.json"
        if not config_file.is_file():
            raise BackboneError(f"{name}: a model directory needs open_clip_config.json")
        config = json.loads(config_file.read_text(encoding="utf-8"))
        return f"local-dir:{path}", config.get("model_cfg", config)
    config = open_clip.get_model_config(name)
    if config is None:
        if _looks_like_path(name) or "/" in name:
            raise BackboneError(f"--model {name}: no such file or directory")
        import difflib

        vits = [m for m in open_clip.list_models() if m.startswith("ViT-")]
        close = difflib.get_close_matches(name, vits, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}? " if close else ""
        raise BackboneError(
            f"unknown model '{name}'; {hint}`python -c \"import open_clip; print(open_clip.list_models())\"` "
            f"lists the {len(vits)} ViT names open_clip knows"
        )
    return name, config


def check_vit(name: str, config: dict[str, Any]) -> None:
    """Refuse towers the temporal prompts cannot live in, before building anything."""
    vision = config.get("vision_cfg", {})
    text = config.get("text_cfg", {})
    if vision.get("timm_model_name"):
        raise BackboneError(
            f"model '{name}' uses a timm vision tower ({vision['timm_model_name']}); "
            "EZ-CLIP needs an open_clip ViT (e.g. ViT-B-16)"
        )
    if isinstance(vision.get("layers"), (list, tuple)):
        raise BackboneError(f"model '{name}' has a ResNet vision tower; EZ-CLIP needs a ViT (e.g. ViT-B-16)")
    if text.get("hf_model_name"):
        raise BackboneError(
            f"model '{name}' uses a Hugging Face text tower; EZ-CLIP needs open_clip's text transformer"
        )
    if vision.get("attentional_pool"):
        raise BackboneError(f"model '{name}' pools with attention (CoCa-style); EZ-CLIP needs class-token pooling")


def load_backbone(
    name: str,
    pretrained: str | None,
    *,
    device: str = "cpu",
    cache_dir: str | None = None,
    meta: bool = False,
    seed: int = 0,
) -> Backbone:
    """Build the frozen open_clip model `name` with weights `pretrained`.

    `pretrained` is an open_clip tag (from open_clip's cache, downloaded if online), a local
    weights file, or None/'none' for random weights (pipeline tests and benchmarks). With
    `meta=True` the weights are never materialised (parameter counts only). Random weights
    are drawn from `seed` (the global RNG is left as it was), so runs are reproducible.
    """
    import open_clip
    import torch

    pretrained = normalize_pretrained(pretrained)
    model_name, config = resolve_model_name(name)
    check_vit(name, config)
    if pretrained is None and not meta and not model_name.startswith("local-dir:"):
        log.warning("model %s has random weights (--pretrained none): labels are meaningless", name)
    elif pretrained and _looks_like_path(pretrained) and not Path(pretrained).is_file():
        raise BackboneError(f"weights file not found: {pretrained}")
    try:
        with quiet_loggers("huggingface_hub", "open_clip"):
            if meta:
                with torch.device("meta"):
                    clip = open_clip.create_model(model_name, pretrained=None, device="meta")
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    clip = create_open_clip(model_name, pretrained, device=device, cache_dir=cache_dir, label=name)
    except BackboneError:
        raise
    except Exception as exc:  # open_clip/HF raise many types for missing weights and bad files
        raise _weights_error(name, pretrained, exc) from exc
    return wrap_backbone(clip, model_name, name, pretrained, config)


def wrap_backbone(clip: Any, model_name: str, name: str, pretrained: str | None, config: dict[str, Any]) -> Backbone:
    """Freeze a built open_clip model and gather its tokenizer and preprocessing settings."""
    import open_clip

    check_tower_types(name, clip)
    clip.requires_grad_(False)
    clip.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    preprocess = open_clip.get_model_preprocess_cfg(clip)
    size = preprocess.get("size", config["vision_cfg"].get("image_size", 224))
    size = size[0] if isinstance(size, (list, tuple)) else size
    return Backbone(
        clip=clip,
        tokenizer=tokenizer,
        name=name,
        pretrained=pretrained,
        model_config=config,
        image_size=int(size),
        mean=tuple(preprocess.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(preprocess.get("std", open_clip.OPENAI_DATASET_STD)),
    )


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """Build modules without drawing random weights that the next step overwrites (no build-then-overwrite).

    torch.nn.init's fillers and the layers' `reset_parameters` become no-ops, so parameters are left as
    allocated; use it only where every parameter is then loaded (load_state_dict's missing keys checked).
    """
    import torch

    names = (
        "normal_",
        "uniform_",
        "trunc_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "xavier_uniform_",
        "xavier_normal_",
        "constant_",
        "zeros_",
        "ones_",
        "orthogonal_",
    )
    saved = {name: getattr(torch.nn.init, name) for name in names}
    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.Embedding)
    resets = {layer: layer.reset_parameters for layer in layers}
    try:
        for name in names:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        for layer in layers:
            layer.reset_parameters = lambda self: None  # type: ignore[method-assign]
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)
        for layer, function in resets.items():
            layer.reset_parameters = function  # type: ignore[method-assign]


def build_backbone_from_config(
    config: dict[str, Any], name: str, state_dict: dict[str, Any] | None, device: str = "cpu"
) -> Backbone:
    """Build an open_clip model from its config dict and load `state_dict` (weights carried in a file)."""
    import open_clip

    check_vit(name, config)
    model_name = register_model_config(config, hint="embedded")
    # With weights to load, nothing random is drawn first (every parameter is checked to be loaded below).
    with quiet_loggers("open_clip"), no_weight_init() if state_dict is not None else contextlib.nullcontext():
        clip = open_clip.create_model(model_name, pretrained=None, device=device)
    if state_dict is not None:
        result = clip.load_state_dict(state_dict, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise BackboneError(
                f"backbone weights do not fit {name}: missing {result.missing_keys[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}"
            )
    return wrap_backbone(clip, model_name, name, "embedded" if state_dict is not None else None, config)


def check_tower_types(name: str, clip: Any) -> None:
    from open_clip.transformer import VisionTransformer

    if not isinstance(getattr(clip, "visual", None), VisionTransformer):
        raise BackboneError(f"model '{name}' has a {type(clip.visual).__name__} vision tower; EZ-CLIP needs a ViT")
    for transformer in (clip.visual.transformer, text_transformer(clip)):
        if not getattr(transformer, "batch_first", True):
            raise BackboneError(f"model '{name}': sequence-first transformers are not supported")


def text_transformer(clip: Any) -> Any:
    """The text tower's stack of residual blocks (CLIP keeps it at the top level)."""
    if hasattr(clip, "transformer"):
        return clip.transformer
    text = getattr(clip, "text", None)
    if text is not None and hasattr(text, "transformer"):
        return text.transformer
    raise BackboneError("this model's text tower is not an open_clip text transformer")


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".bin", ".pt", ".pth", ".safetensors"))


def _weights_error(name: str, pretrained: str | None, exc: Exception) -> BackboneError:
    text = " ".join(str(exc).split())
    if "not a known tag" in text:
        import open_clip

        tags = [t for m, t in open_clip.list_pretrained() if m == name]
        return BackboneError(
            f"unknown pretrained tag '{pretrained}' for {name}; available: {', '.join(tags) or 'none'} "
            "(or give a local weights file)"
        )
    if "download" in text.lower() or "local cache" in text.lower():
        return BackboneError(
            f"no weights for {name} ({pretrained}) in the open_clip cache and they cannot be downloaded; "
            "pass local weights with --pretrained /path/to/weights.bin, or an ezclip model with --checkpoint"
        )
    return BackboneError(f"cannot build {name} with weights {pretrained}: {text[:300]}")


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """open_clip and huggingface_hub log their own failures; ours say it in one line instead."""
    loggers = [logging.getLogger(n) for n in ("", *names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def create_open_clip(model_name: str, pretrained: str | None, *, device: str, cache_dir: str | None, label: str) -> Any:
    """open_clip.create_model with its weights from the cache first; a download only when the hub answers.

    open_clip tries several file names on the hub, each with its own timeouts, so an offline machine
    would wait for minutes. Here the cache is tried with the hub switched to offline; when that fails
    and downloads are off or the hub is unreachable (one probe), the error is one line with the remedies.
    """
    import open_clip

    def create() -> Any:
        return open_clip.create_model(model_name, pretrained=pretrained, device=device, cache_dir=cache_dir)

    if not pretrained or os.path.isfile(pretrained) or not open_clip.get_pretrained_cfg(model_name, pretrained):
        return create()  # no download involved (random, local file, or an unknown tag open_clip reports)
    try:
        with hub_cache_only():
            return create()
    except Exception as exc:  # noqa: BLE001 - not cached (or unreadable there): decide below if a download may run
        logging.getLogger(__name__).debug("%s (%s) not usable from the cache: %s", label, pretrained, exc)
    endpoint = hub_endpoint()
    reason = offline_reason() or unreachable(endpoint)
    if reason is not None:
        raise no_weights_error(label, pretrained, endpoint, reason)
    return create()
