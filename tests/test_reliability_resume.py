"""Issue 21, cases 1, 8 and 9: a resumed run writes only into the folder it was given, and a resume
that cannot go on is refused before any file is created or changed.

A two-step run of the tiny backbone on rendered clips is trained once per test, copied, and
resumed through the CLI (in this process) from copies and other directories.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ezclip_cli.train.run import train
from tests.helpers import run_main, tiny_train_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: equal snapshots = nothing touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def checkpoint_step(path: Path) -> int:
    from ezclip_cli.model.checkpoint import read_checkpoint_header

    return json.loads(read_checkpoint_header(path)["extra"])["step"]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("ezclip: error")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def run1(tmp_path, clip_files, monkeypatch) -> Path:
    """A finished 2-step run started in tmp_path with relative paths (`out: run1`, `train_list: train.txt`)."""
    lines = (clip_files / "train.txt").read_text(encoding="utf-8").splitlines()
    absolute = [f"{clip_files / line.split(chr(9))[0]}\t{line.split(chr(9))[1]}" for line in lines[::3]]
    (tmp_path / "train.txt").write_text("\n".join(absolute) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    train(tiny_train_config(tmp_path, train_list="train.txt", out="run1", max_steps=2, batch_size=2, num_frames=4))
    return tmp_path / "run1"


def test_a_copied_run_resumes_into_the_copy_and_leaves_the_original_alone(capsys, tmp_path, run1):
    # Case 1: the checkpoint remembers `out: run1`; resuming the copy used to train into run1.
    shutil.copytree(run1, tmp_path / "copyA")
    before = snapshot(run1)
    code, err = run_main("train", "--resume", "copyA", "--max-steps", "4", capsys=capsys)
    assert code == 0, err
    assert snapshot(run1) == before
    assert checkpoint_step(tmp_path / "copyA" / "last.ezclip") == 4
    assert checkpoint_step(tmp_path / "copyA" / "best.ezclip") == 4
    steps = [json.loads(line)["step"] for line in (tmp_path / "copyA" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    # Through its last.ezclip, the same: the folder of the file is the run.
    code, err = run_main("train", "--resume", "copyA/last.ezclip", "--max-steps", "5", capsys=capsys)
    assert code == 0, err
    assert snapshot(run1) == before and checkpoint_step(tmp_path / "copyA" / "last.ezclip") == 5


def test_a_resume_from_another_directory_creates_nothing_there(capsys, tmp_path, run1, monkeypatch):
    # Case 8: `cd other && ezclip train --resume ../copyA` created other/run1/train.log, then failed.
    shutil.copytree(run1, tmp_path / "copyA")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    before = snapshot(tmp_path)
    code, err = run_main("train", "--resume", "../copyA", "--max-steps", "4", capsys=capsys)
    line = one_error_line(err)
    assert code == 2 and "train-list train.txt" in line and "--train-list" in line, err
    assert snapshot(tmp_path) == before and not any(other.iterdir())
    # Told where the list is, it continues the copy, still creating nothing here.
    code, err = run_main(
        "train", "--resume", "../copyA", "--train-list", "../train.txt", "--max-steps", "4", capsys=capsys
    )
    assert code == 0, err
    assert not any(other.iterdir()) and checkpoint_step(tmp_path / "copyA" / "last.ezclip") == 4
    assert {k: v for k, v in snapshot(tmp_path).items() if k.startswith("run1/")} == {
        k: v for k, v in before.items() if k.startswith("run1/")
    }


def test_a_resume_that_cannot_continue_is_refused_before_anything_is_written(capsys, tmp_path, run1):
    # Case 9: DIR's last.ezclip belongs to another run (its state file is run1's): refused with
    # one line, and neither DIR nor the current directory gains or loses a file.
    train(tiny_train_config(tmp_path, train_list="train.txt", out="run2", max_steps=1, batch_size=2, num_frames=4))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copyfile(tmp_path / "run2" / "last.ezclip", mixed / "last.ezclip")
    shutil.copyfile(run1 / "last.state.safetensors", mixed / "last.state.safetensors")
    before = snapshot(tmp_path)
    code, err = run_main("train", "--resume", "mixed", "--max-steps", "4", capsys=capsys)
    assert code == 1 and "different saves" in one_error_line(err), err
    assert snapshot(tmp_path) == before
    # --out naming another folder than the resumed one: refused, nothing created.
    code, err = run_main("train", "--resume", "run1", "--out", "elsewhere", "--max-steps", "4", capsys=capsys)
    assert code == 2 and "own folder" in one_error_line(err), err
    assert snapshot(tmp_path) == before and not (tmp_path / "elsewhere").exists()
    # The library refuses a config whose out is not the resumed folder the same way.
    from ezclip_cli.errors import UsageError

    config = tiny_train_config(tmp_path, train_list="train.txt", out="run2", max_steps=4, batch_size=2, num_frames=4)
    with pytest.raises(UsageError, match="own folder"):
        train(config, resume=run1)
    assert snapshot(tmp_path) == before
