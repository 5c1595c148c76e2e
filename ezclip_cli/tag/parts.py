"""Tagging under torchrun: each rank writes its results to a part file, rank 0 merges them in input order.

Parts are JSONL in `OUTPUT.parts/` (line-oriented, so a killed rank loses nothing it wrote); each
record carries its task's place in the input (`_order`). A run killed before the merge leaves
the parts, which the next run counts as part of the output (tagging.run_tagging).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ezclip_cli.tag.output import RowWriter, open_for_append, read_rows
from ezclip_cli.tag.results import ResultWriter, TagResult, TagSummary
from ezclip_cli.tag.resume import task_key

if TYPE_CHECKING:
    from ezclip_cli.config import TagConfig
    from ezclip_cli.distributed import ProcessGroup

ORDER = "_order"


def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


class PartWriter:
    """One rank's results as JSONL records in the shared parts folder, each with its input place.

    `order` maps resume.task_key of each task to its place; a segment takes its first window's.
    """

    def __init__(self, folder: Path, rank: int, order: dict[tuple, int]):
        folder.mkdir(parents=True, exist_ok=True)
        self.order = order
        self.stream = open(folder / f"rank{rank}.{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def write(self, result: TagResult) -> None:
        record = {**result.to_record(), ORDER: self.order.get(task_key(result), 0)}
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def read_parts(folder: Path) -> list[dict[str, Any]]:
    """Every record of the parts in `folder`, in input order, without their `_order`."""
    records: list[dict[str, Any]] = []
    for part in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        records += read_rows(part, "jsonl")
    records.sort(key=lambda r: r.get(ORDER, 0))
    return [{k: v for k, v in r.items() if k != ORDER} for r in records]


def remove_parts(folder: Path) -> None:
    if folder.is_dir():
        for part in folder.glob("*.jsonl"):
            part.unlink()
        folder.rmdir()


def merge_parts(
    group: ProcessGroup,
    summary: TagSummary,
    folder: Path,
    output: Path | None,
    stdout: IO[str] | None,
    config: TagConfig,
    existing: int,
    into: ResultWriter | None = None,
) -> TagSummary:
    """Rank 0 writes every rank's results, in input order, to the one output; counts are summed."""
    group.barrier()
    summaries = group.gather(summary)
    total = TagSummary(skipped=summary.skipped, loop_seconds=max(s.loop_seconds for s in summaries))
    for s in summaries:
        total.total, total.ok, total.failed = total.total + s.total, total.ok + s.ok, total.failed + s.failed
    if group.is_main:
        neutralise = not config.raw_csv
        writer: ResultWriter
        if into is not None:
            writer = into
        elif output is not None:
            writer = open_for_append(output, config.output_format, config.top_k, existing, neutralise)
        else:
            writer = RowWriter(stdout or sys.stdout, config.output_format, config.top_k, neutralise=neutralise)
        for record in read_parts(folder):
            writer.write(TagResult.from_record(record))
        writer.close()
        remove_parts(folder)
    group.barrier()
    return total
