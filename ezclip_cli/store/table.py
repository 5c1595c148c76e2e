"""A store as one table: `ezclip store export STORE --to parquet|lance OUT`, and reading such a table back.

One row per stored video (window): path, video_id, start, end, duration, size, mtime_ns, num_frames,
timestamps (list of float64) and `embedding`, a fixed-size list of float32 (the store's dimension),
L2-normalised as in the store. The store's identity (store.json: model id, logit scale, how to load
the model) rides in the schema metadata under `ezclip-store`, so `tag --from-embeddings TABLE` and
`search TABLE` read an exported table as they read the store, and DuckDB, LanceDB, pandas or Ray
read it with no ezclip at all.

Lance tables are written with `lance.write_dataset` (pylance): Ray's own `write_lance` fails with
recent pylance releases, and a Ray user can point `ray.data.read_lance` at the result either way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import UsageError
from ezclip_cli.files import atomic_write
from ezclip_cli.store.format import FLOAT_COLUMNS, INT_COLUMNS, TEXT_COLUMNS, StoredEmbeddings, load_store, refuse_model

if TYPE_CHECKING:
    import pyarrow as pa

TARGETS = ("parquet", "lance")
MARKER = b"ezclip-store"  # schema metadata: the store's store.json


def is_table(path: Path) -> bool:
    """Whether `path` names a table rather than a store folder: a Parquet file or a Lance dataset."""
    path = Path(path)
    return (path.is_file() and path.suffix.lower() == ".parquet") or (path.is_dir() and (path / "_versions").is_dir())


def store_table(stored: StoredEmbeddings) -> pa.Table:
    """The rows of a loaded store as an Arrow table, its store.json in the schema metadata."""
    import numpy as np
    import pyarrow as pa

    rows = stored.rows(range(len(stored)))
    dim = int(stored.embeddings.shape[1]) if stored.embeddings.ndim == 2 else 0
    fields: list[tuple[str, pa.DataType]] = [(name, pa.string()) for name in TEXT_COLUMNS]
    fields += [(name, pa.float64()) for name in FLOAT_COLUMNS] + [(name, pa.int64()) for name in INT_COLUMNS]
    fields += [("timestamps", pa.list_(pa.float64())), ("embedding", pa.list_(pa.float32(), dim))]
    schema = pa.schema(fields, metadata={MARKER: json.dumps(stored.info).encode()})
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name, _ in fields[:-1]}
    flat = pa.array(np.ascontiguousarray(stored.embeddings, dtype=np.float32).reshape(-1))
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.Table.from_pydict(columns, schema=schema)


def export_store(store: Path, to: str, out: Path, overwrite: bool = False) -> int:
    """Write every row of `store` to `out` as a Parquet file or a Lance dataset; returns the row count.

    An existing `out` is replaced only with `overwrite`, and only when it is an ezclip table.
    """
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)} (got {to!r})")
    require(to)
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise UsageError(f"{out} exists; use --overwrite to replace it or choose another OUT")
        if not (is_table(out) and _table_info(out) is not None):
            raise UsageError(f"refusing to replace {out}: it is not a table ezclip exported")
    table = store_table(load_store(store))
    if to == "parquet":
        import pyarrow.parquet as pq

        atomic_write(out, lambda tmp: pq.write_table(table, tmp))
    else:
        import lance

        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        lance.write_dataset(table, str(out), mode="create")
    return table.num_rows


def require(kind: str) -> None:
    """pyarrow (and pylance for Lance), or one line saying how to install them."""
    try:
        import pyarrow  # noqa: F401

        if kind == "lance":
            import lance  # noqa: F401
    except ImportError:
        raise UsageError(f"reading or writing {kind} tables needs pip install 'ezclip[{kind}]'") from None


def _read_arrow(path: Path) -> pa.Table:
    if path.is_dir():
        require("lance")
        import lance

        return lance.dataset(str(path)).to_table()
    require("parquet")
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _table_info(path: Path) -> dict[str, Any] | None:
    """The store.json a table carries, or None for another table."""
    try:
        if path.is_dir():
            require("lance")
            import lance

            schema = lance.dataset(str(path)).schema
        else:
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
    except UsageError:
        raise
    except Exception:  # not a table at all
        return None
    raw = (schema.metadata or {}).get(MARKER)
    return json.loads(raw) if raw else None


def load_table(path: Path, model_id: str | None = None) -> StoredEmbeddings:
    """An exported table as a loaded store (what load_store gives for the store it came from)."""
    import numpy as np

    path = Path(path)
    info = _table_info(path)
    if info is None:
        raise UsageError(
            f"{path} is not a table of `ezclip store export` (no {MARKER.decode()} schema metadata); "
            "export the store with `ezclip store export`"
        )
    if model_id is not None and info["model_id"] != model_id:
        raise refuse_model(path, info["model_id"], model_id)
    table = _read_arrow(path)
    dim = int(info.get("dim") or 0)
    embedding = table.column("embedding").combine_chunks()
    values = embedding.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    columns: dict[str, Any] = {name: table.column(name).to_pylist() for name in TEXT_COLUMNS}
    for name in FLOAT_COLUMNS:
        columns[name] = np.asarray([np.nan if v is None else v for v in table.column(name).to_pylist()], np.float64)
    for name in INT_COLUMNS:
        columns[name] = np.asarray([-1 if v is None else v for v in table.column(name).to_pylist()], np.int64)
    stamps = table.column("timestamps").to_pylist()
    width = max((len(s or []) for s in stamps), default=0)
    padded = np.full((len(stamps), width), np.nan)
    for i, s in enumerate(stamps):
        padded[i, : len(s or [])] = s or []
    columns["timestamps"] = padded
    return StoredEmbeddings(info, values.reshape(len(table), dim), columns)
