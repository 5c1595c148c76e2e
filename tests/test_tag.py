"""`ezclip tag` end to end: formats, broken files, resume after SIGKILL, windows, shards, stdout."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, start_paused
from tests.media import moving_ball_frames, write_broken, write_video

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
LABELS = "moving right,moving left,growing,shrinking"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, list[Path]]:
    """Good videos in many containers and shapes, plus broken files (rendered here, never committed)."""
    root = tmp_path_factory.mktemp("videos")
    good = [
        write_video(root / "a_h264.mp4", moving_ball_frames(16, 64, "right")),
        write_video(root / "b_vp9.webm", moving_ball_frames(12, 48, "left"), codec="libvpx-vp9"),
        write_video(root / "c_mkv.MKV", moving_ball_frames(10, 40, "grow")),
        write_video(root / "d_mpeg4.avi", moving_ball_frames(10, 48, "shrink"), codec="mpeg4"),
        write_video(root / "e_odd.mp4", moving_ball_frames(9, (33, 47), "right")),
        write_video(root / "f_one_frame.mp4", moving_ball_frames(1, 32, "left")),
        write_video(root / "g_rotated.mp4", moving_ball_frames(8, (32, 64), "grow"), rotation=90),
        write_video(
            root / "nested" / "deeper" / "h_1080p.mp4",
            _mkdir_frames(root, moving_ball_frames(3, (1080, 1920), "right")),
        ),
    ]
    bad_dir = root / "broken"
    bad_dir.mkdir()
    bad = [
        write_broken(bad_dir / "zero.mp4", "empty"),
        write_broken(bad_dir / "truncated.mp4", "truncated"),
        write_broken(bad_dir / "random.mp4", "random"),
        write_broken(bad_dir / "text.mp4", "text"),
        write_broken(bad_dir / "audio_only.mp4", "audio"),
    ]
    (root / ".hidden.mp4").write_bytes(b"not visited")
    (root / "notes.txt").write_text("not a video")
    return {"root": [root], "good": good, "bad": bad}


def _mkdir_frames(root: Path, frames: np.ndarray) -> np.ndarray:
    (root / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    return frames


def test_every_good_file_tagged_every_broken_one_an_error_row(media, tmp_path, cli):
    out = tmp_path / "tags.csv"
    result = cli("tag", str(media["root"][0]), "--labels", LABELS, *TINY, "-o", str(out), "--workers", "1", "-k", "3")
    assert result.code == 1, result.err  # some inputs failed, the rest were written
    assert "Traceback" not in result.err  # failures are logged as one line each, never with a stack
    assert result.out == ""  # results went to -o
    rows = list(csv.DictReader(out.open()))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == len(media["good"]) + len(media["bad"])  # hidden file and .txt skipped
    for path in media["good"]:
        row = by_name[path.name]
        assert row["status"] == "ok", (path.name, row["error"])
        assert row["label_1"] in LABELS.split(",") and 0 < float(row["score_1"]) <= 1
        assert float(row["score_1"]) >= float(row["score_2"]) >= float(row["score_3"])
        assert int(row["num_frames"]) == 8 and len(row["timestamps"].split()) == 8
        assert float(row["duration"]) > 0
    for path in media["bad"]:
        row = by_name[path.name]
        assert row["status"] == "error" and row["error"], path.name
        assert "\n" not in row["error"]
    assert "4 failed" not in result.err and f"{len(media['bad'])} failed" in result.err


def test_jsonl_on_stdout_is_pure_and_pipes(media):
    # A real pipe is the point: stdout must carry nothing but the rows into the next process.
    files = [str(p) for p in media["good"][:3]]
    pipeline = (
        f"{sys.executable} -m ezclip_cli tag {' '.join(files)} --labels '{LABELS}' "
        f"--model {TINY_CONFIG} --pretrained none -f jsonl --workers 0 "
        f"| {sys.executable} -c 'import sys, json; rows = [json.loads(l) for l in sys.stdin]; "
        f'print(len(rows), rows[0]["labels"][0])\''
    )
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    count, label = result.stdout.split(maxsplit=1)
    assert int(count) == 3 and label.strip() in LABELS.split(",")


def test_csv_and_json_on_stdout_parse(media, cli):
    files = [str(p) for p in media["good"][:2]] + [str(media["bad"][0])]
    csv_run = cli("tag", *files, "--labels", LABELS, *TINY, "-f", "csv", "--workers", "0", "-k", "2")
    rows = list(csv.DictReader(io.StringIO(csv_run.out)))
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    json_run = cli("tag", *files, "--labels", LABELS, *TINY, "-f", "json", "--workers", "0")
    data = json.loads(json_run.out)
    assert [r["status"] for r in data] == ["ok", "ok", "error"]
    assert data[0]["labels"] and len(data[0]["scores"]) == 4  # top-k capped at the label count
    assert csv_run.code == json_run.code == 1


def make_many(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_video(
            folder / f"clip_{i:03d}.mp4", moving_ball_frames(24, 96, ["right", "left", "grow", "shrink"][i % 4], seed=i)
        )
        for i in range(count)
    ]


def read_jsonl_paths(path: Path) -> list[str]:
    return [json.loads(line)["path"] for line in path.read_text().splitlines() if line.strip()]


def test_sigkill_mid_run_then_resume_holds_each_video_once(tmp_path, cli):
    videos = make_many(tmp_path / "many", 40)
    out = tmp_path / "tags.jsonl"
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
        "--batch-size",
        "1",
        "--workers",
        "0",
        "-q",
    ]
    # a real process to SIGKILL, stopped after its fifth row
    proc = start_paused(args, "rows", 5, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = read_jsonl_paths(out)
    assert len(written) == 5 < len(videos)
    # A kill mid-write leaves a torn last line; simulate the worst case on top of the real kill.
    with out.open("a") as f:
        f.write('{"path": "' + str(videos[-1]) + '", "status": "o')
    resumed = cli("tag", str(tmp_path / "many"), "--labels", LABELS, *TINY, "-o", str(out), "--workers", "0")
    assert resumed.code == 0, resumed.err
    assert f"{len(set(written))} already done" in resumed.err
    paths = read_jsonl_paths(out)
    assert sorted(paths) == sorted(str(v) for v in videos)  # each exactly once
    again = cli("tag", str(tmp_path / "many"), "--labels", LABELS, *TINY, "-o", str(out), "--workers", "0")
    assert again.code == 0 and f"{len(videos)} already done" in again.err
    assert read_jsonl_paths(out) == paths


def test_resume_refuses_another_label_set_and_retries_failures(media, tmp_path, cli):
    out = tmp_path / "tags.json"
    files = [str(media["good"][0]), str(media["bad"][0])]
    first = cli("tag", *files, "--labels", LABELS, *TINY, "-o", str(out), "--workers", "0")
    assert first.code == 1
    assert len(json.loads(out.read_text())) == 2
    other = cli("tag", *files, "--labels", "a,b", *TINY, "-o", str(out), "--workers", "0")
    assert other.code == 2 and "another model or label set" in other.err
    assert len(json.loads(out.read_text())) == 2  # nothing lost
    retry = cli("tag", *files, "--labels", LABELS, *TINY, "-o", str(out), "--workers", "0")
    data = json.loads(out.read_text())
    assert retry.code == 1 and "1 already done" in retry.err
    assert sorted(r["status"] for r in data) == ["error", "ok"]  # the failed one retried, not duplicated


def test_windows_have_start_and_end(tmp_path, cli):
    clip = write_video(tmp_path / "long.mp4", moving_ball_frames(48, 32, "right"), fps=8)  # 6 s
    result = cli("tag", str(clip), "--labels", LABELS, *TINY, "-f", "jsonl", "--window", "2", "--workers", "0")
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert result.code == 0, result.err
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    for row in rows:
        assert all(row["start"] <= t < row["end"] for t in row["timestamps"])
    strided = cli(
        "tag", str(clip), "--labels", LABELS, *TINY, "-f", "jsonl", "--window", "4", "--stride", "2", "--workers", "0"
    )
    windows = [json.loads(line) for line in strided.out.splitlines()]
    assert [(w["start"], w["end"]) for w in windows] == [(0.0, 4.0), (2.0, 6.0)]


def test_shards_are_disjoint_and_complete_and_stdin_lists_paths(tmp_path, cli):
    videos = make_many(tmp_path / "few", 6)
    listing = "\n".join(str(v) for v in videos) + "\n"
    seen = []
    for index in range(3):
        result = cli(
            "tag",
            "-",
            "--labels",
            LABELS,
            *TINY,
            "-f",
            "jsonl",
            "--num-shards",
            "3",
            "--shard-index",
            str(index),
            "--workers",
            "0",
            stdin=listing,
        )
        assert result.code == 0, result.err
        seen += [json.loads(line)["path"] for line in result.out.splitlines()]
    assert sorted(seen) == sorted(str(v) for v in videos)
    bad = cli("tag", "-", "--labels", LABELS, "--num-shards", "2", "--shard-index", "2", stdin=listing)
    assert bad.code == 2


def test_missing_input_and_bad_labels_are_one_line_errors(tmp_path, cli):
    missing = cli("tag", str(tmp_path / "nope"), "--labels", LABELS, *TINY)
    # a missing input is that input's error row (the others would still be tagged), never a traceback
    assert missing.code == 1 and "Traceback" not in missing.err
    rows = list(csv.DictReader(io.StringIO(missing.out)))
    assert [(r["status"], "no such file" in r["error"]) for r in rows] == [("error", True)]
    labels = tmp_path / "labels.csv"
    labels.write_text("label\nrun\nrun\n")
    dup = cli("tag", str(tmp_path), "--labels", str(labels), *TINY)
    assert dup.code == 1 and "labels.csv:3" in dup.err


def test_library_call_and_text_cache(media, tmp_path, monkeypatch):
    import torch

    from ezclip_cli import tag_videos
    from ezclip_cli.config import TagConfig
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.results import TagResult
    from ezclip_cli.tag.run import run_tagging

    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    rows = tag_videos(media["good"][:2], LABELS, model=str(TINY_CONFIG), pretrained="none", workers=0)
    cached = list((tmp_path / "cache" / "text").glob("*.safetensors"))
    assert len(cached) == 1
    again = tag_videos(media["good"][:2], LABELS, model=str(TINY_CONFIG), pretrained="none", workers=0)
    assert [r.labels for r in rows] == [r.labels for r in again]  # same seed, same output
    assert all(isinstance(r, TagResult) and r.ok and len(r.labels) == 4 for r in rows)
    # The CLI writes exactly these results: each JSONL line is a result's record.
    out = io.StringIO()
    config = TagConfig(labels=LABELS, workers=0, output_format="jsonl")
    run_tagging(
        [str(p) for p in media["good"][:2]],
        config,
        model=ModelSpec(backbone=str(TINY_CONFIG), pretrained="none"),
        stdout=out,
    )
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [r.to_record() for r in rows]
    assert [TagResult.from_record(r.to_record()) for r in rows] == rows
    # Decoding in this process (workers=0) leaves the caller's torch thread count alone; only
    # worker processes drop to one thread.
    assert torch.get_num_threads() == threads


def free_port() -> int:
    """A TCP port nobody listens on now (torchrun's rendezvous must not meet another run's)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_torchrun_two_ranks_give_the_same_rows_as_one_process(tmp_path, cli):
    videos = make_many(tmp_path / "dist", 7)
    write_broken(tmp_path / "dist" / "zz_broken.mp4", "random")
    common = ["tag", str(tmp_path / "dist"), "--labels", LABELS, *TINY, "--workers", "0", "--batch-size", "2"]
    single = cli(*common, "-o", str(tmp_path / "one.jsonl"))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    multi = subprocess.run(
        [
            str(torchrun),
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            "-m",
            "ezclip_cli",
            *common,
            "-o",
            str(tmp_path / "two.jsonl"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert single.code == 1 and multi.returncode != 0, multi.stderr  # the broken file fails in both
    assert (tmp_path / "two.jsonl").exists(), multi.stderr[-3000:]
    one = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    two = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert len(one) == len(videos) + 1

    def strip(rows: list[dict]) -> list[tuple]:
        return [(r["path"], r["status"], r["labels"], [round(s, 4) for s in r["scores"]]) for r in rows]

    assert strip(one) == strip(two)
    assert not (tmp_path / "two.jsonl.parts").exists()
