"""Stored embeddings: relabel equals tag without the videos, kill -9 resume, model refusal, search, embed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, run_main, start_paused
from tests.media import moving_ball_frames, write_video

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
LABELS = "moving right,moving left,growing,shrinking"
OTHER = "a red ball,a dog,surfing,juggling,a person cooking"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "default-cache"))


def render(folder: Path, count: int, frames: int = 16) -> list[Path]:
    """Clips that differ in motion, colour, size and background, so their embeddings differ."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    return [
        write_video(
            folder / f"clip_{i:02d}.mp4",
            moving_ball_frames(
                frames,
                48 + 8 * (i % 3),
                ["right", "left", "grow", "shrink"][i % 4],
                color=colours[i % len(colours)],
                seed=i,
                background=["noise", "black"][i % 2],
            ),
        )
        for i in range(count)
    ]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_same_rows(tagged: list[dict], relabelled: list[dict]) -> None:
    """Same videos and windows, identical top-k, scores within 1e-5, every other field equal."""
    key = lambda r: (r["path"], r["start"])  # noqa: E731
    assert sorted(map(key, tagged)) == sorted(map(key, relabelled))
    by_key = {key(r): r for r in relabelled}
    for row in tagged:
        other = by_key[key(row)]
        assert other["labels"] == row["labels"], row["path"]
        assert np.allclose(other["scores"], row["scores"], atol=1e-5, rtol=0), row["path"]
        for name in ("status", "end", "duration", "num_frames", "timestamps", "video_id", "model_id", "labels_id"):
            assert other[name] == row[name], (name, row["path"])


def test_relabel_equals_tag_with_the_videos_deleted(tmp_path, capsys):
    folder = tmp_path / "videos"
    videos = render(folder, 5)
    store, cache = tmp_path / "store", tmp_path / "cache"
    common = [*TINY, "--workers", "0", "-k", "3", "--cache-dir", str(cache)]
    code, err = run_main(
        "tag",
        str(folder),
        "--labels",
        LABELS,
        *common,
        "-o",
        str(tmp_path / "a.jsonl"),
        "--save-embeddings",
        str(store),
        capsys=capsys,
    )
    assert code == 0, err
    code, err = run_main("tag", str(folder), "--labels", OTHER, *common, "-o", str(tmp_path / "b.jsonl"), capsys=capsys)
    assert code == 0, err
    shutil.rmtree(folder)  # from here on, only the store is left

    # The label set tag used: its text embeddings are cached, so no model is even loaded.
    code, err = run_main(
        "tag",
        "--from-embeddings",
        str(store),
        "--labels",
        LABELS,
        "-k",
        "3",
        "--cache-dir",
        str(cache),
        "-o",
        str(tmp_path / "ra.jsonl"),
        capsys=capsys,
    )
    assert code == 0, err
    assert "no video decoded" in err and "model:" not in err
    assert_same_rows(jsonl(tmp_path / "a.jsonl"), jsonl(tmp_path / "ra.jsonl"))
    # A new label set with a cold cache: the store names its model, which is loaded and checked.
    code, err = run_main(
        "tag",
        "--from-embeddings",
        str(store),
        "--labels",
        OTHER,
        "-k",
        "3",
        "--cache-dir",
        str(tmp_path / "cold"),
        "-o",
        str(tmp_path / "rb.jsonl"),
        capsys=capsys,
    )
    assert code == 0, err
    assert "model:" in err
    assert_same_rows(jsonl(tmp_path / "b.jsonl"), jsonl(tmp_path / "rb.jsonl"))
    assert len(jsonl(tmp_path / "rb.jsonl")) == len(videos)
    # Re-running into the same -o resumes like tag: nothing duplicated.
    code, err = run_main(
        "tag",
        "--from-embeddings",
        str(store),
        "--labels",
        OTHER,
        "-k",
        "3",
        "--cache-dir",
        str(cache),
        "-o",
        str(tmp_path / "rb.jsonl"),
        capsys=capsys,
    )
    assert code == 0 and f"({len(videos)} already done)" in err
    assert len(jsonl(tmp_path / "rb.jsonl")) == len(videos)


def test_windows_relabel_equal_tag_and_store_carries_ids(tmp_path, capsys):
    clip = write_video(tmp_path / "long.mp4", moving_ball_frames(48, 40, "right"), fps=8)  # 6 s
    store = tmp_path / "store"
    code, err = run_main(
        "tag",
        str(clip),
        "--labels",
        LABELS,
        *TINY,
        "--workers",
        "0",
        "--window",
        "2",
        "-o",
        str(tmp_path / "w.jsonl"),
        "--save-embeddings",
        str(store),
        capsys=capsys,
    )
    assert code == 0, err
    from ezclip_cli.store.format import load_store

    stored = load_store(store)
    assert len(stored) == 3 and stored.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(stored.embeddings, axis=1), 1, atol=1e-5)  # normalised
    stat = clip.stat()
    rows = [stored.row(i) for i in range(3)]
    assert all(r["size"] == stat.st_size and r["mtime_ns"] == stat.st_mtime_ns for r in rows)
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert all(r["path"] == str(clip) and r["num_frames"] == len(r["timestamps"]) == 8 for r in rows)
    assert stored.model_id == jsonl(tmp_path / "w.jsonl")[0]["model_id"]
    code, err = run_main(
        "tag", "--from-embeddings", str(store), "--labels", LABELS, "-o", str(tmp_path / "r.jsonl"), capsys=capsys
    )
    assert code == 0, err
    assert_same_rows(jsonl(tmp_path / "w.jsonl"), jsonl(tmp_path / "r.jsonl"))
    # Segments straight from the store: the windows tag wrote, merged.
    from ezclip_cli.tag.results import TagResult
    from ezclip_cli.tag.segments import merge_segments

    code, err = run_main(
        "tag",
        "--from-embeddings",
        str(store),
        "--labels",
        LABELS,
        "--segments",
        "-o",
        str(tmp_path / "s.jsonl"),
        capsys=capsys,
    )
    assert code == 0, err
    expected = [s.to_record() for s in merge_segments([TagResult.from_record(r) for r in jsonl(tmp_path / "w.jsonl")])]
    got = jsonl(tmp_path / "s.jsonl")
    assert [(s["start"], s["end"], s["labels"]) for s in got] == [(s["start"], s["end"], s["labels"]) for s in expected]
    assert np.allclose([s["scores"] for s in got], [s["scores"] for s in expected], atol=1e-5)


def test_killed_save_embeddings_run_resumed_holds_every_video_once(tmp_path):
    videos = render(tmp_path / "many", 30, frames=24)
    out, store = tmp_path / "tags.jsonl", tmp_path / "store"
    env = {**os.environ, "EZCLIP_CACHE": str(tmp_path / "cache")}
    args = [
        sys.executable,
        "-m",
        "ezclip_cli",
        "tag",
        str(tmp_path / "many"),
        "--labels",
        LABELS,
        *TINY,
        "-o",
        str(out),
        "--save-embeddings",
        str(store),
        "--batch-size",
        "1",
        "--workers",
        "0",
        "-q",
    ]
    proc = start_paused(args, "rows", 5, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    manifest = store / "manifest.jsonl"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = manifest.read_bytes().count(b"\n")
    assert committed == 5 < len(videos)  # batch size 1: one commit per row, each before its row
    # The worst a kill can leave on top: a shard written but never committed, and a torn manifest line.
    (store / "shards" / "999999.safetensors").write_bytes(b"partial")
    with manifest.open("a") as f:
        f.write('{"shard": "999999.safetensors", "rows": 1, "col')
    resumed = subprocess.run(args[:-1], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr

    from ezclip_cli.store.format import load_store

    stored = load_store(store)
    assert sorted(stored.columns["path"]) == sorted(str(v) for v in videos)  # every video, once
    rows = jsonl(out)
    assert sorted(r["path"] for r in rows) == sorted(str(v) for v in videos)
    assert {r["video_id"] for r in rows} == set(stored.columns["video_id"])
    assert not (store / "shards" / "999999.safetensors").exists()
    assert manifest.read_text().endswith("\n")
    assert len(list((store / "shards").glob("*.safetensors"))) == 1  # the small per-batch shards were merged
    # Tagging the same videos into the same store again (stdout this time) stores nothing twice.
    to_stdout = [
        sys.executable,
        "-m",
        "ezclip_cli",
        "tag",
        str(tmp_path / "many"),
        "--labels",
        LABELS,
        *TINY,
        "--save-embeddings",
        str(store),
        "--workers",
        "0",
        "-q",
        "-f",
        "jsonl",
    ]
    again = subprocess.run(to_stdout, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(load_store(store)) == len(videos)


def test_a_store_of_another_model_is_refused(tmp_path, capsys):
    clips = render(tmp_path / "v", 2)
    store = tmp_path / "store"
    code, err = run_main(
        "tag",
        *map(str, clips),
        "--labels",
        LABELS,
        *TINY,
        "--workers",
        "0",
        "-f",
        "jsonl",
        "-o",
        str(tmp_path / "t.jsonl"),
        "--save-embeddings",
        str(store),
        capsys=capsys,
    )
    assert code == 0, err
    before = (store / "manifest.jsonl").read_bytes()
    other = [*TINY, "--num-frames", "4"]  # another model: other frame count, other fingerprint
    code, err = run_main(
        "tag",
        *map(str, clips),
        "--labels",
        LABELS,
        *other,
        "--workers",
        "0",
        "-f",
        "jsonl",
        "--save-embeddings",
        str(store),
        capsys=capsys,
    )
    assert code == 1 and "holds embeddings of model" in err and "Traceback" not in err
    assert (store / "manifest.jsonl").read_bytes() == before  # nothing written
    code, err = run_main(
        "tag",
        "--from-embeddings",
        str(store),
        "--labels",
        LABELS,
        *other,
        "-o",
        str(tmp_path / "r.jsonl"),
        capsys=capsys,
    )
    assert code == 1 and "holds embeddings of model" in err
    code, err = run_main("search", str(store), "a ball", *other, capsys=capsys)
    assert code == 1 and "holds embeddings of model" in err
    code, err = run_main("embed", *map(str, clips), "--store", str(store), *other, "--workers", "0", capsys=capsys)
    assert code == 1 and "holds embeddings of model" in err
    assert (store / "manifest.jsonl").read_bytes() == before


def test_store_never_takes_a_foreign_folder_and_has_one_writer(tmp_path):
    from ezclip_cli.errors import UsageError
    from ezclip_cli.store.format import StoreError
    from ezclip_cli.store.writer import StoreWriter

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(UsageError, match="did not write"):
        StoreWriter(foreign, "m", 100.0, {})
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]
    first = StoreWriter(tmp_path / "store", "m", 100.0, {})
    with pytest.raises(StoreError, match="another ezclip process"):
        StoreWriter(tmp_path / "store", "m", 100.0, {})
    first.close()
    StoreWriter(tmp_path / "store", "m", 100.0, {}).close()  # the lock went with the first writer


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def stored_row(path: str, start: float | None = None) -> dict:
    return {
        "path": path,
        "video_id": f"id-{path}",
        "size": 1,
        "mtime_ns": 1,
        "start": start,
        "end": None if start is None else start + 1,
        "duration": 10.0,
        "num_frames": 8,
        "timestamps": [0.0] * 8,
    }


def test_search_returns_the_planted_nearest_video_first(tmp_path, capsys):
    import torch

    from ezclip_cli.model.load import load_model, model_fingerprint
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.store.writer import StoreWriter

    ezclip = load_model(None, str(TINY_CONFIG), "none", 8)
    query = "a person surfing a big wave"
    with torch.inference_mode():
        text = ezclip.build_text_classifier([[query]]).float().numpy()[0]
    rng = np.random.default_rng(0)
    dim = text.shape[0]
    noise = unit(rng.standard_normal((300, dim)))
    rows = [stored_row(f"/lib/random_{i:03d}.mp4") for i in range(300)]
    planted = unit(text + 0.3 * unit(rng.standard_normal(dim)))  # nearest by construction
    decoy = unit(text + 1.0 * unit(rng.standard_normal(dim)))  # near, but less so
    store = tmp_path / "store"
    writer = StoreWriter(
        store,
        model_fingerprint(ezclip),
        float(ezclip.logit_scale),
        ModelSpec(backbone=str(TINY_CONFIG), pretrained="none").to_dict(),
    )
    writer.add(rows[:150], noise[:150])
    writer.add([stored_row("/lib/decoy.mp4"), stored_row("/lib/surfing.mp4")], np.stack([decoy, planted]))
    writer.add(rows[150:], noise[150:])
    writer.close()
    assert float(planted @ text) > float(decoy @ text) > float(np.max(noise @ text))

    out = tmp_path / "hits.jsonl"
    code, err = run_main("search", str(store), query, "-k", "5", "-o", str(out), capsys=capsys)
    assert code == 0, err
    hits = jsonl(out)
    assert [h["path"] for h in hits[:2]] == ["/lib/surfing.mp4", "/lib/decoy.mp4"]
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0]["query"] == query and hits[0]["score"] == pytest.approx(float(planted @ text), abs=1e-5)
    assert hits[0]["score"] >= hits[1]["score"] >= hits[4]["score"]
    code, err = run_main("search", str(store), query, "-o", str(out), capsys=capsys)
    assert code == 2 and "--overwrite" in err  # an existing file is not replaced unasked


def test_search_like_a_video_and_per_video(tmp_path, capsys):
    from ezclip_cli.store.writer import StoreWriter

    rng = np.random.default_rng(1)
    dim = 16
    base = unit(rng.standard_normal(dim))
    near = unit(base + 0.05 * unit(rng.standard_normal(dim)))
    (tmp_path / "a.mp4").write_bytes(b"stored: never decoded")
    rows = [stored_row(str(tmp_path / "a.mp4")), stored_row("/lib/a_copy.mp4")]
    rows += [stored_row("/lib/long.mp4", start=float(s)) for s in range(3)]  # three windows of one video
    vectors = [
        base,
        near,
        unit(base + 0.2 * unit(rng.standard_normal(dim))),
        unit(base + 0.25 * unit(rng.standard_normal(dim))),
        unit(rng.standard_normal(dim)),
    ]
    rows += [stored_row(f"/lib/other_{i}.mp4") for i in range(20)]
    vectors += list(unit(rng.standard_normal((20, dim))))
    writer = StoreWriter(tmp_path / "store", "m", 100.0, {})
    writer.add(rows, np.stack(vectors))
    writer.close()
    out = tmp_path / "like.jsonl"
    code, err = run_main(
        "search", str(tmp_path / "store"), "--like", str(tmp_path / "a.mp4"), "-k", "4", "-o", str(out), capsys=capsys
    )
    assert code == 0, err
    hits = jsonl(out)
    assert hits[0]["path"] == "/lib/a_copy.mp4"
    assert str(tmp_path / "a.mp4") not in [h["path"] for h in hits]  # the query itself is left out
    assert [h["path"] for h in hits[1:3]] == ["/lib/long.mp4"] * 2
    code, err = run_main(
        "search",
        str(tmp_path / "store"),
        "--like",
        str(tmp_path / "a.mp4"),
        "-k",
        "4",
        "--per-video",
        "-o",
        str(out),
        "--overwrite",
        capsys=capsys,
    )
    assert code == 0, err
    paths = [h["path"] for h in jsonl(out)]
    assert paths[:2] == ["/lib/a_copy.mp4", "/lib/long.mp4"] and len(set(paths)) == len(paths) == 4
    assert jsonl(out)[1]["start"] == 0.0  # the best window of that video


def test_search_like_an_unstored_video_decodes_it(tmp_path, capsys):
    clips = render(tmp_path / "v", 4)
    store = tmp_path / "store"
    code, err = run_main("embed", str(tmp_path / "v"), "--store", str(store), *TINY, "--workers", "0", capsys=capsys)
    assert code == 0, err
    query = shutil.copy(clips[2], tmp_path / "query.mp4")  # same content, another path: not in the store
    out = tmp_path / "like.csv"
    code, err = run_main("search", str(store), "--like", str(query), "-k", "2", "-o", str(out), capsys=capsys)
    assert code == 0, err
    import csv

    hits = list(csv.DictReader(out.open()))
    assert hits[0]["path"] == str(clips[2]) and float(hits[0]["score"]) > 0.99999


def test_embed_resumes_and_relabels_like_tag(tmp_path, capsys):
    clips = render(tmp_path / "v", 3)
    store = tmp_path / "store"
    code, err = run_main(
        "embed", str(clips[0]), str(clips[1]), "--store", str(store), *TINY, "--workers", "0", capsys=capsys
    )
    assert code == 0, err
    code, err = run_main("embed", str(tmp_path / "v"), "--store", str(store), *TINY, "--workers", "0", capsys=capsys)
    assert code == 0 and "2 already stored" in err and "1 ok" in err
    code, err = run_main(
        "tag",
        str(tmp_path / "v"),
        "--labels",
        LABELS,
        *TINY,
        "--workers",
        "0",
        "-o",
        str(tmp_path / "t.jsonl"),
        capsys=capsys,
    )
    assert code == 0, err
    code, err = run_main(
        "tag", "--from-embeddings", str(store), "--labels", LABELS, "-o", str(tmp_path / "r.jsonl"), capsys=capsys
    )
    assert code == 0, err
    assert_same_rows(jsonl(tmp_path / "t.jsonl"), jsonl(tmp_path / "r.jsonl"))
    # The library entry point fills a store too.
    from ezclip_cli import tag_videos
    from ezclip_cli.store.format import load_store

    rows = tag_videos(
        [tmp_path / "v"],
        LABELS,
        model=str(TINY_CONFIG),
        pretrained="none",
        workers=0,
        save_embeddings=tmp_path / "lib-store",
    )
    assert sorted(load_store(tmp_path / "lib-store").columns["path"]) == sorted(r.path for r in rows)


def test_relabel_threshold_can_abstain_and_flags_are_checked(tmp_path, capsys):
    clips = render(tmp_path / "v", 2)
    store = tmp_path / "store"
    code, err = run_main("embed", str(tmp_path / "v"), "--store", str(store), *TINY, "--workers", "0", capsys=capsys)
    assert code == 0, err
    out = tmp_path / "r.csv"
    code, err = run_main(
        "tag", "--from-embeddings", str(store), "--labels", LABELS, "--threshold", "1.0", "-o", str(out), capsys=capsys
    )
    assert code == 0, err
    import csv

    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(clips) and all(r["status"] == "ok" and r["label_1"] == "" for r in rows)  # abstained
    code, err = run_main("tag", "--from-embeddings", str(store), str(clips[0]), "--labels", LABELS, capsys=capsys)
    assert code == 2 and "no video inputs" in err
    code, err = run_main("tag", "--labels", LABELS, capsys=capsys)
    assert code == 2 and "--from-embeddings" in err
    code, err = run_main("tag", "--from-embeddings", str(tmp_path / "v"), "--labels", LABELS, capsys=capsys)
    assert code == 1 and "not an embedding store" in err


def test_help_of_the_new_commands_imports_no_torch():
    code = (
        "import sys\n"
        "from ezclip_cli.cli.app import app\n"
        "for args in [['embed', '--help'], ['search', '--help'], ['tag', '--help']]:\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'numpy', 'safetensors') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
