"""ezclip: zero-shot video action recognition with EZ-CLIP on open_clip (README, "Python").

    import ezclip_cli
    tagger = ezclip_cli.load_tagger()                  # the default EZ-CLIP model, loaded once
    for result in tagger.tag(["clips/"], labels="k400"):
        print(result.path, result.label, result.scores[:1])

Public names (every import is lazy, so `import ezclip_cli` and `ezclip --help` never load torch):
    load_tagger, Tagger      a model loaded once: tag(), embed(), set_labels()
    tag_videos               one call: load, tag, return TagResult rows
    TagResult, TagConfig     one result row; the options of a tagging run (checked on creation)
    load_store               an embedding store read into memory (tag --save-embeddings, ezclip embed)
    load_model               the EZClip torch module itself
    EzclipError and its kinds: UsageError, CheckpointError, VideoError, LabelsetError, DownloadError, ...
"""

from __future__ import annotations

from typing import Any

from ezclip_cli.version import __version__

__all__ = [
    "BackboneError",
    "CheckpointError",
    "DatasetError",
    "DownloadError",
    "ExportError",
    "EzclipError",
    "LabelsetError",
    "TagConfig",
    "TagResult",
    "Tagger",
    "UsageError",
    "VideoError",
    "__version__",
    "load_model",
    "load_store",
    "load_tagger",
    "tag_videos",
]

# name -> the module that defines it (imported on first use)
_HOMES = {
    "load_tagger": "ezclip_cli.api",
    "Tagger": "ezclip_cli.api",
    "tag_videos": "ezclip_cli.api",
    "load_store": "ezclip_cli.api",
    "TagConfig": "ezclip_cli.config.tag",
    "TagResult": "ezclip_cli.tag.results",
    "load_model": "ezclip_cli.model.load",
    **{
        name: "ezclip_cli.errors"
        for name in (
            "EzclipError",
            "UsageError",
            "BackboneError",
            "CheckpointError",
            "VideoError",
            "LabelsetError",
            "DatasetError",
            "DownloadError",
            "ExportError",
        )
    },
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ezclip_cli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
