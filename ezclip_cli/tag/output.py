"""Result writers: CSV, JSON and JSONL, one row per record so a killed run can be resumed.

Every format keeps one result per record: CSV rows, JSONL objects, and JSON as an array whose
elements each sit on their own line. A run killed mid-write leaves at most one partial last
record, which `read_rows` drops; the resumed run rewrites the file without it and appends.

CSV text fields that a spreadsheet would run as a formula (starting with = + - @, a tab or a
carriage return) are written with a leading apostrophe, as OWASP recommends; a field that
starts with an apostrophe gets one more, so `read_rows` restores every value exactly.
`neutralise=False` writes them raw for machine pipelines.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from ezclip_cli.errors import UsageError
from ezclip_cli.files import atomic_write
from ezclip_cli.tag.results import ResultWriter, TagResult

FORMATS = ("csv", "json", "jsonl", "parquet")  # parquet: a file only (columnar.py)
BASE_COLUMNS = ("path", "status", "error", "start", "end", "duration", "num_frames", "timestamps")
TRAILING_COLUMNS = ("video_id", "model_id", "labels_id", "settings_id")
TEXT_COLUMNS = ("path", "error")  # and label_N: free text that may start like a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class OutputClosed(Exception):
    """The reader of stdout went away (`| head`): not an error, the run just ends.

    Deliberately not an OSError: click turns EPIPE into a bare exit 1.
    """


def csv_columns(top_k: int) -> list[str]:
    ranked = [c for i in range(1, top_k + 1) for c in (f"label_{i}", f"score_{i}")]
    return [*BASE_COLUMNS[:6], *ranked, *BASE_COLUMNS[6:], *TRAILING_COLUMNS]


def neutralise_formula(text: str) -> str:
    """`text` made inert for spreadsheets: a leading apostrophe before formula starts (and before ')."""
    return "'" + text if text.startswith((*FORMULA_STARTS, "'")) else text


def restore_formula(text: str) -> str:
    """Inverse of `neutralise_formula`."""
    return text[1:] if text.startswith("'") else text


def to_csv_record(row: Mapping[str, Any], top_k: int, neutralise: bool = True) -> dict[str, Any]:
    """Flatten a result row (lists of labels/scores/timestamps) into CSV columns."""
    record = {k: row.get(k) for k in (*BASE_COLUMNS, *TRAILING_COLUMNS)}
    record["timestamps"] = " ".join(f"{t:.3f}" for t in row.get("timestamps") or [])
    for i in range(top_k):
        labels, scores = row.get("labels") or [], row.get("scores") or []
        record[f"label_{i + 1}"] = labels[i] if i < len(labels) else ""
        record[f"score_{i + 1}"] = f"{scores[i]:.6f}" if i < len(scores) else ""
    record = {k: "" if v is None else v for k, v in record.items()}
    if neutralise:
        for key in record:
            if key in TEXT_COLUMNS or key.startswith("label_"):
                record[key] = neutralise_formula(str(record[key]))
    return record


def from_csv_record(record: dict[str, str], neutralised: bool = True) -> dict[str, Any]:
    """Inverse of `to_csv_record`, enough for resume (the path, ids and status)."""
    if neutralised:
        record = {
            k: restore_formula(v) if (k in TEXT_COLUMNS or k.startswith("label_")) and v else v
            for k, v in record.items()
        }
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


def csv_line(fields: Iterable[Any]) -> str:
    """One CSV record ending in \\n; every field holding , \" \\r or \\n is quoted (csv's writer misses \\r)."""
    out = []
    for value in fields:
        text = str(value)
        if any(c in text for c in ',"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def finite_json(row: Mapping[str, Any]) -> str:
    """JSON of a row, never NaN or infinity (not JSON): such a number becomes null.

    Scores never get here non-finite (tagging makes that row an error row); a duration from a
    hostile header might.
    """
    return json.dumps(_finite(dict(row)), ensure_ascii=False, allow_nan=False)


class RowWriter:
    """Streams rows to a text stream in one of the formats; `close()` ends a JSON array."""

    def __init__(
        self,
        stream: IO[str],
        fmt: str,
        top_k: int,
        write_header: bool = True,
        neutralise: bool = True,
        sync: bool = False,
    ):
        if fmt == "parquet":
            raise UsageError("-f parquet writes a file, not a stream: give -o FILE.parquet")
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt}")
        self.stream, self.fmt, self.top_k, self.neutralise = stream, fmt, top_k, neutralise
        self.sync = sync  # fsync on close: a file, not a pipe
        self.count = 0
        self.columns = csv_columns(top_k)
        if fmt == "csv" and write_header:
            self._put(csv_line(self.columns))
        elif fmt == "json" and write_header:
            self._put("[\n")

    def _put(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed() from exc

    def write(self, result: TagResult | Mapping[str, Any]) -> None:
        """Write one result, or one record (a row read back from a file, a search hit) as it is."""
        row = result.to_record() if isinstance(result, TagResult) else result
        if self.fmt == "csv":
            record = to_csv_record(row, self.top_k, self.neutralise)
            self._put(csv_line(record[c] for c in self.columns))
        elif self.fmt == "jsonl":
            self._put(finite_json(row) + "\n")
        else:  # JSON: the separator goes before each element, so a kill leaves whole lines
            self._put(("," if self.count else " ") + finite_json(row) + "\n")
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self._put("]\n")
        try:
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed() from exc
        if self.sync:
            os.fsync(self.stream.fileno())
            self.stream.close()


# ---- reading an earlier output ------------------------------------------------------------------
def complete_prefix(data: bytes, fmt: str) -> bytes:
    """The whole records of `data`: a kill can only have torn the last one, which is cut off.

    JSON and JSONL records are lines (JSON strings escape newlines). A CSV record ends at a
    newline outside quotes, so a torn row holding a quoted newline is cut whole.
    """
    end = data.rfind(b"\n") + 1
    if fmt != "csv":
        return data[:end]
    quoted, last = False, 0
    for i, byte in enumerate(data[:end]):
        if byte == 0x22:  # '"'; an escaped "" toggles twice
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            last = i + 1
    return data[:last]


def read_rows(path: Path, fmt: str, neutralised: bool = True) -> list[dict[str, Any]]:
    """Complete rows of an earlier (possibly killed) run; a torn last record is dropped.

    Raises UsageError when the file is not recognisably an ezclip output of format `fmt`
    (another program's file, another format), so that it is never overwritten.
    """
    if fmt == "parquet":
        from ezclip_cli.tag.columnar import read_table_rows

        return read_table_rows(path)
    data = Path(path).read_bytes()
    whole = complete_prefix(data, fmt)
    try:
        text = whole.decode("utf-8")
    except UnicodeDecodeError:
        raise not_ours(path, fmt, "not UTF-8 text") from None
    if not text and data:  # bytes but not one whole record: a header cut by a kill cannot happen (atomic)
        raise not_ours(path, fmt, "no complete line")
    if fmt == "csv":
        return _read_csv(path, text, neutralised)
    lines = text.split("\n")  # not splitlines(): U+2028 and friends may sit inside JSON strings
    if fmt == "json":
        if lines[0] != "[":
            raise not_ours(path, fmt, "does not start with an ezclip JSON array line")
        lines = lines[1:]
    rows = []
    for number, line in enumerate(lines, start=2 if fmt == "json" else 1):
        if fmt == "json":
            if line == "]" or not line:
                continue
            if not line.startswith((" ", ",")):
                raise not_ours(path, fmt, f"line {number} is not an array element of ours")
            line = line[1:]
        elif not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise not_ours(path, fmt, f"line {number} is not JSON") from None
        if not isinstance(row, dict) or "path" not in row or "status" not in row:
            raise not_ours(path, fmt, f"line {number} is not a result row")
        rows.append(row)
    return rows


def _read_csv(path: Path, text: str, neutralised: bool) -> list[dict[str, Any]]:
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records:
        return []
    header = records[0]
    if header[:6] != list(BASE_COLUMNS[:6]) or "video_id" not in header:
        raise not_ours(path, "csv", "its header is not an ezclip header")
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            raise not_ours(path, "csv", f"record {number} has {len(record)} fields, the header {len(header)}")
        rows.append(from_csv_record(dict(zip(header, record)), neutralised))
    return rows


def csv_header(path: Path) -> list[str] | None:
    """The header record of a CSV output, or None for an empty file."""
    data = complete_prefix(Path(path).read_bytes(), "csv")
    records = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
    return next(records, None)


def not_ours(path: Path, fmt: str, why: str) -> UsageError:
    return UsageError(
        f"refusing to write -o {path}: it is not an ezclip {fmt.upper()} output ({why}); "
        "name a new file, or move this one away"
    )


def rewrite_rows(path: Path, fmt: str, top_k: int, rows: Iterable[dict[str, Any]], neutralise: bool = True) -> None:
    """Replace `path` atomically with `rows` (an unterminated JSON array, ready to append to)."""
    if fmt == "parquet":
        from ezclip_cli.tag.columnar import write_table

        write_table(path, rows)
        return

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            writer = RowWriter(stream, fmt, top_k, neutralise=neutralise)
            for row in rows:
                writer.write(row)

    atomic_write(path, write)


def open_for_append(path: Path, fmt: str, top_k: int, existing: int, neutralise: bool = True) -> ResultWriter:
    """A writer that continues a file holding `existing` rows (written by `rewrite_rows`)."""
    if fmt == "parquet":
        from ezclip_cli.tag.columnar import TableWriter

        return TableWriter(path)
    stream = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (the RowWriter owns and closes it)
    writer = RowWriter(stream, fmt, top_k, write_header=False, neutralise=neutralise, sync=True)
    writer.count = existing
    return writer
