"""`ezclip store ...`: work on an embedding store as a whole (today: export it as a Parquet or Lance table).

Plain functions on a typer sub-app; cli/app.py adds it. Heavy imports stay inside the bodies.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ezclip_cli.cli.options import QuietOpt, log, setup_logging


class TableKind(str, Enum):
    parquet = "parquet"
    lance = "lance"


store_app = typer.Typer(
    help="Embedding stores as a whole: export one as a Parquet file or a Lance table.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@store_app.command("export")
def export_store(
    store: Path = typer.Argument(..., help="Embedding store folder (written by tag --save-embeddings or embed)."),
    table: Path = typer.Argument(..., help="The table to write: a .parquet file, or a Lance dataset folder."),
    to: TableKind = typer.Option(..., "--to", help="parquet (one file, pyarrow) or lance (a Lance dataset, pylance)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace TABLE if it is a table ezclip exported."),
    quiet: bool = QuietOpt,
) -> None:
    """Write every stored row with its embedding to one table for DuckDB, LanceDB, pandas or Ray.

    Columns: path, video_id, start, end, duration, size, mtime_ns, num_frames, timestamps and
    embedding (fixed-size float32 list). `tag --from-embeddings` and `search` read the table back.
    """
    setup_logging(quiet)
    from ezclip_cli.store.table import export_store as export

    rows = export(store, to.value, table, overwrite)
    log.info("exported %d rows of %s to %s (%s)", rows, store, table, to.value)
