"""ModelSpec: which model a command means, resolved once at the edge and carried as one object.

`--checkpoint/--model/--pretrained/--num-frames` (or a library call's keywords) become a ModelSpec in
`resolve_model`, the only place that turns a model name into a file (downloading it once) or decides
"plain CLIP". Loading, the embedding store, resume identity and reports take the spec as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import DEFAULT_BACKBONE
from ezclip_cli.errors import CheckpointError
from ezclip_cli.model.bundle import is_bundle

if TYPE_CHECKING:
    from ezclip_cli.hub.index import ModelIndex

log = logging.getLogger(__name__)

NO_CHECKPOINT = "none"  # `--checkpoint none`: plain CLIP frame averaging, explicitly
RUN_BEST = "best.ezclip"  # what a training run's folder stands for


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: an EZ-CLIP checkpoint file, an exported bundle folder, or plain CLIP.

    checkpoint  local .ezclip / reference .pt file, or a bundle folder; None for plain CLIP
    backbone    --model: the open_clip name or config JSON (plain CLIP), or a checkpoint's backbone config
    pretrained  --pretrained: open_clip tag or weights file for plain CLIP (None = the name's default)
    num_frames  T for plain CLIP (a checkpoint or bundle fixes its own)
    name        the model-index name the checkpoint was resolved from, if any (for messages)
    """

    checkpoint: Path | None = None
    backbone: str | None = None
    pretrained: str | None = None
    num_frames: int = 8
    name: str | None = None

    @property
    def kind(self) -> str:
        """'bundle', 'checkpoint' or 'plain'."""
        if self.checkpoint is None:
            return "plain"
        return "bundle" if is_bundle(self.checkpoint) else "checkpoint"

    @property
    def source(self) -> Path | str | None:
        """What identifies the files the model comes from (a bundle's id covers all its files)."""
        return self.checkpoint if self.checkpoint is not None else self.backbone

    def describe(self) -> str:
        """One phrase for logs and reports."""
        if self.checkpoint is None:
            return f"plain CLIP {self.backbone or DEFAULT_BACKBONE} ({self.pretrained or 'default weights'})"
        named = f"{self.name}, " if self.name else ""
        return f"{named}{self.kind} {self.checkpoint}"

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> ModelSpec:
        """The spec `to_dict` wrote (an embedding store's `model`): no lookup, no download."""
        checkpoint = stored.get("checkpoint")
        plain = checkpoint is None or str(checkpoint).strip().lower() == NO_CHECKPOINT
        return cls(
            checkpoint=None if plain else Path(str(checkpoint)),
            backbone=stored.get("model"),
            pretrained=stored.get("pretrained"),
            num_frames=int(stored.get("num_frames") or 8),
        )

    def to_dict(self) -> dict[str, Any]:
        """How to load the model again from another run (the embedding store keeps this): absolute paths."""

        def absolute(value: Path | str | None) -> str | None:
            if value is None:
                return None
            path = Path(value).expanduser()
            return str(path.resolve()) if path.exists() else str(value)

        return {
            "checkpoint": absolute(self.checkpoint) if self.checkpoint is not None else NO_CHECKPOINT,
            "model": absolute(self.backbone),
            "pretrained": absolute(self.pretrained),
            "num_frames": self.num_frames,
        }


def resolve_model(
    checkpoint: str | Path | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
) -> ModelSpec:
    """The ModelSpec the flags mean (README, "Models and checkpoints").

    `checkpoint` wins: an ezclip checkpoint, a reference EZ-CLIP `.pt`, an exported bundle folder, a training
    run's folder (its best.ezclip), or the name of a model in the model index (downloaded, verified and
    converted once). `model` may name a bundle folder too. Nothing given at all: the index's default model.
    Plain CLIP only when asked for: `checkpoint="none"`, or `model`/`pretrained` without a checkpoint.
    Raises CheckpointError for a path or name that is neither.
    """
    if checkpoint is None and model is not None and is_bundle(model):
        return ModelSpec(checkpoint=Path(model), num_frames=num_frames)
    if checkpoint is None:
        if model is not None or pretrained is not None:
            return ModelSpec(backbone=model, pretrained=pretrained, num_frames=num_frames)
        from ezclip_cli.hub.index import load_index

        index = load_index()
        if index.default is None:
            return ModelSpec(num_frames=num_frames)
        log.info("model: %s, the default EZ-CLIP model (--checkpoint none for plain CLIP)", index.default)
        return ModelSpec(checkpoint=fetch_model(index.default, index), backbone=model, name=index.default)
    text = str(checkpoint)
    if text.strip().lower() == NO_CHECKPOINT:
        return ModelSpec(backbone=model, pretrained=pretrained, num_frames=num_frames)
    path = Path(text).expanduser()
    if pretrained is not None:
        log.warning("--pretrained is ignored with --checkpoint (the checkpoint names its backbone)")
    if path.is_dir() and not is_bundle(path) and (path / RUN_BEST).is_file():
        path = path / RUN_BEST  # a training run's folder (`ezclip train --out`) means its best checkpoint
    if path.exists():
        return ModelSpec(checkpoint=path, backbone=model, num_frames=num_frames)
    from ezclip_cli.hub.index import load_index

    index = load_index()
    if text in index.models:
        return ModelSpec(checkpoint=fetch_model(text, index), backbone=model, name=text)
    if "/" not in text and "\\" not in text and not path.suffix:
        raise CheckpointError(
            f"checkpoint not found: {text} is neither a file nor a model name "
            f"(`ezclip models` lists: {', '.join(index.models) or 'none'})"
        )
    raise CheckpointError(f"checkpoint not found: {path}")


def fetch_model(name: str, index: ModelIndex | None = None, *, force: bool = False) -> Path:
    """The local `.ezclip` file of the named model: downloaded, verified and converted the first time."""
    from ezclip_cli.hub.index import ensure_model
    from ezclip_cli.model.checkpoint import convert_download

    return ensure_model(name, index, convert=convert_download, force=force)
