"""ezclip checkpoints (safetensors, never pickle) and the reference EZ-CLIP `.pt` importer.

An ezclip checkpoint is one safetensors file:
  tensors   `learned.<name>`   prompts and adapters (EZClip.learned_named_parameters names)
            `backbone.<key>`   the frozen open_clip weights, only when they cannot be named
                               (random or imported backbones); otherwise name + tag refer to them
  metadata  format=ezclip, format_version, config (ModelConfig JSON incl. the open_clip
            model config), backbone_weights=embedded|reference, extra (JSON, e.g. training state)
"""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import ModelConfig
from ezclip_cli.errors import CheckpointError, EzclipError
from ezclip_cli.files import atomic_write
from ezclip_cli.model.limits import check_model_size

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip

FORMAT = "ezclip"
FORMAT_VERSION = 1
REFERENCE_PROMPT_KEY = "visual.transformer.T_prompt_embeddings"


def save_checkpoint(
    path: str | Path,
    model: EZClip,
    *,
    include_backbone: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (an EZClip) atomically. Backbone weights are embedded when they have no name."""
    from safetensors.torch import save_file

    path = Path(path)
    if include_backbone is None:
        include_backbone = model.config.pretrained in (None, "embedded")
    tensors = {f"learned.{k}": v.detach().cpu().contiguous() for k, v in model.learned_state_dict().items()}
    if include_backbone:
        tensors.update({f"backbone.{k}": v for k, v in backbone_state_dict(model).items()})
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict()),
        "backbone_weights": "embedded" if include_backbone else "reference",
        "extra": json.dumps(extra or {}),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def backbone_state_dict(model: EZClip) -> dict[str, Any]:
    """The frozen open_clip weights under open_clip's own key names (wrappers and learned parts removed)."""
    out = {}
    for key, value in model.clip.state_dict().items():
        if ".adapter." in key or key.endswith(".prompt"):
            continue
        out[re.sub(r"(resblocks\.\d+)\.block\.", r"\1.", key)] = value.detach().cpu().contiguous()
    return out


def read_checkpoint_header(path: str | Path) -> dict[str, str]:
    """The metadata of an ezclip checkpoint, without reading its tensors."""
    path = Path(path)
    kind = detect_kind(path)
    if kind != "ezclip":
        raise CheckpointError(f"{path}: not an ezclip checkpoint ({kind})")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from exc
    _check_header(path, meta)
    parse_model_config(path, meta, check_memory=False)  # `info` builds nothing real, but no absurd sizes
    return meta


def parse_model_config(path: Path, meta: dict[str, str], check_memory: bool = True) -> ModelConfig:
    """The ModelConfig in a checkpoint's metadata, checked (types, sane sizes, free memory) before any build."""
    try:
        data = json.loads(meta["config"])
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: 'config' is not JSON") from exc
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: 'config' is a {kind}, not a mapping")
    if not isinstance(data.get("backbone", ""), str) or not isinstance(data.get("pretrained", ""), (str, type(None))):
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: 'backbone' and 'pretrained' must be text")
    if problem := _backbone_config_problem(data.get("backbone_config", {}), meta.get("backbone_weights")):
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: {problem}")
    if not isinstance(data.get("use_prompts", True), bool):
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: 'use_prompts' must be true or false")
    for key in ("adapter_ratio", "prompt_dropout", "drop_path", "attn_dropout"):
        value = data.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise CheckpointError(f"{path}: corrupt checkpoint metadata: '{key}' = {value!r} is not a number in 0..1")
    check_model_size(str(path), data, check_memory=check_memory)
    try:
        return ModelConfig.from_dict(data)
    except EzclipError as exc:  # unknown keys: a usage error elsewhere, a corrupt file here
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: {exc}") from exc


def _backbone_config_problem(config: Any, weights: str | None) -> str | None:
    """What is wrong with a checkpoint's 'backbone_config', or None.

    It is the open_clip model config the backbone is rebuilt from: a mapping always, and with
    embedded weights (nothing else names the architecture) one holding embed_dim, vision_cfg and
    text_cfg. Checked here so that a hostile `null` is one line, not an AttributeError in `tag`/`info`.
    """
    if not isinstance(config, dict):
        return f"'backbone_config' is {type(config).__name__ if config is not None else 'null'}, not a mapping"
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in config]
    if weights == "embedded" and missing:
        return f"embedded backbone weights but 'backbone_config' lacks {', '.join(missing)} (not an open_clip config)"
    return None


def check_learned(path: Path, learned: dict[str, Any]) -> None:
    """Learned tensors must be floating point (an int64 prompt would be silently truncated) and finite."""
    import torch

    for name, tensor in learned.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{path}: learned tensor '{name}' is {kind}, not floating point; the file is corrupt")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: learned tensor '{name}' holds NaN or infinity; the file is corrupt")


def detect_kind(path: Path) -> str:
    """'ezclip', 'reference' (a torch file) or a short reason it is neither."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        raise CheckpointError(f"{path}: empty or truncated file")
    if head[:4] == b"PK\x03\x04" or head[:2] == b"\x80\x02":
        return "reference"
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] == b"{" and 0 < header_len < path.stat().st_size:
        return "ezclip"
    return "not a checkpoint: unknown file format"


def load_checkpoint(
    path: str | Path, *, device: str = "cpu", cache_dir: str | None = None, model_config: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Load an ezclip checkpoint or a reference EZ-CLIP `.pt` (auto-detected) -> (EZClip, extra)."""
    path = Path(path)
    kind = detect_kind(path)
    if kind == "reference":
        return import_reference(path, device=device, model_config=model_config), {"imported_from": str(path)}
    if kind != "ezclip":
        raise CheckpointError(f"{path}: {kind}")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            _check_header(path, meta)
            config = parse_model_config(path, meta)  # before any tensor is read or model built
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from exc
    try:
        extra = json.loads(meta.get("extra") or "{}")
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: 'extra' is not JSON") from None
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint metadata: 'extra' is not a mapping")
    learned = {k[len("learned.") :]: v for k, v in tensors.items() if k.startswith("learned.")}
    check_learned(path, learned)
    backbone_sd = {k[len("backbone.") :]: v for k, v in tensors.items() if k.startswith("backbone.")}
    try:
        model = _build(config, backbone_sd if meta.get("backbone_weights") == "embedded" else None, device, cache_dir)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:  # shapes or fields that do not fit together
        raise CheckpointError(f"{path}: the model in its metadata cannot be built ({_first_line(exc)})") from exc
    try:
        model.load_learned_state_dict(learned)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from exc
    return model, extra


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _check_header(path: Path, meta: dict[str, str]) -> None:
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: a safetensors file but not an ezclip checkpoint (no ezclip metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise CheckpointError(
            f"{path}: corrupt checkpoint metadata: format_version {meta.get('format_version')!r} is not a number"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this ezclip understands ({FORMAT_VERSION}); "
            "upgrade ezclip"
        )


def _build(config: ModelConfig, backbone_sd: dict | None, device: str, cache_dir: str | None) -> EZClip:
    from ezclip_cli.model.backbone import build_backbone_from_config, load_backbone
    from ezclip_cli.model.ezclip import build_model

    if backbone_sd is not None:
        backbone = build_backbone_from_config(config.backbone_config, config.backbone, backbone_sd, device)
    else:
        backbone = load_backbone(config.backbone, config.pretrained, device=device, cache_dir=cache_dir)
    return build_model(backbone, config).to(device)


# ---- reference EZ-CLIP checkpoints (docs/model.md section 10) -------------------------------------
_REFERENCE_ADAPTER = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.Adapter\.D_fc([12])\.(weight|bias)$")
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size", "visual.temporal_embedding")


def load_reference_state(path: Path) -> dict[str, Any]:
    """The reference file's model state dict, loaded with weights_only (no code runs)."""
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects that would run code on load "
            "(only tensors and plain containers are accepted)"
        ) from exc
    except Exception as exc:  # zip/pickle corruption surfaces as many types
        raise CheckpointError(f"{path}: corrupt or unreadable torch file ({type(exc).__name__})") from exc
    state = obj.get("model_state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or REFERENCE_PROMPT_KEY not in {str(k).removeprefix("module.") for k in state}:
        raise CheckpointError(f"{path}: not an EZ-CLIP checkpoint (no {REFERENCE_PROMPT_KEY})")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: malformed EZ-CLIP checkpoint: '{bad[0]}' is not a tensor")
    return {k.removeprefix("module."): v for k, v in state.items()}


def openai_model_config(state: dict[str, Any]) -> dict[str, Any]:
    """open_clip config of an OpenAI-layout CLIP state dict (heads = width / 64, as OpenAI's)."""
    vision_width = state["visual.conv1.weight"].shape[0]
    patch = state["visual.conv1.weight"].shape[-1]
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]

    def layers(prefix: str) -> int:
        depth = len(prefix.rstrip(".").split("."))
        return len({k.split(".")[depth] for k in state if k.startswith(prefix)})

    return {
        "embed_dim": state["text_projection"].shape[1],
        "quick_gelu": True,  # OpenAI weights were trained with QuickGELU
        "vision_cfg": {
            "image_size": patch * grid,
            "layers": layers("visual.transformer.resblocks."),
            "width": vision_width,
            "patch_size": patch,
        },
        "text_cfg": {
            "context_length": state["positional_embedding"].shape[0],
            "vocab_size": state["token_embedding.weight"].shape[0],
            "width": text_width,
            "heads": max(1, text_width // 64),
            "layers": layers("transformer.resblocks."),
        },
    }


def import_reference(path: str | Path, *, device: str = "cpu", model_config: str | None = None) -> Any:
    """Convert a reference EZ-CLIP `.pt` into an EZClip; its backbone weights come from the file."""
    import torch

    from ezclip_cli.model.backbone import build_backbone_from_config, resolve_model_name
    from ezclip_cli.model.ezclip import build_model

    path = Path(path)
    state = load_reference_state(path)
    learned: dict[str, torch.Tensor] = {}
    raw_prompts = state.pop(REFERENCE_PROMPT_KEY)
    for key in [k for k in state if _REFERENCE_ADAPTER.match(k)]:
        match = _REFERENCE_ADAPTER.match(key)
        assert match is not None  # only matching keys are listed
        tower, layer, fc, kind = match.groups()
        learned[f"{'vision' if tower else 'text'}.{layer}.adapter.fc{fc}.{kind}"] = state.pop(key)
    check_learned(path, {REFERENCE_PROMPT_KEY: raw_prompts, **learned})  # before .float() hides an int64
    prompts = raw_prompts.float()  # (L, T, D)
    learned = {k: v.float() for k, v in learned.items()}
    if prompts.ndim != 3:
        raise CheckpointError(
            f"{path}: malformed EZ-CLIP checkpoint: prompts of shape {tuple(prompts.shape)}, "
            "expected (layers, frames, width)"
        )
    if prompts.shape[0] == 1:
        raise CheckpointError(f"{path}: shallow prompts (one layer) are not the EZ-CLIP release layout")
    learned.update({f"vision.{i}.prompt": p for i, p in enumerate(prompts)})
    _check_temporal_embedding(path, state.get("visual.temporal_embedding"))
    for key in _OPENAI_EXTRA_KEYS:
        state.pop(key, None)
    try:
        config_dict = resolve_model_name(model_config)[1] if model_config else openai_model_config(state)
    except (KeyError, IndexError, AttributeError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: malformed EZ-CLIP checkpoint: no usable CLIP weights ({_first_line(exc)})"
        ) from exc
    check_model_size(str(path), {"num_frames": int(prompts.shape[1]), "backbone_config": config_dict})
    name = model_config or f"reference:{path.name}"
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        backbone = build_backbone_from_config(config_dict, name, state, device)
        config = ModelConfig(backbone=name, pretrained=None, num_frames=int(prompts.shape[1]), use_prompts=True)
        model = build_model(backbone, config)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: malformed EZ-CLIP checkpoint: the CLIP weights do not fit together ({_first_line(exc)})"
        ) from exc
    try:
        model.load_learned_state_dict(learned)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from exc
    return model.to(device)


def _check_temporal_embedding(path: Path, tensor: Any) -> None:
    """The release's `visual.temporal_embedding` is inert and all zero; a non-zero one means a model
    that added it to the frames, which this EZ-CLIP would silently compute differently: refuse it."""
    if tensor is None:
        return
    largest = float(tensor.float().abs().max()) if tensor.numel() else 0.0
    if largest != 0.0:
        raise CheckpointError(
            f"{path}: visual.temporal_embedding is not zero (max |value| {largest:.3g}); "
            "it is not an EZ-CLIP release checkpoint (EZ-CLIP adds no temporal embedding)"
        )


def convert_download(name: str, url: str, raw: Path, work: Path, digest: str) -> Path:
    """A verified download of a named model as `NAME.ezclip` in `work`: kept if it already is one, else imported
    from the reference `.pt` layout once (docs/model.md section 12). Raises CheckpointError for anything else."""
    kind = detect_kind(raw)
    out = work / f"{name}.ezclip"
    if kind == "ezclip":
        read_checkpoint_header(raw)  # safetensors: a JSON header and raw tensors, nothing that runs
        raw.rename(out)
        return out
    if kind != "reference":
        raise CheckpointError(f"{raw}: {kind}")
    reference = raw.with_suffix(".pt")
    raw.rename(reference)  # the importer names the backbone after the file: reference:NAME.pt
    logging.getLogger(__name__).info("model %s: converting the reference checkpoint to %s (once)", name, out.name)
    model = import_reference(reference)
    extra = {"imported_from": name, "source_url": url, "source_sha256": digest}
    save_checkpoint(out, model, include_backbone=True, extra=extra)
    return out
