"""Hostile and careless inputs, round three (issue 21): every bad input gets its own one line, bounded work.

Each test names the case of the issue it reproduces. The tiny shipped model and clips rendered here.
"""

from __future__ import annotations

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
    return root


def one_line_error(result, *needles: str, code: int = 2) -> None:
    assert result.code == code, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ezclip: error: "), result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_case5_a_huge_label_set_is_refused_before_any_encoding(clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    many = tmp_path / "many.txt"
    many.write_text("".join(f"label {i}\n" for i in range(50_001)))
    one_line_error(run_cli("tag", str(clips), "-l", str(many), *M, capsys=capsys), "50,000", code=1)
    long = tmp_path / "long.txt"
    long.write_text("run\n" + "x" * 2000 + "\n")
    one_line_error(run_cli("tag", str(clips), "-l", str(long), *M, capsys=capsys), "long.txt:2", code=1)
    assert not (tmp_path / "cache" / "text").exists() or not any((tmp_path / "cache" / "text").iterdir())


def test_case18_text_files_that_are_not_utf8_name_file_line_and_byte(clips, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"run\ncaf\xe9\n")
    one_line_error(run_cli("tag", str(clips), "-l", str(labels), *M, capsys=capsys), "labels.txt:2", "0xe9", code=1)
    train_list = tmp_path / "train.txt"
    train_list.write_bytes(b"left_001.mp4 0\nright_001.mp4 caf\xe9\n")
    result = run_cli(
        "train",
        "--train-list",
        str(train_list),
        "--labels",
        "left,right",
        "--model",
        str(REPO / "configs" / "backbones" / "tiny-vit.json"),
        "--pretrained",
        "none",
        "--max-steps",
        "1",
        "-o",
        str(tmp_path / "run"),
        "-q",
        capsys=capsys,
    )
    assert result.code != 0 and "Traceback" not in result.err and "UnicodeDecodeError" not in result.err
    assert "0xe9" in result.err and "train.txt" in result.err


def test_case19_nul_separated_path_lists_are_read_as_find_print0_writes_them(clips, tmp_path, capsys):
    listing = tmp_path / "list0"
    listing.write_bytes(b"\0".join(str(p).encode() for p in sorted(clips.glob("*.mp4"))) + b"\0")
    result = run_cli("tag", "--files-from", str(listing), "-l", "left,right", *M, "-f", "jsonl", capsys=capsys)
    assert result.code == 0, result.err
    assert len(result.out.splitlines()) == 2
    bad = tmp_path / "bad-list"
    bad.write_bytes(b"a.mp4\nb\xff.mp4\n")
    one_line_error(run_cli("tag", "--files-from", str(bad), "-l", "a,b", *M, capsys=capsys), "not valid UTF-8")


def test_case20_a_yaml_config_nested_5000_deep_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    result = run_cli("train", "--config", str(deep), "-o", str(tmp_path / "run"), capsys=capsys)
    assert result.code == 2 and "Traceback" not in result.err and "RecursionError" not in result.err, result.err
    assert "deep.yaml" in result.err
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi")
        )
    )
    result = run_cli("train", "--config", str(bomb), "-o", str(tmp_path / "run2"), capsys=capsys)
    assert result.code == 2 and "bomb.yaml" in result.err, result.err


def test_case21_a_scene_with_a_negative_start_names_its_csv_line(clips, tmp_path, capsys):
    scenes = tmp_path / "scenes.csv"
    scenes.write_text(
        "Scene Number,Start Frame,Start Timecode,Start Time (seconds),End Frame,End Timecode,End Time (seconds)\n"
        "1,0,00:00:00.000,0.0,8,00:00:01.000,1.0\n"
        "2,8,00:00:01.000,-1.0,16,00:00:02.000,2.0\n"
    )
    result = run_cli("tag", str(clips / "left_001.mp4"), "-l", "a,b", *M, "--scenes", str(scenes), capsys=capsys)
    assert result.code == 1 and "Traceback" not in result.err  # the video's row carries the reason
    assert "scenes.csv:3" in result.out and "ValueError" not in result.out, result.out


def test_case24_a_list_line_with_an_extra_tab_column_is_refused(clips, tmp_path, capsys):
    from ezclip_cli.data.video_lists import load_list_file
    from ezclip_cli.errors import EzclipError

    listing = tmp_path / "list.txt"
    listing.write_text(f"{clips / 'left_001.mp4'}\tgrow\textra\n")
    with pytest.raises(EzclipError, match=r"list.txt:1"):
        load_list_file(listing)
