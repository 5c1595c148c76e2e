"""The embedding store: normalised video embeddings kept once, re-labelled and searched without decoding.

A store is a folder:

    STORE/store.json          identity: format, version, model fingerprint, logit scale, how to load the model
    STORE/manifest.jsonl      one line per committed shard: its file, model id, row count, paths and video ids
    STORE/shards/NNNNNN.safetensors   those rows: `embeddings` (n, D) float32, L2-normalised, and the
                              numeric metadata as columns (start, end, duration, size, mtime_ns,
                              num_frames: (n,); timestamps: (n, T)); NaN or -1 stand for "none"

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ezclip_cli.errors import EzclipError, UsageError
from ezclip_cli.files import atomic_write

if TYPE_CHECKING:
    import numpy as np

    from ezclip_cli.decode_pool import DecodedClip
    from ezclip_cli.tag_plan import Task

log = logging.getLogger(__name__)

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


def row_key(video_id: str | None, start: float | None) -> tuple:
    """Identity of a stored row: (video id, window start). The video id names the resolved path and its
    size and mtime (tagging.video_fingerprint), so relative and absolute spellings are one video."""
    return (video_id, None if start is None else round(float(start), 3))


# ---- reading ----------------------------------------------------------------------------------
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

    out = {}
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


def _concat_timestamps(parts: list[np.ndarray]) -> np.ndarray:
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
        text: dict[str, list[Any]] = {name: [] for name in TEXT_COLUMNS}
        numeric: dict[str, list[Any]] = {name: [] for name in (*FLOAT_COLUMNS, *INT_COLUMNS, "timestamps")}
        try:
            offset = 0
            for entry in entries:
                if entry.get("model_id", info["model_id"]) != info["model_id"]:
                    raise StoreError(
                        f"{store}: shard {entry['shard']} is of model {entry['model_id']}; the store is damaged"
                    )
                rows = int(entry["rows"])
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
                    f"{store}: a shard listed in {MANIFEST_FILE} is missing; the store is damaged"
                ) from None
    columns: dict[str, Any] = dict(text)
    for name in (*FLOAT_COLUMNS, *INT_COLUMNS):
        empty = np.zeros(0, _DTYPES["F64" if name in FLOAT_COLUMNS else "I64"])
        columns[name] = np.concatenate(numeric[name]) if numeric[name] else empty
    columns["timestamps"] = _concat_timestamps(numeric["timestamps"])
    starts = np.round(np.nan_to_num(columns["start"], nan=-1.0), 3)
    keys = list(zip(columns["video_id"], starts.tolist()))
    if len(set(keys)) != len(keys):  # only hand-edited stores get here; keep the last copy of each row
        last = {k: i for i, k in enumerate(keys)}
        index = sorted(last.values())
        embeddings = embeddings[index]
        columns = {name: [v[i] for i in index] if name in TEXT_COLUMNS else v[index] for name, v in columns.items()}
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
                    "format": FORMAT,
                    "version": VERSION,
                    "model_id": model_id,
                    "logit_scale": float(logit_scale),
                    "dim": None,
                    "dtype": "float32",
                    "model": model_spec,
                }
                self._write_info()
            self.entries = self._recover()
            self.keys = set()
            for e in self.entries:  # only the small start column is read from each shard
                starts = read_shard(self.path / SHARDS_DIR / e["shard"], names=("start",))["start"].tolist()
                for v, s in zip(e["columns"]["video_id"], starts):
                    self.keys.add(row_key(v, None if s != s else s))  # NaN: no window
            self.added = 0
            self._compact()
        except BaseException:
            self._lock.close()
            raise

    def _prepare_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path} is a file, not an embedding store; choose a folder for --save-embeddings")
        ours = {SHARDS_DIR, LOCK_FILE, MANIFEST_FILE}  # what a writer killed before store.json leaves
        if (
            self.path.is_dir()
            and not (self.path / INFO_FILE).exists()
            and any(p.name not in ours and not p.name.startswith(f".{INFO_FILE}.") for p in self.path.iterdir())
        ):
            raise UsageError(
                f"{self.path} is a folder ezclip did not write (no {INFO_FILE}); choose a new or empty folder"
            )
        (self.path / SHARDS_DIR).mkdir(parents=True, exist_ok=True)

    def _acquire_lock(self) -> IO[str]:
        import fcntl

        handle = open(self.path / LOCK_FILE, "a")  # noqa: SIM115 (held open: the lock lives as long as the writer)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreError(
                f"another ezclip process is writing {self.path}; wait for it or use another store"
            ) from None
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

    def _write_shard(self, tensors: dict[str, np.ndarray], text: dict[str, list[Any]]) -> dict[str, Any]:
        from safetensors.numpy import save_file

        name = self._next_name()
        atomic_write(self.path / SHARDS_DIR / name, lambda tmp: save_file(tensors, tmp))
        return {"shard": name, "model_id": self.info["model_id"], "rows": len(tensors["embeddings"]), "columns": text}

    @staticmethod
    def _tensors(rows: Sequence[dict[str, Any]], embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Row dicts -> the shard's column tensors (None becomes NaN or -1)."""
        import numpy as np

        tensors = {"embeddings": np.ascontiguousarray(embeddings, dtype=np.float32)}
        for name in FLOAT_COLUMNS:
            values = [np.nan if r.get(name) is None else float(r[name]) for r in rows]
            tensors[name] = np.array(values, dtype=np.float64)
        for name in INT_COLUMNS:
            tensors[name] = np.array([-1 if r.get(name) is None else int(r[name]) for r in rows], dtype=np.int64)
        tensors["timestamps"] = _concat_timestamps(
            [np.asarray([r.get("timestamps") or []], dtype=np.float64).reshape(1, -1) for r in rows]
        )
        return tensors

    def add(self, rows: Sequence[dict[str, Any]], embeddings: np.ndarray) -> int:
        """Commit rows (dicts with COLUMNS) and their embeddings; rows already stored are skipped."""
        import numpy as np

        fresh, index = [], []
        for i, row in enumerate(rows):
            key = row_key(row["video_id"], row["start"])
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
        text = {name: [row[name] for row in fresh] for name in TEXT_COLUMNS}
        entry = self._write_shard(self._tensors(fresh, data), text)
        with open(self.path / MANIFEST_FILE, "a", encoding="utf-8") as f:  # the commit
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.entries.append(entry)
        self.added += len(fresh)
        return len(fresh)

    def sink(self, decoded: list[tuple[Task, DecodedClip]], embeddings: np.ndarray) -> None:
        """tagging.predict_tasks's hook: store the batch's decoded tasks with their embeddings."""
        rows = []
        for task, clip in decoded:
            size: int | None
            mtime: int | None
            try:
                stat = task.path.stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except OSError:
                size = mtime = None
            rows.append(
                {
                    "path": str(task.path),
                    "video_id": task.video_id,
                    "size": size,
                    "mtime_ns": mtime,
                    "start": task.start,
                    "end": task.end,
                    "duration": clip.duration,
                    "num_frames": len(clip.timestamps),
                    "timestamps": list(clip.timestamps),
                }
            )
        self.add(rows, embeddings)

    def _compact(self) -> None:
        """Merge runs of small shards into shards of up to SHARD_ROWS rows (fewer files, faster loads)."""
        groups: list[list[dict[str, Any]]] = []
        filled = 0  # rows in the last group
        for entry in self.entries:
            rows = int(entry["rows"])
            if groups and rows < SHARD_ROWS and filled + rows <= SHARD_ROWS:
                groups[-1].append(entry)
                filled += rows
            else:
                groups.append([entry])
                filled = rows
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
            parts: dict[str, list[Any]] = {name: [] for name in COLUMNS if name not in TEXT_COLUMNS}
            offset = 0
            for e in group:
                tensors = read_shard(self.path / SHARDS_DIR / e["shard"], into=data[offset : offset + int(e["rows"])])
                for name in parts:
                    parts[name].append(tensors[name])
                offset += int(e["rows"])
            merged_tensors = {name: np.concatenate(values) for name, values in parts.items() if name != "timestamps"}
            merged_tensors["embeddings"] = data
            merged_tensors["timestamps"] = _concat_timestamps(parts["timestamps"])
            text = {name: [v for e in group for v in e["columns"][name]] for name in TEXT_COLUMNS}
            merged.append(self._write_shard(merged_tensors, text))
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


def model_spec(
    checkpoint: Path | str | None, model: str | None, pretrained: str | None, num_frames: int
) -> dict[str, Any]:
    """How to load the model again (re-labelling with a cold text cache, search): the flags given to tag."""

    def resolve(value: Any) -> Any:  # local files by absolute path, so a later run from elsewhere finds them
        return str(Path(value).resolve()) if value is not None and Path(str(value)).exists() else value

    return {
        "checkpoint": resolve(checkpoint),
        "model": resolve(model),
        "pretrained": resolve(pretrained),
        "num_frames": num_frames,
    }


def open_store_for_tagging(
    store: Path,
    predictor: Any,
    model_id: str,
    spec: dict[str, Any],
    world: int,
) -> StoreWriter:
    """The store `tag --save-embeddings` appends to, checked against this run's model."""
    if world > 1:
        raise UsageError("--save-embeddings is not supported under torchrun; run one process per shard (--num-shards)")
    # `predictor` is a duck-typed TagPredictor or TagSession; both carry the scale (a float or a 0-d tensor).
    scale: Any = getattr(getattr(predictor, "scorer", None), "logit_scale", None)
    if scale is None:
        scale = getattr(predictor, "logit_scale", None)
    return StoreWriter(store, model_id, float(scale), spec)


def warn_unstored(done: dict[tuple, str], writer: StoreWriter) -> None:
    """Rows an earlier run wrote to -o without --save-embeddings are skipped, so they cannot reach the store.

    `done` maps resume.row_key (video, start) to the video id of the row in the output."""
    missing = sum(1 for (_, start), video_id in done.items() if row_key(video_id, start) not in writer.keys)
    if missing:
        log.warning(
            "%d rows already in the output are not in %s (tagged without --save-embeddings); `ezclip embed` adds them",
            missing,
            writer.path,
        )
