"""Appending to an embedding store (its format and reading it: format.py): `tag --save-embeddings`
and `ezclip embed` write through a StoreWriter.

Appending writes a shard (atomically: temporary file, then rename) and then its manifest line; the
line is the commit. A kill leaves at most an unreferenced shard file or a torn last line, which the
next writer removes, so every row is stored once or not at all. Small shards (one per batch while
tagging) are merged into shards of up to `SHARD_ROWS` rows when a writer closes or opens. One writer
at a time: a second process gets a one-line error, not a corrupted store.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ezclip_cli.errors import UsageError
from ezclip_cli.files import atomic_write, try_lock
from ezclip_cli.store.damage import shard_problem
from ezclip_cli.store.format import (
    COLUMNS,
    FLOAT_COLUMNS,
    FORMAT,
    INFO_FILE,
    INT_COLUMNS,
    LOCK_FILE,
    MANIFEST_FILE,
    SHARD_ROWS,
    SHARDS_DIR,
    TEXT_COLUMNS,
    VERSION,
    StoreError,
    concat_timestamps,
    live_index,
    read_info,
    read_manifest,
    read_shard,
    refuse_model,
)
from ezclip_cli.tag.resume import start_key

if TYPE_CHECKING:
    import numpy as np

    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.plan import Task
    from ezclip_cli.tag.pool import DecodedClip
    from ezclip_cli.tag.predictors import VideoPredictor

log = logging.getLogger(__name__)


def stored_key(video_id: str | None, start: float | None) -> tuple[str | None, float | None]:
    """Identity of a stored row: (video id, window start). The whole video id (resolved path, size and
    mtime: tag_plan.video_fingerprint) counts, unlike resume.row_key's path part: a changed file is a new
    embedding, while relative and absolute spellings of one file are one row."""
    return (video_id, start_key(start))


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
            video_ids: list[str] = []
            starts: list[float] = []
            for e in self.entries:  # only the small start column is read from each shard
                starts += read_shard(self.path / SHARDS_DIR / e["shard"], names=("start",))["start"].tolist()
                video_ids += e["columns"]["video_id"]
            # Only live rows count as stored (live_index): a file changed back to an older version is embedded again.
            self.keys: set[tuple[str | None, float | None]] = {
                stored_key(video_ids[i], None if starts[i] != starts[i] else starts[i])  # NaN: no window
                for i in live_index(video_ids, starts)
            }
            self.added = 0
            self._compact()
        except BaseException:
            self._lock.close()
            raise

    def _prepare_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path} is a file, not an embedding store; choose a folder for --save-embeddings")
        ours = {SHARDS_DIR, LOCK_FILE}  # what a writer killed before store.json leaves (shards/ empty)
        if self.path.is_dir() and not (self.path / INFO_FILE).exists():
            names = {p.name for p in self.path.iterdir() if not p.name.startswith(f".{INFO_FILE}.")}
            shards = self.path / SHARDS_DIR
            if MANIFEST_FILE in names or (shards.is_dir() and any(shards.iterdir())):
                # rows without their identity: adopting them would mix two models' embeddings
                raise StoreError(
                    f"{self.path} holds embeddings but no {INFO_FILE}: the store is damaged and is left as it is; "
                    f"restore its {INFO_FILE} or use another store"
                )
            if names - ours:
                raise UsageError(
                    f"{self.path} is a folder ezclip did not write (no {INFO_FILE}); choose a new or empty folder"
                )
        (self.path / SHARDS_DIR).mkdir(parents=True, exist_ok=True)

    def _acquire_lock(self) -> IO[str]:
        handle = open(self.path / LOCK_FILE, "a")  # noqa: SIM115 (held open: the lock lives as long as the writer)
        if not try_lock(handle.fileno()):
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
        dim = self.info.get("dim")
        whole = []
        for entry in entries:  # store.damage: the readers' verdict, then the repair only a writer may make
            problem = shard_problem(self.path / SHARDS_DIR / entry["shard"], int(entry["rows"]), dim)
            if problem is None:
                whole.append(entry)
                continue
            videos = len(set(entry["columns"]["video_id"]))
            log.warning(
                "%s: shard %s is %s; the store was damaged: its %s rows (%d videos) are dropped and embedded again "
                "when their videos are given",
                self.path,
                entry["shard"],
                problem,
                entry["rows"],
                videos,
            )
        if len(whole) != len(entries):
            self._rewrite_manifest(whole)
        referenced = {e["shard"] for e in whole}
        for item in (self.path / SHARDS_DIR).iterdir():
            if item.name not in referenced:
                item.unlink()
        return whole

    def _rewrite_manifest(self, entries: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        atomic_write(self.path / MANIFEST_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def _next_name(self) -> str:
        used = [int(p.stem) for p in (self.path / SHARDS_DIR).glob("*.safetensors") if p.stem.isdigit()]
        return f"{max(used, default=0) + 1:06d}.safetensors"

    def _write_shard(self, tensors: dict[str, np.ndarray], text: dict[str, list[str]]) -> dict[str, Any]:
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
        tensors["timestamps"] = concat_timestamps(
            [np.asarray([r.get("timestamps") or []], dtype=np.float64).reshape(1, -1) for r in rows]
        )
        return tensors

    def add(self, rows: Sequence[dict[str, Any]], embeddings: np.ndarray) -> int:
        """Commit rows (dicts with COLUMNS) and their embeddings; rows already stored are skipped."""
        import numpy as np

        fresh, index = [], []
        for i, row in enumerate(rows):
            key = stored_key(row["video_id"], row["start"])
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

    def sink(self, decoded: Sequence[tuple[Task, DecodedClip]], embeddings: np.ndarray) -> None:
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
            parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS if name not in TEXT_COLUMNS}
            offset = 0
            for e in group:
                tensors = read_shard(self.path / SHARDS_DIR / e["shard"], into=data[offset : offset + int(e["rows"])])
                for name in parts:
                    parts[name].append(tensors[name])
                offset += int(e["rows"])
            merged_tensors = {name: np.concatenate(values) for name, values in parts.items() if name != "timestamps"}
            merged_tensors["embeddings"] = data
            merged_tensors["timestamps"] = concat_timestamps(parts["timestamps"])
            text = {name: [v for e in group for v in e["columns"][name]] for name in TEXT_COLUMNS}
            merged.append(self._write_shard(merged_tensors, text))
        self._rewrite_manifest(merged)  # the switch to the merged shards is one atomic rename
        old = {e["shard"] for e in self.entries} - {e["shard"] for e in merged}
        for name in old:
            (self.path / SHARDS_DIR / name).unlink(missing_ok=True)
        self.entries = merged

    def check_done(self, done: dict[tuple, str]) -> None:
        """Warn about rows already in -o that this store lacks (tagged earlier without --save-embeddings)."""
        warn_unstored(done, self)

    def close(self) -> None:
        """Merge this run's small shards and release the lock."""
        try:
            self._compact()
        finally:
            self._lock.close()


def store_opener(store: Path, spec: ModelSpec) -> Callable[[VideoPredictor, str, int], StoreWriter]:
    """What `tag --save-embeddings STORE` hands run_tagging: opens the store once the model is known."""
    return functools.partial(open_store_for_tagging, store, spec=spec)


def open_store_for_tagging(
    store: Path,
    predictor: VideoPredictor,
    model_id: str,
    world: int,
    *,
    spec: ModelSpec,
) -> StoreWriter:
    """The store `tag --save-embeddings` appends to, checked against this run's model."""
    if world > 1:
        raise UsageError("--save-embeddings is not supported under torchrun; run one process per shard (--num-shards)")
    if predictor.scorer is None:
        raise UsageError("--save-embeddings needs a label set's scorer (it records the model's logit scale)")
    return StoreWriter(store, model_id, float(predictor.scorer.logit_scale), spec.to_dict())


def warn_unstored(done: dict[tuple, str], writer: StoreWriter) -> None:
    """Rows an earlier run wrote to -o without --save-embeddings are skipped, so they cannot reach the store.

    `done` maps resume.row_key (video, start) to the video id of the row in the output."""
    missing = sum(1 for (_, start), video_id in done.items() if stored_key(video_id, start) not in writer.keys)
    if missing:
        log.warning(
            "%d rows already in the output are not in %s (tagged without --save-embeddings); `ezclip embed` adds them",
            missing,
            writer.path,
        )
