"""Columnar outputs: `-f parquet` for tag, merge and search equals JSONL and resumes after a kill;
a store exported to Parquet or Lance reads back, also as the input of `tag --from-embeddings` and `search`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG, put, run_cli, run_main, start_paused
from tests.media import moving_ball_frames, write_video

pq = pytest.importorskip("pyarrow.parquet")

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
LABELS = "moving right,moving left,growing,shrinking"
COMMON = [*TINY, "--workers", "0", "-k", "3", "--labels", LABELS]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("columnar-videos")
    for i, motion in enumerate(["right", "left", "grow", "shrink"]):
        write_video(folder / f"clip_{i}.mp4", moving_ball_frames(12, 48, motion, seed=i))
    return folder


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parquet_rows(path: Path) -> list[dict]:
    from ezclip_cli.tag.columnar import read_table_rows

    return read_table_rows(path)


def by_key(rows: list[dict]) -> dict:
    return {(r["path"], r["start"]): r for r in rows}


def test_tag_parquet_equals_jsonl_with_typed_columns(videos, tmp_path, capsys):
    code, err = run_main("tag", str(videos), *COMMON, "-o", str(tmp_path / "a.jsonl"), capsys=capsys)
    assert code == 0, err
    code, err = run_main("tag", str(videos), *COMMON, "-o", str(tmp_path / "a.parquet"), capsys=capsys)
    assert code == 0, err
    table = pq.read_table(tmp_path / "a.parquet")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["labels"] == "list<element: string>" and types["scores"] == "list<element: double>"
    assert types["start"] == "double" and types["num_frames"] == "int64"
    assert table.column_names[:11] == list(jsonl(tmp_path / "a.jsonl")[0])[:11]
    assert by_key(parquet_rows(tmp_path / "a.parquet")) == by_key(jsonl(tmp_path / "a.jsonl"))
    assert not list(tmp_path.glob(".a.parquet.rows"))  # the journal was folded in
    # A rerun resumes: nothing tagged twice, the table unchanged.
    code, err = run_main("tag", str(videos), *COMMON, "-o", str(tmp_path / "a.parquet"), capsys=capsys)
    assert code == 0 and "4 already done" in err, err
    assert len(pq.read_table(tmp_path / "a.parquet")) == 4


def test_parquet_needs_a_file_and_refuses_foreign_tables(videos, tmp_path, capsys):
    result = run_cli("tag", str(videos), *COMMON, "-f", "parquet", capsys=capsys)
    assert result.code == 2 and "give -o FILE.parquet" in result.err
    import pyarrow as pa

    pq.write_table(pa.table({"path": ["x"], "status": ["ok"]}), tmp_path / "theirs.parquet")
    before = (tmp_path / "theirs.parquet").read_bytes()
    code, err = run_main("tag", str(videos), *COMMON, "-o", str(tmp_path / "theirs.parquet"), capsys=capsys)
    assert code == 2 and "not written by ezclip" in err, err
    put(tmp_path / "text.parquet", "not parquet at all\n")
    code, err = run_main("tag", str(videos), *COMMON, "-o", str(tmp_path / "text.parquet"), capsys=capsys)
    assert code == 2 and "not a Parquet file" in err, err
    assert (tmp_path / "theirs.parquet").read_bytes() == before


def test_parquet_resumes_after_a_kill(videos, tmp_path):
    out = tmp_path / "k.parquet"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "EZCLIP_CACHE": str(tmp_path / "c")}
    args = [sys.executable, "-m", "ezclip_cli", "tag", str(videos), *COMMON, "-b", "1", "-o", str(out), "-q"]
    proc = start_paused(args, "rows", 2, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(parquet_rows(out)) == 2  # the journal's rows count as written
    with (tmp_path / ".k.parquet.rows").open("a") as journal:
        journal.write('{"path": "torn')  # a kill mid-line
    resumed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in videos.glob("*.mp4"))  # every video once
    assert not (tmp_path / ".k.parquet.rows").exists()


def test_merge_and_search_write_parquet(videos, tmp_path, capsys):
    store = tmp_path / "store"
    for shard in (0, 1):
        code, err = run_main(
            "tag",
            str(videos),
            *COMMON,
            "--num-shards",
            "2",
            "--shard-index",
            str(shard),
            "-o",
            str(tmp_path / f"part{shard}.{'parquet' if shard else 'jsonl'}"),
            "--save-embeddings",
            str(store),
            capsys=capsys,
        )
        assert code == 0, err
    parts = [str(tmp_path / "part0.jsonl"), str(tmp_path / "part1.parquet")]
    code, err = run_main("merge", *parts, "-o", str(tmp_path / "all.parquet"), capsys=capsys)
    assert code == 0, err
    code, err = run_main("merge", *parts, "-o", str(tmp_path / "all.jsonl"), capsys=capsys)
    assert code == 0, err
    assert parquet_rows(tmp_path / "all.parquet") == jsonl(tmp_path / "all.jsonl")
    assert len(jsonl(tmp_path / "all.jsonl")) == 4

    query = ["search", str(store), "a ball", "-k", "3"]
    code, err = run_main(*query, "-o", str(tmp_path / "s.parquet"), capsys=capsys)
    assert code == 0, err
    code, err = run_main(*query, "-o", str(tmp_path / "s.jsonl"), capsys=capsys)
    assert code == 0, err
    import pyarrow.parquet as pq

    hits = pq.read_table(tmp_path / "s.parquet").to_pylist()  # search's own columns (rank, query, score, ...)
    assert hits == jsonl(tmp_path / "s.jsonl") and [h["rank"] for h in hits] == [1, 2, 3]


@pytest.mark.parametrize("kind", ["parquet", "lance"])
def test_store_export_reads_back_and_feeds_relabel_and_search(kind, videos, tmp_path, capsys):
    if kind == "lance":
        pytest.importorskip("lance")
    store, cache = tmp_path / "store", tmp_path / "cache"
    code, err = run_main(
        "tag",
        str(videos),
        *COMMON,
        "--cache-dir",
        str(cache),
        "-o",
        str(tmp_path / "a.jsonl"),
        "--save-embeddings",
        str(store),
        capsys=capsys,
    )
    assert code == 0, err
    table = tmp_path / ("t.parquet" if kind == "parquet" else "t.lance")
    code, err = run_main("store", "export", str(store), str(table), "--to", kind, capsys=capsys)
    assert code == 0 and "exported 4 rows" in err, err
    code, err = run_main("store", "export", str(store), str(table), "--to", kind, capsys=capsys)
    assert code == 2 and "exists" in err

    from ezclip_cli.store.format import load_store
    from ezclip_cli.store.table import load_table

    stored, exported = load_store(store), load_table(table)
    assert exported.info == stored.info
    assert (exported.embeddings == stored.embeddings).all()  # float32, bit for bit
    assert exported.rows(range(4)) == stored.rows(range(4))
    if kind == "lance":
        import lance

        assert lance.dataset(str(table)).schema.field("embedding").type.list_size == stored.embeddings.shape[1]

    # The table stands in for the store: the same rows as tag, the same search hits.
    common = ["--labels", LABELS, "-k", "3", "--cache-dir", str(cache)]
    relabel = ["tag", "--from-embeddings", str(table), *common, "-o", str(tmp_path / "r.jsonl")]
    code, err = run_main(*relabel, capsys=capsys)
    assert code == 0, err
    tagged, relabelled = by_key(jsonl(tmp_path / "a.jsonl")), by_key(jsonl(tmp_path / "r.jsonl"))
    assert tagged.keys() == relabelled.keys()
    for key, row in tagged.items():
        assert relabelled[key]["labels"] == row["labels"]
        assert max(abs(a - b) for a, b in zip(relabelled[key]["scores"], row["scores"])) < 1e-5
    first = run_cli("search", str(store), "a ball", "-k", "2", "-f", "jsonl", capsys=capsys)
    second = run_cli("search", str(table), "a ball", "-k", "2", "-f", "jsonl", capsys=capsys)
    assert first.code == second.code == 0 and first.out == second.out and first.out
