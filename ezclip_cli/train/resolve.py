"""The training config of a run: defaults < resumed run < YAML file < flags, and where a resume reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ezclip_cli.config import TrainConfig, load_yaml
from ezclip_cli.errors import CheckpointError


def resolve_train_config(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None, resume: str | Path | None = None
) -> TrainConfig:
    """Defaults < the resumed run's config < the YAML file < flags that were given (None = not given).

    A resume's `out` is its own folder, whatever its checkpoint or the YAML file say; an `--out`
    flag naming another folder is refused later, before anything is written.
    """
    data: dict[str, Any] = {}
    if resume is not None:
        data.update(read_run_config(resume))
    if config_file is not None:
        data.update(load_yaml(config_file))
    if resume is not None:  # a resumed run writes only into the folder it was given (train.resume)
        path = Path(resume)
        data["out"] = str(path if path.is_dir() else path.parent)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_dict(data)


def read_run_config(resume: str | Path) -> dict[str, Any]:
    """The training config stored in a run's last checkpoint."""
    from ezclip_cli.model.checkpoint import read_checkpoint_header

    checkpoint, _ = resume_files(resume)
    extra = json.loads(read_checkpoint_header(checkpoint).get("extra") or "{}")
    if "train_config" not in extra:
        raise CheckpointError(f"{checkpoint}: no training config inside; it was not written by `ezclip train`")
    return extra["train_config"]


def resume_files(resume: str | Path) -> tuple[Path, Path]:
    """(checkpoint, state file) of a run directory or of a `.ezclip` checkpoint beside its state."""
    path = Path(resume)
    checkpoint = path / "last.ezclip" if path.is_dir() else path
    state = checkpoint.with_name(checkpoint.name.removesuffix(".ezclip") + ".state.safetensors")
    if not checkpoint.is_file():
        raise CheckpointError(f"nothing to resume: {checkpoint} not found")
    if not state.is_file():
        raise CheckpointError(
            f"cannot resume from {checkpoint}: no training state {state.name} beside it (resume from last.ezclip)"
        )
    return checkpoint, state
