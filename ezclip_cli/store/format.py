"""The embedding store's format, and reading it: normalised video embeddings kept once, re-labelled and
searched without decoding (writing it: store_writer.py).

A store is a folder:

    STORE/store.json          identity: format, version, model fingerprint, logit scale, how to load the model
    STORE/manifest.jsonl      one line per committed shard: its file, model id, row count, paths and video ids
    STORE/shards/NNNNNN.safetensors   those rows: `embeddings` (n, D) float32, L2-normalised, and the
                              numeric metadata as columns (start, end, duration, size, mtime_ns,
                              num_frames: (n,); timestamps: (n, T)); NaN or -1 stand for "none"

A shard is committed by its manifest line, so readers take only whole lines and read every shard
those lines name; a writer merging shards meanwhile swaps the manifest, and a read retries once.
Row metadata per row: path, video id (the hash of path, size and mtime that `tag` rows carry),
size, mtime_ns, window start/end, duration, number of frames and their timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import EzclipError
from ezclip_cli.store.damage import REPAIR_HINT, shard_problem
from ezclip_cli.tag.results import TagResult
from ezclip_cli.tag.resume import start_key, video_key

if TYPE_CHECKING:
    import numpy as np

FORMAT = "ezclip-embeddings"
VERSION = 1
SHARD_ROWS = 65536  # rows per merged shard: 128 MiB at 512-d float32
TEXT_COLUMNS = ("path", "video_id")  # in the manifest (JSON)
FLOAT_COLUMNS = ("start", "end", "duration")  # float64 tensors in the shard, NaN = none
INT_COLUMNS = ("size", "mtime_ns", "num_frames")  # int64 tensors in the shard, -1 = none
COLUMNS = (*TEXT_COLUMNS, *FLOAT_COLUMNS, *INT_COLUMNS, "timestamps")  # timestamps: float64 (n, T), NaN-padded
_DTYPES = {"F32": "float32", "F64": "float64", "I64": "int64"}
INFO_FILE, MANIFEST_FILE, SHARDS_DIR, LOCK_FILE = "store.json", "manifest.jsonl", "shards", ".lock"


class StoreError(EzclipError):
    """An embedding store is missing, damaged, locked, or of another model."""


def read_info(store: Path) -> dict[str, Any]:
    """store.json of `store`; a folder that is not a store is an error naming it."""
    path = Path(store) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(
            f"{store} is not an embedding store (no {INFO_FILE}); write one with --save-embeddings"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is unreadable ({type(exc).__name__}); the store is damaged") from exc
    if info.get("format") != FORMAT:
        raise StoreError(f"{store} is not an ezclip embedding store")
    if int(info.get("version", 0)) > VERSION:
        raise StoreError(f"{store} was written by a newer ezclip (store version {info['version']}); upgrade ezclip")
    return info


def read_manifest(store: Path) -> list[dict[str, Any]]:
    """Committed shard entries in order; a torn last line (a kill mid-append) is not a commit."""
    path = Path(store) / MANIFEST_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # cannot happen for whole lines we wrote; never let one line stop a read
    return entries


def read_shard(path: Path, into: np.ndarray | None = None, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors of a shard; `embeddings` is read straight into `into` when given (one read, no copy).

    safetensors is an 8-byte header length, a JSON header of names, dtypes, shapes and offsets, then
    raw little-endian data, so each tensor is one seek and one read.
    """
    import numpy as np

    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        for name, meta in header.items():
            if name == "__metadata__" or (names is not None and name not in names):
                continue
            begin, end = meta["data_offsets"]
            f.seek(8 + header_len + begin)
            if name == "embeddings" and into is not None:
                if meta["dtype"] != "F32" or list(meta["shape"]) != list(into.shape):
                    raise StoreError(
                        f"{path}: holds {meta['dtype']} {meta['shape']}, the manifest says F32 {list(into.shape)}"
                    )
                if into.size and f.readinto(into.data.cast("B")) != end - begin:
                    raise StoreError(f"{path} is truncated; the store is damaged")
                continue
            data = f.read(end - begin)
            if len(data) != end - begin:
                raise StoreError(f"{path} is truncated; the store is damaged")
            out[name] = np.frombuffer(data, dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


def concat_timestamps(parts: list[np.ndarray]) -> np.ndarray:
    """(n_i, T_i) blocks -> one (sum n_i, max T_i) array, NaN-padded."""
    import numpy as np

    width = max((p.shape[1] for p in parts), default=0)
    total = sum(p.shape[0] for p in parts)
    out = np.full((total, width), np.nan)
    offset = 0
    for part in parts:
        out[offset : offset + len(part), : part.shape[1]] = part
        offset += len(part)
    return out


@dataclass
class StoredEmbeddings:
    """A loaded store: embeddings (N, D) float32 in row order and the metadata columns."""

    info: dict[str, Any]
    embeddings: np.ndarray
    columns: dict[str, Any] = field(default_factory=dict)  # path, video_id: lists; the rest numpy arrays

    @property
    def model_id(self) -> str:
        return str(self.info["model_id"])

    @property
    def logit_scale(self) -> float:
        return float(self.info["logit_scale"])

    def __len__(self) -> int:
        return len(self.embeddings)

    def row(self, index: int) -> dict[str, Any]:
        """The metadata of row `index` as plain Python values (None where there is none)."""
        return self.rows([index])[0]

    def rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """`row` for many rows at once (columns converted in bulk: ~10x faster than row by row)."""
        import numpy as np

        c, index = self.columns, np.asarray(indices, dtype=np.int64)
        values: dict[str, list[Any]] = {name: [c[name][i] for i in indices] for name in TEXT_COLUMNS}
        for name in FLOAT_COLUMNS:
            values[name] = [None if v != v else v for v in c[name][index].tolist()]
        for name in INT_COLUMNS:
            values[name] = [None if v < 0 else v for v in c[name][index].tolist()]
        stamps = c["timestamps"][index]
        complete = bool(np.isfinite(stamps).all())  # the usual case: every row has the model's T frames
        values["timestamps"] = stamps.tolist() if complete else [s[s == s].tolist() for s in stamps]
        names = list(values)
        return [dict(zip(names, row)) for row in zip(*(values[n] for n in names))]


# Which stored rows are live: the newest version of each file, one row per window.
#
# A store is append-only, so re-embedding a file that changed (new size or modification time, so a
# new video id, tag.plan.video_fingerprint) appends its new rows beside the old ones. The old rows are
# dead from then on: a file has one content, and relabelling or `search --per-video` must return it
# once. A video id is `WHO.WHAT` (WHO: the resolved path, WHAT: size and mtime), so the live version
# of a file is the WHAT of the last row written for its WHO; of its rows, the last copy of each
# window start counts (only hand-edited stores repeat a key).
def live_index(video_ids: Sequence[str], starts: Sequence[float | None]) -> list[int]:
    """Indices (ascending) of the live rows among rows in write order: (video id, start) per row (NaN: none)."""
    current = {video_key(v): v for v in video_ids}  # the last version written of each file
    last: dict[tuple[str, float | None], int] = {}
    for i, (video_id, start) in enumerate(zip(video_ids, starts)):
        if current[video_key(video_id)] == video_id:
            last[(video_id, None if start is None or start != start else start_key(start))] = i  # NaN: no window
    return sorted(last.values())


def load_store(store: str | Path, model_id: str | None = None) -> StoredEmbeddings:
    """Every live row of `store` (live_index: a re-embedded file's newest rows); refuses another model's store.

    `store` may also be a table written by `ezclip store export` (store.table).
    """
    import numpy as np

    from ezclip_cli.store.table import is_table, load_table

    store = Path(store)
    if is_table(store):
        return load_table(store, model_id)
    info = read_info(store)
    if model_id is not None and info["model_id"] != model_id:
        raise refuse_model(store, info["model_id"], model_id)
    for attempt in range(2):  # a writer merging shards meanwhile replaces the manifest: read it again
        entries = read_manifest(store)
        total = sum(int(e["rows"]) for e in entries)
        dim = int(info.get("dim") or 0)
        embeddings = np.empty((total, dim), dtype=np.float32)
        text: dict[str, list[str]] = {name: [] for name in TEXT_COLUMNS}
        numeric: dict[str, list[np.ndarray]] = {name: [] for name in (*FLOAT_COLUMNS, *INT_COLUMNS, "timestamps")}
        try:
            offset = 0
            for entry in entries:
                if entry.get("model_id", info["model_id"]) != info["model_id"]:
                    raise StoreError(
                        f"{store}: shard {entry['shard']} is of model {entry['model_id']}; the store is damaged"
                    )
                rows = int(entry["rows"])
                problem = shard_problem(store / SHARDS_DIR / entry["shard"], rows, dim)
                if problem is not None and problem != "missing":  # missing: perhaps merged meanwhile, retried
                    raise StoreError(
                        f"{store}: shard {entry['shard']} is {problem}; the store is damaged: {REPAIR_HINT}"
                    )
                tensors = read_shard(store / SHARDS_DIR / entry["shard"], into=embeddings[offset : offset + rows])
                for name in TEXT_COLUMNS:
                    text[name] += entry["columns"][name]
                for name in numeric:
                    numeric[name].append(tensors[name])
                offset += rows
            break
        except FileNotFoundError:
            if attempt:
                raise StoreError(
                    f"{store}: a shard listed in {MANIFEST_FILE} is missing; the store is damaged: {REPAIR_HINT}"
                ) from None
    columns: dict[str, Any] = dict(text)
    for name in (*FLOAT_COLUMNS, *INT_COLUMNS):
        empty = np.zeros(0, _DTYPES["F64" if name in FLOAT_COLUMNS else "I64"])
        columns[name] = np.concatenate(numeric[name]) if numeric[name] else empty
    columns["timestamps"] = concat_timestamps(numeric["timestamps"])
    index = live_index(columns["video_id"], columns["start"].tolist())  # re-embedded files once (live_index)
    if len(index) != len(embeddings):
        embeddings = embeddings[index]
        columns = {name: [v[i] for i in index] if name in TEXT_COLUMNS else v[index] for name, v in columns.items()}
    return StoredEmbeddings(info, embeddings, columns)


def refuse_model(store: Path, stored: str, given: str) -> StoreError:
    """The error for a store of model `stored` used with model `given` (readers and writers alike)."""
    return StoreError(
        f"{store} holds embeddings of model {stored}, not of this model ({given}); "
        "use the model that wrote it or another store"
    )


def stored_result(meta: dict[str, Any], labels: Sequence[str], scores: Sequence[float]) -> TagResult:
    """The result `tag` gave (or would give) for a stored row (`StoredEmbeddings.row`), with these labels."""
    return TagResult(
        meta["path"],  # already str(Path) of tag's task
        meta["video_id"],
        start=meta["start"],
        end=meta["end"],
        duration=round(meta["duration"], 3),
        labels=tuple(labels),
        scores=tuple(scores),
        num_frames=len(meta["timestamps"]),
        timestamps=tuple(meta["timestamps"]),
    )
