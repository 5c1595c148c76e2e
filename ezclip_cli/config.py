"""Frozen configuration dataclasses, one per concern, written into every checkpoint."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ezclip_cli.errors import UsageError

DEFAULT_BACKBONE = "ViT-B-16-quickgelu"  # reference release: ViT-B/16 + OpenAI weights (method.md section 1)
DEFAULT_PRETRAINED = "openai"


@dataclass(frozen=True)
class ModelConfig:
    """What an EZ-CLIP model is: the backbone it wraps and the learnable parts around it."""

    backbone: str = DEFAULT_BACKBONE  # open_clip name, or the path of an open_clip model-config JSON
    pretrained: str | None = DEFAULT_PRETRAINED  # open_clip tag, a local weights file, or None (random)
    num_frames: int = 8  # T, baked into the prompt tensor's shape (method.md section 2)
    use_prompts: bool = True  # temporal visual prompts in every vision layer
    adapter_ratio: float = 0.25  # adapter hidden = int(ratio * D) (method.md section 3)
    prompt_dropout: float = 0.1  # Dropout on P[l, t] before it seeds the prompt attention
    drop_path: float = 0.1  # stochastic depth, linspace(0, drop_path, L) over layers, per sample
    attn_dropout: float = 0.1  # the frozen attention's dropout in training (reference: same per-layer rate)
    # Filled in from the backbone once it is built; kept so a checkpoint describes itself.
    backbone_config: dict[str, Any] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return from_dict(cls, data)


def from_dict(cls: type, data: dict[str, Any]):
    """Build a dataclass from a dict, refusing unknown keys with the list of known ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(
            f"unknown {cls.__name__} key(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    return cls(**data)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping; a bad file is a usage error with its path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not valid YAML: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of option: value")
    return data


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@dataclass(frozen=True)
class TagConfig:
    """How `ezclip tag` runs: label set, prompts, outputs, batching, sharding."""

    labels: str  # bundled name, file path or inline comma list
    templates: tuple[str, ...] = ()  # empty = the default EZ-CLIP templates
    use_descriptions: bool = True
    top_k: int = 5
    window: float | None = None  # seconds; None = one prediction per video
    stride: float | None = None  # seconds between window starts; None = window
    batch_size: int = 8
    workers: int = -1  # decoding processes; -1 = CPU count - 1 (at most 8); 0 = in-process
    device: str = "auto"
    decoder: str = "auto"
    num_shards: int = 1
    shard_index: int = 0
    output_format: str = "csv"
    cache_dir: str | None = None
