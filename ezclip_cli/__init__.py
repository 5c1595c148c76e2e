"""ezclip: zero-shot video action recognition with EZ-CLIP on open_clip.

Public API (imports are lazy so `ezclip --help` never loads torch):
    load_model(checkpoint=None, model=None, pretrained=None, num_frames=8, device="cpu") -> EZClip
    tag_videos(inputs, labels, model=..., ...) -> list of result rows
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "tag_videos"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from ezclip_cli.model.load import load_model

        return load_model
    if name == "tag_videos":
        from ezclip_cli.api import tag_videos

        return tag_videos
    raise AttributeError(name)
