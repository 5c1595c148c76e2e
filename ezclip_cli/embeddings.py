"""The embedding store: normalised video embeddings kept once, re-labelled and searched without decoding.

A store is a folder:

    STORE/store.json          identity: format, version, model fingerprint, logit scale, how to load the model
    STORE/manifest.jsonl      one line per committed shard: its file, model id, row count and row metadata
    STORE/shards/NNNNNN.safetensors   the embeddings of those rows, (n, D) float32, L2-normalised

Appending writes a shard (atomically: temporary file, then rename) and then its manifest line; the
line is the commit. A kill leaves at most an unreferenced shard file or a torn last line, which the
next writer removes, so every row is stored once or not at all. Small shards (one per batch while
tagging) are merged into shards of up to `SHARD_ROWS` rows when a writer closes or opens.
Row metadata per row: path, video id (the hash of path, size and mtime that `tag` rows carry),
size, mtime_ns, window start/end, duration, number of frames and their timestamps.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Sequence

from ezclip_cli.errors import EzclipError, UsageError
from ezclip_cli.output import atomic_write

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "ezclip-embeddings"
VERSION = 1
SHARD_ROWS = 65536  # rows per merged shard: 128 MiB at 512-d float32
COLUMNS = ("path", "video_id", "size", "mtime_ns", "start", "end", "duration", "num_frames", "timestamps")
INFO_FILE, MANIFEST_FILE, SHARDS_DIR, LOCK_FILE = "store.json", "manifest.jsonl", "shards", ".lock"


class StoreError(EzclipError):
    """An embedding store is missing, damaged, locked, or of another model."""


def row_key(path: str, video_id: str | None, start: float | None) -> tuple:
    """Identity of a stored row: the same key `tag` resumes on (path, video id, window start)."""
    return (path, video_id, None if start is None else round(float(start), 3))


# ---- reading ----------------------------------------------------------------------------------
def read_info(store: Path) -> dict[str, Any]:
    """store.json of `store`; a folder that is not a store is an error naming it."""
    path = Path(store) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{store} is not an embedding store (no {INFO_FILE}); write one with --save-embeddings") from None
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


def read_shard_into(path: Path, out: "np.ndarray") -> None:
    """Copy a shard's (n, D) float32 tensor straight into `out` (one read, no intermediate array)."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        meta = header["embeddings"]
        if meta["dtype"] != "F32" or list(meta["shape"]) != list(out.shape):
            raise StoreError(f"{path}: holds {meta['dtype']} {meta['shape']}, the manifest says F32 {list(out.shape)}")
        begin, end = meta["data_offsets"]
        f.seek(8 + header_len + begin)
        if f.readinto(memoryview(out).cast("B")) != end - begin:
            raise StoreError(f"{path} is truncated; the store is damaged")


@dataclass
class StoredEmbeddings:
    """A loaded store: embeddings (N, D) float32 in row order and the metadata columns."""

    info: dict[str, Any]
    embeddings: "np.ndarray"
    columns: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return str(self.info["model_id"])

    @property
    def logit_scale(self) -> float:
        return float(self.info["logit_scale"])

    def __len__(self) -> int:
        return len(self.embeddings)

    def row(self, index: int) -> dict[str, Any]:
        return {name: values[index] for name, values in self.columns.items()}


def load_store(store: str | Path, model_id: str | None = None) -> StoredEmbeddings:
    """Every committed row of `store` (the last copy where a key repeats); refuses another model's store."""
    import numpy as np

    store = Path(store)
    info = read_info(store)
    if model_id is not None and info["model_id"] != model_id:
        raise refuse_model(store, info["model_id"], model_id)
    for attempt in range(2):  # a writer merging shards meanwhile replaces the manifest: read it again
        entries = read_manifest(store)
        total = sum(int(e["rows"]) for e in entries)
        dim = int(info.get("dim") or 0)
        embeddings = np.empty((total, dim), dtype=np.float32)
        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        try:
            offset = 0
            for entry in entries:
                if entry.get("model_id", info["model_id"]) != info["model_id"]:
                    raise StoreError(f"{store}: shard {entry['shard']} is of model {entry['model_id']}; the store is damaged")
                rows = int(entry["rows"])
                read_shard_into(store / SHARDS_DIR / entry["shard"], embeddings[offset : offset + rows])
                for name in COLUMNS:
                    columns[name] += entry["columns"][name]
                offset += rows
            break
        except FileNotFoundError:
            if attempt:
                raise StoreError(f"{store}: a shard listed in {MANIFEST_FILE} is missing; the store is damaged") from None
    keys = [row_key(p, v, s) for p, v, s in zip(columns["path"], columns["video_id"], columns["start"])]
    if len(set(keys)) != len(keys):  # only hand-edited stores get here; keep the last copy of each row
        last = {k: i for i, k in enumerate(keys)}
        index = sorted(last.values())
        embeddings = embeddings[index]
        columns = {name: [values[i] for i in index] for name, values in columns.items()}
    return StoredEmbeddings(info, embeddings, columns)


def refuse_model(store: Path, stored: str, given: str) -> StoreError:
    return StoreError(
        f"{store} holds embeddings of model {stored}, not of this model ({given}); "
        "use the model that wrote it or another store"
    )


# ---- writing ----------------------------------------------------------------------------------
class StoreWriter:
    """Appends rows to a store (created if needed); one writer at a time, kill-safe, nothing duplicated."""

    def __init__(self, store: str | Path, model_id: str, logit_scale: float, model_spec: dict[str, Any]):
        self.path = Path(store)
        self._prepare_folder()
        self._lock = self._acquire_lock()
        try:
            if (self.path / INFO_FILE).exists():
                self.info = read_info(self.path)
                if self.info["model_id"] != model_id:
                    raise refuse_model(self.path, self.info["model_id"], model_id)
            else:
                self.info = {
                    "format": FORMAT, "version": VERSION, "model_id": model_id, "logit_scale": float(logit_scale),
                    "dim": None, "dtype": "float32", "model": model_spec,
                }
                self._write_info()
            self.entries = self._recover()
            self.keys = {
                row_key(p, v, s)
                for e in self.entries
                for p, v, s in zip(e["columns"]["path"], e["columns"]["video_id"], e["columns"]["start"])
            }
            self.added = 0
            self._compact()
        except BaseException:
            self._lock.close()
            raise

    def _prepare_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path} is a file, not an embedding store; choose a folder for --save-embeddings")
        ours = {SHARDS_DIR, LOCK_FILE, MANIFEST_FILE}  # what a writer killed before store.json leaves
        if self.path.is_dir() and not (self.path / INFO_FILE).exists() and any(
            p.name not in ours and not p.name.startswith(f".{INFO_FILE}.") for p in self.path.iterdir()
        ):
            raise UsageError(f"{self.path} is a folder ezclip did not write (no {INFO_FILE}); choose a new or empty folder")
        (self.path / SHARDS_DIR).mkdir(parents=True, exist_ok=True)

    def _acquire_lock(self) -> IO[str]:
        import fcntl

        handle = open(self.path / LOCK_FILE, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreError(f"another ezclip process is writing {self.path}; wait for it or use another store") from None
        return handle

    def _write_info(self) -> None:
        text = json.dumps(self.info, indent=2) + "\n"
        atomic_write(self.path / INFO_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def _recover(self) -> list[dict[str, Any]]:
        """Drop what a killed writer left half done: a torn manifest line and unreferenced shard files."""
        manifest = self.path / MANIFEST_FILE
        entries = read_manifest(self.path)
        if manifest.is_file() and manifest.stat().st_size and not manifest.read_bytes().endswith(b"\n"):
            self._rewrite_manifest(entries)
        referenced = {e["shard"] for e in entries}
        for item in (self.path / SHARDS_DIR).iterdir():
            if item.name not in referenced:
                item.unlink()
        return entries

    def _rewrite_manifest(self, entries: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        atomic_write(self.path / MANIFEST_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def _next_name(self) -> str:
        used = [int(p.stem) for p in (self.path / SHARDS_DIR).glob("*.safetensors") if p.stem.isdigit()]
        return f"{max(used, default=0) + 1:06d}.safetensors"

    def _write_shard(self, embeddings: "np.ndarray", columns: dict[str, list[Any]]) -> dict[str, Any]:
        import numpy as np
        from safetensors.numpy import save_file

        name = self._next_name()
        data = np.ascontiguousarray(embeddings, dtype=np.float32)
        atomic_write(self.path / SHARDS_DIR / name, lambda tmp: save_file({"embeddings": data}, tmp))
        return {"shard": name, "model_id": self.info["model_id"], "rows": len(data), "columns": columns}

    def add(self, rows: Sequence[dict[str, Any]], embeddings: "np.ndarray") -> int:
        """Commit rows (dicts with COLUMNS) and their embeddings; rows already stored are skipped."""
        import numpy as np

        fresh, index = [], []
        for i, row in enumerate(rows):
            key = row_key(row["path"], row["video_id"], row["start"])
            if key not in self.keys:
                self.keys.add(key)
                fresh.append(row)
                index.append(i)
        if not fresh:
            return 0
        data = np.asarray(embeddings, dtype=np.float32)[index]
        if self.info.get("dim") is None:
            self.info["dim"] = int(data.shape[1])
            self._write_info()
        elif data.shape[1] != self.info["dim"]:
            raise StoreError(f"{self.path} holds {self.info['dim']}-d embeddings, not {data.shape[1]}-d")
        entry = self._write_shard(data, {name: [row.get(name) for row in fresh] for name in COLUMNS})
        with open(self.path / MANIFEST_FILE, "a", encoding="utf-8") as f:  # the commit
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.entries.append(entry)
        self.added += len(fresh)
        return len(fresh)

    def sink(self, decoded: list[tuple[Any, dict[str, Any]]], embeddings: "np.ndarray") -> None:
        """tagging.flush_batch's hook: store the batch's decoded tasks with their embeddings."""
        rows = []
        for task, result in decoded:
            try:
                stat = task.path.stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except OSError:
                size = mtime = None
            rows.append({
                "path": str(task.path), "video_id": task.video_id, "size": size, "mtime_ns": mtime,
                "start": task.start, "end": task.end, "duration": result["duration"],
                "num_frames": len(result["timestamps"]), "timestamps": result["timestamps"],
            })
        self.add(rows, embeddings)

    def _compact(self) -> None:
        """Merge runs of small shards into shards of up to SHARD_ROWS rows (fewer files, faster loads)."""
        groups: list[list[dict[str, Any]]] = []
        for entry in self.entries:
            if groups and int(entry["rows"]) < SHARD_ROWS and sum(int(e["rows"]) for e in groups[-1]) + int(entry["rows"]) <= SHARD_ROWS:
                groups[-1].append(entry)
            else:
                groups.append([entry])
        if all(len(g) == 1 for g in groups):
            return
        import numpy as np

        merged: list[dict[str, Any]] = []
        for group in groups:
            if len(group) == 1:
                merged.append(group[0])
                continue
            total = sum(int(e["rows"]) for e in group)
            data = np.empty((total, int(self.info["dim"])), dtype=np.float32)
            offset = 0
            for e in group:
                read_shard_into(self.path / SHARDS_DIR / e["shard"], data[offset : offset + int(e["rows"])])
                offset += int(e["rows"])
            columns = {name: [v for e in group for v in e["columns"][name]] for name in COLUMNS}
            merged.append(self._write_shard(data, columns))
        self._rewrite_manifest(merged)  # the switch to the merged shards is one atomic rename
        old = {e["shard"] for e in self.entries} - {e["shard"] for e in merged}
        for name in old:
            (self.path / SHARDS_DIR / name).unlink(missing_ok=True)
        self.entries = merged

    def close(self) -> None:
        """Merge this run's small shards and release the lock."""
        try:
            self._compact()
        finally:
            self._lock.close()


def model_spec(checkpoint: Path | str | None, model: str | None, pretrained: str | None, num_frames: int) -> dict[str, Any]:
    """How to load the model again (re-labelling with a cold text cache, search): the flags given to tag."""

    def resolve(value: Any) -> Any:  # local files by absolute path, so a later run from elsewhere finds them
        return str(Path(value).resolve()) if value is not None and Path(str(value)).exists() else value

    return {
        "checkpoint": resolve(checkpoint), "model": resolve(model), "pretrained": resolve(pretrained),
        "num_frames": num_frames,
    }


def open_store_for_tagging(
    store: Path, predictor: Any, model_id: str, spec: dict[str, Any], world: int,
) -> StoreWriter:
    """The store `tag --save-embeddings` appends to, checked against this run's model."""
    if world > 1:
        raise UsageError("--save-embeddings is not supported under torchrun; run one process per shard (--num-shards)")
    scale = getattr(getattr(predictor, "scorer", None), "logit_scale", None)
    if scale is None:
        scale = getattr(predictor, "logit_scale", None)
    return StoreWriter(store, model_id, float(scale), spec)


def warn_unstored(done: Iterable[tuple], writer: StoreWriter) -> None:
    """Rows an earlier run wrote to -o without --save-embeddings are skipped, so they cannot reach the store."""
    missing = sum(1 for key in done if row_key(*key) not in writer.keys)
    if missing:
        log.warning(
            "%d rows already in the output are not in %s (tagged without --save-embeddings); "
            "`ezclip embed` adds them", missing, writer.path,
        )
