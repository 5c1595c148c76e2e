"""One verdict on a damaged store, for readers and writers alike.

A shard the manifest lists but that is missing, truncated, unreadable or of another shape is damage
no ezclip writer leaves (a shard is complete before its manifest line commits it), so it came from
outside: a disk, a copy, a hand. Readers (`tag --from-embeddings`, `search`) refuse such a store
with one line naming the shard; a writer (`embed`, `tag --save-embeddings`) says the same thing,
then drops the damaged shard's rows from the manifest, so the videos it held are embedded again
by that run (or the next one given them) and the store becomes whole. The rows dropped were
unreadable: nothing readable is lost, and nothing is left half-listed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["REPAIR_HINT", "shard_problem"]

REPAIR_HINT = "`ezclip embed` with the store's model and these videos drops and re-embeds its rows"


def shard_problem(path: Path, rows: int, dim: int | None) -> str | None:
    """What is wrong with a listed shard (missing, truncated, unreadable, wrong shape), or None when whole.

    Reads only the safetensors header and the file size: the data ends where the header says.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if size < 8 or header_len > size - 8:
                return "truncated"
            header: dict[str, Any] = json.loads(f.read(header_len))
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors
        return f"unreadable ({type(exc).__name__})"
    try:
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
        shape = list(tensors["embeddings"]["shape"])
    except (KeyError, TypeError, ValueError, IndexError):
        return "unreadable (not an embedding shard)"
    if size < 8 + header_len + end:
        return "truncated"
    if shape[:1] != [rows] or (dim is not None and shape[1:] != [dim]):
        return f"of shape {shape}, not the [{rows}, {dim}] its manifest line says"
    return None
