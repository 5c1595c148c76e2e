"""One progress display for tag, train and eval: plain timed lines off a terminal, a bar on one, --quiet silences."""

from __future__ import annotations

import io
import re

import pytest

from ezclip_cli.errors import UsageError
from ezclip_cli.progress import Progress, default_interval, format_duration
from tests.helpers import TINY_CONFIG, run_main
from tests.media import moving_ball_frames, write_broken, write_video

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
LINE = re.compile(r"^ezclip: tagging (\d+)/(\d+) videos \(\d+%\), (\d+) failed, [\d.]+ videos/s, (ETA \S+|took \S+)$")


class Clock:
    """A monotonic clock the test moves by hand (progress decisions depend on time, tests must not)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("ezclip_cli.progress.time.monotonic", fake)
    return fake


def test_plain_lines_every_interval_with_done_failures_rate_and_eta(clock):
    stream = io.StringIO()
    progress = Progress("tagging", "videos", interval=30, stream=stream, terminal=False)
    progress(0, 100, 0, "")
    for done in range(1, 51):
        clock.now += 1.0  # one video a second
        progress(done, 100, done // 10, "")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # 50 s of work, one line after 30 s
    assert lines[0] == "ezclip: tagging 30/100 videos (30%), 3 failed, 1.00 videos/s, ETA 1m10s"
    progress.close()
    final = stream.getvalue().splitlines()[-1]
    assert final == "ezclip: tagging 50/100 videos (50%), 5 failed, 1.00 videos/s, ETA 50s"


def test_no_lines_for_a_short_run_and_none_after_close_when_none_before(clock):
    stream = io.StringIO()
    with Progress("tagging", "videos", interval=30, stream=stream, terminal=False) as progress:
        progress(0, 3, 0, "")
        for done in (1, 2, 3):
            clock.now += 2.0
            progress(done, 3, 0, "")
    assert stream.getvalue() == ""  # the command's own summary line is enough


def test_rate_counts_from_the_first_report_so_a_resumed_run_is_not_inflated(clock):
    stream = io.StringIO()
    progress = Progress("training", "steps", interval=0, stream=stream, terminal=False, failures=False)
    progress(900, 1000, 0, "")  # resumed at step 900
    clock.now += 50.0
    progress(950, 1000, 0, "loss 0.1234")
    assert stream.getvalue() == "ezclip: training 950/1000 steps (95%), 1.00 steps/s, ETA 50s, loss 0.1234\n"
    clock.now += 50.0
    progress(1000, 1000, 0, "loss 0.1")
    assert stream.getvalue().splitlines()[-1].endswith("1000/1000 steps (100%), 1.00 steps/s, took 1m40s, loss 0.1")


def test_terminal_gets_a_bar_with_count_rate_and_eta(clock):
    stream = io.StringIO()
    progress = Progress("tagging", "videos", interval=30, stream=stream, terminal=True)
    progress(0, 10, 0, "")
    clock.now += 4.0
    progress(4, 10, 1, "")
    progress.close()
    text = stream.getvalue()
    assert "4/10" in text and "1 failed" in text and "1.00 videos/s" in text and "ETA 6s" in text


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv("EZCLIP_PROGRESS_INTERVAL", raising=False)
    assert default_interval() == 30.0
    monkeypatch.setenv("EZCLIP_PROGRESS_INTERVAL", "5")
    assert default_interval() == 5.0
    monkeypatch.setenv("EZCLIP_PROGRESS_INTERVAL", "soon")
    with pytest.raises(UsageError, match="EZCLIP_PROGRESS_INTERVAL"):
        default_interval()


def test_format_duration():
    seconds = (0, 59.4, 61, 3599, 3600, 7322)
    assert [format_duration(s) for s in seconds] == ["0s", "59s", "1m01s", "59m59s", "1h00m", "2h02m"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress-videos")
    for i, direction in enumerate(("right", "left", "grow")):
        write_video(root / f"v{i}.mp4", moving_ball_frames(8, 32, direction))
    write_broken(root / "broken.mp4", "random")
    return root


def test_tag_writes_progress_lines_when_stderr_is_not_a_terminal(folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    code, err = run_main(
        "tag",
        str(folder),
        "-l",
        "a,b",
        *TINY,
        "-j",
        "0",
        "-b",
        "2",
        "-o",
        str(tmp_path / "t.csv"),
        "--progress-interval",
        "0",
        capsys=capsys,
    )
    assert code == 1  # the broken file
    lines = [line for line in err.splitlines() if line.startswith("ezclip: tagging ")]
    parsed = [LINE.match(line) for line in lines]
    assert lines and all(parsed), err
    assert [int(m.group(1)) for m in parsed] == [1, 2, 3, 4]
    assert {int(m.group(2)) for m in parsed} == {4}
    assert int(parsed[-1].group(3)) == 1 and parsed[-1].group(4).startswith("took")


def test_environment_variable_sets_the_interval_and_quiet_silences(folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EZCLIP_PROGRESS_INTERVAL", "0")
    code, err = run_main(
        "tag", str(folder), "-l", "a,b", *TINY, "-j", "0", "-o", str(tmp_path / "a.csv"), capsys=capsys
    )
    assert code == 1 and "ezclip: tagging 4/4 videos" in err
    code, err = run_main(
        "tag", str(folder), "-l", "a,b", *TINY, "-j", "0", "-o", str(tmp_path / "b.csv"), "-q", capsys=capsys
    )
    assert code == 1 and "tagging" not in err and "videos/s" not in err


def test_library_draws_nothing_without_a_callback(folder, capsys, tmp_path, monkeypatch):
    from ezclip_cli.api import tag_videos

    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    seen: list[tuple[int, int, int, str]] = []
    from ezclip_cli.config import TagConfig
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.run import run_tagging

    results = tag_videos([folder], "a,b", model=str(TINY_CONFIG), pretrained="none", workers=0)
    assert len(results) == 4 and "videos/s" not in capsys.readouterr().err
    run_tagging(
        [str(folder)],
        TagConfig(labels="a,b", workers=0, output_format="jsonl"),
        model=ModelSpec(backbone=str(TINY_CONFIG), pretrained="none"),
        stdout=io.StringIO(),
        progress=lambda *report: seen.append(report),
    )
    assert seen[0] == (0, 4, 0, "") and seen[-1] == (4, 4, 1, "")
    assert [s[0] for s in seen] == [0, 1, 2, 3, 4]


def test_train_writes_step_lines_with_loss_when_not_a_terminal(folder, capsys, tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"{folder}/v{i}.mp4\t{label}\n" for i, label in enumerate(("right", "left", "grow"))))
    code, err = run_main(
        "train",
        "--train-list",
        str(listing),
        *TINY,
        "--max-steps",
        "3",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--num-frames",
        "4",
        "--log-every",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--progress-interval",
        "0",
        capsys=capsys,
    )
    assert code == 0, err
    lines = [line for line in err.splitlines() if re.match(r"ezclip: training \d+/", line)]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"], err
    assert all("steps/s" in line and "loss " in line and "failed" not in line for line in lines)


def test_eval_counts_videos_and_failures(capsys, tmp_path):
    root = tmp_path / "ucf"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Right\n2 Left\n")
    tests = []
    for i, (name, direction) in enumerate((("Right", "right"), ("Left", "left"))):
        for g in (1, 2):
            rel = f"{name}/v_{name}_g0{g}_c01.avi"
            (root / "UCF-101" / name).mkdir(parents=True, exist_ok=True)
            if g == 1 and i == 1:
                write_broken(root / "UCF-101" / rel, "random")
            else:
                write_video(root / "UCF-101" / rel, moving_ball_frames(8, 32, direction, seed=g), codec="mpeg4")
            tests.append(rel + "\n")
    for fold in (1, 2, 3):
        (root / "ucfTrainTestlist" / f"testlist0{fold}.txt").write_text("".join(tests))
        (root / "ucfTrainTestlist" / f"trainlist0{fold}.txt").write_text("")
    code, err = run_main(
        "eval",
        *TINY,
        "--num-frames",
        "4",
        "--dataset",
        "ucf101",
        "--root",
        str(root),
        "--fold",
        "1",
        "--protocol",
        "closed-set",
        "--split",
        "test",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path / "report"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--progress-interval",
        "0",
        capsys=capsys,
    )
    assert code == 1, err  # one unreadable video
    lines = [line for line in err.splitlines() if re.match(r"ezclip: evaluating \d+/", line)]
    assert [line.split()[2] for line in lines] == ["2/4", "4/4"], err
    assert "1 failed" in lines[-1] and "videos/s" in lines[-1]


def test_byte_counts_read_as_megabytes_and_an_unknown_total_has_no_eta_figure():
    from ezclip_cli.progress import Progress

    stream = io.StringIO()
    progress = Progress("downloading m", "MB", stream=stream, terminal=False, interval=0, failures=False, scale=1e6)
    progress(0, 50_000_000)
    progress(25_000_000, 50_000_000)
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("ezclip: downloading m 25.0/50.0 MB (50%), ") and " MB/s, ETA " in line
    unknown = Progress("downloading m", "MB", stream=io.StringIO(), terminal=False, interval=0, scale=1e6)
    unknown(0, 0)
    unknown(3_000_000, 0)
    assert unknown.describe().startswith("3.0 MB, 0 failed, ") and unknown.describe().endswith("ETA unknown")
