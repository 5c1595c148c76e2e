"""How `ezclip search` writes its hits: a row schema of its own, in csv, json, jsonl or bare paths.

A hit is not a tagging result: it has one query, one similarity and a place in a ranking,
so it gets its own columns instead of tag's label_1/score_1 (where the query used to sit in
`label_1` and the rank was lost in CSV). Every format carries the same fields:

    rank, query, score, path, start, end, duration, video_id, model_id

`rank` counts from 1 within each query; `score` is the cosine similarity; `start`/`end` are
empty (null) for a whole video. `paths` prints only the paths, each once, in the order of
their best hit, for shell pipelines (`ezclip search s "surfing" -f paths | xargs -d '\\n' mpv`),
as rclip's `-f` does. CSV text fields are neutralised against spreadsheet formulas as tag's are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import IO, Any

from ezclip_cli.tag.output import OutputClosed, csv_line, finite_json, neutralise_formula

log = logging.getLogger(__name__)

SEARCH_FORMATS = ("csv", "json", "jsonl", "parquet", "paths")
SEARCH_COLUMNS = ("rank", "query", "score", "path", "start", "end", "duration", "video_id", "model_id")
_TEXT_COLUMNS = ("query", "path")  # free text a spreadsheet could run as a formula


def hit_record(rank: int, query: str, score: float, meta: Mapping[str, Any], model_id: str | None) -> dict[str, Any]:
    """One hit in the search schema, from a stored row's metadata (`StoredEmbeddings.row`)."""
    duration = meta.get("duration")
    return {
        "rank": rank,
        "query": query,
        "score": round(float(score), 6),
        "path": str(meta["path"]),
        "start": meta.get("start"),
        "end": meta.get("end"),
        "duration": round(float(duration), 3) if isinstance(duration, (int, float)) else None,
        "video_id": meta.get("video_id"),
        "model_id": model_id,
    }


def _csv_value(key: str, value: Any, neutralise: bool) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if key == "score":
        return f"{value:.6f}"
    text = str(value)
    return neutralise_formula(text) if neutralise and key in _TEXT_COLUMNS else text


def write_hits(stream: IO[str], fmt: str, hits: Iterable[Mapping[str, Any]], neutralise: bool = True) -> int:
    """Write `hits` to `stream` in `fmt`; returns how many records (paths, for `paths`) were written.

    A closed pipe (`| head`) raises OutputClosed, which the CLI treats as a normal end.
    """
    if fmt not in SEARCH_FORMATS:
        raise ValueError(f"unknown search format {fmt}")
    count = 0
    seen: set[str] = set()

    def put(text: str) -> None:
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed() from exc

    if fmt == "csv":
        put(csv_line(SEARCH_COLUMNS))
    elif fmt == "json":
        put("[\n")
    for hit in hits:
        if fmt == "paths":
            path = str(hit["path"])
            if path in seen:
                continue
            seen.add(path)
            if "\n" in path or "\r" in path:  # one path per line cannot hold it; say so, do not split it
                log.warning("left out of -f paths (it holds a line break; use -f jsonl): %r", path)
                continue
            put(path + "\n")
        elif fmt == "csv":
            put(csv_line(_csv_value(key, hit.get(key), neutralise) for key in SEARCH_COLUMNS))
        elif fmt == "jsonl":
            put(finite_json({key: hit.get(key) for key in SEARCH_COLUMNS}) + "\n")
        else:  # json: the separator goes before each element, as tag's JSON
            put(("," if count else " ") + finite_json({key: hit.get(key) for key in SEARCH_COLUMNS}) + "\n")
        count += 1
    if fmt == "json":
        put("]\n")
    return count


def write_hits_table(path: Any, hits: Iterable[Mapping[str, Any]]) -> None:
    """Write `hits` as a Parquet table with the search columns, typed (pyarrow, the `parquet` extra)."""
    from pathlib import Path

    from ezclip_cli.files import atomic_write
    from ezclip_cli.tag.columnar import require_pyarrow

    pa = require_pyarrow()
    import pyarrow.parquet as pq

    types = {"rank": pa.int32(), "score": pa.float64(), "start": pa.float64(), "end": pa.float64()}
    types["duration"] = pa.float64()
    schema = pa.schema([(name, types.get(name, pa.string())) for name in SEARCH_COLUMNS], metadata={b"ezclip": b"hits"})
    rows = list(hits)
    table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in SEARCH_COLUMNS}, schema=schema)
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))
