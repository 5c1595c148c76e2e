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


@dataclass(frozen=True)
class TopK:
    """What one part shows of its --top-k, measured the same way in every format.

    `most` is the most labels any finished row holds (None: no finished rows), whether the
    row is a JSON list or CSV's non-empty label_N columns; `uniform` says every finished row
    holds that many, as without --threshold/--min-score (which keep fewer in some rows).
    `declared` is a CSV header's label_N count: the --top-k asked for, which may exceed the
    number of labels, so it only bounds the other parts' rows from above.
    """

    most: int | None
    uniform: bool
    declared: int | None = None


def _csv_top_k(path: Path) -> int | None:
    with path.open(encoding="utf-8", errors="replace", newline="") as stream:
        header = next(csv.reader(stream), [])
    return sum(1 for column in header if column.startswith("label_")) or None


def _measure(rows: list[dict[str, Any]], declared: int | None) -> TopK:
    lengths = {len(row.get("labels") or []) for row in rows if row.get("status") == "ok"}
    return TopK(max(lengths) if lengths else None, len(lengths) <= 1, declared)


def read_part(path: Path) -> tuple[list[dict[str, Any]], TopK]:
    """Rows of one shard output and what they show of its top-k."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file (give the output files of the shards)")
    fmt = detect_format(path)
    try:
        rows = read_rows(path, fmt)
    except UsageError as exc:  # read_rows speaks of -o targets; here the file is an input
        raise UsageError(f"{path}: not an ezclip tag output ({fmt}: {str(exc).split(': ', 1)[-1]})") from None
    if any(not isinstance(row, dict) or "path" not in row for row in rows):
        raise UsageError(f"{path}: not an ezclip tag output (rows without a 'path')")
    return rows, _measure(rows, _csv_top_k(path) if fmt == "csv" else None)


def check_top_k(parts: dict[Path, TopK]) -> int:
    """The top-k the merged file is written with; UsageError where the parts cannot be one run's.

    Parts disagree when two of them hold a fixed, different number of labels per row, or a
    row holds more labels than another CSV part's header has room for. A CSV of `-k 5` over
    four labels and a JSON list of four are the same run and merge (issue 21, case 12).
    """
    full = [(path, k.most) for path, k in parts.items() if k.uniform and k.most is not None]
    for (p1, k1), (p2, k2) in zip(full, full[1:]):
        if k1 != k2:
            raise UsageError(f"{p1} has top-{k1} rows but {p2} top-{k2}; re-tag the shards with the same --top-k")
    for p1, first in parts.items():
        for p2, second in parts.items():
            if first.most is not None and second.declared is not None and first.most > second.declared:
                raise UsageError(
                    f"{p1} has rows with {first.most} labels but {p2} top-{second.declared}; "
                    "re-tag the shards with the same --top-k"
                )
    sizes = [k.declared or k.most or 0 for k in parts.values()]
    return max(sizes, default=0) or 1


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
    top_ks: dict[Path, TopK] = {}
    chosen: dict[tuple[str, float | None], dict[str, Any]] = {}
    for path in paths:
        rows, top_k = read_part(Path(path))
        result.read += len(rows)
        top_ks[Path(path)] = top_k
        for row in rows:
            if row.get("status") == "ok" or row.get("start") not in (None, ""):
                # a video that could not be opened has one error row, no window, in a windowed run too
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
        result.top_k = check_top_k(top_ks)
    result.rows = sorted(chosen.values(), key=lambda r: (str(r["path"]), _key(r)[1] or 0.0))
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
