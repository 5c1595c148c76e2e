"""Result writers: CSV, JSON and JSONL, one row per line so a killed run can be resumed.

Every format keeps one result per line: CSV rows, JSONL objects, and JSON as an array whose
elements each sit on their own line. A run killed mid-write leaves at most one partial last
line, which `read_rows` drops; the resumed run rewrites the file without it and appends.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable

FORMATS = ("csv", "json", "jsonl")
BASE_COLUMNS = ("path", "status", "error", "start", "end", "duration", "num_frames", "timestamps")
TRAILING_COLUMNS = ("video_id", "model_id", "labels_id")


def csv_columns(top_k: int) -> list[str]:
    ranked = [c for i in range(1, top_k + 1) for c in (f"label_{i}", f"score_{i}")]
    return [*BASE_COLUMNS[:6], *ranked, *BASE_COLUMNS[6:], *TRAILING_COLUMNS]


def to_csv_record(row: dict[str, Any], top_k: int) -> dict[str, Any]:
    """Flatten a result row (lists of labels/scores/timestamps) into CSV columns."""
    record = {k: row.get(k) for k in (*BASE_COLUMNS, *TRAILING_COLUMNS)}
    record["timestamps"] = " ".join(f"{t:.3f}" for t in row.get("timestamps") or [])
    for i in range(top_k):
        labels, scores = row.get("labels") or [], row.get("scores") or []
        record[f"label_{i + 1}"] = labels[i] if i < len(labels) else ""
        record[f"score_{i + 1}"] = f"{scores[i]:.6f}" if i < len(scores) else ""
    return {k: "" if v is None else v for k, v in record.items()}


def from_csv_record(record: dict[str, str]) -> dict[str, Any]:
    """Inverse of `to_csv_record`, enough for resume (the path, ids and status)."""
    row: dict[str, Any] = {k: (record.get(k) or None) for k in (*BASE_COLUMNS, *TRAILING_COLUMNS)}
    i, labels, scores = 1, [], []
    while f"label_{i}" in record:
        if record[f"label_{i}"]:
            labels.append(record[f"label_{i}"])
            scores.append(float(record[f"score_{i}"]))
        i += 1
    row["labels"], row["scores"] = labels, scores
    row["timestamps"] = [float(t) for t in (record.get("timestamps") or "").split()]
    for key in ("start", "end", "duration"):
        row[key] = float(row[key]) if row[key] not in (None, "") else None
    row["num_frames"] = int(row["num_frames"]) if row["num_frames"] else None
    return row


class RowWriter:
    """Streams rows to a text stream in one of the formats; `close()` ends a JSON array."""

    def __init__(self, stream: IO[str], fmt: str, top_k: int, write_header: bool = True):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt}")
        self.stream, self.fmt, self.top_k = stream, fmt, top_k
        self.count = 0
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=csv_columns(top_k), lineterminator="\n")
            if write_header:
                self._csv.writeheader()
        elif fmt == "json" and write_header:
            stream.write("[\n")
        self.stream.flush()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._csv.writerow(to_csv_record(row, self.top_k))
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:  # JSON: the separator goes before each element, so a kill leaves whole lines
            self.stream.write(("," if self.count else " ") + json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("]\n")
        self.stream.flush()


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    """Complete rows of an earlier (possibly killed) run; a partial last line is dropped."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a kill mid-line: drop the unfinished line
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        return [from_csv_record(r) for r in reader if r.get("path")]
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if fmt == "json":
            line = line.lstrip(",").strip()
            if line in ("[", "]", ""):
                continue
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn line from a kill
    return rows


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then move the file onto `path`: readers see the old or the new one.

    The file gets the usual permissions (mkstemp alone would make it owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def rewrite_rows(path: Path, fmt: str, top_k: int, rows: Iterable[dict[str, Any]]) -> None:
    """Replace `path` atomically with `rows` (an unterminated JSON array, ready to append to)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            writer = RowWriter(stream, fmt, top_k)
            for row in rows:
                writer.write(row)

    atomic_write(path, write)


def open_for_append(path: Path, fmt: str, top_k: int, existing: int) -> RowWriter:
    """A writer that continues a file holding `existing` rows (written by `rewrite_rows`)."""
    stream = open(path, "a", encoding="utf-8", newline="")
    writer = RowWriter(stream, fmt, top_k, write_header=False)
    writer.count = existing
    return writer
