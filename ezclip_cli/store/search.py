"""`ezclip search STORE "a person surfing"`: rank stored videos (windows) by similarity to text or a video.

The query is embedded with the store's model (text: the raw query through the text tower, as
clip-retrieval does; `--like VIDEO`: the video's stored embedding, or decoded and encoded when it
is not stored), then one matrix-vector product against the stored embeddings gives the cosine
similarity of every row, and the top k are kept with `argpartition` (no full sort).
Hits have their own schema (rank, query, score, path, ...; search_output.py) in csv, json,
jsonl, or bare paths for shell pipelines.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ezclip_cli.errors import UsageError, VideoError
from ezclip_cli.store.format import StoredEmbeddings, load_store

if TYPE_CHECKING:
    import numpy as np

    from ezclip_cli.model.spec import ModelSpec


def top_rows(
    embeddings: np.ndarray,
    query: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    groups: Sequence[str] | None = None,
) -> list[tuple[int, float]]:
    """(row index, cosine) of the k rows most similar to `query` (D,), best first.

    `exclude`: boolean mask of rows never returned; `groups`: a group id per row (a video),
    keeping only the best row of each group.
    """
    import numpy as np

    sims = embeddings @ np.asarray(query, dtype=np.float32)  # (N,)
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    if groups is None:
        k = min(k, int(np.isfinite(sims).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
    else:
        picked: list[np.intp] = []  # argsort indices
        seen = set()
        for i in np.argsort(-sims, kind="stable"):
            if not np.isfinite(sims[i]) or len(picked) == k:
                break
            if groups[i] not in seen:
                seen.add(groups[i])
                picked.append(i)
        top = np.asarray(picked, dtype=np.int64)
    return [(int(i), float(sims[i])) for i in top]


def text_queries(
    stored: StoredEmbeddings, store: Path, queries: Sequence[str], model: ModelSpec | None = None
) -> np.ndarray:
    """Normalised text embeddings (Q, D) of the raw queries under the store's model."""
    import torch

    from ezclip_cli.store.relabel import store_model

    ezclip = store_model(stored, store, model)
    with torch.inference_mode():
        return ezclip.build_text_classifier([[q] for q in queries]).float().cpu().numpy()


def video_query(
    stored: StoredEmbeddings, store: Path, video: Path, decoder: str, model: ModelSpec | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(normalised embedding (D,), mask of the video's own rows) for `--like VIDEO`."""
    import numpy as np

    from ezclip_cli.tag.plan import video_fingerprint

    if not video.is_file():
        raise UsageError(f"--like {video}: no such file")
    import os

    target = os.path.abspath(video)  # the stored path may be relative or absolute
    paths = np.asarray([os.path.abspath(p) for p in stored.columns["path"]], dtype=object)
    own = (paths == target) | (np.asarray(stored.columns["video_id"], dtype=object) == video_fingerprint(video))
    if own.any():  # stored: no decoding; windows are averaged into one video embedding
        mean = stored.embeddings[own].mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12), own
    from ezclip_cli.store.relabel import store_model
    from ezclip_cli.tag.plan import Task
    from ezclip_cli.tag.pool import decode_task
    from ezclip_cli.tag.predictors import TorchPredictor
    from ezclip_cli.video.reader import DecodeSettings

    ezclip = store_model(stored, store, model)
    settings = DecodeSettings(ezclip.num_frames, ezclip.backbone.image_size, decoder)
    decoded = decode_task(Task(video, video_fingerprint(video)), settings)
    if isinstance(decoded, str):
        raise VideoError(f"--like {video}: {decoded}")
    embedding = TorchPredictor(ezclip, None, [], 1, "cpu").embed([decoded.pixels])[0]
    return embedding, own


def run_search(
    store: Path,
    queries: Sequence[str],
    *,
    like: Path | None = None,
    k: int = 20,
    per_video: bool = False,
    fmt: str = "csv",
    output: Path | None = None,
    overwrite: bool = False,
    stdout: IO[str] | None = None,
    decoder: str = "auto",
    model: ModelSpec | None = None,
) -> int:
    """Write the k best rows per query; returns how many rows were written."""
    from ezclip_cli.files import atomic_write
    from ezclip_cli.store.search_output import SEARCH_FORMATS, hit_record, write_hits

    if fmt not in SEARCH_FORMATS:
        raise UsageError(f"--format {fmt}: search writes {', '.join(SEARCH_FORMATS)}")
    if bool(queries) == (like is not None):
        raise UsageError("search needs a text query or --like VIDEO (one of them)")
    if output is not None and str(output) == "-":
        output = None  # `-o -`: stdout, as for tag
    if output is not None:
        from ezclip_cli.files import resolve_target

        output = resolve_target(output)  # a folder, a pipe (-o /dev/stdout), a device: one line, exit 2
    if output is not None and output.exists() and not overwrite:
        raise UsageError(f"{output} exists; search results are not resumed: use --overwrite or another -o")
    if fmt == "parquet" and output is None:
        raise UsageError("-f parquet writes a file, not a stream: give -o FILE.parquet")
    stored = load_store(store)
    if not len(stored):
        raise UsageError(f"{store} holds no embeddings yet")
    exclude = None
    if like is not None:
        vector, exclude = video_query(stored, store, like, decoder, model)
        named: list[tuple[str, np.ndarray]] = [(f"like:{like}", vector)]
    else:
        named = list(zip(queries, text_queries(stored, store, queries, model)))
    groups = None
    if per_video:
        groups = [f"{p}|{v}" for p, v in zip(stored.columns["path"], stored.columns["video_id"])]
    rows = []
    for query, vector in named:
        for rank, (i, cosine) in enumerate(top_rows(stored.embeddings, vector, k, exclude, groups), start=1):
            rows.append(hit_record(rank, query, cosine, stored.row(i), stored.model_id))

    def write(stream: IO[str]) -> None:
        write_hits(stream, fmt, rows)

    if fmt == "parquet":
        from ezclip_cli.store.search_output import write_hits_table

        assert output is not None  # refused above
        write_hits_table(output, rows)
    elif output is None:
        write(stdout or sys.stdout)
    else:

        def write_file(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as stream:
                write(stream)

        atomic_write(output, write_file)
    return len(rows)
