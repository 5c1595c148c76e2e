"""Embedding stores refuse what they cannot vouch for (issue 21 cases 2, 3, 11, 17): one row per file, one verdict."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.helpers import REPO, TINY_CONFIG, run_cli
from tests.media import moving_ball_frames, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"
EMBED = ("--checkpoint", str(MODEL), "-j", "0", "-q")


@pytest.fixture
def clips(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    write_video(root / "left_001.mp4", moving_ball_frames(16, 48, "left"))
    write_video(root / "right_001.mp4", moving_ball_frames(16, 48, "right"))
    return root


def embed(clips, store, capsys, *extra):
    return run_cli("embed", str(clips), "--save-embeddings", str(store), *EMBED, *extra, capsys=capsys)


def test_case2_a_changed_video_is_stored_once(clips, tmp_path, capsys):
    store = tmp_path / "s"
    assert embed(clips, store, capsys).code == 0
    changed = clips / "left_001.mp4"
    os.utime(changed, (time.time() + 60, time.time() + 60))  # `touch`: a new version of the file
    assert embed(clips, store, capsys).code == 0
    rows = run_cli(
        "tag", "--from-embeddings", str(store), "-l", "a,b", "--template", "{}", "-f", "jsonl", capsys=capsys
    )
    assert rows.code == 0, rows.err
    paths = [json.loads(line)["path"] for line in rows.out.splitlines()]
    assert sorted(paths) == sorted(str(p) for p in clips.glob("*.mp4"))  # each once, the new version
    hits = run_cli("search", str(store), "a ball", "--per-video", "-f", "paths", capsys=capsys)
    assert len(hits.out.splitlines()) == 2


def test_case3_a_store_without_its_store_json_is_damaged_and_left_alone(clips, tmp_path, capsys):
    store = tmp_path / "s"
    assert embed(clips, store, capsys).code == 0
    (store / "store.json").unlink()
    before = sorted((p.relative_to(store), p.stat().st_size) for p in store.rglob("*"))
    other = run_cli(
        "embed",
        str(clips),
        "--save-embeddings",
        str(store),
        "--model",
        str(TINY_CONFIG),
        "--pretrained",
        "none",
        "-j",
        "0",
        "-q",
        capsys=capsys,
    )
    assert other.code != 0 and "damaged" in other.err and len(other.err.strip().splitlines()) == 1
    assert sorted((p.relative_to(store), p.stat().st_size) for p in store.rglob("*")) == before  # nothing changed


def test_case11_17_a_truncated_or_missing_shard_gets_one_verdict_and_embed_repairs_it(clips, tmp_path, capsys):
    store = tmp_path / "s"
    assert embed(clips, store, capsys).code == 0
    shard = next((store / "shards").iterdir())
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    relabel = run_cli("tag", "--from-embeddings", str(store), "-l", "a,b", capsys=capsys)
    assert relabel.code != 0 and "damaged" in relabel.err and "truncated" in relabel.err
    search = run_cli("search", str(store), "a ball", capsys=capsys)
    assert search.code != 0 and "damaged" in search.err
    repaired = embed(clips, store, capsys)  # the writer says so, drops the damaged rows and embeds them again
    assert repaired.code == 0, repaired.err
    again = run_cli("tag", "--from-embeddings", str(store), "-l", "a,b", "-f", "jsonl", capsys=capsys)
    assert again.code == 0 and len(again.out.splitlines()) == 2
    for listed in (store / "shards").iterdir():
        listed.unlink()  # case 17: listed shards gone
    missing = embed(clips, store, capsys)
    assert "Traceback" not in missing.err and "FileNotFoundError" not in missing.err
    assert (
        missing.code == 0
        and len(
            run_cli("tag", "--from-embeddings", str(store), "-l", "a,b", "-f", "jsonl", capsys=capsys).out.splitlines()
        )
        == 2
    )


def test_portability_locks_use_msvcrt_on_windows(tmp_path, monkeypatch):
    """Both locks (-o and the store) go through files.try_lock: fcntl on POSIX, msvcrt.locking on Windows."""
    import sys
    import types

    from ezclip_cli import files

    calls = []
    fake = types.ModuleType("msvcrt")
    fake.LK_NBLCK = 2

    def locking(fd, mode, nbytes):
        calls.append((mode, nbytes))
        if len(calls) > 1:
            raise OSError(13, "Permission denied")  # what Windows says when another process holds it

    fake.locking = locking
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(files.os, "name", "nt")
    fd = os.open(tmp_path / "x.lock", os.O_RDWR | os.O_CREAT)
    try:
        assert files.try_lock(fd) is True and files.try_lock(fd) is False
    finally:
        os.close(fd)
    assert calls == [(2, 1), (2, 1)]
    monkeypatch.setattr(files.os, "name", "posix")
    first, second = (os.open(tmp_path / "y.lock", os.O_RDWR | os.O_CREAT) for _ in range(2))
    try:
        assert files.try_lock(first) is True and files.try_lock(second) is False  # flock: per open file
    finally:
        os.close(first)
        os.close(second)
