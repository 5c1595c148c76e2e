"""Parquet outputs (`-f parquet`): tag's rows as one typed table that DuckDB, pandas, Polars and Ray read as is.

The columns are JSONL's, with types: text as strings, `start`/`end`/`duration` float64 (null for a
whole video), `num_frames` int64, and `labels`, `scores`, `timestamps` as typed lists (string,
float64, float64). `windows` (segments) and `rank` (search) appear when rows carry them, and an
`embedding` key becomes a fixed-size float32 list (the Ray engine's optional column).

A Parquet file has its index at the end, so it cannot be appended to the way a CSV can. To resume
like the other formats, a run appends each row as one JSON line to a journal beside the output
(`.NAME.rows`, flushed per row) and folds it into the Parquet file, written atomically, when it
closes. A run killed before that leaves the last complete Parquet file plus the journal's whole
lines; `read_table_rows` reads both, so the next run skips every row already written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import UsageError
from ezclip_cli.files import atomic_write
from ezclip_cli.tag.output import finite_json, not_ours
from ezclip_cli.tag.results import TagResult

if TYPE_CHECKING:
    import pyarrow as pa

MARKER = b"ezclip"  # schema metadata key: this table holds ezclip result rows
OPTIONAL = ("model_id", "labels_id", "settings_id", "windows", "rank")  # dropped on read when null, as in JSONL
INSTALL = "pip install 'ezclip[parquet]'"


def require_pyarrow() -> Any:
    """pyarrow, or one line saying how to install it."""
    try:
        import pyarrow
    except ImportError:
        raise UsageError(f"-f parquet needs pyarrow: {INSTALL}") from None
    return pyarrow


def row_schema(rows: Sequence[Mapping[str, Any]], embedding_dim: int | None = None) -> pa.Schema:
    """The table's schema: JSONL's columns typed, plus the optional columns some row holds.

    `embedding_dim` adds the embedding column even when no row holds one (a batch of failures), so
    every block of a Ray dataset has one schema.
    """
    pa = require_pyarrow()
    fields = [
        ("path", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("labels", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float64())),
        ("num_frames", pa.int64()),
        ("timestamps", pa.list_(pa.float64())),
        ("video_id", pa.string()),
        ("model_id", pa.string()),
        ("labels_id", pa.string()),
        ("settings_id", pa.string()),
    ]
    for name in ("windows", "rank"):
        if any(row.get(name) is not None for row in rows):
            fields.append((name, pa.int64()))
    dims = {len(row["embedding"]) for row in rows if row.get("embedding") is not None}
    if embedding_dim is not None:
        dims.add(embedding_dim)
    if len(dims) > 1:
        raise UsageError(f"rows hold embeddings of {len(dims)} different sizes; one table holds one model's")
    if dims:
        fields.append(("embedding", pa.list_(pa.float32(), dims.pop())))
    return pa.schema(fields, metadata={MARKER: b"rows"})


def rows_table(rows: Iterable[TagResult | Mapping[str, Any]], embedding_dim: int | None = None) -> pa.Table:
    """A table of result rows (TagResult or records as `to_record` makes them)."""
    pa = require_pyarrow()
    records = [r.to_record() if isinstance(r, TagResult) else dict(r) for r in rows]
    schema = row_schema(records, embedding_dim)
    columns = {name: [record.get(name) for record in records] for name in schema.names}
    for name in ("labels", "scores", "timestamps"):
        columns[name] = [list(value or []) for value in columns[name]]
    return pa.Table.from_pydict(columns, schema=schema)


def journal_path(path: Path) -> Path:
    """The journal of rows not yet folded into `path`."""
    return path.with_name(f".{path.name}.rows")


def write_table(path: Path, rows: Iterable[TagResult | Mapping[str, Any]]) -> None:
    """Replace `path` atomically with a Parquet table of `rows`; then the journal (folded in) goes."""
    import pyarrow.parquet as pq

    table = rows_table(rows)
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))
    journal_path(Path(path)).unlink(missing_ok=True)


def read_table_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an ezclip Parquet output and of its journal (an interrupted run's), as JSONL would give them.

    Refuses (UsageError) a file that is not an ezclip Parquet table, so it is never overwritten.
    """
    import pyarrow.parquet as pq

    require_pyarrow()
    path = Path(path)
    rows: list[dict[str, Any]] = []
    if path.exists() and path.stat().st_size:
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise not_ours(path, "parquet", f"not a Parquet file: {type(exc).__name__}") from None
        metadata = table.schema.metadata or {}
        if MARKER not in metadata or not {"path", "status"} <= set(table.column_names):
            raise not_ours(path, "parquet", "a Parquet table not written by ezclip")
        rows = [_plain(row) for row in table.to_pylist()]
    return rows + read_journal(journal_path(path))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as a JSONL row: optional columns only where set, empty lists for none."""
    for name in ("labels", "scores", "timestamps"):
        row[name] = row.get(name) or []
    return {k: v for k, v in row.items() if not (k in OPTIONAL and v is None)}


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a journal: a kill can tear only the last one."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    rows = []
    for line in data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").split("\n"):
        if line:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # cannot happen for whole lines of ours; stop rather than guess
            if isinstance(row, dict) and "path" in row:
                rows.append(row)
    return rows


class TableWriter:
    """A ResultWriter for `-o FILE.parquet`: rows go to the journal as they come, into the table on `close()`."""

    def __init__(self, path: Path):
        require_pyarrow()
        self.path = Path(path)
        self.journal = open(journal_path(self.path), "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.count = 0

    def write(self, result: TagResult | Mapping[str, Any]) -> None:
        row = result.to_record() if isinstance(result, TagResult) else result
        self.journal.write(finite_json(row) + "\n")
        self.journal.flush()
        self.count += 1

    def close(self) -> None:
        """Fold the journal into the table (earlier rows kept): the one moment the Parquet file changes."""
        if self.journal.closed:
            return
        os.fsync(self.journal.fileno())
        self.journal.close()
        write_table(self.path, read_table_rows(self.path))
