"""Join the outputs of sharded `ezclip tag` runs into one file with every video exactly once.

Shards of a job array (or one `torchrun` per node) each write their own file, in any of the
output formats. `merge_outputs` reads them with output.py's row readers, refuses to mix rows
of different models, label sets, top-k or window settings, keeps one row per video (per
window), preferring a finished row over a failed one, and returns the rows sorted by path
and start, the order a single run over the whole folder writes.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ezclip_cli.errors import UsageError
from ezclip_cli.tag.output import FORMATS, read_rows

log = logging.getLogger(__name__)


@dataclass
class MergeResult:
    """The merged rows and what happened on the way."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    top_k: int = 1
    files: int = 0
    read: int = 0  # rows read over all files
    duplicates: int = 0  # rows dropped because another file held the same video (window)
    failed: int = 0  # rows in the result whose status is not ok


def detect_format(path: Path) -> str:
    """csv, json, jsonl or parquet: from the suffix, else from the file's first bytes."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    with path.open("rb") as raw:
        if raw.read(4) == b"PAR1":  # Parquet's magic number
            return "parquet"
    with path.open(encoding="utf-8", errors="replace") as stream:
        head = stream.read(4096).lstrip()
    if head.startswith("["):
        return "json"
    return "jsonl" if head.startswith("{") else "csv"


def _csv_top_k(path: Path) -> int | None:
    with path.open(encoding="utf-8", errors="replace", newline="") as stream:
        header = next(csv.reader(stream), [])
    return sum(1 for column in header if column.startswith("label_")) or None


def read_part(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Rows of one shard output and its top-k (None where the file cannot tell: JSON with no rows)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file (give the output files of the shards)")
    fmt = detect_format(path)
    try:
        rows = read_rows(path, fmt)
    except UsageError as exc:  # read_rows speaks of -o targets; here the file is an input
        raise UsageError(f"{path}: not an ezclip tag output ({fmt}: {str(exc).split(': ', 1)[-1]})") from None
    if any(not isinstance(row, dict) or "path" not in row for row in rows):
        raise UsageError(f"{path}: not an ezclip tag output (rows without a 'path')")
    if fmt == "csv":
        return rows, _csv_top_k(path)
    lengths = {len(row.get("labels") or []) for row in rows if row.get("status") == "ok"}
    return rows, max(lengths) if lengths else None


def _identity(row: dict[str, Any]) -> tuple[Any, Any, bool]:
    """What must agree across shards: model, label set, and whether rows are windows (top-k is checked apart;
    settings_id is not compared: it differs between CSV and JSON parts of one run, by CSV neutralisation)."""
    return row.get("model_id"), row.get("labels_id"), row.get("start") not in (None, "")


def _key(row: dict[str, Any]) -> tuple[str, float | None]:
    """One video (window): by its video id's resolved-path part where the row has one (resume.row_key), so the
    same file named relatively in one shard and absolutely in another is one video; else by path."""
    from ezclip_cli.tag.resume import start_key, video_key

    who = video_key(row.get("video_id")) if row.get("video_id") else str(row["path"])
    return who, start_key(row.get("start"))


def merge_outputs(paths: Sequence[Path]) -> MergeResult:
    """Rows of all `paths`, one per video (window), checked to come from one model and one set of settings."""
    if not paths:
        raise UsageError("nothing to merge: give the shard output files")
    result = MergeResult(files=len(paths))
    seen_identity: dict[tuple[Any, Any, bool], Path] = {}
    top_ks: dict[int, Path] = {}
    chosen: dict[tuple[str, float | None], dict[str, Any]] = {}
    for path in paths:
        rows, top_k = read_part(Path(path))
        result.read += len(rows)
        if top_k is not None:
            top_ks.setdefault(top_k, Path(path))
        for row in rows:
            seen_identity.setdefault(_identity(row), Path(path))
            key = _key(row)
            kept = chosen.get(key)
            if kept is None:
                chosen[key] = row
                continue
            result.duplicates += 1
            if kept.get("status") != "ok" and row.get("status") == "ok":
                chosen[key] = row  # a later run finished what an earlier one could not read
            elif kept.get("status") == row.get("status") == "ok" and kept.get("video_id") != row.get("video_id"):
                log.warning(
                    "%s: tagged as two versions of the file (video_id %s and %s); kept the first",
                    kept["path"],
                    kept.get("video_id"),
                    row.get("video_id"),
                )
        _check_one_identity(seen_identity)
        if len(top_ks) > 1:
            (k1, p1), (k2, p2) = list(top_ks.items())[:2]
            raise UsageError(f"{p1} has top-{k1} rows but {p2} top-{k2}; re-tag the shards with the same --top-k")
    result.rows = sorted(chosen.values(), key=lambda r: (str(r["path"]), _key(r)[1] or 0.0))
    result.top_k = next(iter(top_ks), 1)
    result.failed = sum(1 for row in result.rows if row.get("status") != "ok")
    return result


def _check_one_identity(seen: dict[tuple[Any, Any, bool], Path]) -> None:
    if len(seen) <= 1:
        return
    (a, pa), (b, pb) = list(seen.items())[:2]
    if a[0] != b[0]:
        what = f"models ({a[0]} in {pa}, {b[0]} in {pb})"
    elif a[1] != b[1]:
        what = f"label sets or prompts ({a[1]} in {pa}, {b[1]} in {pb})"
    else:
        what = f"settings (whole videos in {pa if not a[2] else pb}, --window rows in {pb if not a[2] else pa})"
    raise UsageError(f"refusing to merge outputs of different {what}; merge only shards of one run")
