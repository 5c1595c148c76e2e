"""Light and instant: decoding workers without torch, worker counts that pay for themselves, no silent first use."""

from __future__ import annotations

import logging
import subprocess
import sys

from tests.helpers import REPO, TINY_CONFIG, run_cli
from tests.media import moving_ball_frames, write_video


def test_decoding_imports_no_torch(tmp_path):
    clip = write_video(tmp_path / "a.mp4", moving_ball_frames(16, (40, 60), "right"))
    code = (
        "import sys; from pathlib import Path\n"
        "from ezclip_cli.tag.plan import Task\n"
        "from ezclip_cli.tag.pool import decode_task\n"
        "from ezclip_cli.video.reader import DecodeSettings\n"
        f"out = decode_task(Task(Path({str(clip)!r}), 'id'), DecodeSettings(8, 32))\n"
        "assert out.pixels.shape == (8, 3, 32, 32), out\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'open_clip') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # what a decoding worker process imports: PyAV and numpy only


def test_auto_workers_skip_processes_for_a_few_videos_and_n_is_capped(caplog):
    from ezclip_cli.tag.workers import IN_PROCESS_BELOW, cores, default_workers, resolve_workers

    assert resolve_workers("auto", 1) == 0 and resolve_workers("auto", IN_PROCESS_BELOW - 1) == 0
    assert resolve_workers("auto", IN_PROCESS_BELOW) == default_workers() == max(1, min(8, cores() - 1))
    assert resolve_workers(0, 1000) == 0 and resolve_workers(1, 3) == 1
    with caplog.at_level(logging.WARNING, logger="ezclip_cli"):
        assert resolve_workers(cores() + 98, 10) == cores()
    assert f"--workers {cores() + 98} is more than the {cores()} cores here" in caplog.text


def test_cli_workers_take_auto_or_a_number(tmp_path, capsys):
    write_video(tmp_path / "a.mp4", moving_ball_frames(8, 32, "left"))
    tiny = ("--model", str(TINY_CONFIG), "--pretrained", "none", "--template", "{}")
    ok = run_cli("tag", str(tmp_path), "-l", "a,b", *tiny, "-j", "100", capsys=capsys)
    assert ok.code == 0 and "cores here; using" in ok.err, ok.err
    bad = run_cli("tag", str(tmp_path), "-l", "a,b", *tiny, "-j", "many", capsys=capsys)
    assert bad.code == 2 and "'many' is not auto or a whole number" in bad.err


def test_first_use_of_a_label_set_shows_prompt_encoding_progress_in_logs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    write_video(tmp_path / "a.mp4", moving_ball_frames(8, 32, "left"))
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"action {i}\n" for i in range(300)))
    tiny = ("--model", str(TINY_CONFIG), "--pretrained", "none", "--template", "{}", "-j", "0")
    first = run_cli("tag", str(tmp_path), "-l", str(labels), *tiny, "--progress-interval", "0", capsys=capsys)
    assert first.code == 0, first.err
    lines = first.err.splitlines()
    announced = [i for i, line in enumerate(lines) if "encoding 300 labels (300 prompts)" in line]
    counted = [i for i, line in enumerate(lines) if line.startswith("ezclip: encoding prompts ")]
    assert announced and counted and announced[0] < counted[0], first.err  # said before the work, then counted
    assert "300/300 prompts (100%)" in lines[counted[-1]]
    again = run_cli("tag", str(tmp_path), "-l", str(labels), *tiny, "--progress-interval", "0", capsys=capsys)
    assert again.code == 0 and "encoding" not in again.err  # the cache: nothing encoded, nothing said


def test_tag_runs_where_matplotlib_and_gdown_are_not_installed(tmp_path):
    write_video(tmp_path / "a.mp4", moving_ball_frames(8, 32, "left"))
    code = (
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('matplotlib', 'gdown'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from ezclip_cli.cli.app import main\n"
        f"sys.argv = ['ezclip', 'tag', {str(tmp_path)!r}, '-l', 'a,b', '--model', {str(TINY_CONFIG)!r},\n"
        "            '--pretrained', 'none', '--template', '{}', '-q']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("path,status") and len(done.stdout.splitlines()) == 2
