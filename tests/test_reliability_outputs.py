"""Wrong results and exit codes, round three (issue 21): honest rows, honest schemas, one line for each refusal.

Each test names the case of the issue it reproduces. The tiny shipped model and clips rendered here.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, run_cli
from tests.media import moving_ball_frames, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"
M = ("--checkpoint", str(MODEL), "--template", "{}", "-j", "0", "-q")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_video(root / "left_001.mp4", moving_ball_frames(16, 48, "left"))
    write_video(root / "right_001.mp4", moving_ball_frames(16, 48, "right"))
    write_video(root / "ten.mp4", moving_ball_frames(80, 32, "grow"), fps=8)  # 10 s
    return root


def test_case10_no_window_starts_at_or_past_the_end(clips, capsys):
    result = run_cli(
        "tag", str(clips / "ten.mp4"), "-l", "a,b", *M, "--window", "3", "--stride", "5", "-f", "jsonl", capsys=capsys
    )
    assert result.code == 0, result.err  # no error row for a window at 10.0-10.0
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["start"] < 10.0 for r in rows)


def test_case12_one_runs_csv_and_jsonl_parts_merge(clips, tmp_path, capsys):
    parts = []
    for index, suffix in enumerate(("csv", "jsonl")):
        out = tmp_path / f"part{index}.{suffix}"
        args = ("tag", str(clips), "-l", "a,b,c,d", *M, "-k", "5", "--num-shards", "2", "--shard-index", str(index))
        assert run_cli(*args, "-o", str(out), capsys=capsys).code == 0
        parts.append(str(out))
    result = run_cli("merge", *parts, "-o", str(tmp_path / "all.jsonl"), capsys=capsys)
    assert result.code == 0, result.err  # four labels under -k 5: a CSV header of 5, JSON lists of 4; one run
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 3


def test_case13_export_takes_the_prompt_options_tag_takes(tmp_path, capsys):
    from safetensors.numpy import load_file

    for name, extra in (("default", ()), ("custom", ("--template", "a video of {}"))):
        result = run_cli(
            "export",
            "-c",
            str(MODEL),
            "-o",
            str(tmp_path / name),
            "-l",
            "run,jump",
            "--bundle-formats",
            "safetensors",
            *extra,
            "-q",
            capsys=capsys,
        )
        assert result.code == 0, result.err
    config = json.loads((tmp_path / "custom" / "config.json").read_text())
    assert config["labels"]["templates"] == ["a video of {}"]
    default = load_file(str(tmp_path / "default" / "text_embeddings.safetensors"))["text_embeddings"]
    custom = load_file(str(tmp_path / "custom" / "text_embeddings.safetensors"))["text_embeddings"]
    assert default.shape == custom.shape and abs(default - custom).max() > 1e-4  # the template reached the text side


def test_case14_search_rows_have_their_own_schema_and_paths_for_the_shell(clips, tmp_path, capsys):
    store = tmp_path / "store"
    assert (
        run_cli("embed", str(clips), "--save-embeddings", str(store), *M[:2], "-j", "0", "-q", capsys=capsys).code == 0
    )
    result = run_cli("search", str(store), "a ball", "-k", "3", "-f", "csv", capsys=capsys)
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0])[:4] == ["rank", "query", "score", "path"] and [r["rank"] for r in rows] == ["1", "2", "3"]
    assert all(r["query"] == "a ball" for r in rows) and "label_1" not in rows[0]
    paths = run_cli("search", str(store), "a ball", "-k", "3", "-f", "paths", capsys=capsys)
    assert paths.out.splitlines() == [r["path"] for r in rows]


def test_case15_o_dev_stdout_on_a_pipe_is_one_line(clips):
    code = (
        "import sys; from ezclip_cli.cli.app import main; "
        f"sys.argv = ['ezclip', 'tag', {str(clips / 'left_001.mp4')!r}, '-l', 'a,b', '--checkpoint', {str(MODEL)!r}, "
        "'-j', '0', '-o', '/dev/stdout']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stderr.strip().startswith("ezclip: error:") and len(done.stderr.strip().splitlines()) == 1


def test_case16_a_backbone_config_that_is_not_a_mapping_is_corrupt_metadata(clips, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(MODEL), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
    config = json.loads(meta["config"])
    config.update(backbone="/etc/passwd", backbone_config=None)
    meta["config"] = json.dumps(config)
    hostile = tmp_path / "hostile.ezclip"
    save_file(tensors, str(hostile), metadata=meta)
    for command in (("tag", str(clips), "-l", "a,b", "-j", "0"), ("info",)):
        result = run_cli(*command, "--checkpoint", str(hostile), capsys=capsys)
        assert result.code == 1 and "corrupt checkpoint metadata" in result.err, result.err
        assert "AttributeError" not in result.err and "internal error" not in result.err
