"""Scale-out: shards from a SLURM array's variables, and `ezclip merge` joining their outputs once per video."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from ezclip_cli.errors import UsageError
from ezclip_cli.tag.output import RowWriter
from ezclip_cli.tag.plan import resolve_shard
from tests.helpers import TINY_CONFIG, run_main
from tests.media import moving_ball_frames, write_broken, write_video

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
SLURM = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")


@pytest.fixture(autouse=True)
def no_slurm(monkeypatch, tmp_path):
    for name in SLURM:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))


# ---- shard defaults ----------------------------------------------------------------------------
def test_shard_defaults_from_a_slurm_array():
    assert resolve_shard(None, None, {}) == (1, 0, None)
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "10", "SLURM_ARRAY_TASK_MIN": "0"}
    assert resolve_shard(None, None, env)[:2] == (10, 3)
    # --array=1-10 numbers tasks from 1; --array=0-18:2 in steps of 2: both are shards 0..9
    assert resolve_shard(None, None, {**env, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1"})[:2] == (10, 0)
    stepped = {
        "SLURM_ARRAY_TASK_ID": "18",
        "SLURM_ARRAY_TASK_COUNT": "10",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_STEP": "2",
    }
    assert resolve_shard(None, None, stepped)[:2] == (10, 9)
    assert resolve_shard(4, 1, env) == (4, 1, None)  # flags win
    assert resolve_shard(None, 5, env)[:2] == (10, 5)


def test_bad_shards_are_one_line_usage_errors():
    with pytest.raises(UsageError, match=r"--shard-index 10 must be in 0..9 \(from SLURM_ARRAY_TASK_ID"):
        resolve_shard(None, None, {"SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_COUNT": "10"})
    with pytest.raises(UsageError, match="not an integer"):
        resolve_shard(None, None, {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "10"})
    with pytest.raises(UsageError, match=r"--shard-index 2 must be in 0..1$"):
        resolve_shard(2, 2, {})


# ---- merge of real shard outputs ----------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("merge-videos")
    for i, direction in enumerate(("right", "left", "grow", "shrink", "right", "left", "grow")):
        write_video(root / f"v{i}.mp4", moving_ball_frames(8, 32, direction, seed=i))
    write_broken(root / "broken.mp4", "text")
    return root


def tag(folder: Path, out: Path, capsys, *extra: str) -> int:
    code, err = run_main(
        "tag",
        str(folder),
        "-l",
        "a,b,c",
        *TINY,
        "--num-frames",
        "4",
        "-j",
        "0",
        "-k",
        "2",
        "-o",
        str(out),
        *extra,
        capsys=capsys,
    )
    assert "Traceback" not in err, err
    return code


def read_any(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


def test_slurm_array_shards_in_three_formats_merge_to_the_single_run(folder, tmp_path, capsys, monkeypatch):
    whole = tmp_path / "whole.jsonl"
    tag(folder, whole, capsys)
    parts = [tmp_path / "part0.csv", tmp_path / "part1.json", tmp_path / "part2.jsonl"]
    for index, part in enumerate(parts):  # what three array tasks of one `sbatch --array=0-2` run
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
        monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
        tag(folder, part, capsys)
    sizes = [len(read_any(p)) for p in parts]
    assert sum(sizes) == 8 and max(sizes) < 8  # disjoint parts that cover everything

    merged = tmp_path / "merged.jsonl"
    code, err = run_main("merge", *map(str, parts), "-o", str(merged), capsys=capsys)
    assert code == 0, err
    assert "merged 3 files: 8 rows (1 failed), 0 duplicate rows dropped" in err
    ours, expected = read_any(merged), read_any(whole)
    assert [r["path"] for r in ours] == [r["path"] for r in expected]  # the single run's order, each once
    for got, want in zip(ours, expected):
        assert (got["status"], got["labels"], got["video_id"], got["model_id"]) == (
            want["status"],
            want["labels"],
            want["video_id"],
            want["model_id"],
        )
        assert got["scores"] == pytest.approx(want["scores"], abs=2e-6)  # both rounded to 6 decimals

    for fmt in ("csv", "json"):  # any output format, readable by the usual tools
        code, err = run_main("merge", *map(str, parts), "-o", str(tmp_path / f"merged.{fmt}"), capsys=capsys)
        assert code == 0, err
        rows = read_any(tmp_path / f"merged.{fmt}")
        assert [r["path"] for r in rows] == [r["path"] for r in expected]


def test_every_video_once_when_parts_overlap_and_a_failure_is_retried(folder, tmp_path, capsys):
    first = tmp_path / "first.jsonl"
    tag(folder, first, capsys)
    rows = read_any(first)
    retried = tmp_path / "retried.jsonl"  # as if a rerun had read v0.mp4, which failed the first time
    failed_first = [
        dict(r, status="error", error="boom", labels=[], scores=[]) if r["path"].endswith("v0.mp4") else r for r in rows
    ]
    first.write_text("".join(json.dumps(r) + "\n" for r in failed_first))
    retried.write_text(json.dumps(next(r for r in rows if r["path"].endswith("v0.mp4"))) + "\n")
    code, err = run_main("merge", str(first), str(first), str(retried), "-o", str(tmp_path / "m.csv"), capsys=capsys)
    assert code == 0, err
    out = read_any(tmp_path / "m.csv")
    assert len(out) == 8 and len({r["path"] for r in out}) == 8
    assert next(r for r in out if r["path"].endswith("v0.mp4"))["status"] == "ok"
    assert "9 duplicate rows dropped" in err


def test_refuses_to_mix_models_label_sets_top_k_and_windows(folder, tmp_path, capsys):
    base = tmp_path / "base.jsonl"
    tag(folder, base, capsys)
    other_labels = tmp_path / "labels.jsonl"
    tag(folder, other_labels, capsys, "--labels", "x,y,z")
    other_k = tmp_path / "k.csv"
    tag(folder, other_k, capsys, "-k", "3")
    windows = tmp_path / "windows.jsonl"
    tag(folder, windows, capsys, "--window", "0.2")
    other_model = tmp_path / "model.jsonl"
    tag(folder, other_model, capsys, "--num-frames", "2")
    for other, words in (
        (other_labels, "label sets"),
        (other_k, "top-3"),
        (windows, "--window rows"),
        (other_model, "different models"),
    ):
        code, err = run_main("merge", str(base), str(other), "-o", str(tmp_path / "never.csv"), capsys=capsys)
        assert code == 2 and words in err and err.count("\n") == 1, (other, err)
        assert not (tmp_path / "never.csv").exists()


def test_merge_never_overwrites_a_file_or_reads_garbage(folder, tmp_path, capsys):
    part = tmp_path / "part.csv"
    tag(folder, part, capsys)
    existing = tmp_path / "mine.csv"
    existing.write_text("precious\n")
    code, err = run_main("merge", str(part), "-o", str(existing), capsys=capsys)
    assert code == 2 and "--overwrite" in err and existing.read_text() == "precious\n"
    code, err = run_main("merge", str(part), "-o", str(existing), "--overwrite", capsys=capsys)
    assert code == 2 and existing.read_text() == "precious\n"  # --overwrite replaces only an ezclip output
    code, err = run_main("merge", str(part), "-o", str(part), "--overwrite", capsys=capsys)
    assert code == 2 and "one of the parts" in err
    code, err = run_main("merge", str(part), str(tmp_path / "missing.csv"), capsys=capsys)
    assert code == 2 and "missing.csv: no such file" in err
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"hello": 1}\n')
    code, err = run_main("merge", str(part), str(notes), capsys=capsys)
    assert code == 2 and "not an ezclip tag output" in err


def test_json_output_is_a_complete_array(tmp_path, capsys):
    rows = [
        {
            "path": f"/v/{name}.mp4",
            "status": "ok",
            "error": None,
            "start": None,
            "end": None,
            "duration": 1.0,
            "labels": ["a"],
            "scores": [0.9],
            "num_frames": 4,
            "timestamps": [0.0],
            "video_id": name,
            "model_id": "m",
            "labels_id": "l",
        }
        for name in ("b", "a")
    ]
    part = tmp_path / "part.jsonl"
    with part.open("w") as stream:
        writer = RowWriter(stream, "jsonl", 1)
        for row in rows:
            writer.write(row)
    code, err = run_main("merge", str(part), "-o", str(tmp_path / "merged.txt"), "-f", "json", capsys=capsys)
    assert code == 0, err
    out = json.loads((tmp_path / "merged.txt").read_text())
    assert [r["path"] for r in out] == ["/v/a.mp4", "/v/b.mp4"]


def test_files_from_reads_a_manifest_and_a_bad_one_is_a_usage_error(folder, tmp_path, capsys):
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(f"{folder / 'v0.mp4'}\n\n{folder / 'v1.mp4'}\n")
    out = tmp_path / "m.jsonl"
    code, err = run_main(
        "tag",
        "--files-from",
        str(manifest),
        "-l",
        "a,b",
        *TINY,
        "--num-frames",
        "4",
        "-j",
        "0",
        "-o",
        str(out),
        capsys=capsys,
    )
    assert code == 0, err
    assert [Path(r["path"]).name for r in read_any(out)] == ["v0.mp4", "v1.mp4"]
    code, err = run_main("tag", "--files-from", str(tmp_path / "none.txt"), "-l", "a,b", capsys=capsys)
    assert code == 2 and "--files-from" in err and err.count("\n") == 1
    code, err = run_main("tag", "-l", "a,b", capsys=capsys)
    assert code == 2 and "nothing to tag" in err
