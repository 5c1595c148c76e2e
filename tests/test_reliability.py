"""Issue 14, case by case: nothing lost, nothing mixed, nothing left behind.

Each numbered case of the issue is reproduced with hostile files made here, and the fixed
behaviour is checked: foreign files untouched, one row per video after any sequence of runs
and kills, no process left after SIGTERM/SIGKILL, no allocation from hostile metadata, one
line and the documented exit code for every bad input. In-process through `run_main`, except
where a real process is the point (signals, pipes, two writers).
"""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, TINY_CONFIG, make_backbone, run_cli, run_main
from tests.media import moving_ball_frames, write_video

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none", "-j", "0"]
LABELS = "moving right,moving left,growing,shrinking"


# ---- helpers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Four tiny rendered clips in a folder."""
    root = tmp_path_factory.mktemp("clips") / "v"
    root.mkdir()
    for i, direction in enumerate(["right", "left", "grow", "shrink"]):
        write_video(root / f"{i}_{direction}.mp4", moving_ball_frames(8, 32, direction, seed=i))
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path_factory.getbasetemp() / "ezclip-cache"))


def tag(capsys, *args: str) -> tuple[int, str]:
    return run_main("tag", *args, capsys=capsys)


def tag_out(capsys, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of an in-process `ezclip tag`."""
    result = run_cli("tag", *args, capsys=capsys)
    return result.code, result.out, result.err


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("ezclip: error")]
    assert len(lines) == 1, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    return lines[0]


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def make_many(folder: Path, n: int) -> list[Path]:
    """`n` videos as hard links of one clip: distinct paths, one encode."""
    folder.mkdir(parents=True)
    first = write_video(folder / "c000.mp4", moving_ball_frames(8, 32, "right"))
    out = [first]
    for i in range(1, n):
        os.link(first, folder / f"c{i:03d}.mp4")
        out.append(folder / f"c{i:03d}.mp4")
    return out


def cli(
    *args: str, mark: str | None = None, tmpdir: Path | None = None, pause: str | None = None, **kwargs
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if pause:  # progress.pause_point: the child waits there for our signal
        env["EZCLIP_PAUSE_AT"] = pause
    if mark:
        env["EZCLIP_TEST_MARK"] = mark
    if tmpdir:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen([sys.executable, "-m", "ezclip_cli", *args], env=env, **kwargs)


def marked(mark: str) -> list[int]:
    """Live processes (zombies excluded) whose environment carries our mark: ezclip and its children."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"EZCLIP_TEST_MARK={mark}".encode() in environ.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def tiny_checkpoint(path: Path, num_frames: int = 4, **changes) -> Path:
    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model.checkpoint import save_checkpoint
    from ezclip_cli.model.ezclip import build_model
    from tests.helpers import trained_like

    model = build_model(make_backbone(0), ModelConfig(num_frames=num_frames))
    trained_like(model)
    for name, fill in changes.items():
        with torch.no_grad():
            dict(model.named_parameters())[name].fill_(fill)
    return save_checkpoint(path, model)


def rewrite_metadata(source: Path, dest: Path, tensors: dict | None = None, **meta_changes) -> Path:
    """A copy of checkpoint `source` with metadata fields replaced (and optionally other tensors)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata())
        kept = {k: f.get_tensor(k) for k in f.keys()} if tensors is None else tensors  # noqa: SIM118 (a safetensors handle)
    meta.update(meta_changes)
    save_file(kept, str(dest), metadata=meta)
    return dest


# ---- 1. -o never destroys a file ----------------------------------------------------------------
FOREIGN = {
    "package.json": ("json", '{\n  "name": "app",\n  "version": "1.0.0"\n}\n'),
    "server.log": ("jsonl", "2026-01-01 started\n2026-01-01 listening on :80\n"),
    "movie.mp4": ("json", None),  # binary
    "array.json": ("json", "[1, 2, 3]\n"),
    "people.csv": ("csv", "name,age\nann,3\n"),
    "other.jsonl": ("jsonl", '{"id": 1}\n{"id": 2}\n'),
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_o_refuses_files_ezclip_did_not_write(capsys, clips, tmp_path, name):
    fmt, text = FOREIGN[name]
    target = tmp_path / name
    if text is None:
        write_video(target, moving_ball_frames(4, 16))
    else:
        target.write_text(text)
    before = target.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(target), "-f", fmt, *extra)
        assert code == 2, err
        assert "not an ezclip" in one_error_line(err)
        assert "model:" not in err  # refused before the model was loaded
        assert target.read_bytes() == before


def test_o_special_files_directories_and_dash(capsys, clips, tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(fifo))
    assert code == 2 and "a FIFO" in one_error_line(err)
    assert fifo.is_fifo()
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", "/dev/null")
    assert code == 2 and "a device" in one_error_line(err)
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(tmp_path))
    assert code == 2 and "is a directory" in one_error_line(err)
    monkeypatch.chdir(tmp_path)
    code, out, err = tag_out(capsys, str(clips), "--labels", LABELS, *TINY, "-o", "-", "-f", "jsonl")
    assert code == 0, err
    assert not (tmp_path / "-").exists()
    assert len(out.splitlines()) == 4 and all(json.loads(line)["status"] == "ok" for line in out.splitlines())


def test_o_symlink_is_written_through_to_its_target(capsys, clips, tmp_path):
    real = tmp_path / "data" / "tags.jsonl"
    real.parent.mkdir()
    link = tmp_path / "tags.jsonl"
    link.symlink_to(real)
    for _ in range(2):
        code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(link))
        assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(jsonl_rows(real)) == 4


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write: chmod for users; root ignores modes, so a read-only mount."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if os.access("/proc/sys", os.W_OK):
        pytest.skip("root, and no read-only mount to write into")
    return Path("/proc/sys")


def test_read_only_output_is_refused_before_the_model_loads(capsys, clips, tmp_path):
    folder = _read_only_folder(tmp_path)
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(folder / "t.csv"))
    assert code == 1 and "read-only" in one_error_line(err) and "model:" not in err
    checkpoint = tiny_checkpoint(tmp_path / "m.ezclip")
    code, err = run_main("export", "--checkpoint", str(checkpoint), "--out", str(folder / "bundle"), capsys=capsys)
    assert code == 1 and "read-only" in one_error_line(err) and "exporting" not in err
    if os.geteuid() != 0:  # root may write a file whatever its mode
        locked = tmp_path / "t.csv"
        assert tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(locked))[0] == 0
        locked.chmod(0o444)
        code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(locked))
        assert code == 1 and "read-only" in one_error_line(err) and "model:" not in err


# ---- 2. two writers -------------------------------------------------------------------------------
def test_a_second_writer_fails_fast_while_the_first_holds_the_output(capsys, clips, tmp_path):
    from ezclip_cli.files import OutputLock

    out = tmp_path / "tags.csv"
    with OutputLock(out):
        code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out))
        assert code == 1 and "another ezclip" in one_error_line(err) and str(os.getpid()) in err
    assert not out.exists()
    assert tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out))[0] == 0
    assert len(csv_rows(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tags.csv"]  # no lock file left behind


def test_two_real_processes_on_one_output_leave_one_row_per_video(tmp_path):
    videos = make_many(tmp_path / "many", 16)
    out = tmp_path / "tags.jsonl"
    args = ["tag", str(tmp_path / "many"), "--labels", LABELS, *TINY, "-o", str(out), "--batch-size", "1"]
    procs = [cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    paths = [row["path"] for row in jsonl_rows(out)]
    assert sorted(paths) == sorted(str(v) for v in videos)  # each exactly once
    refused = [err for code, err in results if code == 1 and "another ezclip" in err]
    resumed = [err for code, err in results if code == 0 and f"{len(videos)} already done" in err]
    assert len(refused) + len(resumed) == 1, results  # the other one wrote everything


# ---- 3. resume keeps one row per video ------------------------------------------------------------
def test_relative_absolute_other_cwd_and_touch_keep_one_row_each(capsys, clips, tmp_path, monkeypatch):
    out = tmp_path / "tags.jsonl"
    monkeypatch.chdir(clips.parent)
    assert tag(capsys, "v", "--labels", LABELS, *TINY, "-o", str(out))[0] == 0
    assert tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out))[0] == 0
    monkeypatch.chdir(clips)
    code, err = tag(capsys, ".", "--labels", LABELS, *TINY, "-o", str(out))
    assert code == 0 and "4 already done" in err
    rows = jsonl_rows(out)
    assert len(rows) == 4 and len({r["video_id"] for r in rows}) == 4
    touched = clips / "0_right.mp4"
    before = next(r["video_id"] for r in rows if r["path"].endswith("0_right.mp4"))
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    code, err = tag(capsys, ".", "--labels", LABELS, *TINY, "-o", str(out))
    assert code == 0 and "3 already done" in err
    rows = jsonl_rows(out)
    assert len(rows) == 4
    mine = [r for r in rows if r["path"].endswith("0_right.mp4")]
    assert len(mine) == 1 and mine[0]["video_id"] != before  # the new row replaced the old one


@pytest.mark.parametrize("change", [["-k", "2"], ["--window", "0.5"]])
def test_jsonl_refuses_to_mix_runs_with_other_settings(capsys, clips, tmp_path, change):
    out = tmp_path / "tags.jsonl"
    assert tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out))[0] == 0
    before = out.read_bytes()
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out), *change)
    assert code == 2 and "--top-k/--window" in one_error_line(err)
    assert out.read_bytes() == before


def test_missing_input_is_an_error_row_and_the_rest_is_written(capsys, clips, tmp_path):
    out = tmp_path / "tags.csv"
    code, err = tag(capsys, str(clips), str(tmp_path / "gone.mp4"), "--labels", LABELS, *TINY, "-o", str(out))
    assert code == 1 and "Traceback" not in err
    rows = csv_rows(out)
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["error"]
    assert "no such file" in rows[-1]["error"]


# ---- 4. bundles are known by every file -----------------------------------------------------------
def test_bundle_with_a_swapped_onnx_graph_is_another_model(capsys, clips, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from ezclip_cli.export.bundle import export_bundle

    first = tiny_checkpoint(tmp_path / "a.ezclip")
    bundle = tmp_path / "bundle"
    export_bundle(first, bundle, labels=LABELS)
    out = tmp_path / "tags.jsonl"
    args = [str(clips), "--labels", LABELS, "--model", str(bundle), "--runtime", "onnx", "-j", "0", "-o", str(out)]
    assert tag(capsys, *args)[0] == 0
    # The same graph file with different weights inside: config.json unchanged.
    import onnx

    graph = onnx.load(str(bundle / "video_encoder.onnx"))
    weight = max(graph.graph.initializer, key=lambda t: len(t.raw_data))
    values = onnx.numpy_helper.to_array(weight).copy()
    weight.CopyFrom(onnx.numpy_helper.from_array(values * 0.5, weight.name))
    onnx.save(graph, str(bundle / "video_encoder.onnx"))
    before = out.read_bytes()
    code, err = tag(capsys, *args)
    assert code == 2 and "model" in one_error_line(err)
    assert out.read_bytes() == before

    # A graph with the wrong output size, and a config.json with a bad field: one line each.
    from onnx import TensorProto, helper

    video = helper.make_tensor_value_info("video", TensorProto.FLOAT, ["B", 4, 3, 32, 32])
    emb = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", 7])
    flat = helper.make_node("Flatten", ["video"], ["flat"], axis=1)
    cut = helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["embedding"])
    consts = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("starts", 0), ("ends", 7), ("axes", 1))]
    model = helper.make_model(
        helper.make_graph([flat, cut], "bad", [video], [emb], consts), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.save(model, str(bundle / "video_encoder.onnx"))
    code, err = tag(capsys, *args[:-2], "-f", "jsonl")
    assert code == 1 and "size 7" in one_error_line(err)
    config = json.loads((bundle / "config.json").read_text())
    config["num_frames"] = "eight"
    (bundle / "config.json").write_text(json.dumps(config))
    code, err = tag(capsys, *args[:-2], "-f", "jsonl")
    assert code == 1 and "num_frames" in one_error_line(err)


# ---- 5. CSV ---------------------------------------------------------------------------------------
def test_csv_quotes_carriage_returns_neutralises_formulas_and_resumes(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "odd"
    folder.mkdir()
    names = ["cr\rname.mp4", "=HYPERLINK(1).mp4", "+1.mp4", "-2.mp4", "@sum.mp4", "'quoted.mp4", "plain.mp4"]
    source = write_video(tmp_path / "src.mp4", moving_ball_frames(8, 32))
    for name in names:
        os.link(source, folder / name)
    monkeypatch.chdir(folder)  # named one by one, relative: the path field starts with the name
    inputs = ["--", *names]
    labels = "=cmd|' /C calc'!A0,+tick,-dash,@at"
    out = tmp_path / "tags.csv"
    args = ["--labels", labels, *TINY, "-o", str(out), "-k", "4"]
    assert tag(capsys, *args, *inputs)[0] == 0
    rows = csv_rows(out)
    assert len(rows) == len(names)  # the CR did not split a row
    for row in rows:
        for key in ("path", "label_1", "label_2", "label_3", "label_4"):
            assert not row[key].startswith(("=", "+", "-", "@")), row[key]
    assert sorted(r["path"] for r in rows) == sorted("'" + n if n[0] in "=+-@'" else n for n in names)
    code, err = tag(capsys, *args, *inputs)
    assert code == 0 and f"{len(names)} already done" in err  # no "another model" after a CR
    assert len(csv_rows(out)) == len(names)
    raw = tmp_path / "raw.csv"
    assert tag(capsys, "--labels", labels, *TINY, "-o", str(raw), "-k", "4", "--raw-csv", *inputs)[0] == 0
    assert sorted(r["path"] for r in csv_rows(raw)) == sorted(names)
    code, err = tag(capsys, "--labels", labels, *TINY, "-o", str(raw), "-k", "4", *inputs)
    assert code == 2  # neutralised and raw rows are not mixed


TORN = [
    b'x.mp4,ok,,,,1.0,"label with\nnewline',  # inside a quoted newline
    b'"=a\r\nb',  # an open quote, CRLF inside
    b"x.mp4,ok,,,,1.0,moving right,0.5",  # half a row, no newline
    b"x.mp4,ok,,,,1.0,moving right,0.5 caf\xc3",  # a multi-byte character cut in two
]


@pytest.mark.parametrize("tail", range(len(TORN)))
def test_a_torn_last_csv_row_of_any_shape_is_recovered(capsys, clips, tmp_path, tail):
    out = tmp_path / "tags.csv"
    assert tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out))[0] == 0
    rows = csv_rows(out)
    with open(out, "ab") as f:
        f.write(TORN[tail])
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "-o", str(out))
    assert code == 0 and "4 already done" in err, err
    assert csv_rows(out) == rows


# ---- 6. processes and temp folders ----------------------------------------------------------------
def _start_tagging_to_kill(folder: Path, sig: signal.Signals) -> dict:
    """A real `ezclip tag` with a decoder worker over 16 videos in `folder`, one row at a time, marked
    so that it and its children can be found in /proc; its own TMPDIR, stderr to a file."""
    make_many(folder / "many", 16)
    (folder / "tmp").mkdir()
    run = {
        "folder": folder,
        "out": folder / "tags.jsonl",
        "mark": f"{os.getpid()}-{sig}-{time.time_ns()}",
        "log": (folder / "stderr.txt").open("wb"),  # a file, not a pipe: an orphan holding a pipe would hang the test
        "paused": folder / "paused",
    }
    run["proc"] = cli(
        "tag",
        str(folder / "many"),
        "--labels",
        LABELS,
        "--model",
        str(TINY_CONFIG),
        "--pretrained",
        "none",
        "-j",
        "1",
        "--batch-size",
        "1",
        "-o",
        str(run["out"]),
        mark=run["mark"],
        pause=f"rows:3:{run['paused']}",  # stop after the third row, and wait for the signal there
        tmpdir=folder / "tmp",
        stdout=subprocess.DEVNULL,
        stderr=run["log"],
    )
    return run


def test_no_process_left_after_the_main_one_is_killed(capsys, tmp_path, monkeypatch):
    """SIGTERM and SIGKILL, each sent to its own `ezclip tag` once 3 rows are written. The two processes
    run side by side: starting one (importing torch, spawning its decoder) is most of the time."""
    signals = (signal.SIGTERM, signal.SIGKILL)
    runs = {sig: _start_tagging_to_kill(tmp_path / sig.name, sig) for sig in signals}
    codes = {}
    try:
        pending, deadline = list(signals), time.monotonic() + 300
        while pending and time.monotonic() < deadline:
            for sig in pending[:]:
                proc = runs[sig]["proc"]
                if runs[sig]["paused"].exists() or proc.poll() is not None:
                    assert proc.poll() is None, f"{sig.name}: exited before its third row"
                    assert len(marked(runs[sig]["mark"])) >= 2, sig.name  # main + decoder worker (+ resource tracker)
                    proc.send_signal(sig)
                    pending.remove(sig)
            time.sleep(0.05)
        assert not pending, f"no rows from {[sig.name for sig in pending]} in 300 s"
        codes = {sig: runs[sig]["proc"].wait(timeout=60) for sig in signals}
    finally:
        for run in runs.values():
            if run["proc"].poll() is None:
                run["proc"].kill()
                run["proc"].wait()
            run["log"].close()
    left = {}
    for sig, run in runs.items():
        mark = run["mark"]
        if not wait_for(lambda mark=mark: not marked(mark), 5):
            left[sig.name] = marked(mark)
            for pid in left[sig.name]:  # clean up before failing
                os.kill(pid, signal.SIGKILL)
    assert not left, f"left behind: {left}"
    for sig, run in runs.items():
        folder, out = run["folder"], run["out"]
        err = (folder / "stderr.txt").read_text()
        if sig == signal.SIGTERM:
            assert codes[sig] == 143 and "terminated" in err and "Traceback" not in err, err
        else:
            assert codes[sig] == -signal.SIGKILL
        assert not list((folder / "tmp").glob("ezclip-*")), (sig.name, list((folder / "tmp").iterdir()))
        # ...and the output resumes to one row per video, named another way this time.
        written = [row["path"] for row in jsonl_rows(out)]
        assert len(written) == 3, sig.name
        monkeypatch.chdir(folder)
        code, err = tag(capsys, "many", "--labels", LABELS, *TINY, "-o", str(out))
        assert code == 0 and f"{len(set(written))} already done" in err, err
        rows = jsonl_rows(out)
        assert len(rows) == 16 and len({r["video_id"] for r in rows}) == 16, sig.name


def test_a_closed_pipe_ends_quietly_with_0(tmp_path):
    make_many(tmp_path / "many", 40)
    proc = cli(
        "tag",
        str(tmp_path / "many"),
        "--labels",
        LABELS,
        *TINY,
        "-f",
        "jsonl",
        "--batch-size",
        "1",
        "-q",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines = [proc.stdout.readline(), proc.stdout.readline()]  # `| head -2`
    proc.stdout.close()
    code = proc.wait(timeout=300)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert all(json.loads(line)["status"] == "ok" for line in lines)
    assert code == 0 and err == "", err


# ---- 7. hostile checkpoints ------------------------------------------------------------------------
def _hostile_config(source: Path, **vision) -> str:
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    config["backbone_config"]["vision_cfg"].update(vision)
    return json.dumps(config)


def test_hostile_metadata_never_allocates(capsys, clips, tmp_path):
    source = tiny_checkpoint(tmp_path / "ok.ezclip")
    tiny = {"learned.x": torch.zeros(1)}
    hostile = _hostile_config(source, width=16000, layers=512)
    huge = rewrite_metadata(source, tmp_path / "huge.ezclip", tiny, config=hostile)
    assert huge.stat().st_size < 4096
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, err = tag(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(huge), "-j", "0")
    assert code == 1 and "beyond any CLIP" in one_error_line(err)
    code, err = run_main("info", "--checkpoint", str(huge), capsys=capsys)
    assert code == 1 and "beyond any CLIP" in one_error_line(err)
    bad_field = rewrite_metadata(source, tmp_path / "f.ezclip", tiny, config=_hostile_config(source, width=1e300))
    code, err = tag(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(bad_field), "-j", "0")
    assert code == 1 and "width" in one_error_line(err)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak  # KiB on Linux
    assert grown < 512 * 1024, f"peak memory grew by {grown} KiB"
    from ezclip_cli.model.limits import MAX_PARAMETERS, available_memory

    free = available_memory()
    if free is not None and free // 4 < MAX_PARAMETERS:  # a model below the hard limit but above free memory
        width = int(((free // 4 + MAX_PARAMETERS) / 2 / (12 * 256)) ** 0.5) // 64 * 64
        hostile = _hostile_config(source, width=width, layers=256)
        big = rewrite_metadata(source, tmp_path / "big.ezclip", tiny, config=hostile)
        code, err = run_main("tag", str(clips), "--labels", LABELS, "--checkpoint", str(big), "-j", "0", capsys=capsys)
        assert code == 1 and "GiB of memory is available" in one_error_line(err)


def test_learned_tensors_must_be_float_and_finite(capsys, clips, tmp_path):
    from safetensors import safe_open

    source = tiny_checkpoint(tmp_path / "ok.ezclip")
    with safe_open(str(source), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
    name = next(k for k in tensors if k.endswith(".prompt"))
    as_int = rewrite_metadata(source, tmp_path / "int.ezclip", {**tensors, name: (tensors[name] * 100).long()})
    code, err = tag(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(as_int), "-j", "0")
    assert code == 1 and "torch.int64, not floating point" in one_error_line(err)
    nan_prompt = torch.full_like(tensors[name], float("nan"))
    nan = rewrite_metadata(source, tmp_path / "nan.ezclip", {**tensors, name: nan_prompt})
    code, err = tag(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(nan), "-j", "0")
    assert code == 1 and "NaN or infinity" in one_error_line(err)


def test_non_finite_scores_are_error_rows_and_json_never_holds_nan(capsys, clips, tmp_path):
    broken = tiny_checkpoint(tmp_path / "nanbackbone.ezclip", **{"clip.visual.ln_post.weight": float("nan")})
    code, out, _ = tag_out(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(broken), "-j", "0", "-f", "json")

    def refuse(constant: str):
        raise AssertionError(f"{constant} in JSON output")

    rows = json.loads(out, parse_constant=refuse)
    assert code == 1 and len(rows) == 4
    assert all(r["status"] == "error" and "non-finite" in r["error"] and r["scores"] == [] for r in rows)


# ---- 8. a reason instead of "internal error" --------------------------------------------------------
def test_corrupt_checkpoint_metadata_gets_a_reason(capsys, clips, tmp_path):
    source = tiny_checkpoint(tmp_path / "ok.ezclip")
    cases = {
        "badjson": ({"config": "{not json"}, "not JSON"),
        "string": ({"config": json.dumps("hello")}, "not a mapping"),
        "types": ({"config": json.dumps({**json.loads(_hostile_config(source)), "num_frames": "8"})}, "num_frames"),
        "version": ({"format_version": "one"}, "format_version"),
        "extra": ({"extra": "{broken"}, "'extra' is not JSON"),
    }
    for name, (changes, reason) in cases.items():
        path = rewrite_metadata(source, tmp_path / f"{name}.ezclip", **changes)
        code, err = tag(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(path), "-j", "0")
        assert code == 1 and reason in one_error_line(err), (name, err)


def test_malformed_reference_files_get_a_reason(capsys, clips, tmp_path):
    from ezclip_cli.model.checkpoint import REFERENCE_PROMPT_KEY

    only_prompts = tmp_path / "prompts.pt"
    torch.save({"model_state_dict": {REFERENCE_PROMPT_KEY: torch.zeros(2, 4, 8)}}, only_prompts)
    not_tensor = tmp_path / "nottensor.pt"
    torch.save({"model_state_dict": {REFERENCE_PROMPT_KEY: torch.zeros(2, 4, 8), "visual.conv1.weight": 3}}, not_tensor)
    flat = tmp_path / "flat.pt"
    torch.save({"model_state_dict": {REFERENCE_PROMPT_KEY: torch.zeros(8)}}, flat)
    for path, reason in ((only_prompts, "no usable CLIP weights"), (not_tensor, "is not a tensor"), (flat, "shape")):
        code, err = tag(capsys, str(clips), "--labels", LABELS, "--checkpoint", str(path), "-j", "0")
        assert code == 1 and reason in one_error_line(err), err


def test_train_config_and_resume_errors_get_a_reason(capsys, tmp_path):
    cases = {
        "latin1.yaml": ("lr: 0.1\nout: caf\xe9\n".encode("latin-1"), "not valid UTF-8 (byte 0xe9)"),
        "nan.yaml": (b"lr: .nan\n", "finite"),
        "templates.yaml": (b"templates: 5\n", "templates"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        code, err = run_main("train", "--config", str(tmp_path / name), "--out", str(tmp_path / "run"), capsys=capsys)
        assert code == 2 and reason in one_error_line(err), err
    run = tmp_path / "killed"
    run.mkdir()
    whole = tiny_checkpoint(tmp_path / "whole.ezclip").read_bytes()
    (run / "last.ezclip").write_bytes(whole[: len(whole) // 2])
    (run / "last.state.safetensors").write_bytes(b"")
    code, err = run_main("train", "--resume", str(run), capsys=capsys)
    assert code == 1 and "last.ezclip" in one_error_line(err)


# ---- 9. exit codes and messages ---------------------------------------------------------------------
def test_usage_and_input_messages(capsys, clips, tmp_path):
    code, err = tag(capsys, str(clips), "--labels", LABELS, *TINY, "--template", "nobraces")
    assert code == 2 and "{}" in one_error_line(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = tag(capsys, str(empty), "--labels", LABELS, *TINY)
    assert code == 1 and "no video files" in one_error_line(err)
    code, err = run_main("eval", "--dataset", "bogus", "--root", str(tmp_path), capsys=capsys)
    assert code == 2 and "hmdb51" in one_error_line(err) and "protocol" not in err


def test_fifo_device_and_huge_resolution_get_their_own_reason(capsys, tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.y4m"
    huge.write_bytes(b"YUV4MPEG2 W40000 H40000 F8:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 1000)
    big = tmp_path / "big.y4m"
    big.write_bytes(b"YUV4MPEG2 W9000 H9000 F8:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 1000)
    inputs = [str(fifo), "/dev/zero", str(huge), str(big)]
    code, out, _ = tag_out(capsys, *inputs, "--labels", LABELS, *TINY, "-f", "jsonl")
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.splitlines())}
    assert code == 1
    assert "a FIFO" in rows["pipe.mp4"]["error"]
    assert "a device" in rows["zero"]["error"]
    assert "picture size 40000x40000 is invalid" in rows["huge.y4m"]["error"]
    assert "declared resolution 9000x9000" in rows["big.y4m"]["error"]
    assert not any("0 bytes" in r["error"] or "busy" in r["error"] for r in rows.values())


# ---- 10. variable frame rate ------------------------------------------------------------------------
def test_vfr_sampling_takes_distinct_frames_nearest_the_sample_times(tmp_path):
    import av

    from ezclip_cli.video.pyav import nearest_distinct
    from ezclip_cli.video.reader import read_frames

    path = tmp_path / "vfr.mp4"
    times = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 1.5, 3, 4.5, 6, 7.5, 9, 10.5, 12]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t, image in zip(times, moving_ball_frames(16, 32)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    every = read_frames(path, 16, decoder="pyav")
    assert list(every.timestamps) == pytest.approx(times, abs=1e-3)  # all 16 distinct frames
    eight = read_frames(path, 8, decoder="auto")
    assert len(set(eight.timestamps)) == 8 and list(eight.timestamps) == sorted(eight.timestamps)
    assert nearest_distinct([0.0, 1.0, 2.0], [0.1, 0.2, 0.3]) == [0, 1, 2]  # distinct while frames last
    assert nearest_distinct([0.0, 1.0, 2.0, 3.0], [0.0, 2.9]) == [0, 3]  # else the nearest
    assert nearest_distinct([0.0, 1.0], [0.0, 0.4, 0.9]) == [0, 0, 1]  # fewer frames: repeats


def test_constant_frame_rate_sampling_is_unchanged(tmp_path):
    from ezclip_cli.video.reader import read_frames

    clip = write_video(tmp_path / "cfr.mp4", moving_ball_frames(16, 32), fps=8)
    assert read_frames(clip, 8, decoder="pyav").timestamps == tuple(i / 8 for i in (0, 2, 4, 6, 8, 10, 12, 14))
    assert len(set(read_frames(clip, 32, decoder="pyav").timestamps)) == 16  # repeats only when it must
