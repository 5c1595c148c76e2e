"""Where a resumed run writes, and the checks it passes before it creates or touches any file.

A resumed run continues in the folder it was given (`--resume DIR`, or the folder of
`--resume DIR/last.ezclip`), never in the `out:` its checkpoint remembers: that path is relative
to wherever the run first started, so a copied folder (`cp -r run1 copyA`) would otherwise train
into the original, and a resume from another directory would create a new run folder there.
Everything a resume can get wrong (the pair of files, their save token, the data the stored config
names) is checked here first, so a refused resume leaves every file as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ezclip_cli.errors import CheckpointError, UsageError
from ezclip_cli.train.resolve import resume_files

__all__ = ["check_resume", "resume_directory"]

# Config keys naming local inputs, which must exist before a resume starts writing.
_INPUT_KEYS = ("train_list", "val_list", "root", "labels")


def resume_directory(resume: str | Path) -> Path:
    """The run folder of `--resume`: the folder itself, or the folder holding the given checkpoint."""
    path = Path(resume)
    return path if path.is_dir() else path.parent


def same_folder(a: str | Path, b: str | Path) -> bool:
    """Whether two spellings name one folder (relative, absolute, through links)."""
    return Path(a).resolve() == Path(b).resolve()


def check_resume(config: Any, resume: str | Path, own_data: bool) -> None:
    """Refuse a resume that cannot continue, before anything is written.

    `config` is the resolved TrainConfig; `own_data` is True when the caller passed datasets itself
    (then the stored list files are not read).
    """
    from ezclip_cli.model.checkpoint import read_checkpoint_header
    from ezclip_cli.train.state import load_train_state

    folder = resume_directory(resume)
    if not same_folder(config.out, folder):
        raise UsageError(
            f"--resume continues the run in its own folder {folder}, not in {config.out}; "
            "copy the folder first to continue it elsewhere"
        )
    checkpoint, state_file = resume_files(resume)
    extra = json.loads(read_checkpoint_header(checkpoint).get("extra") or "{}")
    if "train_config" not in extra:
        raise CheckpointError(f"{checkpoint}: no training config inside; it was not written by `ezclip train`")
    counters = load_train_state(state_file)["counters"]
    if extra.get("state_token") != counters.get("state_token"):
        raise CheckpointError(
            f"{checkpoint} and {state_file.name} are from different saves (another run's checkpoint, "
            "or a crash between the two); resume from a folder whose two files were saved together"
        )
    if own_data:
        return
    for key in _INPUT_KEYS:
        value = getattr(config, key, None)
        if value and not Path(value).exists():
            flag = key.replace("_", "-")
            raise UsageError(
                f"{flag} {value} of the resumed run is not found from {Path.cwd()}: "
                f"its relative paths start where the run first started; run from there or pass --{flag}"
            )
